"""Detecting a fleet that is reclaimed faster than it makes progress (spotcube.progress).

The verdict is checked on real worker processes on the local cloud, not on hand-made
manifests: a fleet whose instances are SIGKILLed at their first manifest write that lists a
new chunk can never make a chunk durable, whatever the machine's speed, and must be called
outpaced; a fleet interrupted after its third computed chunk makes progress and must not be.
The schedules are counted in work (``WorkSchedule``), so both outcomes hold on a loaded
machine; the time limits below only guard against a hang.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from contract.layout import ObsLayout
from payload.records import JobMessage, Manifest
from spotcube.local.cloud import provision
from spotcube.local.fleet import Fleet, InterruptionModel, WorkerSpec, WorkSchedule
from spotcube.local.motoserver import local_client
from spotcube.progress import (
    InstanceLife,
    assess,
    assess_manifests,
    lives_from_manifests,
    lives_with_idle_instances,
)

pytestmark = pytest.mark.slow

WORKER_ARGS = [
    "--poll-wait", "1",
    "--visibility-timeout", "2",
    "--idle-exit", "120",
    "--checkpoint-interval", "0.3",
    "--safety-margin", "0.3",
    "--spot-poll-interval", "0.1",
    "--retry-base", "0.2",
    "--preload", "",
]  # fmt: skip


def _run(cloud: str, tmp: Path, schedule: WorkSchedule, lives: int) -> tuple[Fleet, list[Manifest]]:
    outputs = provision(cloud, max_receive_count=1000, visibility_timeout=2)
    s3 = local_client("s3", cloud)
    sqs = local_client("sqs", cloud)
    obs_ids = [f"p{i}" for i in range(2)]
    for obs_id in obs_ids:
        s3.put_object(Bucket=outputs.raw_bucket, Key=f"{obs_id}.dat", Body=obs_id.encode() * 50)
        message = JobMessage.create(
            run_id="prog",
            obs_id=obs_id,
            input=f"s3://{outputs.raw_bucket}/{obs_id}.dat",
            kind="selftest",
            params={"chunks": 8, "chunk_seconds": 0.05, "chunk_bytes": 2048},
        )
        sqs.send_message(QueueUrl=outputs.job_queue_url, MessageBody=message.to_json())
    fleet = Fleet(
        spec=WorkerSpec(outputs=outputs, root=tmp, extra_args=WORKER_ARGS),
        size=2,
        # A 3 s notice: a noticed worker hands back at once, the fleet reclaims it 3 s later.
        model=InterruptionModel(
            rate_per_hour=0.0,
            seed=3,
            notice_seconds=3.0,
            min_notice_real=3.0,
            replacement_delay=0.2,
            min_replacement_real=0.2,
        ),
        schedule=schedule,
    )
    deadline = time.monotonic() + 300  # a hang guard; the count below is what ends the run
    with fleet:
        while fleet.interruptions() < lives:
            assert time.monotonic() < deadline, "the fleet stopped interrupting"
            fleet.tick()
            time.sleep(0.02)
    manifests = []
    for obs_id in obs_ids:
        try:
            key = ObsLayout("prog", obs_id).manifest
            body = s3.get_object(Bucket=outputs.products_bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            continue
        manifests.append(Manifest.from_json(body["Body"].read()))
    return fleet, manifests


def test_killed_before_any_chunk_is_durable_is_outpaced(cloud: str, tmp_path: Path) -> None:
    schedule = WorkSchedule(points=("manifest-write",), arrivals=(1, 1), notice_fraction=0.0)
    # Six lives: the manifests see every one but the last of each job as cut off.
    fleet, manifests = _run(cloud, tmp_path, schedule, lives=6)
    reclaimed = {i.instance_id: i.end_reason == "reclaimed" for i in fleet.instances}
    verdict = assess(lives_with_idle_instances(manifests, reclaimed))
    assert verdict.outpaced, verdict
    assert verdict.interrupted >= 6
    assert verdict.without_progress == verdict.interrupted
    assert verdict.message.startswith("no progress: ")
    # The manifests alone (what `spotcube report` sees) say the same.
    assert all(not m.chunks for m in manifests)
    assert assess_manifests(manifests).outpaced


def test_interrupted_after_durable_chunks_is_progress(cloud: str, tmp_path: Path) -> None:
    schedule = WorkSchedule(points=("chunk-computed",), arrivals=(3, 3), notice_fraction=1.0)
    fleet, manifests = _run(cloud, tmp_path, schedule, lives=3)
    reclaimed = {i.instance_id: i.end_reason == "reclaimed" for i in fleet.instances}
    verdict = assess(lives_with_idle_instances(manifests, reclaimed))
    assert not verdict.outpaced, verdict
    assert sum(len(m.chunks) for m in manifests) >= 2


def test_few_interruptions_are_no_verdict() -> None:
    lives = [InstanceLife("i-1", True, 0), InstanceLife("i-2", True, 0)]
    assert not assess(lives).outpaced  # two unlucky instances are not a trend
    assert lives_from_manifests([]) == []
    assert assess([]).message == "no instance was interrupted"
