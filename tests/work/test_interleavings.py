"""The commit protocol under generated interleavings (tests/work/interleave.py).

A seeded scheduler drives real workers against the real queue and store (moto over HTTP)
through kills at any S3 request, S3 faults, stopped-and-late instances, duplicate delivery,
replaced inputs and messages that lie about their params, and checks the protocol's
invariants after every step. ``bench/interleavings.py`` runs many more seeds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from payload.attempt import JobAttempt
from payload.checkpoint import Checkpointer
from spotcube.local.motoserver import local_client
from tests.work.interleave import Interleaving

SEEDS = range(4)


@pytest.fixture
def make(cloud: str, tmp_path: Path) -> Iterator[type[Interleaving]]:
    made: list[Interleaving] = []

    def build(seed: int, **kwargs: object) -> Interleaving:
        run = Interleaving(
            local_client("s3", cloud), local_client("sqs", cloud), tmp_path, seed, **kwargs
        )
        made.append(run)
        return run

    yield build  # type: ignore[misc]
    for run in made:
        run.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_commit_invariants_hold_in_every_generated_interleaving(make, seed: int) -> None:
    run = make(seed, p_replace=0.02, p_lie=0.02)
    try:
        run.run()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\ntrace (last 40): {run.trace[-40:]}") from None


# --- the bugs, each a schedule kept as a regression test --------------------------


def test_input_replaced_between_identification_and_download_is_invalid(make) -> None:
    """The input is identified (HEAD), then replaced before its bytes are read (GET).

    Without If-Match on the download and the re-check before combine, DONE named input A
    while its products were made from B.
    """
    run = make(100, scripted=True)
    job = run.submit("obs-r", {"chunks": 3, "chunk_bytes": 300, "chunk_seconds": 0}, b"A" * 64)
    worker = run.deliver(0)
    run.advance(worker, lambda r: r.op == "get_object" and r.key == job.input_key)
    run.replace_input(job)
    run.drain(worker)
    assert worker.outcomes == ["invalid"]
    run.calm()
    assert run.summary()["job:failed"] == 1


def test_message_whose_params_hash_does_not_follow_from_its_params_is_invalid(make) -> None:
    """One chunk durable under params P, then the job re-sent with params Q and P's hash.

    A worker that trusted the hash resumed P's chunks and wrote a cube of P and Q chunks.
    """
    run = make(101, scripted=True)
    job = run.submit("obs-p", {"chunks": 4, "chunk_bytes": 256, "chunk_seconds": 0}, b"x" * 64)
    first = run.deliver(0)
    manifest_key = f"runs/{run.run_id}/obs/{job.obs_id}/checkpoint/manifest.json"

    def durable_chunks() -> dict[str, object]:
        raw = run._get(manifest_key)
        return dict(json.loads(raw)["chunks"]) if raw else {}

    # Killed at its first write after a manifest lists a chunk. (Chunk uploads and manifest
    # writes run on the checkpointer thread: which comes first depends on the machine, so
    # the schedule waits on the store's state, not on a chunk number.)
    run.grant(run.advance(first, lambda r: r.op == "put_object" and bool(durable_chunks())), "kill")
    assert durable_chunks(), "the schedule must leave a durable chunk of params P"
    run.purge_queue()  # only the lying message is left
    run.lie(job)
    run.calm()
    summary = run.summary()
    assert summary["job:failed"] == 1, summary
    assert summary.get("job:done", 0) == 0, summary


def test_late_worker_loses_the_done_race_and_leaves_nothing(make) -> None:
    """Stopped just before its DONE write while another instance finishes the job.

    It used to write its products over the finished ones, lose the DONE write, and report
    "done". Now its products were private, it deletes them, and it ends superseded.
    """
    run = make(102, scripted=True)
    job = run.submit("obs-l", {"chunks": 3, "chunk_bytes": 500, "chunk_seconds": 0}, b"L" * 64)
    late = run.deliver(0)
    done_key = f"runs/{run.run_id}/obs/{job.obs_id}/DONE"
    pending = run.advance(late, lambda r: r.op == "put_object" and r.key == done_key)
    assert late.message is not None
    rival = run.deliver(1, dict(late.message))  # the visibility expired under the stopped one
    run.drain(rival)
    assert rival.outcomes == ["done"]
    run.grant(pending, "go")  # SIGCONT
    run.drain(late)
    assert late.outcomes == ["superseded"]
    prefix = f"runs/{run.run_id}/obs/{job.obs_id}/attempts/"
    listed = run.s3.list_objects_v2(Bucket="ilv-products", Prefix=prefix).get("Contents", [])
    assert {o["Key"].split("/")[5] for o in listed} == {
        json.loads(run._get(done_key) or b"{}")["attempt"]
    }
    run.calm()


def test_an_attempt_killed_mid_upload_leaves_nothing_once_another_commits(make) -> None:
    """Reclaimed after one product reached its private prefix, before the rest and DONE.

    Its own clean-up never runs; the attempt whose DONE stands deletes the leftover, so the
    killed attempt's products are not billed until the run is deleted.
    """
    run = make(103, scripted=True)
    job = run.submit("obs-k", {"chunks": 2, "chunk_bytes": 400, "chunk_seconds": 0}, b"K" * 64)
    first = run.deliver(0)
    prefix = f"runs/{run.run_id}/obs/{job.obs_id}/attempts/"

    def stored() -> set[str]:
        listed = run.s3.list_objects_v2(Bucket="ilv-products", Prefix=prefix)
        return {o["Key"] for o in listed.get("Contents", [])}

    upload = run.advance(first, lambda r: r.key.startswith(prefix) and bool(stored()))
    left = stored()
    run.grant(upload, "kill")
    run.calm()
    done = json.loads(run._get(f"runs/{run.run_id}/obs/{job.obs_id}/DONE") or b"{}")
    assert not left & {entry["key"] for entry in done["products"].values()}
    assert stored() == {entry["key"] for entry in done["products"].values()}


def test_an_instance_killed_at_a_chunk_upload_does_not_hang_its_worker(
    make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the leaked-handler check: killed at a chunk upload (the checkpointer thread)
    while its main thread waited in flush, the worker waited there forever for chunks no
    thread would upload.

    On AWS that is an instance kept busy, protected from scale-in, while nothing moves. Now
    the uploader's end reaches flush, and the attempt ends like any other killed one.
    """
    flushing = threading.Event()
    flush = Checkpointer.flush

    def flush_seen(self: Checkpointer, timeout: float | None = None) -> float:
        flushing.set()
        return flush(self, timeout)

    monkeypatch.setattr(Checkpointer, "flush", flush_seen)
    # The main thread goes from its last chunk straight to flush (no log upload between).
    monkeypatch.setattr(JobAttempt, "ship_log", lambda self: None)
    run = make(104, scripted=True)
    job = run.submit("obs-u", {"chunks": 3, "chunk_bytes": 300, "chunk_seconds": 0}, b"U" * 64)
    first = run.deliver(0)
    chunks = f"runs/{run.run_id}/obs/{job.obs_id}/checkpoint/chunks/"
    upload = run.advance(first, lambda r: r.key.startswith(chunks) and flushing.is_set())
    run.grant(upload, "kill")
    assert first.thread is not None
    assert not first.thread.is_alive(), "the worker hangs"
    assert first.outcomes == ["killed"]
    run.calm()
    assert run.summary()["job:done"] == 1
