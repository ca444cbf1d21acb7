"""Benchmark of the spot Monte Carlo: 1,000 runs of 100 jobs, vectorised vs a Python loop.

Run by hand: ``.venv/bin/python bench/spotsim.py``. Prints the wall time of
:func:`spotcube.spotsim.simulate` (target: under 2 s on 2 cores) and of
:func:`spotcube.spotsim.simulate_loop`, the same model as a straightforward per-run, per-job
Python loop, for the published model at the two matched hazards and for spotcube's policy,
plus the means of both so the comparison is seen to be like for like.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.recorded import compare_recorded
from spotcube.spotsim import (
    Hazard,
    RunModel,
    RunStats,
    hazard_from_percent,
    simulate,
    simulate_loop,
)


def cases() -> dict[str, RunModel]:
    published = RunModel(
        jobs=100,
        runtime=633 / 60,
        hazard=Hazard.constant(hazard_from_percent(0.7)),
        spot_price=0.432,
        on_demand_price=0.768,
        overhead=2 / 60,
        policy="manual",
        lag=4.0,
    ).with_checkpoints(2)
    bad_month = replace(published, hazard=Hazard.constant(hazard_from_percent(9.0)))
    spotcube = replace(
        bad_month,
        policy="auto",
        interval=300 / 3600,
        checkpoint_cost=10 / 3600,
        delay=3 / 60 + 5 / 3600,
    )
    piecewise = replace(
        spotcube, hazard=Hazard(rates=(0.05, 0.13), starts=(0.0, 6.0)), fleet_cap=40
    )
    return {
        "manual, 0.7%/h": published,
        "manual, 9%/h": bad_month,
        "spotcube, 9%/h": spotcube,
        "spotcube, piecewise, cap 40": piecewise,
    }


def best_of(
    repeats: int, func: Callable[..., RunStats], model: RunModel, runs: int, seed: int
) -> tuple[float, RunStats]:
    """Shortest wall time of ``repeats`` calls, and the last result."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = func(model, runs, seed=seed)
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    machine = platform.processor() or platform.machine()
    print(f"# {machine}, {os.cpu_count()} cores, numpy {np.__version__}")
    print(f"# {args.runs} simulated runs of 100 jobs; best of {args.repeats}")
    header = (
        f"{'case':30s} {'vectorised s':>12s} {'loop s':>8s} {'ratio':>6s}   mean cost vec / loop"
    )
    print(header)
    load_before = os.getloadavg()
    ratios = {}
    for name, model in cases().items():
        fast_t, fast = best_of(args.repeats, simulate, model, args.runs, seed=1)
        slow_t, slow = best_of(1, simulate_loop, model, args.runs, seed=2)
        ratios[f"vectorised_over_loop[{name}]"] = fast_t / slow_t
        print(
            f"{name:30s} {fast_t:12.3f} {slow_t:8.2f} {slow_t / fast_t:6.1f}   "
            f"${fast.cost.mean():.1f} / ${slow.cost.mean():.1f}"
        )
    load = " ".join(f"{x:.2f}" for x in (*load_before[:1], os.getloadavg()[0]))
    print(f"load average before / after: {load}")
    print(compare_recorded("spotsim", ratios))


if __name__ == "__main__":
    main()
