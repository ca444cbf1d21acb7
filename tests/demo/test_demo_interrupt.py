"""Ctrl-C ends ``spotcube demo`` cleanly, whether it reaches the process group or the process.

A real ``python -m spotcube.cli demo`` runs in its own session (as a terminal would run it);
once its workers have started, SIGINT goes either to the whole process group (the terminal's
Ctrl-C) or to the demo's pid alone (``kill -INT``). Either way: exit 130, one line on stderr,
no worker or moto server left running, the local cloud stopped last (every worker was
stopped by the demo's SIGTERM, to hand its job back, not by the terminal's SIGINT), and
nothing of the previous run in the output folder.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = (sys.executable, "-m", "spotcube.cli", "demo", "--kind", "selftest", "--observations", "2")
PREVIOUS_RUN = ("report.md", "report.json", "timeline.png")

pytestmark = pytest.mark.slow


def _alive_with(text: str) -> list[int]:
    """Pids whose command line mentions ``text``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


@pytest.mark.parametrize("target", ["group", "process"])
def test_ctrl_c_is_one_line_exit_130_and_a_clean_stop(tmp_path: Path, target: str) -> None:
    out = tmp_path / "demo-out"
    out.mkdir()
    for name in PREVIOUS_RUN:  # a previous run's results
        (out / name).write_text("old")
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    demo = subprocess.Popen(
        [*DEMO, "--out", str(out), "--param", "chunk_seconds=5"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as in a terminal
    )
    try:
        endpoint = ""
        assert demo.stdout is not None
        for line in demo.stdout:  # bounded by the demo's own output
            if "local cloud at " in line:
                endpoint = line.split("local cloud at ")[1].split()[0]
            if line.lstrip().startswith("spot ") and re.search(r"running [1-9]", line):
                break  # the fleet is up and its workers are inside jobs
        assert endpoint, "the demo did not start its local cloud"
        workers_dir = str(out / "instances")
        assert _alive_with(workers_dir), "no worker running when the signal is sent"
        if target == "group":
            os.killpg(demo.pid, signal.SIGINT)
        else:
            demo.send_signal(signal.SIGINT)
        try:
            _, stderr = demo.communicate(timeout=120)  # bounds a hang only
        except subprocess.TimeoutExpired:
            alive = _alive_with(workers_dir)
            os.killpg(demo.pid, signal.SIGKILL)
            _, stderr = demo.communicate()
            pytest.fail(
                f"the demo still ran 120 s after SIGINT ({target}); workers alive then: "
                f"{alive}; its stderr ends: {stderr[-1500:]!r}"
            )
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 130, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == ["spotcube demo: interrupted"]
    deadline = time.monotonic() + 10
    while _alive_with(workers_dir) and time.monotonic() < deadline:
        time.sleep(0.2)  # SIGKILLed children may take a moment to be reaped
    assert _alive_with(workers_dir) == []
    port = int(endpoint.rsplit(":", 1)[1])
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))  # the local cloud is down too
    started = 0
    for log in (out / "instances").rglob("*.log"):
        text = log.read_text(errors="replace")
        assert "connection refused" not in text.lower(), log
        if "INFO payload.worker: worker i-" in text:
            # stopped by the demo's SIGTERM (the cloud still up), not hit by the terminal's
            # SIGINT beside the cloud: it hands its job back
            started += 1
            assert "termination notice from sigterm" in text, log
            assert "payload worker: interrupted" not in text, log
    assert started >= 1
    for name in PREVIOUS_RUN:
        assert not (out / name).exists(), f"{name} of the previous run is still there"
