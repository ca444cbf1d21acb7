"""An IMDSv2 emulator for the local cloud and the tests (AWS's ec2-metadata-mock is not on PyPI).

It enforces IMDSv2 the way AWS does: a token from ``PUT /latest/api/token`` with a TTL of
1..21600 seconds (else 400), a PUT carrying ``X-Forwarded-For`` is refused with 403, and a
metadata GET without a valid, unexpired token answers 401. Spot interruptions, rebalance
recommendations and the ASG target lifecycle state can be scheduled from a test or from
``spotcube demo``; ``fail_with(500)`` makes every metadata GET fail to show that errors are
never taken for notices.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

from spotcube.local.loopback import LoopbackServer

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
_META = "/latest/meta-data/"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class ImdsEmulator(LoopbackServer):
    """IMDSv2 on ``http://127.0.0.1:PORT`` for one emulated instance.

    Parameters
    ----------
    instance_id, instance_type, availability_zone : str
        What ``instance-id``, ``instance-type`` and ``placement/availability-zone`` return.
    asg_name : str, optional
        Served as the instance tag ``aws:autoscaling:groupName`` when given.
    """

    thread_name = "imds-emulator"

    def __init__(
        self,
        *,
        instance_id: str = "i-0local000000000001",
        instance_type: str = "c6i.4xlarge",
        availability_zone: str = "us-east-1a",
        asg_name: str | None = None,
    ) -> None:
        super().__init__()
        self.instance_id = instance_id
        self.instance_type = instance_type
        self.availability_zone = availability_zone
        self.asg_name = asg_name
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._instance_action: dict[str, str] | None = None
        self._action_visible_at = 0.0
        self._rebalance: str | None = None
        self._lifecycle = "InService"
        self._fail_status: int | None = None
        self._tokens_refused_until = 0.0  # time.monotonic()
        self._token_refusal = 429
        self.requests = 0  # metadata GETs served, so tests can see the watcher polls
        # Set once the worker has been answered a published spot notice: the fleet holds a
        # worker at its scheduled work point until then, so it reacts at that point.
        self.notice_served = threading.Event()

    # --- control -----------------------------------------------------------------------

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # tests run many polls; the worker logs what matters

            def do_PUT(self) -> None:
                emulator._handle_put(self)

            def do_GET(self) -> None:
                emulator._handle_get(self)

        return Handler

    def schedule_interruption(
        self, in_seconds: float, action: str = "terminate", *, notice_after: float = 0.0
    ) -> None:
        """Publish a spot interruption: ``action`` happens ``in_seconds`` from now.

        ``notice_after`` delays when the notice becomes visible (AWS publishes it about two
        minutes ahead; a test may want it to appear mid-chunk).
        """
        if action not in {"terminate", "stop", "hibernate"}:
            raise ValueError(f"spot action {action!r} is not terminate, stop or hibernate")
        when = datetime.now(UTC) + timedelta(seconds=notice_after + in_seconds)
        with self._lock:
            self._instance_action = {"action": action, "time": _iso(when)}
            self._action_visible_at = time.monotonic() + notice_after

    def recommend_rebalance(self) -> None:
        with self._lock:
            self._rebalance = json.dumps({"noticeTime": _iso(datetime.now(UTC))})

    def set_lifecycle_state(self, state: str) -> None:
        """ASG target lifecycle state, e.g. ``"Terminated"`` on scale-in."""
        with self._lock:
            self._lifecycle = state

    def fail_with(self, status: int | None) -> None:
        """Answer every metadata GET with ``status`` (None restores normal answers)."""
        with self._lock:
            self._fail_status = status

    def refuse_tokens_for(self, seconds: float, status: int = 429) -> None:
        """Answer token PUTs with ``status`` for ``seconds`` from now: IMDS throttled (429,
        EC2 User Guide, "Query throttling") or not yet up while the instance boots."""
        with self._lock:
            self._tokens_refused_until = time.monotonic() + seconds
            self._token_refusal = status

    def expire_tokens(self) -> None:
        """Forget every token, as if all had expired (tests of the client's refresh)."""
        with self._lock:
            self._tokens.clear()

    # --- HTTP --------------------------------------------------------------------------

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, body: str = "") -> None:
        data = body.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _handle_put(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        if handler.path != "/latest/api/token":
            self._reply(handler, 404)
            return
        with self._lock:
            refused = time.monotonic() < self._tokens_refused_until
        if refused:
            self._reply(handler, self._token_refusal)
            return
        if handler.headers.get("X-Forwarded-For"):
            # AWS refuses token requests that went through a proxy.
            self._reply(handler, 403)
            return
        try:
            ttl = int(handler.headers.get(TTL_HEADER, ""))
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= 21600:
            self._reply(handler, 400)
            return
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        handler.send_response(200)
        handler.send_header(TTL_HEADER, str(ttl))
        data = token.encode()
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        token = handler.headers.get(TOKEN_HEADER, "")
        with self._lock:
            expiry = self._tokens.get(token)
            valid = expiry is not None and time.monotonic() < expiry
            if expiry is not None and not valid:
                del self._tokens[token]
            fail = self._fail_status
            self.requests += 1
        if not valid:
            self._reply(handler, 401)
            return
        if fail is not None:
            self._reply(handler, fail)
            return
        if not handler.path.startswith(_META):
            self._reply(handler, 404)
            return
        path = handler.path[len(_META) :]
        body = self._metadata(path)
        if body is None:
            self._reply(handler, 404)
        else:
            self._reply(handler, 200, body)
            if path.rstrip("/") == "spot/instance-action":
                self.notice_served.set()

    def _metadata(self, path: str) -> str | None:
        with self._lock:
            action = None
            if self._instance_action and time.monotonic() >= self._action_visible_at:
                action = json.dumps(self._instance_action)
            values: dict[str, str | None] = {
                "instance-id": self.instance_id,
                "instance-type": self.instance_type,
                "placement/availability-zone": self.availability_zone,
                "placement/region": self.availability_zone[:-1],
                "spot/instance-action": action,
                "events/recommendations/rebalance": self._rebalance,
                "autoscaling/target-lifecycle-state": self._lifecycle,
                "tags/instance/aws:autoscaling:groupName": self.asg_name,
            }
        return values.get(path.rstrip("/"))
