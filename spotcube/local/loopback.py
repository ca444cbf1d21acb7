"""A small HTTP server on an ephemeral 127.0.0.1 port, served from a background thread.

The base of the local stand-ins for AWS endpoints (the IMDSv2 emulator, the S3 fault proxy):
a subclass gives its request handler class; this starts, stops and names the server and
makes it a context manager.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class LoopbackServer:
    """Start with :meth:`start` or ``with``; :attr:`endpoint` is ``http://127.0.0.1:<port>``."""

    thread_name = "loopback-http"

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler, usually a class closing over ``self``."""
        raise NotImplementedError

    def start(self) -> Self:
        self._server = _QuietServer(("127.0.0.1", 0), self.handler_class())
        # A short poll interval: stop() returns within 50 ms, tests start and stop many.
        threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=self.thread_name, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"


class _QuietServer(ThreadingHTTPServer):
    """A threading server silent about clients that hang up mid-answer.

    A worker whose request timed out, or that was SIGKILLed as a reclaimed instance, closes
    its socket while we answer: that is the scenario being emulated, not an error.
    """

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]
