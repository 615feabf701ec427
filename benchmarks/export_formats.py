"""Time the export of a 10-minute take to every registered exporter.

A 10-minute take at 60 fps is 36,000 frames of the 174 MetaHuman board controls; values are drawn
uniformly inside each control's range (seed 0). Formats that hold only ARKit shapes get the take
retargeted first, as `medtalk export` does; that retargeting is timed apart and not counted in the
format's time. Run: `.venv/bin/python benchmarks/export_formats.py [--seconds 600] [--repeat 1]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from medtalk.core.fileio import atomic_output
from medtalk.core.plugins import get_registry
from medtalk.core.retarget import retarget
from medtalk.core.sequence import RigSequence

FPS = 60.0


def random_take(seconds: float, seed: int = 0) -> RigSequence:
    rig = get_registry("rig").get("metahuman-174")
    low, high = np.array(rig.ranges).T
    values = np.random.default_rng(seed).uniform(low, high, size=(int(seconds * FPS), rig.num_controls))
    return RigSequence(values, fps=FPS, rig=rig.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the take (default 600)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per format; the fastest is shown")
    args = parser.parse_args()

    take = random_take(args.seconds)
    rigs = get_registry("rig")
    exporters = get_registry("exporter")
    retargeted: dict[str, RigSequence] = {}
    print(f"{take.num_frames} frames x {take.num_controls} controls ({args.seconds:g} s at {FPS:g} fps)")
    print(f"{'format':<14} {'seconds':>8} {'MB':>8}")
    with tempfile.TemporaryDirectory() as folder:
        for registration in exporters:
            exporter = exporters.build(registration.name)
            sequence = take
            if exporter.rigs is not None and take.rig not in exporter.rigs:
                target = exporter.rigs[0]
                if target not in retargeted:
                    started = time.perf_counter()
                    retargeted[target] = retarget(take, target)
                    print(f"{'(retarget)':<14} {time.perf_counter() - started:8.2f}          to {target}")
                sequence = retargeted[target]
            rig = rigs.get(sequence.rig)
            target_path = Path(folder) / f"take{registration.entry.extensions[0]}"
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                with atomic_output(target_path, overwrite=True) as temp:
                    exporter.write(sequence, rig, temp)
                best = min(best, time.perf_counter() - started)
            size = target_path.stat().st_size / 1e6
            print(f"{registration.name:<14} {best:8.2f} {size:8.1f}")


if __name__ == "__main__":
    main()
