"""The queue worker: long-polls SQS, runs jobs chunk by chunk, survives spot reclamation.

One message is one observation. The worker classifies how each attempt ends
(:class:`payload.outcomes.Outcome`) and acts on it:

* ``done`` — products uploaded and verified under the attempt's private prefix, then
  ``DONE`` (``If-None-Match: *``) naming them, then the message is deleted.
* ``superseded`` — another attempt's ``DONE`` won the race: this attempt deleted its
  products, the message is deleted (the job is done), and the log says "superseded".
* ``preempted`` — a notice arrived: no new chunk starts, the current one finishes only if
  its measured time fits before the deadline minus a safety margin, the checkpoint is
  flushed and verified, the message is made visible at once, and the process exits.
* ``transient`` — the store's faults and the machine's state (a full disk, no memory): one
  line, no traceback; visibility set to a jittered backoff so another instance may take
  it; after ``max_transient`` such
  attempts (counted in the manifest, since preemptions also raise SQS's receive count) the
  job fails for good.
* ``invalid`` — ``FAILED.json``, the message body to the DLQ, the message deleted.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from contract.layout import ObsLayout
from contract.settings import WorkerConfig
from payload.attempt import JobAttempt, run_chunked_job
from payload.classify import is_resource_error, reason
from payload.errors import InvalidInputError, PayloadError, PreemptedError, TransientError
from payload.heartbeat import VisibilityHeartbeat
from payload.imds import InstanceIdentity
from payload.jobs.command import run_command_job
from payload.outcomes import Outcome
from payload.records import JobMessage
from payload.spot import SpotWatcher
from payload.store import DEFAULT_PART_SIZE, ObjectStore, with_retries

log = logging.getLogger(__name__)


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
        self.last_outcome: Outcome | None = None

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> int:
        """Work until idle for ``idle_exit`` s, ``max_jobs`` are handled, or a notice."""
        idle_since = time.monotonic()
        # Bounded: every pass either handles a job (at most max_jobs), waits out part of
        # the idle time, or returns on a notice.
        while self.config.max_jobs is None or self.jobs_handled < self.config.max_jobs:
            if self.watcher.terminating.is_set():
                log.warning(
                    "termination notice while idle: exiting", extra={"event": "worker.exit_notice"}
                )
                return Outcome.PREEMPTED.exit_code
            idle = time.monotonic() - idle_since
            if idle >= self.config.idle_exit:
                log.info("idle for %.0f s: exiting", idle, extra={"event": "worker.exit_idle"})
                return 0
            wait = int(min(self.config.poll_wait, max(1.0, self.config.idle_exit - idle)))
            messages = self._receive(wait)
            if not messages:
                continue
            outcome = self.last_outcome = self.handle(messages[0])
            self.jobs_handled += 1
            idle_since = time.monotonic()
            if outcome is Outcome.PREEMPTED:
                return Outcome.PREEMPTED.exit_code
        # A worker run for one job (max_jobs 1) must not exit 0 when its attempt lost the race.
        return Outcome.SUPERSEDED.exit_code if self.last_outcome is Outcome.SUPERSEDED else 0

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
            log.error("poison message (not a job): %s", exc, extra={"event": "message.poison"})
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
                extra={"event": "job.duplicate", "run": message.run_id, "obs": message.obs_id},
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
        run = JobAttempt(
            message,
            products=self.products,
            store_for=self.clients.store,
            identity=self.identity,
            watcher=self.watcher,
            settings=self.config.attempt_settings(),
        )
        receive_count = int(sqs_message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
        try:
            run.start()
            outcome = (run_command_job if message.kind == "command" else run_chunked_job)(run)
        except PreemptedError as exc:
            heartbeat.stop()
            run.end(Outcome.PREEMPTED, lost=exc.lost)
            self._hand_back(body, receipt)
            self._complete_lifecycle()
            return Outcome.PREEMPTED
        except InvalidInputError as exc:
            heartbeat.stop()
            log.error(
                "job %s/%s is invalid: %s",
                message.run_id,
                message.obs_id,
                exc,
                extra={"event": "job.invalid", "run": message.run_id, "obs": message.obs_id},
            )
            run.end(Outcome.INVALID)
            self._write_failed(run, exc)
            self._dead_letter(body, receipt)
            return Outcome.INVALID
        except Exception as exc:
            heartbeat.stop()
            return self._transient(run, exc, body, receipt, receive_count)
        finally:
            heartbeat.stop()
            self._protect(False)
            run.cleanup()
        self._delete(receipt)
        log.info(
            "job %s/%s: %s",
            message.run_id,
            message.obs_id,
            outcome.value,
            extra={
                "event": "job.ended",
                "run": message.run_id,
                "obs": message.obs_id,
                "outcome": outcome.value,
            },
        )
        return outcome

    def _transient(
        self, run: JobAttempt, exc: Exception, body: str, receipt: str, receive_count: int
    ) -> Outcome:
        # Application errors that are not PayloadErrors are retried a bounded number of
        # times too: a bug looks like a transient failure until the bound says otherwise.
        # The machine's state (a full scratch disk, no memory) is no bug and no fault of the
        # input: one line, and the job goes back for another instance.
        expected = isinstance(exc, PayloadError) or is_resource_error(exc)
        if isinstance(exc, PayloadError):
            kind, text = "transient", str(exc)
        elif is_resource_error(exc):
            kind, text = "transient, this machine", reason(exc)
        else:
            kind, text = f"unexpected {type(exc).__name__}", str(exc)
        log.error(
            "job %s/%s failed (%s): %s",
            run.message.run_id,
            run.message.obs_id,
            kind,
            text,
            exc_info=not expected,
            extra={"event": "job.transient", "run": run.message.run_id, "obs": run.message.obs_id},
        )
        run.end(Outcome.TRANSIENT)
        if run.manifest is not None:
            tries = sum(1 for a in run.manifest.attempts if a.outcome is Outcome.TRANSIENT)
        else:
            # No manifest (S3 itself failing): SQS's receive count is the best bound we have.
            tries = receive_count
        if tries >= self.config.max_transient:
            log.error(
                "job %s/%s failed %d times: giving up",
                run.message.run_id,
                run.message.obs_id,
                tries,
                extra={
                    "event": "job.failed",
                    "run": run.message.run_id,
                    "obs": run.message.obs_id,
                    "tries": tries,
                },
            )
            self._write_failed(run, exc)
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

    def _write_failed(self, run: JobAttempt, exc: BaseException) -> None:
        run.write_failed(exc)

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
