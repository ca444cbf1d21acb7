"""One check's outcome, and the table and JSON that ``preflight`` and ``check`` print."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class Status(enum.Enum):
    PASS = "pass"
    WARN = "warn"  # nothing will break now, but the fix avoids a later surprise
    FAIL = "fail"  # `pulumi up`, a guard or a run would fail or fail to protect
    SKIP = "skip"  # could not be judged (an earlier check failed, or nothing to look at yet)


@dataclass(frozen=True)
class CheckResult:
    """What one check saw (``detail``) and, unless it passed, what to do (``fix``)."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not Status.FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }


def passed(name: str, detail: str) -> CheckResult:
    return CheckResult(name, Status.PASS, detail)


def warned(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.WARN, detail, fix)


def failed(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, Status.FAIL, detail, fix)


def skipped(name: str, detail: str, fix: str = "") -> CheckResult:
    return CheckResult(name, Status.SKIP, detail, fix)


def render(results: Iterable[CheckResult]) -> str:
    """One line per check (``PASS name: detail``), the fix indented below it."""
    lines: list[str] = []
    results = list(results)
    width = max((len(r.name) for r in results), default=0)
    for r in results:
        lines.append(f"{r.status.name:<4}  {r.name:<{width}}  {r.detail}")
        if r.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {r.fix}")
    counts = {s: sum(r.status is s for r in results) for s in Status}
    lines.append(
        f"{len(results)} checks: {counts[Status.PASS]} passed, {counts[Status.WARN]} warned, "
        f"{counts[Status.FAIL]} failed, {counts[Status.SKIP]} skipped"
    )
    return "\n".join(lines)


def to_json(results: Iterable[CheckResult]) -> str:
    results = list(results)
    return json.dumps(
        {
            "schema": 1,
            "ok": all(r.ok for r in results),
            "checks": [r.to_dict() for r in results],
        },
        indent=1,
    )
