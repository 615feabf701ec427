"""Frames per second of `medtalk preview` at 512x512 on the real clip: rendering alone, and mp4 writing.

Median of a few runs each, for the default drawing and for --smooth (2x supersampling). The mp4 figure
is the whole write as the command does it (render, colour conversion, H.264 + AAC encoding, muxing) on
the real clip with its audio. Target: >= 120 fps for both with the default drawing.

Run with the interpreter of the environment to measure, e.g. `.venv/bin/python benchmarks/preview.py`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "emoface_validation"
CLIP = REAL / "angry_gd04_001_021.txt"
SIZE = 512
TARGET_FPS = 120.0
RENDER_RUNS = 5
ENCODE_RUNS = 3


def median_fps(run, runs: int) -> tuple[float, list[float]]:
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        frames = run()
        rates.append(frames / (time.perf_counter() - start))
    return statistics.median(rates), rates


def main() -> None:
    import medtalk
    from medtalk.core.plugins import get_registry
    from medtalk.render.face2d import FaceRenderer
    from medtalk.render.preview import fitted_audio
    from medtalk.render.video import write_mp4

    if not CLIP.exists():
        sys.exit(f"the real clip is missing: {CLIP}")
    sequence = medtalk.read_sequence(CLIP)
    sound = fitted_audio(CLIP.with_suffix(".wav"), sequence, CLIP)
    rig = get_registry("rig").get("metahuman-174")
    print(f"{CLIP.name}: {sequence.num_frames} frames at {sequence.fps:g} fps, {SIZE}x{SIZE}")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, supersample in (("default", 1), ("--smooth", 2)):
            renderer = FaceRenderer(rig, size=SIZE, supersample=supersample)

            def render(renderer=renderer) -> int:
                return sum(1 for _ in renderer.frames([sequence]))

            def encode(renderer=renderer) -> int:
                return write_mp4(
                    renderer.frames([sequence]),
                    Path(folder) / "bench.mp4",
                    fps=sequence.fps,
                    width=SIZE,
                    height=SIZE,
                    audio=sound,
                )

            render()  # warm-up: builds the face model, fills caches
            for task, run, runs in (("render", render, RENDER_RUNS), ("mp4", encode, ENCODE_RUNS)):
                fps, rates = median_fps(run, runs)
                results[(label, task)] = fps
                shown = ", ".join(f"{r:.0f}" for r in rates)
                print(f"{label:<9} {task:<7} median {fps:7.1f} fps   runs: {shown}")
    for task in ("render", "mp4"):
        fps = results[("default", task)]
        print(
            f"target >= {TARGET_FPS:.0f} fps, {task}: {'met' if fps >= TARGET_FPS else 'MISSED'} ({fps:.0f})"
        )


if __name__ == "__main__":
    main()
