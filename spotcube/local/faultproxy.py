"""A fault-injecting HTTP proxy in front of the local cloud, for S3 fault tests.

boto3 talks to the proxy as its ``endpoint_url``; the proxy forwards to moto. A seeded
fraction of S3 requests is answered ``500``/``503`` without reaching moto, or has its
connection cut before forwarding (nothing happened) or after forwarding (it happened but
the client never hears so). SQS requests pass untouched so that a test's queue behaves.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler

from spotcube.local.loopback import LoopbackServer

FAULTS = ("500", "503", "cut-before", "cut-after")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
}
_ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
    "<Message>injected by spotcube faultproxy</Message></Error>"
)


class FaultProxy(LoopbackServer):
    """Forward HTTP to ``upstream``; break a ``rate`` fraction of S3 requests.

    Parameters
    ----------
    upstream : str
        The moto endpoint, e.g. ``http://127.0.0.1:5000``.
    rate : float
        Probability that one S3 request gets a fault (0 disables faults).
    seed : int
        Seed of the fault choices, so a failing run can be replayed.
    faults : tuple of str
        Which of :data:`FAULTS` to draw from.
    """

    thread_name = "faultproxy"

    def __init__(
        self, upstream: str, *, rate: float = 0.1, seed: int = 0, faults: tuple[str, ...] = FAULTS
    ) -> None:
        super().__init__()
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULTS}")
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream_host = parsed.hostname or "127.0.0.1"
        self.upstream_port = parsed.port or 80
        self.rate = rate
        self.faults = faults
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self.incomplete = 0  # requests dropped because their body never fully arrived
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (ConnectionError, TimeoutError):
                    self.close_connection = True

            def do_GET(self) -> None:
                proxy._serve(self)

            def do_PUT(self) -> None:
                proxy._serve(self)

            def do_POST(self) -> None:
                proxy._serve(self)

            def do_HEAD(self) -> None:
                proxy._serve(self)

            def do_DELETE(self) -> None:
                proxy._serve(self)

        return Handler

    def _choose(self, handler: BaseHTTPRequestHandler) -> str | None:
        # SigV4 names the service in the credential scope: ".../us-east-1/s3/aws4_request".
        if "/s3/aws4_request" not in handler.headers.get("Authorization", ""):
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            fault = self._rng.choice(self.faults)
            self.injected[fault] += 1
            return fault

    def _read_body(self, handler: BaseHTTPRequestHandler) -> bytes | None:
        """The whole request body, or None if the client went away before sending it all.

        A client killed in the middle of a PUT (a reclaimed instance) sends part of a body
        or none: a server never acts on such a request, so neither may the proxy. Forwarding
        what arrived once stored an empty manifest (found by bench/soak.py).
        """
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            for _ in range(1 << 20):  # bounded: a chunked body has far fewer chunks
                line = handler.rfile.readline()
                if not line.endswith(b"\n"):
                    return None
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    handler.rfile.readline()
                    break
                part = handler.rfile.read(size)
                if len(part) < size:
                    return None
                parts.append(part)
                handler.rfile.readline()
            return b"".join(parts)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _cut(self, handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        with contextlib.suppress(OSError):  # the client may have gone already
            handler.connection.shutdown(socket.SHUT_RDWR)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        body = self._read_body(handler)
        if body is None:
            with self._lock:
                self.incomplete += 1
            self._cut(handler)
            return
        fault = self._choose(handler)
        if fault in {"500", "503"}:
            code = "InternalError" if fault == "500" else "SlowDown"
            data = _ERROR_BODY.format(code=code).encode()
            handler.send_response(int(fault))
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        if fault == "cut-before":
            self._cut(handler)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or handler.command in {"PUT", "POST"}:
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            with self._lock:
                self.forwarded += 1
            if fault == "cut-after":
                self._cut(handler)
                return
            handler.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    handler.send_header(name, value)
            length = response.getheader("Content-Length")
            if handler.command == "HEAD":
                handler.send_header("Content-Length", length or "0")
            else:
                handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(payload)
        finally:
            upstream.close()
