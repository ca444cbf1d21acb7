"""Simulated months through the fast brake: no honest month braked, no month over budget by
more than the brake's margin (ADR 0002, spotcube/brakesim.py).

Run by hand: ``.venv/bin/python bench/brake_month.py --count 2000 --seed 1``. Prints, per kind
(honest, hostile), how many workloads were generated and braked, the largest month spend as a
share of the budget, and every violation with the seed and index that reproduce it (keep each
as a regression test in tests/spotsim/test_brakesim.py). Exit code 1 if any was found.
"""

from __future__ import annotations

import argparse
import sys
import time

from spotcube import brakesim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="workloads (half hostile)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--months", type=int, default=2, help="calendar months per workload")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    stats = {k: {"n": 0, "braked": 0, "worst": -1.0} for k in ("honest", "hostile")}
    bad: list[str] = []
    for i, month in enumerate(brakesim.generate(args.seed, args.count, months=args.months)):
        verdict = brakesim.judge(month)
        s = stats[month.kind]
        s["n"] += 1
        s["braked"] += verdict.braked
        s["worst"] = max(s["worst"], verdict.worst_overshoot)
        bad += [f"seed {args.seed} index {i}: {line}" for line in verdict.violations()]
    for kind, s in stats.items():
        print(
            f"{kind:8s} {s['n']:5d} workloads, {s['braked']:5d} braked, largest month "
            f"{s['worst'] + 1:.4f} x budget"
        )
    print(
        f"margin {brakesim.meter.BRAKE_MARGIN:.0%}; {len(bad)} violations; "
        f"{time.perf_counter() - began:.0f} s"
    )
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
