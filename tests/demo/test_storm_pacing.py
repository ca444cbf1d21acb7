"""A storm paced by work tells the same story on a fast and on a slowed machine.

Property: with the same seed, the sequence of (instance, interruption point) events and the
work each attempt made durable are the same whether the worker is fast or slowed down six
times (a sleep injected into every selftest chunk, with a CPU hog running beside it). A
wall-clock storm fails this: the slow run sees more interruptions per chunk. Time limits
below only bound a hang; no assertion depends on the machine's speed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from payload.records import ObservationRef
from spotcube.demo import DemoOptions, run_fleet
from spotcube.local.cloud import provision
from spotcube.local.fleet import Fleet, InterruptionModel, WorkerSpec, WorkSchedule
from spotcube.runstate import read_run
from spotcube.submit import submit_run

pytestmark = pytest.mark.slow

WORKER_ARGS = [
    "--poll-wait", "1",
    "--visibility-timeout", "3",
    "--idle-exit", "300",
    "--checkpoint-interval", "0.2",
    "--safety-margin", "0.3",
    "--spot-poll-interval", "0.1",
    "--retry-base", "0.2",
]  # fmt: skip
# mean lifetime 2 chunks: several interruptions over 2 jobs of 4 chunks
STORM = WorkSchedule.paced(rate_per_hour=0.5, work_hours_per_chunk=1.0)


def _story(cloud: str, tmp: Path, run_id: str, chunk_seconds: float) -> dict[str, Any]:
    outputs = provision(cloud, max_receive_count=1000, visibility_timeout=3)
    key = "inputs/x.bin"
    outputs.client("s3").put_object(Bucket=outputs.raw_bucket, Key=key, Body=b"bytes" * 10)
    observations = [ObservationRef(f"o{i}", f"s3://{outputs.raw_bucket}/{key}") for i in range(2)]
    params = {"chunks": 4, "chunk_seconds": chunk_seconds, "chunk_bytes": 1000}
    submit_run(outputs, observations, kind="selftest", params=params, run_id=run_id)
    fleet = Fleet(
        spec=WorkerSpec(outputs=outputs, root=tmp / run_id, extra_args=WORKER_ARGS),
        size=1,  # one worker: the whole story is one ordered sequence
        model=InterruptionModel(
            rate_per_hour=0.5, speedup=600.0, seed=5, min_notice_real=5.0, min_replacement_real=0.5
        ),
        schedule=STORM,
    )
    options = DemoOptions(out=tmp, timeout=400.0, poll=0.5)
    result = run_fleet(outputs, run_id, observations, fleet, options, Console(), run_id)
    assert result.status.count("done") == 2, "the run did not finish (a hang, not speed)"
    run = read_run(outputs.client("s3"), outputs.products_bucket, run_id)
    return {
        "interruptions": [
            (e.instance_id, e.detail) for e in result.fleet.timeline.of_kind("notice")
        ],
        "work": sorted(
            (a.record.instance_id, o.obs_id, a.record.chunks_done)
            for o in run.observations
            for a in o.attempts
        ),
    }


def test_same_seed_same_story_on_a_slowed_worker(cloud: str, tmp_path: Path) -> None:
    fast = _story(cloud, tmp_path, "fast", chunk_seconds=0.05)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        slow = _story(cloud, tmp_path, "slow", chunk_seconds=0.3)
    finally:
        hog.kill()
        hog.wait()
    assert len(fast["interruptions"]) >= 2
    assert slow["interruptions"] == fast["interruptions"]
    assert slow["work"] == fast["work"]
