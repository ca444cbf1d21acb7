"""An attempt has one owner: the checkpointer, which changes it only under its commit lock.

Before, the worker ended an attempt by assigning its fields while the uploader thread could be
serialising the manifest, so a commit could store an end without its reason. These tests hold
a commit half-way (its PUT blocked) and show that ending the attempt waits for it.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

import pytest

from contract.layout import ObsLayout
from payload.checkpoint import Checkpointer
from payload.outcomes import Outcome
from payload.records import Attempt, InputIdentity, JobMessage, Manifest


class BlockingStore:
    """Just enough of an ObjectStore for manifest commits; each PUT waits for ``release``."""

    bucket = "products"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.written: list[bytes] = []

    def get_versioned(self, key: str) -> None:
        return None

    def put_conditional(self, key: str, data: bytes, **_: Any) -> str:
        self.entered.set()
        assert self.release.wait(timeout=30), "the test never released the PUT"
        self.written.append(data)
        return f'"etag-{len(self.written)}"'


def _checkpointer(store: Any) -> tuple[Checkpointer, Manifest, Attempt]:
    message = JobMessage.create(
        run_id="r", obs_id="o", input="s3://raw/in.dat", kind="selftest", params={}
    )
    manifest = Manifest.new(message, InputIdentity(uri=message.input))
    attempt = Attempt(instance_id="i-1", start="2026-01-01T00:00:00.000000Z")
    return Checkpointer(store, ObsLayout("r", "o"), manifest, attempt), manifest, attempt


def test_an_attempt_is_frozen_and_its_checkpointer_appends_it() -> None:
    ckpt, manifest, attempt = _checkpointer(BlockingStore())
    assert manifest.attempts == [attempt]
    with pytest.raises(dataclasses.FrozenInstanceError):
        attempt.reason = Outcome.DONE  # type: ignore[misc]
    ended = ckpt.end_attempt(Outcome.PREEMPTED, lost=1.2345)
    assert manifest.attempts == [ended]
    assert ckpt.attempt is ended
    assert (ended.reason, ended.lost_seconds) == (Outcome.PREEMPTED, 1.234)
    assert ended.end is not None


def test_ending_waits_for_a_commit_in_flight_so_no_write_holds_half_an_end() -> None:
    store = BlockingStore()
    ckpt, manifest, _ = _checkpointer(store)
    committing = threading.Thread(target=ckpt.commit)
    committing.start()
    assert store.entered.wait(timeout=30)  # the commit holds the lock, its PUT in flight
    ending = threading.Thread(target=ckpt.end_attempt, args=(Outcome.DONE,))
    ending.start()
    ending.join(timeout=0.5)
    assert ending.is_alive(), "end_attempt changed the attempt during a commit"
    store.release.set()
    committing.join(timeout=30)
    ending.join(timeout=30)
    (first,) = json.loads(store.written[0])["attempts"]
    assert (first["end"], first["reason"]) == (None, None)
    ckpt.commit()
    (last,) = json.loads(store.written[-1])["attempts"]
    assert last["reason"] == "done"
    assert last["end"] is not None
    assert manifest.attempts[0].outcome is Outcome.DONE
