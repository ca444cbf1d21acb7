"""Keeps an SQS message invisible while its job runs, so no other worker takes it.

The queue's visibility timeout is short (minutes), so that a message whose worker vanished
becomes visible again soon; the heartbeat extends it every third of the timeout while the
worker is alive. A worker killed by SIGKILL stops beating and the message comes back.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


class VisibilityHeartbeat:
    """A daemon thread calling ``ChangeMessageVisibility`` every ``timeout / 3`` seconds.

    Parameters
    ----------
    sqs : botocore SQS client
    queue_url, receipt_handle : str
        The message being worked on.
    timeout : int
        Visibility (seconds) set at each beat.
    """

    def __init__(self, sqs: Any, queue_url: str, receipt_handle: str, *, timeout: int) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.receipt_handle = receipt_handle
        self.timeout = max(1, timeout)
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visibility-heartbeat", daemon=True)

    def start(self) -> VisibilityHeartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating; returns once no further beat can be sent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def __enter__(self) -> VisibilityHeartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        # Bounded by stop(): the worker always stops the heartbeat when a job ends.
        while not self._stop.wait(self.timeout / 3):
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=self.receipt_handle,
                    VisibilityTimeout=self.timeout,
                )
                self.beats += 1
            except Exception as exc:
                # A missed beat is not fatal: the next one may land, and if the message
                # does reappear the second worker's products are identical anyway.
                log.warning("visibility heartbeat failed: %s", exc)
