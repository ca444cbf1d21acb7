"""Kills and late wake-ups driven from outside the worker, by the S3/SQS requests it makes.

The worker announces a few work points itself (``payload.store.faultpoint``), all *before*
an S3 call. The windows that decide whether a product is right lie *between* calls: a
product upload cut halfway, products stored but ``DONE`` not yet written, ``DONE`` written
but the message not yet deleted. The proxy sees every request, so it holds a chosen one at
the moment that matters and the soak kills the worker that sent it while it waits:

``product-mid-body``  half of a product PUT's body has arrived; the rest never will.
``done-before``       ``DONE`` PUT received, not forwarded: products stored, no ``DONE``.
``done-after``        ``DONE`` stored, the answer never returns: the message stays queued.
``delete-before``     SQS DeleteMessage received, not forwarded: the job comes back.
``late``              the worker is SIGSTOPped at a product PUT and SIGCONTed seconds later,
                      after its message became visible again and another worker took the job.

Which requests are held is drawn from a seeded generator per matching request, so the kills
are counted in work done, never in seconds. The worker that sent a request is found from the
connection's client port (``/proc/net/tcp`` and the workers' open sockets).
"""

from __future__ import annotations

import dataclasses
import os
import queue
import random
import re
import threading
from collections import Counter
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from spotcube.local.faultproxy import FaultProxy

HOLDS = ("product-mid-body", "done-before", "done-after", "delete-before", "late")
# A held request waits at most this long for the soak to kill its sender (a hang guard).
HOLD_SECONDS = 120.0


@dataclasses.dataclass
class Held:
    """A request held by the proxy until the soak has dealt with its sender."""

    kind: str
    client_port: int
    released: threading.Event = dataclasses.field(default_factory=threading.Event)


class KillingProxy(FaultProxy):
    """:class:`FaultProxy` that also holds one in ``every`` matching requests (see module)."""

    def __init__(
        self, upstream: str, *, every: int, holds: Iterable[str], seed: int, **kw: object
    ) -> None:
        super().__init__(upstream, seed=seed, **kw)  # type: ignore[arg-type]
        unknown = set(holds) - set(HOLDS)
        if unknown:
            raise ValueError(f"unknown holds {sorted(unknown)}; known: {HOLDS}")
        self.every = every
        self.holds = tuple(holds)
        self.enabled = True
        self.held: queue.Queue[Held] = queue.Queue()
        self.counts: Counter[str] = Counter()
        self._draw = random.Random(seed + 7919)
        self._draw_lock = threading.Lock()

    def _kind(self, handler: BaseHTTPRequestHandler) -> str | None:
        """Which hold this request could be, from its method, path and SQS target."""
        path = handler.path.split("?", 1)[0]
        if handler.command == "PUT" and "/products/" in path:
            return "product"
        if handler.command == "PUT" and path.endswith("/DONE"):
            return "done"
        target = handler.headers.get("X-Amz-Target", "")
        if handler.command == "POST" and target.endswith(".DeleteMessage"):
            return "delete"
        return None

    def _choose_hold(self, handler: BaseHTTPRequestHandler) -> str | None:
        kind = self._kind(handler)
        if kind is None or not self.enabled:
            return None
        options = {
            "product": ("product-mid-body", "late"),
            "done": ("done-before", "done-after"),
            "delete": ("delete-before",),
        }[kind]
        options = tuple(o for o in options if o in self.holds)
        with self._draw_lock:
            if not options or self._draw.randrange(self.every) != 0:
                return None
            return self._draw.choice(options)

    def _hold(self, handler: BaseHTTPRequestHandler, kind: str) -> Held:
        held = Held(kind, int(handler.client_address[1]))
        with self._lock:
            self.counts[kind] += 1
        self.held.put(held)
        return held

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        hold = self._choose_hold(handler)
        if hold is None:
            super()._serve(handler)
            return
        if hold == "late":
            self._hold(handler, hold)  # the soak stops the sender; the request goes on
            super()._serve(handler)
            return
        length = int(handler.headers.get("Content-Length") or 0)
        chunked = handler.headers.get("Transfer-Encoding", "").lower() == "chunked"
        if hold == "product-mid-body":
            if chunked or length < 2:
                super()._serve(handler)
                return
            handler.rfile.read(length // 2)  # half arrived; the sender dies before the rest
            self._hold(handler, hold).released.wait(HOLD_SECONDS)
            self._cut(handler)
            return
        if hold in ("done-before", "delete-before"):
            body = self._read_body(handler)
            self._hold(handler, hold).released.wait(HOLD_SECONDS)
            del body  # never forwarded: the request did not happen
            self._cut(handler)
            return
        # done-after: forward, then lose the answer with the sender.
        self._forward_then_hold(handler, hold)

    def _forward_then_hold(self, handler: BaseHTTPRequestHandler, hold: str) -> None:
        import http.client

        body = self._read_body(handler)
        if body is None:
            self._cut(handler)
            return
        headers = {
            k: v
            for k, v in handler.headers.items()
            if k.lower() not in {"connection", "keep-alive", "transfer-encoding", "te"}
        }
        headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            upstream.getresponse().read()
        finally:
            upstream.close()
        self._hold(handler, hold).released.wait(HOLD_SECONDS)
        self._cut(handler)


_TCP_LINE = re.compile(
    r"^\s*\d+:\s+[0-9A-F]+:([0-9A-F]{4})\s+[0-9A-F]+:([0-9A-F]{4})\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\d+)"
)


def pid_of_client(port: int, server_port: int, pids: Iterable[int]) -> int | None:
    """The process among ``pids`` whose TCP socket from ``port`` to ``server_port`` this is."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            match = _TCP_LINE.match(line)
            if match and int(match.group(1), 16) == port and int(match.group(2), 16) == server_port:
                inodes.add(f"socket:[{match.group(3)}]")
    if not inodes:
        return None
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(fd_dir / fd) in inodes:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None
