"""The queue worker: long-polls SQS, runs jobs chunk by chunk, survives spot reclamation.

One message is one observation. The worker classifies how each attempt ends
(:class:`payload.outcomes.Outcome`) and acts on it:

* ``done`` — products uploaded and verified, then ``DONE`` with ``If-None-Match: *``, then
  the message is deleted.
* ``preempted`` — a notice arrived: no new chunk starts, the current one finishes only if
  its measured time fits before the deadline minus a safety margin, the checkpoint is
  flushed and verified, the message is made visible at once, and the process exits.
* ``transient`` — visibility set to a jittered backoff; after ``max_transient`` such
  attempts (counted in the manifest, since preemptions also raise SQS's receive count) the
  job fails for good.
* ``invalid`` — ``FAILED.json``, the message body to the DLQ, the message deleted.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from payload.checkpoint import DEFAULT_INTERVAL, Checkpointer, load_manifest
from payload.contracts import (
    SCHEMA,
    Attempt,
    JobMessage,
    Manifest,
    ObsLayout,
    canonical_json,
    parse_s3_uri,
    utc_now,
)
from payload.errors import InvalidInputError, PayloadError, PreemptedError, TransientError
from payload.heartbeat import VisibilityHeartbeat
from payload.imds import InstanceIdentity
from payload.jobs import JobContext, build_job
from payload.jobs.base import ChunkedJob
from payload.outcomes import Outcome
from payload.provenance import payload_git_commit
from payload.spot import SpotWatcher
from payload.store import DEFAULT_PART_SIZE, ObjectStore, faultpoint, with_retries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    """Settings of one worker process (``python -m payload worker --help``)."""

    queue_url: str
    products_bucket: str
    dlq_url: str | None = None
    idle_exit: float = 600.0
    checkpoint_interval: float = DEFAULT_INTERVAL
    workdir: Path = Path("/var/lib/spotcube/work")
    max_jobs: int | None = None
    visibility_timeout: int = 120
    poll_wait: int = 20
    max_transient: int = 3
    retry_base: float = 30.0
    safety_margin: float = 10.0
    asg_name: str | None = None
    lifecycle_hook: str | None = None


@dataclass
class Clients:
    """boto3 clients the worker uses (autoscaling only on AWS)."""

    s3: Any
    sqs: Any
    autoscaling: Any | None = None
    part_size: int = DEFAULT_PART_SIZE
    stores: dict[str, ObjectStore] = field(default_factory=dict)

    def store(self, bucket: str) -> ObjectStore:
        if bucket not in self.stores:
            self.stores[bucket] = ObjectStore(self.s3, bucket, part_size=self.part_size)
        return self.stores[bucket]


class _AbandonedChunkError(PreemptedError):
    """The chunk in progress cannot finish before the deadline; ``lost`` seconds thrown away."""

    def __init__(self, lost: float) -> None:
        super().__init__(f"chunk abandoned at the deadline after {lost:.1f} s")
        self.lost = lost


def generated_identity() -> InstanceIdentity:
    """An identity for a worker without IMDS (a laptop): unique, and obviously not EC2."""
    return InstanceIdentity(instance_id=f"local-{uuid.uuid4().hex[:12]}")


class Worker:
    """Runs jobs from one queue; see the module docstring for the outcomes.

    Parameters
    ----------
    config : WorkerConfig
    clients : Clients
    watcher : SpotWatcher
        Already started; its ``terminating`` and ``rebalance`` events steer the worker.
    identity : InstanceIdentity
        Recorded in every attempt.
    """

    def __init__(
        self,
        config: WorkerConfig,
        clients: Clients,
        watcher: SpotWatcher,
        identity: InstanceIdentity,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clients = clients
        self.watcher = watcher
        self.identity = identity
        self.products = clients.store(config.products_bucket)
        self.rng = rng or random.Random()
        self.jobs_handled = 0

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> int:
        """Work until idle for ``idle_exit`` s, ``max_jobs`` are handled, or a notice."""
        idle_since = time.monotonic()
        # Bounded: every pass either handles a job (at most max_jobs), waits out part of
        # the idle time, or returns on a notice.
        while self.config.max_jobs is None or self.jobs_handled < self.config.max_jobs:
            if self.watcher.terminating.is_set():
                log.warning("termination notice while idle: exiting")
                return Outcome.PREEMPTED.exit_code
            idle = time.monotonic() - idle_since
            if idle >= self.config.idle_exit:
                log.info("idle for %.0f s: exiting", idle)
                return 0
            wait = int(min(self.config.poll_wait, max(1.0, self.config.idle_exit - idle)))
            messages = self._receive(wait)
            if not messages:
                continue
            outcome = self.handle(messages[0])
            self.jobs_handled += 1
            idle_since = time.monotonic()
            if outcome is Outcome.PREEMPTED:
                return Outcome.PREEMPTED.exit_code
        return 0

    def _receive(self, wait: int) -> list[dict[str, Any]]:
        try:
            result = with_retries(
                lambda: self.clients.sqs.receive_message(
                    QueueUrl=self.config.queue_url,
                    MaxNumberOfMessages=1,
                    WaitTimeSeconds=wait,
                    VisibilityTimeout=self.config.visibility_timeout,
                    AttributeNames=["ApproximateReceiveCount"],
                ),
                "SQS receive",
            )
        except TransientError as exc:
            log.error("cannot receive from the queue: %s", exc)
            time.sleep(min(wait, 5))
            return []
        messages: list[dict[str, Any]] = result.get("Messages", [])
        return messages

    # --- one message -------------------------------------------------------------------

    def handle(self, sqs_message: dict[str, Any]) -> Outcome:
        """Run one message to an outcome and do what that outcome requires."""
        receipt = sqs_message["ReceiptHandle"]
        body = sqs_message["Body"]
        if self.watcher.terminating.is_set():
            self._hand_back(body, receipt)
            return Outcome.PREEMPTED
        try:
            message = JobMessage.from_json(body)
        except InvalidInputError as exc:
            log.error("poison message (not a job): %s", exc)
            self._dead_letter(body, receipt)
            return Outcome.INVALID
        layout = ObsLayout(message.run_id, message.obs_id)
        try:
            already_done = self.products.exists(layout.done)
        except TransientError as exc:
            log.error("cannot reach the products bucket: %s", exc)
            self._set_visibility(receipt, int(self.rng.uniform(0, self.config.retry_base)))
            return Outcome.TRANSIENT
        if already_done:
            log.info(
                "%s/%s is already DONE; dropping the duplicate message",
                message.run_id,
                message.obs_id,
            )
            self._delete(receipt)
            return Outcome.DONE
        self._protect(True)
        heartbeat = VisibilityHeartbeat(
            self.clients.sqs,
            self.config.queue_url,
            receipt,
            timeout=self.config.visibility_timeout,
        ).start()
        run = _JobRun(self, message, layout)
        run.receive_count = int(sqs_message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
        try:
            outcome = run.execute()
        except PreemptedError as exc:
            heartbeat.stop()
            run.end_attempt(Outcome.PREEMPTED, lost=getattr(exc, "lost", 0.0))
            self._hand_back(body, receipt)
            self._complete_lifecycle()
            return Outcome.PREEMPTED
        except InvalidInputError as exc:
            heartbeat.stop()
            log.error("job %s/%s is invalid: %s", message.run_id, message.obs_id, exc)
            run.end_attempt(Outcome.INVALID)
            self._write_failed(layout, exc, run.manifest)
            self._dead_letter(body, receipt)
            return Outcome.INVALID
        except Exception as exc:
            heartbeat.stop()
            return self._transient(run, exc, body, receipt)
        finally:
            heartbeat.stop()
            self._protect(False)
            run.cleanup()
        self._delete(receipt)
        log.info("job %s/%s: %s", message.run_id, message.obs_id, outcome.value)
        return outcome

    def _transient(self, run: _JobRun, exc: Exception, body: str, receipt: str) -> Outcome:
        # Application errors that are not PayloadErrors are retried a bounded number of
        # times too: a bug looks like a transient failure until the bound says otherwise.
        kind = "transient" if isinstance(exc, PayloadError) else f"unexpected {type(exc).__name__}"
        log.error(
            "job %s/%s failed (%s): %s",
            run.message.run_id,
            run.message.obs_id,
            kind,
            exc,
            exc_info=not isinstance(exc, PayloadError),
        )
        run.end_attempt(Outcome.TRANSIENT)
        if run.manifest is not None:
            tries = sum(1 for a in run.manifest.attempts if a.reason == Outcome.TRANSIENT.value)
        else:
            # No manifest (S3 itself failing): SQS's receive count is the best bound we have.
            tries = run.receive_count
        if tries >= self.config.max_transient:
            log.error(
                "job %s/%s failed %d times: giving up",
                run.message.run_id,
                run.message.obs_id,
                tries,
            )
            self._write_failed(run.layout, exc, run.manifest)
            self._dead_letter(body, receipt)
            return Outcome.TRANSIENT
        delay = self.rng.uniform(0.0, self.config.retry_base * 2**tries)
        self._set_visibility(receipt, int(min(delay, 43_200)))  # SQS caps visibility at 12 h
        return Outcome.TRANSIENT

    # --- queue and bucket side effects -------------------------------------------------

    def _sqs(self, what: str, call: Callable[[], Any]) -> None:
        try:
            with_retries(call, what)
        except (TransientError, ClientError) as exc:
            log.error("%s failed: %s", what, exc)

    def _hand_back(self, body: str, receipt: str) -> None:
        """Return a preempted job to the queue so another instance takes it now.

        SQS counts every receive towards the dead-letter redrive limit, so a job preempted
        more often than ``maxReceiveCount`` would land in the DLQ although preemptions must
        be unlimited. A fresh copy starts a fresh count. It is sent before the original is
        deleted: a kill in between leaves a duplicate, which is harmless (DONE is written
        once, products are identical), never a lost job.
        """
        try:
            with_retries(
                lambda: self.clients.sqs.send_message(
                    QueueUrl=self.config.queue_url, MessageBody=body
                ),
                "SQS requeue",
            )
        except (TransientError, ClientError) as exc:
            log.error("requeue failed (%s); making the message visible again instead", exc)
            self._set_visibility(receipt, 0)
            return
        self._delete(receipt)

    def _set_visibility(self, receipt: str, seconds: int) -> None:
        self._sqs(
            "SQS change visibility",
            lambda: self.clients.sqs.change_message_visibility(
                QueueUrl=self.config.queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds
            ),
        )

    def _delete(self, receipt: str) -> None:
        self._sqs(
            "SQS delete",
            lambda: self.clients.sqs.delete_message(
                QueueUrl=self.config.queue_url, ReceiptHandle=receipt
            ),
        )

    def _dead_letter(self, body: str, receipt: str) -> None:
        if self.config.dlq_url:
            self._sqs(
                "SQS send to DLQ",
                lambda: self.clients.sqs.send_message(
                    QueueUrl=self.config.dlq_url, MessageBody=body
                ),
            )
        else:
            log.error("no --dlq-url: the failed message is dropped (FAILED.json keeps the story)")
        self._delete(receipt)

    def _write_failed(
        self, layout: ObsLayout, exc: BaseException, manifest: Manifest | None
    ) -> None:
        doc = {
            "schema": SCHEMA,
            "error_class": type(exc).__name__,
            "message": str(exc),
            "outcome": getattr(exc, "outcome", Outcome.TRANSIENT).value,
            "instance_id": self.identity.instance_id,
            "failed_at": utc_now(),
            "attempts": [vars(a) for a in manifest.attempts] if manifest else [],
        }
        try:
            self.products.put_bytes(
                layout.failed, json.dumps(doc, indent=1).encode(), content_type="application/json"
            )
        except Exception as write_error:
            log.error("could not write %s: %s", layout.failed, write_error)

    # --- Auto Scaling ------------------------------------------------------------------

    def _asg_known(self) -> bool:
        if not self.config.asg_name:
            log.debug("not in an Auto Scaling group: no scale-in protection to set")
        return bool(self.config.asg_name and self.clients.autoscaling is not None)

    def _protect(self, busy: bool) -> None:
        """Scale-in protection while busy, so the ASG shrinks by idle instances first."""
        if not self._asg_known():
            return
        assert self.clients.autoscaling is not None
        try:
            self.clients.autoscaling.set_instance_protection(
                InstanceIds=[self.identity.instance_id],
                AutoScalingGroupName=self.config.asg_name,
                ProtectedFromScaleIn=busy,
            )
        except Exception as exc:
            log.warning("scale-in protection %s failed: %s", "on" if busy else "off", exc)

    def _complete_lifecycle(self) -> None:
        notice = self.watcher.notice
        if not (
            notice and notice.source == "asg" and self._asg_known() and self.config.lifecycle_hook
        ):
            return
        assert self.clients.autoscaling is not None
        try:
            self.clients.autoscaling.complete_lifecycle_action(
                LifecycleHookName=self.config.lifecycle_hook,
                AutoScalingGroupName=self.config.asg_name,
                InstanceId=self.identity.instance_id,
                LifecycleActionResult="CONTINUE",
            )
        except Exception as exc:
            log.warning("completing the terminating lifecycle action failed: %s", exc)


class _JobRun:
    """One attempt at one job: input, manifest, chunks, products."""

    def __init__(self, worker: Worker, message: JobMessage, layout: ObsLayout) -> None:
        self.worker = worker
        self.config = worker.config
        self.message = message
        self.layout = layout
        self.store = worker.products
        self.dir = self.config.workdir / message.run_id / message.obs_id
        self.manifest: Manifest | None = None
        self.checkpointer: Checkpointer | None = None
        ident = worker.identity
        self.attempt = Attempt(
            instance_id=ident.instance_id,
            start=utc_now(),
            instance_type=ident.instance_type,
            availability_zone=ident.availability_zone,
        )
        self._inputs: dict[str, Path] = {}
        self.receive_count = 1

    def input_identity(self) -> dict[str, Any]:
        if self.message.kind == "command" and not self.message.input.startswith("s3://"):
            return {"uri": self.message.input}
        bucket, key = parse_s3_uri(self.message.input)
        head = self.worker.clients.store(bucket).head(key)
        if head is None:
            raise InvalidInputError(f"input {self.message.input} does not exist")
        return {
            "uri": self.message.input,
            "etag": head.get("ETag"),
            "size": head.get("ContentLength"),
        }

    def fetch(self, uri: str) -> Path:
        """Download an ``s3://`` input once per attempt, into the job's directory."""
        if uri not in self._inputs:
            bucket, key = parse_s3_uri(uri)
            store = self.worker.clients.store(bucket)
            if store.head(key) is None:
                raise InvalidInputError(f"input {uri} does not exist")
            name = key.rsplit("/", 1)[-1] or "input"
            self._inputs[uri] = store.download_file(key, self.dir / "input" / name)
        return self._inputs[uri]

    def execute(self) -> Outcome:
        identity = self.input_identity()
        self.manifest = load_manifest(self.store, self.layout, self.message, identity)
        self.manifest.attempts.append(self.attempt)
        if self.message.kind == "command":
            from payload.jobs.command import run_command_job

            return run_command_job(self)
        context = JobContext(
            message=self.message,
            workdir=self.dir,
            fetch=self.fetch,
            provenance={
                "input_identity": canonical_json(identity),
                "instance_id": self.worker.identity.instance_id,
                "git_commit": payload_git_commit(),
                **({"ami_id": ami} if (ami := self.worker.identity.ami_id) else {}),
            },
        )
        job = build_job(context)
        self.manifest.chunks_total = len(job.chunk_ids())
        ckpt = Checkpointer(
            self.store,
            self.layout,
            self.manifest,
            self.attempt,
            chunk_suffix=job.chunk_suffix,
            interval=self.config.checkpoint_interval,
        )
        if self.manifest.chunks:
            log.info(
                "resuming from the manifest: %d chunks durable, %d attempts before this",
                len(self.manifest.chunks),
                len(self.manifest.attempts) - 1,
            )
        self.checkpointer = ckpt.start()
        ckpt.commit()  # records this attempt at once: the hazard estimate counts it
        self._run_chunks(job, ckpt)
        ckpt.flush()
        if self.worker.watcher.terminating.is_set():
            # Combining is new work too; the next instance does it from the manifest.
            raise PreemptedError("termination notice: products are left to the next instance")
        return self._finish(job, ckpt)

    def _run_chunks(self, job: ChunkedJob, ckpt: Checkpointer) -> None:
        chunk_dir = self.dir / "chunks"
        chunk_dir.mkdir(parents=True, exist_ok=True)
        for chunk_id in job.chunk_ids():
            if ckpt.durable(chunk_id):
                continue
            if self.worker.watcher.terminating.is_set():
                raise PreemptedError("termination notice: no new chunk starts")
            out = chunk_dir / f"{chunk_id}.{job.chunk_suffix}"
            seconds = self._supervise(job, chunk_id, out, ckpt)
            log.info("chunk %s computed in %.2f s", chunk_id, seconds)
            # Fault tests count their interruption schedule in chunks (store.faultpoint).
            faultpoint("chunk-computed")
            ckpt.submit(chunk_id, out, seconds)

    def _supervise(self, job: ChunkedJob, chunk_id: str, out: Path, ckpt: Checkpointer) -> float:
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
        watcher = self.worker.watcher
        while not finished.wait(0.05):  # bounded by the chunk itself or by the deadline
            if watcher.rebalance.is_set():
                watcher.rebalance.clear()
                ckpt.request_flush()
            notice = watcher.notice
            if notice is None:
                continue
            now = time.monotonic()
            cutoff = (
                notice.deadline - self.config.safety_margin - ckpt.flush_estimate(extra_bytes=0)
            )
            estimate = ckpt.chunk_seconds_estimate()
            if now >= cutoff or (estimate is not None and started + estimate > cutoff):
                raise _AbandonedChunkError(now - started)
        if failure:
            raise failure[0]
        return time.monotonic() - started

    def _finish(self, job: ChunkedJob, ckpt: Checkpointer) -> Outcome:
        fetched = self.dir / "fetched"
        paths = {cid: ckpt.local_path(cid, fetched) for cid in job.chunk_ids()}
        products = job.combine(paths, self.dir / "products")
        return self.publish(products)

    def publish(self, products: list[Path]) -> Outcome:
        """Upload products, end the attempt in the manifest, then write ``DONE`` once."""
        listing = {}
        for path in products:
            stored = self.store.put_file(self.layout.product(path.name), path)
            listing[path.name] = {"key": stored.key, "size": stored.size, "sha256": stored.sha256}
        self.end_attempt(Outcome.DONE)
        done = {
            "schema": SCHEMA,
            "run_id": self.message.run_id,
            "obs_id": self.message.obs_id,
            "params_hash": self.message.params_hash,
            "products": listing,
            "instance_id": self.worker.identity.instance_id,
            "finished_at": utc_now(),
        }
        created = self.store.put_bytes(
            self.layout.done,
            json.dumps(done, indent=1).encode(),
            if_none_match=True,
            content_type="application/json",
        )
        if not created:
            existing = json.loads(self.store.get_bytes(self.layout.done) or b"{}")
            if existing.get("products") != listing:
                log.error(
                    "DONE of %s was written by another worker with other products: %s",
                    self.layout.prefix,
                    existing.get("products"),
                )
            else:
                log.info("DONE was already written (another worker or our retry); products agree")
        return Outcome.DONE

    def end_attempt(self, outcome: Outcome, *, lost: float = 0.0) -> None:
        """Close this attempt in the manifest and make it durable (best effort on failure)."""
        if self.manifest is None:
            return
        self.attempt.end = utc_now()
        self.attempt.reason = outcome.value
        self.attempt.lost_seconds = round(self.attempt.lost_seconds + lost, 3)
        notice = self.worker.watcher.notice
        ckpt = self.checkpointer
        try:
            if ckpt is None:
                self.store.put_bytes(self.layout.manifest, self.manifest.to_json().encode())
                return
            remaining = None
            if outcome is Outcome.PREEMPTED and notice is not None:
                remaining = max(1.0, notice.seconds_left())
            ckpt.flush(timeout=remaining)
            ckpt.stop()
        except Exception as exc:
            log.error("checkpoint at the end of the attempt failed: %s", exc)
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
            )

    def cleanup(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
