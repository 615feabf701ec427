"""Load time, wall time, real-time factor and peak memory of each embedded backend.

Usage: python benchmarks/backends.py [--seconds 20] [--only NAME ...]

The speech is a ~20 s English clip synthesized here (espeak-ng, the `synth` extra). Each backend runs in a
process of its own, so its peak RSS is its own (Python, torch and medtalk included: the "baseline" row is
that floor). Load = building the component and its first call on 1 s of audio (models load lazily);
wall = one call on the whole clip, median of --repeats; RTF = wall / clip duration.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SENTENCES = (
    "The old lighthouse keeper climbed the stairs every evening at dusk.",
    "She could not believe how quickly the storm had passed over the harbour.",
    "Please bring the blue folder and two pencils to the meeting room.",
    "We watched the children play by the river until the sun went down.",
    "Honestly, that was the most wonderful surprise of the whole year.",
    "Nobody expected the little bakery on the corner to win the prize.",
)

# name -> (kind, spec, what it takes: "audio", "audio+text", "text", "image")
BACKENDS: dict[str, tuple[str, dict, str]] = {
    "baseline": ("none", {}, "none"),
    "logmel": ("featurizer", {"type": "logmel"}, "audio"),
    "prosody": ("featurizer", {"type": "prosody"}, "audio"),
    "whisper-encoder": ("featurizer", {"type": "whisper-encoder"}, "audio"),
    "faster-whisper": ("transcriber", {"type": "faster-whisper"}, "audio"),
    "pocketsphinx-align": ("transcriber", {"type": "pocketsphinx-align"}, "audio+text"),
    "minilm": ("text_encoder", {"type": "minilm"}, "text"),
    "minilm-text": ("guidance_encoder", {"type": "minilm-text"}, "guidance-text"),
    "face-blendshapes": ("guidance_encoder", {"type": "face-blendshapes"}, "image"),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthesize(seconds: float, folder: Path) -> tuple[Path, str]:
    import numpy as np
    import soundfile

    from medtalk.synth.speech import speak

    pieces, texts, total, index = [], [], 0.0, 0
    while total < seconds:
        speech = speak(SENTENCES[index % len(SENTENCES)], voice="en-us")
        pieces.append(speech.samples)
        pieces.append(np.zeros(int(0.3 * speech.sample_rate), dtype=np.float32))
        texts.append(speech.text)
        total += len(speech.samples) / speech.sample_rate + 0.3
        rate = speech.sample_rate
        index += 1
    path = folder / "speech.wav"
    soundfile.write(path, np.concatenate(pieces), rate)
    return path, " ".join(texts)


def face_image(folder: Path) -> Path:
    from PIL import Image
    from skimage import data

    path = folder / "face.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def run_one(name: str, audio_path: Path, text: str, image: Path | None, repeats: int) -> dict:
    """In a child process: build, warm up, time; report as JSON."""
    import statistics

    from medtalk.core.audio import audio_from_array, load_audio
    from medtalk.core.plugins import build

    kind, spec, takes = BACKENDS[name]
    audio = load_audio(audio_path)
    result = {"name": name, "duration_s": audio.duration}
    if kind == "none":
        import torch  # noqa: F401  (the floor every backend pays)

        return {**result, "load_s": 0.0, "wall_s": 0.0, "rtf": 0.0, "peak_rss_mb": peak_rss_mb()}
    start = time.perf_counter()
    component = build(kind, spec)
    one_second = audio_from_array(audio.samples[:16000], 16000)

    def call(whole: bool):
        if takes == "audio":
            return component(audio if whole else one_second)
        if takes == "audio+text":
            return component(audio if whole else audio, text)
        if takes == "text":
            return component(text if whole else "warm up")
        if takes == "guidance-text":
            return component.embed([text if whole else "warm up"])
        return component.embed([str(image)])

    if takes == "audio+text":
        load_s = time.perf_counter() - start  # the aligner has no short warm-up: its text is the clip's
    else:
        call(False)
        load_s = time.perf_counter() - start
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(True)
        walls.append(time.perf_counter() - start)
    wall = statistics.median(walls)
    rtf = wall / audio.duration if takes.startswith("audio") else None
    return {**result, "load_s": load_s, "wall_s": wall, "rtf": rtf, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="backend names (default: all)")
    parser.add_argument(
        "--child", nargs=4, metavar=("NAME", "AUDIO", "TEXT", "IMAGE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        name, audio, text, image = args.child
        print(json.dumps(run_one(name, Path(audio), text, Path(image) if image else None, args.repeats)))
        return

    import tempfile

    names = args.only or list(BACKENDS)
    with tempfile.TemporaryDirectory() as folder:
        audio, text = synthesize(args.seconds, Path(folder))
        image = face_image(Path(folder)) if "face-blendshapes" in names else None
        print(f"clip: {args.seconds:.0f}+ s of synthesized English ({len(text.split())} words)")
        print(f"{'backend':20} {'load s':>8} {'wall s':>8} {'RTF':>7} {'peak RSS MB':>12}")
        for name in names:
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--repeats",
                    str(args.repeats),
                    "--child",
                    name,
                    str(audio),
                    text,
                    str(image or ""),
                ],
                capture_output=True,
                text=True,
            )
            if child.returncode != 0:
                last = (child.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"{name:20} failed: {last}")
                continue
            row = json.loads(child.stdout.strip().splitlines()[-1])
            rtf = f"{row['rtf']:.3f}" if row["rtf"] is not None else "-"
            print(f"{name:20} {row['load_s']:8.2f} {row['wall_s']:8.3f} {rtf:>7} {row['peak_rss_mb']:12.0f}")


if __name__ == "__main__":
    main()
