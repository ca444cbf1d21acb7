"""Checkpoints: chunks made durable in the background, then a manifest that lists them.

The contract (DESIGN.md, "Manifest"): a chunk counts only when the manifest lists it, and the
manifest is written only after every chunk it lists is durable and verified. Finished chunks
start uploading at once (queued behind any upload in flight); the manifest is committed
whenever the uploads have drained, at least every ``interval`` seconds while they lag, on a
rebalance recommendation, and on a deadline. Work lost to an interruption is therefore at
most the chunk in progress plus one interval of chunks whose uploads were behind.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.layout import ObsLayout
from contract.settings import DEFAULT_CHECKPOINT_INTERVAL as DEFAULT_INTERVAL
from payload.errors import InvalidInputError, TransientError
from payload.outcomes import Outcome
from payload.records import (
    CODE_ID,
    Attempt,
    ChunkRecord,
    InputIdentity,
    JobMessage,
    Manifest,
    utc_now,
)
from payload.store import ObjectStore, faultpoint

log = logging.getLogger(__name__)

_COMMIT_TRIES = 5


def load_manifest(
    store: ObjectStore, layout: ObsLayout, message: JobMessage, input_identity: InputIdentity
) -> Manifest:
    """The observation's manifest, or a new one; refuse one made for other work.

    Raises
    ------
    InvalidInputError
        The stored manifest has another ``params_hash`` (other parameters or payload
        version) or was made from an input whose identity has changed.
    """
    raw = store.get_bytes(layout.manifest)
    if raw is None:
        return Manifest.new(message, input_identity)
    manifest = Manifest.from_json(raw)
    if manifest.code_id and manifest.code_id != CODE_ID:
        raise InvalidInputError(
            f"checkpoint s3://{store.bucket}/{layout.manifest} was made by payload code "
            f"{manifest.code_id[:12]}, this worker runs {CODE_ID[:12]}: its chunks are not this "
            "code's chunks. Submit under a new run id, or delete the checkpoint."
        )
    if manifest.params_hash != message.params_hash:
        raise InvalidInputError(
            f"checkpoint s3://{store.bucket}/{layout.manifest} was made with params_hash "
            f"{manifest.params_hash[:12]}, this job has {message.params_hash[:12]}: its chunks "
            "are not this job's chunks. Submit under a new run id, or delete the checkpoint."
        )
    then = manifest.input_identity
    name = None if then is None else input_identity.changed_from(then)
    if then is not None and name is not None:
        raise InvalidInputError(
            f"input {message.input} changed since the checkpoint was made ({name} "
            f"{getattr(then, name)} then, {getattr(input_identity, name)} now); submit under "
            "a new run id"
        )
    return manifest


def merge_manifests(local: Manifest, remote: Manifest) -> None:
    """Fold into ``local`` what another worker (same message, visibility expiry) recorded.

    Chunks are deterministic, so a chunk either manifest lists is valid for both; attempts
    are kept from both so hazard estimates see every instance that tried.
    """
    if remote.params_hash != local.params_hash:
        return
    for cid, record in remote.chunks.items():
        local.chunks.setdefault(cid, record)
    seen = {(a.instance_id, a.start) for a in local.attempts}
    extra = [a for a in remote.attempts if (a.instance_id, a.start) not in seen]
    local.attempts[:0] = extra
    local.attempts.sort(key=lambda a: a.start)


@dataclass
class _Pending:
    chunk_id: str
    path: Path
    seconds: float


@dataclass
class CheckpointStats:
    """Measurements the deadline logic and the logs use."""

    chunk_seconds: list[float] = field(default_factory=list)
    uploaded_bytes: int = 0
    upload_seconds: float = 0.0
    last_commit_seconds: float = 0.0

    def throughput(self) -> float | None:
        """Measured upload bytes per second, or None before the first upload."""
        if self.upload_seconds <= 0:
            return None
        return self.uploaded_bytes / self.upload_seconds


class Checkpointer:
    """Uploads finished chunks in a background thread and commits the manifest.

    Parameters
    ----------
    store : ObjectStore
        The products bucket.
    layout : ObsLayout
        Keys of this observation.
    manifest : Manifest
        Loaded or new; this object owns it from now on.
    attempt : Attempt
        This instance's attempt, which the checkpointer appends to ``manifest.attempts``.
        From then on it is the attempt's one writer: chunks committed and the end are
        recorded by its methods, under the lock a commit holds, so no commit ever writes
        an attempt half-way through a change.
    chunk_suffix : str
        File extension of chunk objects; may be set after construction, before the first
        chunk is submitted (the job that knows it is built after the attempt is recorded).
    interval : float
        Seconds between manifest commits while chunks keep arriving.
    keep_local : bool
        Keep each chunk file after its upload (else it is deleted once durable, and
        :meth:`local_path` downloads it again if asked).
    max_pending : int or None
        :meth:`submit` waits while this many chunks are still uploading, so the disk holds
        at most ``max_pending`` uploading chunk files besides the one being computed (the
        worker's disk bound). None: no bound.
    """

    def __init__(
        self,
        store: ObjectStore,
        layout: ObsLayout,
        manifest: Manifest,
        attempt: Attempt,
        *,
        chunk_suffix: str = "",
        interval: float = DEFAULT_INTERVAL,
        keep_local: bool = True,
        max_pending: int | None = None,
    ) -> None:
        self.store = store
        self.keep_local = keep_local
        self.max_pending = max_pending
        self.layout = layout
        self.manifest = manifest
        self._attempt = attempt
        manifest.attempts.append(attempt)
        self.chunk_suffix = chunk_suffix
        self.interval = interval
        self.stats = CheckpointStats()
        self.error: BaseException | None = None
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._uploaded: dict[str, ChunkRecord] = {}  # durable, not yet in the manifest
        self._local: dict[str, Path] = {}
        self._state = threading.Condition()
        self._busy = 0  # chunks submitted and not yet uploaded
        self._commit_lock = threading.Lock()
        self._flush_requested = threading.Event()
        self._last_commit = time.monotonic()
        self._etag: str | None = None  # of the manifest as we last wrote it
        self._retry_at = 0.0  # after a failed commit, no background commit before this
        self._thread: threading.Thread | None = None
        for record in manifest.chunks.values():
            if record.seconds > 0:
                self.stats.chunk_seconds.append(record.seconds)

    # --- the worker's side -------------------------------------------------------------

    @property
    def attempt(self) -> Attempt:
        """This instance's attempt as the manifest has it now."""
        return self._attempt

    def end_attempt(self, outcome: Outcome, *, lost: float = 0.0) -> Attempt:
        """Record how this attempt ended and the compute it threw away (``lost`` seconds).

        In memory only; the next commit (:meth:`flush`) makes it durable.
        """
        with self._commit_lock:
            attempt = self._attempt
            return self._replace_attempt(
                end=utc_now(), reason=outcome, lost_seconds=round(attempt.lost_seconds + lost, 3)
            )

    def _replace_attempt(self, **changes: Any) -> Attempt:
        """Change this attempt in the manifest; the caller holds ``_commit_lock``."""
        old = self._attempt
        new = self._attempt = dataclasses.replace(old, **changes)
        attempts = self.manifest.attempts
        attempts[next(i for i, a in enumerate(attempts) if a is old)] = new
        return new

    def start(self) -> Checkpointer:
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def durable(self, chunk_id: str) -> bool:
        """True if the committed manifest lists ``chunk_id``."""
        return chunk_id in self.manifest.chunks

    def submit(self, chunk_id: str, path: Path, seconds: float) -> None:
        """Hand over a finished chunk file; it uploads as soon as the uploader is free
        (after waiting, with ``max_pending``, until fewer chunks than that are uploading)."""
        self._raise_if_failed()
        self.stats.chunk_seconds.append(seconds)
        self._local[chunk_id] = path
        with self._state:
            while (
                self.max_pending is not None
                and self._busy >= self.max_pending
                and self.error is None
            ):
                self._state.wait(timeout=0.5)  # the uploader notifies after each chunk
            self._busy += 1
        self._queue.put(_Pending(chunk_id, path, seconds))

    def request_flush(self) -> None:
        """Commit as soon as the chunks in flight are durable (a rebalance recommendation)."""
        # The uploader re-checks the flag at least every 0.1 s.
        self._flush_requested.set()

    def chunk_seconds_estimate(self) -> float | None:
        """Mean measured chunk compute time (this attempt and earlier ones), if any."""
        if not self.stats.chunk_seconds:
            return None
        return sum(self.stats.chunk_seconds) / len(self.stats.chunk_seconds)

    def flush_estimate(self, extra_bytes: int = 0) -> float:
        """Seconds a flush would take now: bytes in flight at the measured rate + a commit."""
        rate = self.stats.throughput()
        with self._state:
            waiting = [
                path
                for cid, path in self._local.items()
                if cid not in self.manifest.chunks and cid not in self._uploaded
            ]
        pending = sum(path.stat().st_size for path in waiting if path.exists())
        upload = (pending + extra_bytes) / rate if rate else 0.0
        return upload + 2 * self.stats.last_commit_seconds

    def flush(self, timeout: float | None = None) -> float:
        """Wait until every submitted chunk is durable, then commit; return seconds taken.

        Raises
        ------
        TransientError
            An upload failed beyond its retries, or the flush did not finish in ``timeout``.
        """
        started = time.monotonic()
        limit = None if timeout is None else started + timeout
        with self._state:
            while self._busy and self.error is None:
                remaining = None if limit is None else limit - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TransientError(f"checkpoint flush did not finish in {timeout:.1f} s")
                self._state.wait(timeout=0.5 if remaining is None else min(0.5, remaining))
        self._raise_if_failed()
        self.commit()
        return time.monotonic() - started

    def local_path(self, chunk_id: str, dest_dir: Path) -> Path:
        """A verified local copy of a durable chunk (downloaded when this attempt lacks it)."""
        path = self._local.get(chunk_id)
        if path is not None and path.exists():
            return path
        record = self.manifest.chunks[chunk_id]
        dest = dest_dir / f"{chunk_id}.{self.chunk_suffix}"
        return self.store.download_file(record.key, dest, sha256=record.sha256)

    def commit(self) -> None:
        """Write the manifest listing every durable chunk, merged with the stored one."""
        with self._commit_lock:
            started = time.monotonic()
            with self._state:
                fresh = dict(self._uploaded)
            self.manifest.chunks.update(fresh)
            if fresh:
                faultpoint("manifest-write")
            done = self._attempt.chunks_done
            self._replace_attempt(chunks_done=done + len(fresh), last_seen=utc_now())
            try:
                self._write_manifest()
            except BaseException:
                self._replace_attempt(chunks_done=done)
                raise
            with self._state:
                for cid in fresh:
                    self._uploaded.pop(cid, None)
            self._last_commit = time.monotonic()
            self.stats.last_commit_seconds = self._last_commit - started
            self._flush_requested.clear()
            log.info(
                "manifest committed: %d chunks durable (%.2f s)",
                len(self.manifest.chunks),
                self.stats.last_commit_seconds,
                extra={"event": "checkpoint.committed", "chunks": len(self.manifest.chunks)},
            )

    def _write_manifest(self) -> None:
        """Write the manifest with optimistic concurrency (If-Match on our last ETag).

        Another worker may hold the same message (visibility expiry); when its write lands
        between ours, the precondition fails, and we merge its manifest into ours and try
        again. Without contention a commit is one PUT, verified from S3's answer.
        """
        key = self.layout.manifest
        for _ in range(_COMMIT_TRIES):
            if self._etag is None:
                found = self.store.get_versioned(key)
                if found is not None:
                    merge_manifests(self.manifest, Manifest.from_json(found[0]))
                etag = None if found is None else found[1]
            else:
                etag = self._etag
            self.manifest.updated_at = utc_now()
            written = self.store.put_conditional(
                key,
                self.manifest.to_json(),
                if_match=etag,
                if_none_match=etag is None,
                content_type="application/json",
            )
            if written is not None:
                self._etag = written
                return
            log.info("manifest changed under us (another worker?): merging and retrying")
            self._etag = None
        raise TransientError(f"manifest {key} kept changing during {_COMMIT_TRIES} commits")

    # --- the uploader thread -----------------------------------------------------------

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise TransientError(f"checkpoint upload failed: {self.error}") from self.error

    def _upload(self, item: _Pending) -> None:
        key = self.layout.chunk(item.chunk_id, self.chunk_suffix)
        started = time.monotonic()
        stored = self.store.put_file(key, item.path)
        self.stats.upload_seconds += time.monotonic() - started
        self.stats.uploaded_bytes += stored.size
        with self._state:
            self._uploaded[item.chunk_id] = ChunkRecord(
                key=key,
                size=stored.size,
                sha256=stored.sha256,
                seconds=round(item.seconds, 3),
                etag=stored.etag or None,
            )
        if not self.keep_local:
            # Durable and verified: combine reads it from the store (payload.storedchunks),
            # so the disk holds only the chunks not yet uploaded.
            item.path.unlink(missing_ok=True)

    def _run(self) -> None:
        try:
            self._upload_until_stopped()
        except BaseException as exc:
            # Whatever ends this thread early must reach the worker: a flush waiting on
            # chunks no thread will upload would hang the instance, protected from
            # scale-in, until someone noticed the bill.
            with self._state:
                self.error = self.error or exc
                self._state.notify_all()
            raise

    def _upload_until_stopped(self) -> None:
        # Ends when stop() enqueues None; each wait is bounded so flags are re-checked.
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                item = _Pending("", Path(), 0.0)
            if item is None:
                return
            if item.chunk_id and self.error is None:
                try:
                    self._upload(item)
                except Exception as exc:
                    log.error("upload of chunk %s failed: %s", item.chunk_id, exc)
                    self.error = exc
                with self._state:
                    self._busy -= 1
                    self._state.notify_all()
            self._maybe_commit()

    def _maybe_commit(self) -> None:
        """Commit when the uploads have drained, or every ``interval`` while they lag.

        A manifest PUT is tiny next to a chunk, so durable chunks are listed as soon as
        nothing else is in flight; the interval bounds the gap when uploads fall behind
        (a slow link, a burst of small chunks), which is what bounds the work lost.
        """
        now = time.monotonic()
        with self._state:
            has_new = bool(self._uploaded)
            idle = self._busy == 0
        due = now - self._last_commit >= self.interval
        if not has_new or self.error is not None or now < self._retry_at:
            return
        if due or idle or self._flush_requested.is_set():
            try:
                self.commit()
            except Exception as exc:
                # S3 trouble: each commit already retried with backoff; wait a little
                # before the next try rather than hammering a struggling service.
                self._retry_at = now + min(self.interval, 30.0)
                log.error(
                    "manifest commit failed (retrying in %.0f s): %s", self._retry_at - now, exc
                )
