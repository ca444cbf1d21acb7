"""Spot notices at the awkward moments: mid-chunk, mid-upload, mid-manifest, too late."""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import pytest

from contract.layout import ObsLayout
from payload.outcomes import Outcome
from spotcube.local.imds import ImdsEmulator
from tests.work.conftest import RUN, Plane, reference_products, wait_for

# three parts at the workers' 5 MiB part size: multipart (up to two go in one PUT)
BIG = 2 * 5 * 1024 * 1024 + 4096


def finish_elsewhere(plane: Plane, obs_id: str, message_data: bytes, message: object) -> None:
    """A second, undisturbed worker completes the job; products match the reference."""
    worker = plane.start_worker("--max-jobs", "1", name="b")
    assert worker.wait(timeout=60) == 0, plane.log_of("b")
    layout = ObsLayout(RUN, obs_id)
    assert plane.get(layout.done) is not None
    reference = reference_products(message, message_data, plane.tmp)  # type: ignore[arg-type]
    for name, data in reference.items():
        assert plane.product(layout, name) == data, name


def two_chunks_computed(plane: Plane) -> bool:
    """The worker is mid-job: its second chunk is computed (not yet necessarily durable).

    Its event, not the store: a durable chunk comes a checkpoint interval later, which
    leaves the job less work to be interrupted in, and what a notice makes durable is
    what the tests then check in the store.
    """
    return plane.has_event("w", "chunk.computed", chunk="1")


def preempted_attempt(plane: Plane, obs_id: str) -> dict[str, object]:
    manifest = plane.manifest(obs_id)
    assert manifest is not None
    first = manifest["attempts"][0]
    assert first["reason"] == Outcome.PREEMPTED.value
    assert first["end"] is not None
    return dict(first)


def test_notice_during_chunk_finishes_it_and_hands_back(plane: Plane, imds: ImdsEmulator) -> None:
    data = b"mid-chunk" * 50
    message = plane.submit(
        "obs-n1", {"chunks": 8, "chunk_seconds": 0.4, "chunk_bytes": 2048}, data=data
    )
    worker = plane.start_worker(imds=imds)
    wait_for(lambda: plane.manifest("obs-n1") is not None, 30, "the first manifest")
    imds.schedule_interruption(in_seconds=20, notice_after=0.5)
    assert worker.wait(timeout=30) == Outcome.PREEMPTED.exit_code, plane.log_of()
    attempt = preempted_attempt(plane, "obs-n1")
    # Plenty of time was left: the chunk in progress was finished, nothing was thrown away.
    assert attempt["lost_seconds"] == 0
    manifest = plane.manifest("obs-n1")
    assert manifest is not None
    assert 1 <= len(manifest["chunks"]) < 8
    assert attempt["chunks_done"] == len(manifest["chunks"])
    assert attempt["instance_type"] == imds.instance_type
    # The worker's own account of the notice agrees with the store.
    [durable] = plane.events(event="notice.checkpoint_durable")
    assert durable["source"] == "spot"
    assert durable["chunks"] == len(manifest["chunks"])
    # Handed back at once (a fresh copy), not after the visibility timeout.
    received = plane.sqs.receive_message(
        QueueUrl=plane.queue_url, WaitTimeSeconds=0, VisibilityTimeout=0
    )
    assert len(received.get("Messages", [])) == 1
    finish_elsewhere(plane, "obs-n1", data, message)


def test_less_time_than_one_chunk_abandons_it(plane: Plane, imds: ImdsEmulator) -> None:
    data = b"short-notice" * 50
    message = plane.submit(
        "obs-n2", {"chunks": 4, "chunk_seconds": 1.0, "chunk_bytes": 2048}, data=data
    )
    worker = plane.start_worker(imds=imds)
    # Wait for one measured chunk, then give less time than a chunk takes.
    wait_for(
        lambda: len((plane.manifest("obs-n2") or {}).get("chunks", {})) >= 1,
        30,
        "one durable chunk",
    )
    imds.schedule_interruption(in_seconds=0.7)
    assert worker.wait(timeout=30) == Outcome.PREEMPTED.exit_code, plane.log_of()
    attempt = preempted_attempt(plane, "obs-n2")
    # The chunk under way was abandoned, not finished: it cost time (how much depends on the
    # machine, so no bound), and it was never computed, so every computed chunk is durable.
    assert float(attempt["lost_seconds"]) > 0  # type: ignore[arg-type]
    computed = {e["chunk"] for e in plane.events(event="chunk.computed")}
    manifest = plane.manifest("obs-n2")
    assert manifest is not None
    assert computed == set(manifest["chunks"])
    assert len(computed) == attempt["chunks_done"] < 4
    finish_elsewhere(plane, "obs-n2", data, message)


@pytest.mark.parametrize("point", ["multipart-part", "manifest-write"])
def test_notice_during_upload_or_manifest_write(
    plane: Plane, imds: ImdsEmulator, point: str, tmp_path: Path
) -> None:
    data = point.encode() * 64
    params = {"chunks": 2, "chunk_seconds": 0.2, "chunk_bytes": BIG}
    message = plane.submit(f"obs-{point}", params, data=data)
    marker = tmp_path / "reached"
    worker = plane.start_worker(imds=imds, env={"SPOTCUBE_FAULTPOINT": f"{point}:0.8:{marker}"})
    wait_for(marker.exists, 30, f"the worker to reach {point}")
    imds.schedule_interruption(in_seconds=15)
    assert worker.wait(timeout=40) == Outcome.PREEMPTED.exit_code, plane.log_of()
    attempt = preempted_attempt(plane, f"obs-{point}")
    manifest = plane.manifest(f"obs-{point}")
    assert manifest is not None
    # The upload (or manifest write) that was under way when the notice came completed and
    # was committed: the notice did not throw finished work away.
    assert len(manifest["chunks"]) >= 1
    for cid, record in manifest["chunks"].items():
        body = plane.get(record["key"]) or b""
        assert len(body) == record["size"] == BIG, cid
        assert hashlib.sha256(body).hexdigest() == record["sha256"]
    assert attempt["reason"] == "preempted"
    finish_elsewhere(plane, f"obs-{point}", data, message)
    assert json.loads(plane.get(ObsLayout(RUN, f"obs-{point}").done) or b"{}")["products"]


def test_rebalance_checkpoints_and_keeps_working(plane: Plane, imds: ImdsEmulator) -> None:
    data = b"rebalance" * 20
    params = {"chunks": 10, "chunk_seconds": 0.3, "chunk_bytes": 2048}
    message = plane.submit("obs-rb", params, data=data)
    worker = plane.start_worker("--max-jobs", "1", imds=imds)
    wait_for(lambda: two_chunks_computed(plane), 30, "two chunks")
    imds.recommend_rebalance()
    wait_for(lambda: plane.has_event("w", "spot.rebalance"), 5, "the recommendation")
    # A recommendation is not a notice: the job runs on to DONE in this one attempt.
    assert worker.wait(timeout=60) == 0, plane.log_of()
    assert plane.events(event="spot.notice") == []
    manifest = plane.manifest("obs-rb")
    assert manifest is not None
    assert [a["reason"] for a in manifest["attempts"]] == ["done"]
    layout = ObsLayout(RUN, "obs-rb")
    reference = reference_products(message, data, plane.tmp)
    assert plane.product(layout, "selftest.bin") == reference["selftest.bin"]


@pytest.mark.parametrize("how", ["sigterm", "asg-lifecycle"])
def test_sigterm_and_asg_scale_in_hand_the_job_back(
    plane: Plane, imds: ImdsEmulator, how: str
) -> None:
    data = how.encode() * 30
    message = plane.submit(
        f"obs-{how}", {"chunks": 8, "chunk_seconds": 0.3, "chunk_bytes": 1024}, data=data
    )
    worker = plane.start_worker(imds=imds)
    wait_for(lambda: two_chunks_computed(plane), 30, "two chunks")
    if how == "sigterm":
        worker.send_signal(signal.SIGTERM)
    else:
        imds.set_lifecycle_state("Terminated")
    assert worker.wait(timeout=30) == Outcome.PREEMPTED.exit_code, plane.log_of()
    source = "sigterm" if how == "sigterm" else "asg"
    assert [e["source"] for e in plane.events(event="spot.notice")] == [source]
    attempt = preempted_attempt(plane, f"obs-{how}")
    assert int(attempt["chunks_done"]) >= 2  # type: ignore[call-overload]
    finish_elsewhere(plane, f"obs-{how}", data, message)
