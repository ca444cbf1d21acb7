"""`spotcube --help` lists only subcommands that exist, and the README shows only those."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from spotcube.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def _subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._subparsers._group_actions)  # type: ignore[union-attr]
    return set(action.choices)


def test_help_lists_registered_subcommands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "spotcube.cli", "--help"], capture_output=True, text=True, check=True
    )
    for name in _subcommands():
        assert name in result.stdout


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_subcommand_has_working_help(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "spotcube.cli", name, "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "not implemented" not in result.stdout.lower()


def test_payload_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "payload", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("spotcube-payload ")


def test_readme_shows_only_existing_commands() -> None:
    readme = (REPO / "README.md").read_text()
    # commands in fenced or indented code blocks and in `inline code`
    code = "\n".join(re.findall(r"```.*?```", readme, flags=re.S))
    code += "\n".join(re.findall(r"^(?: {4}|\t).*$", readme, flags=re.M))
    code += "\n".join(re.findall(r"`([^`\n]+)`", readme))
    shown = set(re.findall(r"(?:^|\s|`)spotcube ([a-z][a-z-]+)", code, flags=re.M))
    assert shown, "README shows no spotcube command"
    assert shown <= _subcommands(), f"README shows missing subcommands {shown - _subcommands()}"
    for target in ("make demo", "make test"):
        assert target in readme


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    commands = [ln for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert "make test" in commands
    assert "make test" in (REPO / "README.md").read_text()
