"""The worker's systemd unit: the properties the image and the spot deadline rely on."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "payload" / "systemd" / "spotcube-worker.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("User", "spotcube"),
        ("EnvironmentFile", "/etc/spotcube/worker.env"),
        ("ExecStart", "/opt/spotcube/venv/bin/python -m payload worker"),
        ("KillSignal", "SIGTERM"),
        ("Restart", "on-failure"),
    ],
)
def test_service_setting(key: str, value: str) -> None:
    assert _unit()["Service"][key] == value


def test_stop_timeout_leaves_room_inside_a_spot_notice() -> None:
    seconds = int(_unit()["Service"]["TimeoutStopSec"])
    assert 100 <= seconds < 120  # the worker's default --sigterm-grace is 100 s


def test_enabled_at_boot() -> None:
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # The venv path exists only in the image: verify a copy that points at this Python.
    text = UNIT.read_text().replace("/opt/spotcube/venv/bin/python", sys.executable)
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    problems = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert result.returncode == 0, result.stderr
    assert problems == []
