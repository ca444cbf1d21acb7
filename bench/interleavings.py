"""Many seeds of the commit-protocol scheduler (tests/work/interleave.py) on a moto server.

    PYTHONPATH=. python bench/interleavings.py --seeds 0:50 [--chaos-steps 300] [--jobs 3]

Each seed is one interleaving of kills at S3 requests, S3 faults, late (stopped) instances,
duplicate deliveries, replaced inputs and lying messages; the invariants are checked after
every step. Prints one JSON line per seed (what happened), then a total line; exits 1 on
the first seed whose invariants fail, with its trace. The suite runs a few seeds
(tests/work/test_interleavings.py); this is the long setting.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spotcube.local.motoserver import local_client, moto_server
from tests.work.interleave import Interleaving


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0:20", help="first:end (end excluded)")
    parser.add_argument("--chaos-steps", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--instances", type=int, default=3)
    args = parser.parse_args()
    first, _, end = args.seeds.partition(":")
    total: dict[str, int] = {}
    started = time.monotonic()
    with moto_server() as endpoint:
        for seed in range(int(first), int(end)):
            with tempfile.TemporaryDirectory() as tmp:
                run = Interleaving(
                    local_client("s3", endpoint),
                    local_client("sqs", endpoint),
                    Path(tmp),
                    seed + 10_000,  # not the suite's seeds
                    jobs=args.jobs,
                    instances=args.instances,
                    chaos_steps=args.chaos_steps,
                    p_replace=0.01,
                    p_lie=0.01,
                )
                try:
                    run.run()
                except AssertionError as exc:
                    print(json.dumps({"seed": seed, "failed": str(exc), "trace": run.trace[-60:]}))
                    return 1
                finally:
                    run.close()
                summary = run.summary()
                print(json.dumps({"seed": seed, **summary}), flush=True)
                for key, value in summary.items():
                    total[key] = total.get(key, 0) + value
    print(json.dumps({"total": total, "seconds": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
