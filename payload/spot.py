"""The spot watcher: turns IMDS notices and SIGTERM into two events the worker acts on.

* ``rebalance`` — a rebalance recommendation: make the checkpoint durable now, keep working.
* ``terminating`` — a spot interruption notice, an ASG scale-in (target lifecycle state
  ``Terminated``) or SIGTERM: a deadline after which the instance may vanish.

It polls every two seconds (AWS asks for five or faster). A 404 means "no event"; anything
else that is not a 200 — a 500, a timeout, a refused connection — is an *error*, logged
loudly and never taken for a notice: a flaky metadata service must not make a healthy fleet
hand back all its work.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from payload.imds import ImdsClient, ImdsError

log = logging.getLogger(__name__)

INSTANCE_ACTION = "spot/instance-action"
REBALANCE = "events/recommendations/rebalance"
LIFECYCLE = "autoscaling/target-lifecycle-state"


@dataclass(frozen=True)
class Notice:
    """A termination the worker must beat: where it came from and when it lands."""

    source: str  # "spot", "asg" or "sigterm"
    deadline: float  # time.monotonic() by which the checkpoint must be durable
    received: float  # time.monotonic() when the watcher saw it
    detail: str = ""

    def seconds_left(self, now: float | None = None) -> float:
        return self.deadline - (time.monotonic() if now is None else now)


def parse_instance_action(body: str, *, now_wall: datetime, now_mono: float) -> float:
    """Deadline (monotonic) from an instance-action document ``{"action", "time"}``.

    Raises
    ------
    ValueError
        If the body is not the documented JSON; the caller logs it as an error.
    """
    doc = json.loads(body)
    when = datetime.strptime(doc["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return now_mono + (when - now_wall).total_seconds()


class SpotWatcher:
    """A daemon thread polling IMDS; ``terminating`` and ``rebalance`` are its outputs.

    Parameters
    ----------
    client : ImdsClient or None
        ``None`` when IMDS is unreachable (a laptop): only SIGTERM can raise a notice.
    interval : float
        Seconds between polls.
    asg_grace : float
        Deadline after an ASG ``Terminated`` lifecycle state (the lifecycle hook's timeout).
    sigterm_grace : float
        Deadline after SIGTERM (systemd's ``TimeoutStopSec`` minus a little).
    """

    def __init__(
        self,
        client: ImdsClient | None,
        *,
        interval: float = 2.0,
        asg_grace: float = 110.0,
        sigterm_grace: float = 100.0,
    ) -> None:
        self.client = client
        self.interval = interval
        self.asg_grace = asg_grace
        self.sigterm_grace = sigterm_grace
        self.terminating = threading.Event()
        self.rebalance = threading.Event()  # cleared by whoever acted on it
        self.errors = 0
        self._notice: Notice | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rebalance_seen: str | None = None

    @property
    def notice(self) -> Notice | None:
        with self._lock:
            return self._notice

    def start(self) -> SpotWatcher:
        if self.client is None:
            log.warning(
                "no instance metadata service: running without spot notices",
                extra={"event": "spot.unwatched"},
            )
            return self
        self._thread = threading.Thread(target=self._run, name="spot-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 2)

    def notify_sigterm(self) -> None:
        """Called from the SIGTERM handler (main thread): a deadline ``sigterm_grace`` away."""
        now = time.monotonic()
        self._raise(Notice("sigterm", now + self.sigterm_grace, now, "SIGTERM"))

    def _raise(self, notice: Notice) -> None:
        with self._lock:
            current = self._notice
            # The same notice polled again parses to a deadline a few ms off: keep the first
            # unless the new one is really earlier (an ASG scale-in after a far SIGTERM).
            if current is not None and current.deadline - notice.deadline < 1.0:
                return
            self._notice = notice
        log.warning(
            "termination notice from %s (%s): %.1f s to make the checkpoint durable",
            notice.source,
            notice.detail,
            notice.seconds_left(),
            extra={"event": "spot.notice", "source": notice.source},
        )
        self.terminating.set()

    def poll_once(self) -> None:
        """One round of the three metadata paths; public for tests."""
        assert self.client is not None
        for path, handle in (
            (INSTANCE_ACTION, self._on_instance_action),
            (REBALANCE, self._on_rebalance),
            (LIFECYCLE, self._on_lifecycle),
        ):
            try:
                body = self.client.get(path)
            except ImdsError as exc:
                self.errors += 1
                log.error(
                    "IMDS poll of %s failed (not a notice): %s",
                    path,
                    exc,
                    extra={"event": "spot.poll_failed", "path": path},
                )
                continue
            if body is not None:
                try:
                    handle(body)
                except (ValueError, KeyError, TypeError) as exc:
                    self.errors += 1
                    log.error(
                        "IMDS %s answered %r, not understood (not a notice): %s",
                        path,
                        body[:200],
                        exc,
                        extra={"event": "spot.poll_failed", "path": path},
                    )

    def _on_instance_action(self, body: str) -> None:
        deadline = parse_instance_action(
            body, now_wall=datetime.now(UTC), now_mono=time.monotonic()
        )
        self._raise(Notice("spot", deadline, time.monotonic(), body))

    def _on_rebalance(self, body: str) -> None:
        if body != self._rebalance_seen:
            self._rebalance_seen = body
            log.warning(
                "rebalance recommendation (%s): checkpointing now",
                body,
                extra={"event": "spot.rebalance"},
            )
            self.rebalance.set()

    def _on_lifecycle(self, body: str) -> None:
        if body.strip() == "Terminated":
            now = time.monotonic()
            self._raise(Notice("asg", now + self.asg_grace, now, "target lifecycle Terminated"))

    def _run(self) -> None:
        # Bounded by the process: the thread is a daemon and stops with stop().
        while not self._stop.is_set():
            started = time.monotonic()
            self.poll_once()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
