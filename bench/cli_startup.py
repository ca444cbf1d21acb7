"""Start-up time of ``spotcube --help`` and of a command's ``--help``, beside ``python -c pass``.

Each is run as a fresh process (what a user waits for), ``--repeats`` times, interleaved so
that a change in the machine's load hits all alike; the median wall time is printed with its
ratio to a bare interpreter's. The target (issue 22): ``spotcube --help`` well under a second
on an idle machine. Run by hand and recorded, never in the test suite (the suite checks the
import graph instead: tests/foundation/test_cli_startup.py).

Usage: ``python bench/cli_startup.py [--repeats 15]`` from the repository root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "spotcube --help": [sys.executable, "-m", "spotcube.cli", "--help"],
    "spotcube status --help": [sys.executable, "-m", "spotcube.cli", "status", "--help"],
    "spotcube demo --help": [sys.executable, "-m", "spotcube.cli", "demo", "--help"],
}


def wall_seconds(argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for argv in CASES.values():
        wall_seconds(argv)  # warm the page cache and the bytecode caches
    for _ in range(args.repeats):
        for name, argv in CASES.items():
            times[name].append(wall_seconds(argv))
    base = statistics.median(times["python -c pass"])
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load average {load:.1f}; median of {args.repeats} runs")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:28s} {median * 1000:8.0f} ms  {median / base:5.1f}x python -c pass")


if __name__ == "__main__":
    main()
