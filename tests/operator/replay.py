"""Replay AWS responses recorded from AWS's API reference, for APIs moto does not implement.

Each file under ``recorded/`` is one response: the operation (``X-Amz-Target`` for JSON
protocols, ``Action`` for the query protocol), optional request fields it answers, the status,
and the body exactly as the API reference shows it (JSON, or XML for IAM), with ``source``
naming the page it was taken from. botocore parses the body with AWS's own service model, so
a recording that does not match AWS's wire format fails the test, not the code under test.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from spotcube.local.loopback import LoopbackServer

RECORDED = Path(__file__).parent / "recorded"


@dataclass(frozen=True)
class Recording:
    name: str
    operation: str
    match: dict[str, str | None]  # None: the field must be absent
    status: int
    content_type: str
    body: bytes
    source: str

    @classmethod
    def load(cls, name: str) -> Recording:
        doc = json.loads((RECORDED / f"{name}.json").read_text())
        if "body_xml" in doc:
            body, content_type = doc["body_xml"].encode(), "text/xml"
        else:
            body, content_type = json.dumps(doc["body"]).encode(), "application/x-amz-json-1.1"
        assert doc["source"].startswith("https://docs.aws.amazon.com/"), name
        return cls(
            name=name,
            operation=doc["operation"],
            match=doc.get("match", {}),
            status=doc.get("status", 200),
            content_type=content_type,
            body=body,
            source=doc["source"],
        )


@dataclass
class ReplayServer(LoopbackServer):
    """Answers each request with the first loaded recording whose operation and fields match."""

    recordings: list[Recording]
    # Requests no recording answers go here (moto's server), so one endpoint can serve a
    # service moto implements in part: IAM's policies from moto, its simulator recorded.
    fallback: str | None = None
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test asserts on server.requests, not on a log

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length).decode()
                target = self.headers.get("X-Amz-Target", "")
                if target:
                    operation = target.rsplit(".", 1)[-1]
                    fields: dict[str, Any] = json.loads(raw or "{}")
                else:
                    fields = dict(urllib.parse.parse_qsl(raw))
                    operation = fields.get("Action", "")
                server.requests.append((operation, fields))
                for rec in server.recordings:
                    if rec.operation == operation and all(
                        (k not in fields) if v is None else str(fields.get(k)) == v
                        for k, v in rec.match.items()
                    ):
                        self.send_response(rec.status)
                        self.send_header("Content-Type", rec.content_type)
                        self.send_header("Content-Length", str(len(rec.body)))
                        self.end_headers()
                        self.wfile.write(rec.body)
                        return
                if server.fallback:
                    self._forward(raw.encode())
                    return
                body = json.dumps({"__type": "NoRecording", "message": operation}).encode()
                self.send_response(500)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, body: bytes) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                request = urllib.request.Request(
                    f"{server.fallback}{self.path}", data=body, headers=headers, method="POST"
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, answer = response.status, response.read()
                        content_type = response.headers.get("Content-Type", "text/xml")
                except urllib.error.HTTPError as exc:
                    status, answer = exc.code, exc.read()
                    content_type = exc.headers.get("Content-Type", "text/xml")
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        return Handler


def replay(*names: str, fallback: str | None = None) -> ReplayServer:
    return ReplayServer([Recording.load(n) for n in names], fallback=fallback)
