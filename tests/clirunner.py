"""Run ``spotcube`` in-process and capture what a user would see (httpie's ``http()`` helper)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

from spotcube.cli import main


@dataclass(frozen=True)
class CliResult:
    """Exit status, stdout and stderr of one ``spotcube`` invocation."""

    status: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_cli(argv: Sequence[str]) -> CliResult:
    """``spotcube *argv`` in this process; ``main`` returns a status and never raises."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return CliResult(status=status, stdout=out.getvalue(), stderr=err.getvalue())
