"""Wall time of a cold `medtalk --help` (a new process each time): median of 5. Target: < 0.5 s.

Run with the interpreter of the environment to measure, e.g. `.venv/bin/python benchmarks/cli_startup.py`.
Also prints a bare interpreter start, for the ratio, and a command that loads every registry.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 5
TARGET_S = 0.5


def wall_times(argv: list[str], runs: int = RUNS) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    python = sys.executable
    cases = {
        "python -c pass": [python, "-c", "pass"],
        "medtalk --help": [python, "-m", "medtalk", "--help"],
        "medtalk components": [python, "-m", "medtalk", "components", "--json"],
    }
    medians = {}
    for label, argv in cases.items():
        times = wall_times(argv)
        medians[label] = statistics.median(times)
        runs = ", ".join(f"{t:.3f}" for t in times)
        print(f"{label:<20} median {medians[label]:.3f} s   runs: {runs}")
    help_s = medians["medtalk --help"]
    print(f"medtalk --help is {help_s / medians['python -c pass']:.1f}x a bare interpreter start")
    print(f"target < {TARGET_S} s: {'met' if help_s < TARGET_S else 'MISSED'} ({help_s:.3f} s)")


if __name__ == "__main__":
    main()
