"""The reference run cannot finish the spot run's jobs, and a run without progress fails.

Issue 23 found a demo whose spot phase made no chunk durable in 600 s, then reported "done
4/4, verified_identical true" and exit 0: the reference fleet shared the queue and finished
the spot run's jobs. Here the spot fleet is SIGKILLed at its first computed chunk, every life
(``WorkSchedule`` counted in work, so the same on any machine): it can never finish anything.
The demo must say so: nothing done, not verified, a cause naming the spot phase, exit 1; and
no instance of the reference may appear among the spot run's attempts or DONE records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spotcube.demo import DemoOptions, run_demo
from spotcube.local.fleet import WorkSchedule

pytestmark = pytest.mark.slow

OBSERVATIONS = 2
# Killed at once, without notice, when the worker has computed its first chunk.
NEVER_FINISHES = WorkSchedule(points=("chunk-computed",), arrivals=(1, 1), notice_fraction=0.0)


@pytest.fixture(scope="module")
def stalled(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("stalled")
    options = DemoOptions(
        out=out,
        workers=2,
        observations=OBSERVATIONS,
        kind="selftest",
        params={"chunks": 3, "chunk_seconds": 0.1, "chunk_bytes": 2_000},
        speedup=600.0,
        seed=3,
        reference_workers=2,
        # the spot phase can never finish: this bounds how long it tries; the reference
        # (3 chunks of 0.1 s per job) needs a fraction of it even on a loaded machine
        timeout=45.0,
        schedule=NEVER_FINISHES,
    )
    return json.loads(run_demo(options).to_json()), out


def test_the_reference_never_touches_the_spot_run(stalled: tuple[dict[str, Any], Path]) -> None:
    report, _ = stalled
    reference_instances = {
        e["instance_id"]
        for o in report["per_observation"]
        for e in o["attempts_detail"]
        if e["instance_id"] not in {t["instance_id"] for t in report["timeline"]}
    }
    assert reference_instances == set()  # every spot-run attempt ran on a spot-phase instance
    assert all(o["done_by"] is None for o in report["per_observation"])
    assert report["phases"]["reference"]["done"] == OBSERVATIONS  # the reference did run


def test_no_progress_is_a_failure_with_its_cause(stalled: tuple[dict[str, Any], Path]) -> None:
    report, out = stalled
    assert report["done"] == 0
    assert report["verified_identical"] is False
    assert report["outcome"]["ok"] is False
    assert report["outcome"]["cause"].startswith("spot phase finished 0/2 observations")
    assert report["phases"]["spot"]["timed_out"] is True
    assert report["progress"]["outpaced"] is True
    assert "no progress" in report["outcome"]["cause"]
    # report.md is rendered from the same record: no row may say "yes"
    markdown = (out / "report.md").read_text()
    assert "| yes |" not in markdown
    assert "verified_identical: **false**" in markdown
    assert json.loads((out / "report.json").read_text()) == report
