"""One attempt at one job: the public interface every job kind runs through.

The worker (:mod:`payload.worker`) owns the queue: it receives a message, decides what an
outcome means for the message, and hands everything between to a :class:`JobAttempt`:
input identity and download, the manifest (loaded, this attempt appended, and every later
write through the :class:`~payload.checkpoint.Checkpointer`, whose If-Match check keeps two
workers from overwriting each other), the attempt's shipped log, the products and ``DONE``,
``FAILED.json``. Chunked jobs (``image``, ``integrate``, ``selftest``) get a
:class:`~payload.jobs.base.JobContext` from :meth:`JobAttempt.context` and are driven by
:func:`run_chunked_job`; ``command`` jobs by :func:`payload.jobs.command.run_command_job`.
Neither imports the worker.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from contract.jobs import JobKind
from contract.layout import KeyKind, ObsLayout, parse_key
from contract.settings import AttemptSettings
from payload.checkpoint import Checkpointer, load_manifest
from payload.classify import failure_record, with_uris
from payload.errors import InvalidInputError, PayloadError, PreemptedError
from payload.imds import InstanceIdentity
from payload.inputs import (
    FORM_TAR,
    SHA256_METADATA,
    sha256_of_key,
    stored_name_and_form,
    vouched_by_metadata,
)
from payload.inputs import restore as restore_input
from payload.jobs import JobContext, build_job
from payload.jobs.base import ChunkedJob, StreamingCombine
from payload.logship import LogShipper
from payload.outcomes import Outcome
from payload.provenance import payload_git_commit
from payload.ranged import RangedSource
from payload.records import (
    CODE_ID,
    Attempt,
    DoneRecord,
    FailedRecord,
    InputIdentity,
    JobMessage,
    Manifest,
    ProductEntry,
    canonical_json,
    check_params_hash,
    parse_s3_uri,
    to_doc,
    utc_now,
)
from payload.spot import SpotWatcher
from payload.store import ObjectStore, faultpoint
from payload.storedchunks import StoredChunks
from payload.storedproducts import StoredProducts, delete_products

log = logging.getLogger(__name__)


class AbandonedChunkError(PreemptedError):
    """The chunk in progress cannot finish before the deadline; ``lost`` seconds thrown away."""

    def __init__(self, lost: float) -> None:
        super().__init__(f"chunk abandoned at the deadline after {lost:.1f} s", lost=lost)


class JobAttempt:
    """One instance's attempt at one job.

    Parameters
    ----------
    message : JobMessage
    products : ObjectStore
        The products bucket (manifest, chunks, products, logs, DONE, FAILED.json).
    store_for : callable
        ``bucket -> ObjectStore`` for inputs in other buckets.
    identity : InstanceIdentity
        Recorded in the attempt.
    watcher : SpotWatcher
        Its ``terminating``/``rebalance`` events and ``notice`` steer the job.
    settings : AttemptSettings
    """

    def __init__(
        self,
        message: JobMessage,
        *,
        products: ObjectStore,
        store_for: Callable[[str], ObjectStore],
        identity: InstanceIdentity,
        watcher: SpotWatcher,
        settings: AttemptSettings,
    ) -> None:
        self.message = message
        self.layout = ObsLayout(message.run_id, message.obs_id)
        self.store = products
        self.store_for = store_for
        self.identity = identity
        self.watcher = watcher
        self.settings = settings
        self.dir = settings.workdir / message.run_id / message.obs_id
        self.manifest: Manifest | None = None
        self.checkpointer: Checkpointer | None = None
        self.logs: LogShipper | None = None
        self.number = 0  # this attempt's place in the manifest, from 1; set by start()
        self.input_identity: InputIdentity | None = None  # set by start()
        # Names this attempt's private products prefix: unique even when two workers hold one
        # message and pick the same attempt number.
        self.token = uuid.uuid4().hex[:16]
        self.started_at = utc_now()
        self._inputs: dict[str, Path] = {}
        self._ranged: dict[str, tuple[RangedSource, Path]] = {}

    # --- start -------------------------------------------------------------------------

    def start(self) -> Checkpointer:
        """Load the manifest, append this attempt, make that durable, start shipping the log.

        Raises
        ------
        InvalidInputError
            The message's params_hash does not follow from its params and this code, the
            input is missing, or the stored checkpoint belongs to other work.
        """
        check_params_hash(self.message)  # before anything is written under the job's prefix
        self.input_identity = self._identify_input()
        manifest = load_manifest(self.store, self.layout, self.message, self.input_identity)
        # Two workers holding one message (a visibility expiry) may pick the same number; the
        # later upload of that log wins. Numbers follow the manifest's order otherwise.
        number = self.number = len(manifest.attempts) + 1
        self.token = f"{number}-{self.token}"
        attempt = Attempt(
            instance_id=self.identity.instance_id,
            start=self.started_at,
            instance_type=self.identity.instance_type,
            availability_zone=self.identity.availability_zone,
            log=self.layout.log(number),
        )
        # Appends the attempt: from here on the checkpointer is the manifest's one writer.
        ckpt = Checkpointer(
            self.store,
            self.layout,
            manifest,
            attempt,
            interval=self.settings.checkpoint_interval,
            # The disk bound (docs/work-plane.md, "What a worker's disk holds"): a chunk
            # file is deleted once durable, and a new one waits for the last one's upload.
            keep_local=False,
            max_pending=1,
        )
        self.manifest = manifest
        self.logs = LogShipper(
            self.store, self.layout.log(number), self.dir / f"attempt-{number}.log"
        )
        self.logs.start()
        log.info(
            "attempt %d at %s/%s on %s (%s, %s)",
            number,
            self.message.run_id,
            self.message.obs_id,
            self.identity.instance_id,
            self.identity.instance_type,
            self.identity.availability_zone,
            extra={"event": "attempt.started", "attempt": number},
        )
        self.checkpointer = ckpt.start()
        ckpt.commit()  # records this attempt at once: the hazard estimate counts it
        self.ship_log()
        return ckpt

    def _identify_input(self) -> InputIdentity:
        if self.message.kind == JobKind.COMMAND and not self.message.input.startswith("s3://"):
            return InputIdentity(uri=self.message.input)
        return self._head_input(self.message.input)

    def _head_input(self, uri: str) -> InputIdentity:
        """The input's identity as the store has it now: uri, ETag, size.

        A content-keyed input whose object says (in the sha256 metadata spotcube submit wrote)
        that it holds other bytes than its key names was overwritten after submit: that is
        the input's fault, ``invalid`` at first sight rather than six downloads per attempt.
        """
        bucket, key = parse_s3_uri(uri)
        head = self.store_for(bucket).head(key)
        if head is None:
            raise InvalidInputError(f"input {uri} does not exist")
        named = sha256_of_key(key)
        stored = (head.get("Metadata") or {}).get(SHA256_METADATA)
        if named and stored and stored != named:
            raise InvalidInputError(
                f"input {uri} was overwritten after submit: it holds bytes with sha256 "
                f"{stored[:12]}, its key names {named[:12]}; submit the observation again"
            )
        return InputIdentity(uri=uri, etag=head.get("ETag"), size=head.get("ContentLength"))

    def verify_input(self) -> None:
        """Refuse to combine chunks read from an input that changed during the job.

        Called after the last chunk is read, before combine: the chunks of this job (this
        attempt's and earlier attempts', which ``load_manifest`` matched to the same identity)
        were all computed from the bytes the identity names only if the input still has it.
        """
        then = self.input_identity
        if then is None or then.etag is None:
            return
        now = self._head_input(self.message.input)
        for name in ("etag", "size"):
            if getattr(now, name) != getattr(then, name):
                raise InvalidInputError(
                    f"input {self.message.input} changed while the job read it ({name} "
                    f"{getattr(then, name)} at start, {getattr(now, name)} after the last "
                    "chunk); submit it again under a new run id"
                )

    # --- what jobs use -----------------------------------------------------------------

    def fetch(self, uri: str) -> Path:
        """Download an ``s3://`` input once per attempt, into the job's directory.

        The job's own input is downloaded only if it still has the ETag it had when the
        attempt identified it (``If-Match``): a replacement in between is ``invalid`` at
        once. A product of another observation (an ``integrate`` job's uv cubes) is read
        through that observation's ``DONE``, the only place that says which object it is.
        """
        if uri not in self._inputs:
            bucket, key = parse_s3_uri(uri)
            store = self.store_for(bucket)
            if_match = None
            if uri == self.message.input:
                if_match = self.input_identity.etag if self.input_identity else None
            elif bucket == self.store.bucket:
                key = self._committed_product_key(uri, key)
            # Content-keyed inputs carry their name; folders arrive as an archive.
            self._inputs[uri] = restore_input(
                store, key, self.dir / "input", uri=uri, if_match=if_match
            )
        return self._inputs[uri]

    def open_ranged(self, uri: str) -> tuple[RangedSource, Path] | None:
        """The job's own input as a file read by range, and the path a download would give it.

        ``None`` for anything but the job's own input stored as one file (a folder archive
        must be unpacked; a product of another observation goes through ``fetch``). The job
        decides from the file's layout whether to read it so (:mod:`payload.jobs.image`).

        Integrity, compared with :meth:`fetch`: every range is fetched only while the object
        has the ETag the attempt identified it by (``If-Match``), so a replacement at any
        time, between chunks too, is ``invalid`` on the next request, and a content-keyed
        input (``inputs/sha256/<hex>``) is read by range only if its metadata holds the
        SHA-256 its key names, as ``spotcube submit`` writes it (an object overwritten by
        another tool has none and is downloaded and hashed whole; one whose metadata names
        other bytes is refused by :meth:`_head_input`). What a ranged read does not do is hash the
        whole file, as a download does: that would mean reading all of it, which is what
        reading by range avoids. Bytes that differ from the submitted ones under the same
        ETag (damage at rest, which S3 does not serve) are not caught here.
        """
        identity = self.input_identity
        if uri != self.message.input or identity is None or not identity.etag or not identity.size:
            return None
        if uri not in self._ranged:
            bucket, key = parse_s3_uri(uri)
            store = self.store_for(bucket)
            head = store.head(key)
            if head is None:
                raise InvalidInputError(f"input {uri} does not exist")
            name, form = stored_name_and_form(head, key)
            if form == FORM_TAR or not vouched_by_metadata(head, key):
                return None  # unpacked, or hashed whole on the way down (fetch)
            source = RangedSource(store, key, etag=identity.etag, size=identity.size)
            self._ranged[uri] = (source, self.dir / "input" / name)
        return self._ranged[uri]

    def log_ranged_reads(self) -> None:
        """Say how much of each input read by range was fetched (the disk it did not need)."""
        for uri, (source, _path) in self._ranged.items():
            if source.requests:
                log.info(
                    "read %.1f MiB of %s's %.1f MiB by range in %d requests",
                    source.bytes_fetched / 2**20,
                    uri,
                    source.size / 2**20,
                    source.requests,
                    extra={
                        "event": "input.ranged_bytes",
                        "bytes": source.bytes_fetched,
                        "size": source.size,
                        "requests": source.requests,
                    },
                )

    def _committed_product_key(self, uri: str, key: str) -> str:
        """The key DONE lists for the product ``uri`` names (``.../products/<name>``)."""
        parsed = parse_key(key)
        if parsed is None or parsed.kind is not KeyKind.PRODUCT or parsed.layout is None:
            return key
        raw = self.store.get_bytes(parsed.layout.done)
        if raw is None:
            # Products of runs made before attempts had private prefixes have no listing.
            if self.store.exists(key):
                return key
            raise InvalidInputError(
                f"{uri}: observation {parsed.layout.run_id}/{parsed.layout.obs_id} is not DONE; "
                "integrate its products once it is"
            )
        listed = DoneRecord.from_json(raw).product_key(parsed.name or "")
        if listed is None:
            raise InvalidInputError(f"{uri}: DONE of {parsed.layout.prefix} lists no such product")
        return listed

    def context(self) -> JobContext:
        """What a chunked job may use besides its message."""
        return JobContext(
            message=self.message,
            workdir=self.dir,
            fetch=self.fetch,
            open_ranged=self.open_ranged,
            provenance={
                "input_identity": canonical_json(to_doc(self.input_identity or {})),
                "instance_id": self.identity.instance_id,
                "git_commit": payload_git_commit(),
                "code_id": CODE_ID,
                **({"ami_id": ami} if (ami := self.identity.ami_id) else {}),
            },
        )

    def ship_log(self) -> None:
        """Upload the attempt's log as it is now (chunk boundaries, syncs, the end)."""
        if self.logs is not None:
            self.logs.ship()

    def publish(self, products: list[Path]) -> Outcome:
        """Upload products under this attempt's private prefix, then race for ``DONE``.

        ``DONE`` is the one commit point: its conditional write (``If-None-Match: *``) names
        the keys and sha256 it vouches for. The winner's attempt ends ``done``. A loser
        deletes what it uploaded and ends ``superseded``: nothing it wrote is listed, and
        nothing it does later can touch the keys another attempt's ``DONE`` lists.
        """
        with StoredProducts(self.store, self.product_key, self.dir) as sink:
            for path in products:
                sink.put(path.name, path)
        return self.commit_done(sink.listing)

    def product_key(self, name: str) -> str:
        """Where this attempt uploads the product ``name`` (private until DONE lists it)."""
        return self.layout.attempt_product(self.token, name)

    def commit_done(self, listing: dict[str, ProductEntry]) -> Outcome:
        """Race for ``DONE`` with products already uploaded under this attempt's prefix."""
        faultpoint("before-done")
        done = DoneRecord(
            run_id=self.message.run_id,
            obs_id=self.message.obs_id,
            params_hash=self.message.params_hash,
            products=listing,
            instance_id=self.identity.instance_id,
            finished_at=utc_now(),
            code_id=CODE_ID,
            input_identity=self.input_identity,
            attempt=self.token,
        )
        # No clean-up if this write fails: a PUT whose answer was lost may have created DONE,
        # and deleting what it lists would break it. Unlisted leftovers are never read, and
        # the attempt whose DONE stands deletes them (_sweep_other_attempts).
        created = self.store.put_bytes(
            self.layout.done, done.to_json(), if_none_match=True, content_type="application/json"
        )
        faultpoint("after-done")
        if not created and not self._done_is_ours():
            self._discard(listing)
            log.warning(
                "superseded: DONE of %s was written by another attempt first; this attempt's "
                "%d products were deleted",
                self.layout.prefix,
                len(listing),
                extra={"event": "attempt.superseded", "attempt": self.number},
            )
            self.end(Outcome.SUPERSEDED)
            return Outcome.SUPERSEDED
        self._sweep_other_attempts()
        self.end(Outcome.DONE)
        return Outcome.DONE

    def _sweep_other_attempts(self) -> None:
        """Delete what other attempts left under ``attempts/``, once this one's ``DONE`` stands.

        An instance reclaimed or killed mid-upload never runs its own clean-up, and its
        partial products (image cubes: gigabytes) would be billed until the run is deleted.
        After ``DONE`` exists no other attempt can commit, so nothing outside this attempt's
        prefix can ever be read; a late attempt still uploading loses the ``DONE`` race and
        deletes its own. Best effort: a failure here costs storage, never a product.
        """
        mine = f"{self.layout.attempts_prefix}{self.token}/"
        try:
            keys = self.store.list_keys(self.layout.attempts_prefix)
            others = [key for key in keys if not key.startswith(mine)]
            for key in others:
                self.store.delete(key)
        except Exception as exc:
            log.warning("could not delete other attempts' leftovers: %s", exc)
            return
        if others:
            log.info("deleted %d objects left by other attempts", len(others))

    def _done_is_ours(self) -> bool:
        """Whether the stored DONE is this attempt's (a retried PUT finds its own first try)."""
        raw = self.store.get_bytes(self.layout.done)
        return raw is not None and DoneRecord.from_json(raw).attempt == self.token

    def _discard(self, listing: dict[str, ProductEntry]) -> None:
        """Delete this attempt's uploaded products (best effort: no reader takes them anyway)."""
        delete_products(self.store, listing)

    # --- the end -----------------------------------------------------------------------

    def end(self, outcome: Outcome, *, lost: float = 0.0) -> None:
        """Close this attempt in the manifest, make it durable (best effort), ship the log."""
        if self.manifest is None or self.checkpointer is None:
            return
        ckpt = self.checkpointer
        ckpt.end_attempt(outcome, lost=lost)
        notice = self.watcher.notice
        try:
            remaining = None
            if outcome is Outcome.PREEMPTED and notice is not None:
                remaining = max(1.0, notice.seconds_left())
            ckpt.flush(timeout=remaining)
            ckpt.stop()
        except Exception as exc:
            log.error("checkpoint at the end of the attempt failed: %s", exc)
            self.ship_log()
            return
        if notice is not None and outcome is Outcome.PREEMPTED:
            took = time.monotonic() - notice.received
            log.warning(
                "checkpoint durable %.2f s after the %s notice, %.1f s before the deadline; "
                "%d chunks in the manifest, %.1f s of compute lost",
                took,
                notice.source,
                notice.seconds_left(),
                len(self.manifest.chunks),
                lost,
                extra={
                    "event": "notice.checkpoint_durable",
                    "source": notice.source,
                    "chunks": len(self.manifest.chunks),
                },
            )
        log.info(
            "attempt ended: %s",
            outcome.value,
            extra={"event": "attempt.ended", "attempt": self.number, "outcome": outcome.value},
        )
        self.ship_log()  # after the checkpoint: on a notice the checkpoint matters more

    def local_inputs(self) -> dict[str, str]:
        """The local copies of this attempt's inputs, each with the URI it came from."""
        ranged = {str(path): uri for uri, (_source, path) in self._ranged.items()}
        return ranged | {str(path): uri for uri, path in self._inputs.items()}

    def write_failed(self, exc: BaseException) -> None:
        """Write ``FAILED.json`` (the only writer): the error and the attempts made.

        An input error names the ``s3://`` input, not this instance's temporary copy.
        """
        if isinstance(exc, PayloadError):
            exc = with_uris(exc, self.local_inputs())
        write_failed(self.store, self.layout, exc, self.manifest, self.identity.instance_id)

    def cleanup(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        if self.logs is not None:
            self.logs.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def write_failed(
    store: ObjectStore,
    layout: ObsLayout,
    exc: BaseException,
    manifest: Manifest | None,
    instance_id: str,
) -> None:
    """Write ``FAILED.json`` for ``layout``; also used when no attempt could start."""
    record = FailedRecord(
        **failure_record(exc),  # class, one-line message, outcome; frames of a bug
        instance_id=instance_id,
        failed_at=utc_now(),
        attempts=list(manifest.attempts) if manifest else [],
    )
    try:
        store.put_bytes(layout.failed, record.to_json(), content_type="application/json")
    except Exception as write_error:
        log.error("could not write %s: %s", layout.failed, write_error)


# --- chunked jobs ------------------------------------------------------------------------------


def run_chunked_job(run: JobAttempt) -> Outcome:
    """Run a chunked job to its products; raises on every outcome but ``done``."""
    job = build_job(run.context())
    ckpt = run.checkpointer
    assert run.manifest is not None, "JobAttempt.start() first"
    assert ckpt is not None, "JobAttempt.start() first"
    ckpt.chunk_suffix = job.chunk_suffix
    run.manifest.chunks_total = len(job.chunk_ids())
    if run.manifest.chunks:
        log.info(
            "resuming from the manifest: %d chunks durable, %d attempts before this",
            len(run.manifest.chunks),
            len(run.manifest.attempts) - 1,
            extra={"event": "attempt.resumed", "chunks": len(run.manifest.chunks)},
        )
    _run_chunks(run, job, ckpt)
    run.log_ranged_reads()
    ckpt.flush()
    if run.watcher.terminating.is_set():
        # Combining is new work too; the next instance does it from the manifest.
        raise PreemptedError("termination notice: products are left to the next instance")
    run.verify_input()  # every chunk is read: the bytes they came from must still be there
    if isinstance(job, StreamingCombine):
        # Chunks read from the store by range, products written into it: the disk holds
        # neither (docs/work-plane.md, "What a worker's disk holds").
        with StoredProducts(run.store, run.product_key, run.dir) as sink:
            job.combine_into(StoredChunks(run.store, ckpt.manifest.chunks), sink)
        return run.commit_done(sink.listing)
    fetched = run.dir / "fetched"
    paths = {cid: ckpt.local_path(cid, fetched) for cid in job.chunk_ids()}
    return run.publish(job.combine(paths, run.dir / "products"))


def _run_chunks(run: JobAttempt, job: ChunkedJob, ckpt: Checkpointer) -> None:
    chunk_dir = run.dir / "chunks"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    for chunk_id in job.chunk_ids():
        if ckpt.durable(chunk_id):
            continue
        if run.watcher.terminating.is_set():
            raise PreemptedError("termination notice: no new chunk starts")
        out = chunk_dir / f"{chunk_id}.{job.chunk_suffix}"
        seconds = _supervise(run, job, chunk_id, out, ckpt)
        log.info(
            "chunk %s computed in %.2f s",
            chunk_id,
            seconds,
            extra={"event": "chunk.computed", "chunk": chunk_id},
        )
        # Fault tests count their interruption schedule in chunks (store.faultpoint).
        faultpoint("chunk-computed")
        ckpt.submit(chunk_id, out, seconds)
        run.ship_log()


def _supervise(
    run: JobAttempt, job: ChunkedJob, chunk_id: str, out: Path, ckpt: Checkpointer
) -> float:
    """Run one chunk in a thread; abandon it if it cannot finish before the deadline."""
    tmp = out.with_name(f".{out.name}.tmp")
    failure: list[BaseException] = []
    finished = threading.Event()

    def target() -> None:
        try:
            job.run_chunk(chunk_id, tmp)
            tmp.replace(out)
        except BaseException as exc:
            failure.append(exc)
        finally:
            finished.set()

    started = time.monotonic()
    # A daemon thread: an abandoned chunk must not keep the process alive past exit.
    threading.Thread(target=target, name=f"chunk-{chunk_id}", daemon=True).start()
    watcher = run.watcher
    while not finished.wait(0.05):  # bounded by the chunk itself or by the deadline
        if watcher.rebalance.is_set():
            watcher.rebalance.clear()
            ckpt.request_flush()
        notice = watcher.notice
        if notice is None:
            continue
        now = time.monotonic()
        cutoff = notice.deadline - run.settings.safety_margin - ckpt.flush_estimate(extra_bytes=0)
        estimate = ckpt.chunk_seconds_estimate()
        if now >= cutoff or (estimate is not None and started + estimate > cutoff):
            raise AbandonedChunkError(now - started)
    if failure:
        raise failure[0]
    return time.monotonic() - started
