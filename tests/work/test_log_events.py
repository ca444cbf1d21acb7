"""The worker's log events: what tests and log queries read instead of the worker's prose.

The names docs/work-plane.md lists ("Log events") are the names the log calls in payload/
emit, so a renamed or new event cannot go undocumented; ``--log-json`` carries an event's
name and fields as keys of their own, beside a message that stays the same prose.
"""

from __future__ import annotations

import ast
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from payload.commands.worker import _JsonFormatter

REPO = Path(__file__).resolve().parents[2]


_LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}


def _log_extras(tree: ast.AST) -> Iterator[ast.expr]:
    """The ``extra=`` of every ``<logger>.<level>(...)`` call."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _LOG_METHODS
        ):
            yield from (k.value for k in node.keywords if k.arg == "extra")


def _emitted() -> dict[str, list[str]]:
    """Every ``extra={"event": ...}`` of a log call in payload/, with where it is."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "payload").rglob("*.py")):
        for extra in _log_extras(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(REPO)}:{extra.lineno}"
            assert isinstance(extra, ast.Dict), f"{where}: extra as a literal"
            for key, value in zip(extra.keys, extra.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "event":
                    # A literal, so this test (and a reader's grep) sees every name.
                    assert isinstance(value, ast.Constant), f"{where}: event name not a literal"
                    found.setdefault(str(value.value), []).append(where)
    return found


def _documented() -> list[str]:
    text = (REPO / "docs" / "work-plane.md").read_text()
    section = text.split("### Log events", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_.]+)` \|", section, re.MULTILINE)


def test_the_documented_events_are_the_emitted_ones() -> None:
    emitted = _emitted()
    documented = _documented()
    assert len(documented) == len(set(documented)), "an event listed twice"
    assert "chunk.computed" in emitted  # the parse found the log calls at all
    undocumented = {name: emitted[name] for name in set(emitted) - set(documented)}
    assert not undocumented, f"add to docs/work-plane.md, Log events: {undocumented}"
    assert not set(documented) - set(emitted), "documented but never logged"


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own with a --log-json handler (the root logger is left alone)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_JsonFormatter())
    log = logging.getLogger("tests.log_events")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield log, stream
    log.removeHandler(handler)


def test_json_lines_carry_the_event_and_its_fields(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    log.info(
        "chunk %s computed in %.2f s", "3", 0.5, extra={"event": "chunk.computed", "chunk": "3"}
    )
    log.warning("no event here")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "chunk.computed"
    assert first["chunk"] == "3"
    assert first["message"] == "chunk 3 computed in 0.50 s"  # the prose is unchanged
    assert first["level"] == "INFO"
    assert first["logger"] == "tests.log_events"
    # Only what a call passed in extra becomes a key: no LogRecord internals.
    assert set(first) == {"time", "level", "logger", "message", "event", "chunk"}
    assert set(second) == {"time", "level", "logger", "message"}


def test_a_field_json_cannot_encode_is_written_as_text(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger
    log.info("at %s", "x", extra={"event": "x.y", "path": Path("/a/b")})
    assert json.loads(stream.getvalue())["path"] == "/a/b"
