"""Failures classified by whose they are (issue 18, item 4).

The machine's state — a full scratch disk (as the OS says it, and as HDF5 says it, with no
errno), no memory — is ``transient``: one log line, no traceback, the job handed back for
another instance. A content-keyed input overwritten after submit is the input's fault:
``invalid`` in the first attempt, after at most two reads of it, not 3 attempts x 6 downloads.
"""

from __future__ import annotations

import errno
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from payload.jobs.selftest import SelfTestJob
from payload.outcomes import Outcome
from payload.records import JobMessage
from spotcube.local.motoserver import local_client
from tests.work.interleave import RAW, Interleaving

PARAMS = {"chunks": 2, "chunk_bytes": 100, "chunk_seconds": 0}


@pytest.fixture
def run(cloud: str, tmp_path: Path) -> Iterator[Interleaving]:
    made = Interleaving(
        local_client("s3", cloud), local_client("sqs", cloud), tmp_path, 7, scripted=True
    )
    yield made
    made.close()


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        # h5py's form: no errno, the C library's words in the message.
        OSError(
            "Can't write data (file write failed: errno = 28, "
            "error message = 'No space left on device')"
        ),
        MemoryError(),
    ],
    ids=["ENOSPC", "EDQUOT", "hdf5-full", "MemoryError"],
)
def test_the_machine_state_is_transient_in_one_line(
    run: Interleaving,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: BaseException,
) -> None:
    def full(self: SelfTestJob, chunk_id: str, out_path: Path) -> None:
        raise error

    monkeypatch.setattr(SelfTestJob, "run_chunk", full)
    run.submit("obs-full", PARAMS, b"d" * 32)
    caplog.set_level(logging.ERROR, logger="payload.worker")
    worker = run.deliver(0)
    run.drain(worker)
    assert worker.outcomes == [Outcome.TRANSIENT.value]
    lines = [r for r in caplog.records if r.name == "payload.worker"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert not lines[0].exc_info  # no traceback
    assert "transient, this machine" in lines[0].getMessage()
    # Handed back: visible again at once for another instance (retry_base is tiny here).
    assert run._receive() is not None


@pytest.mark.parametrize("keeps_metadata", [True, False], ids=["with-sha-metadata", "bare-copy"])
def test_a_content_keyed_input_overwritten_after_submit_is_invalid_at_first_sight(
    run: Interleaving, keeps_metadata: bool
) -> None:
    """spotcube submit stores inputs under the sha256 of their bytes; someone overwrites one."""
    job = run.submit("obs-cas", PARAMS, b"original" * 8)
    good = hashlib.sha256(b"original" * 8).hexdigest()
    key = f"inputs/sha256/{good}"
    other = b"replaced" * 8
    metadata = {"sha256": hashlib.sha256(other).hexdigest()} if keeps_metadata else {}
    run.s3.put_object(Bucket=RAW, Key=key, Body=other, Metadata=metadata)
    run.purge_queue()
    message = JobMessage.create(
        run_id=run.run_id,
        obs_id=job.obs_id,
        input=f"s3://{RAW}/{key}",
        kind="selftest",
        params=PARAMS,
    )
    run.sqs.send_message(QueueUrl=run.queue_url, MessageBody=message.to_json())
    worker = run.deliver(0)
    run.drain(worker)
    assert worker.outcomes == [Outcome.INVALID.value]
    gets = sum(1 for r in run.granted if r == ("get_object", key))
    assert gets <= 2, gets


class _DyingStore:
    """The products bucket as an instance sees it when it dies mid-upload."""

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        raise KeyboardInterrupt  # a BaseException, like the harness's Killed


def test_an_attempt_log_interrupted_at_its_last_upload_stops_capturing(tmp_path: Path) -> None:
    """Found by CI: an instance killed during the last log upload left its handler on the root
    logger; once the attempt's directory was gone, every later job's first log line raised
    FileNotFoundError (four later tests failed with that test's path in the message)."""
    from payload.logship import LogShipper

    path = tmp_path / "obs" / "attempt-1.log"
    shipper = LogShipper(_DyingStore(), "runs/r/obs/o/logs/attempt-1.log", path).start()  # type: ignore[arg-type]
    logging.getLogger("payload.worker").warning("written before the kill")
    with pytest.raises(KeyboardInterrupt):
        shipper.close()
    assert shipper._handler not in logging.getLogger().handlers
    path.unlink()
    path.parent.rmdir()
    logging.getLogger("payload.worker").warning("a later job logs")  # must not raise
    assert not path.parent.exists()
