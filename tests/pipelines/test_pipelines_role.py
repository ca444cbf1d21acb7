"""ansible/roles/pipelines run for real (ansible-playbook, local connection, into a folder):
each pipeline folder arrives whole, byte for byte, under its own name, and a second run
changes nothing (the image's idempotence check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "examples" / "mwa-pipeline"


def _play(tmp_path: Path, root: Path) -> dict[str, int]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n"
        "  roles: [{role: pipelines}]\n"
    )
    executable = Path(sys.executable).parent / "ansible-playbook"
    if not executable.exists():
        pytest.skip(
            "ansible-playbook missing: .venv/bin/pip install -c constraints.txt -e '.[dev]'"
        )
    extra = {
        "pipelines_sources": [str(PIPELINE)],
        "pipelines_root": str(root),
        "ansible_python_interpreter": sys.executable,  # not whatever python3 PATH finds
    }
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(REPO / "ansible" / "roles"),
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    result = subprocess.run(
        [str(executable), "-i", "localhost,", str(playbook), "-e", json.dumps(extra)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stats: dict[str, int] = json.loads(result.stdout)["stats"]["localhost"]
    return stats


@pytest.mark.skipif(os.geteuid() != 0, reason="the role sets owner root, as on the image")
def test_role_copies_each_pipeline_whole_and_once(tmp_path: Path) -> None:
    root = tmp_path / "opt" / "spotcube" / "pipelines"
    assert _play(tmp_path, root)["changed"] > 0
    copied = root / PIPELINE.name
    expected = sorted(p.relative_to(PIPELINE) for p in PIPELINE.rglob("*") if p.is_file())
    assert sorted(p.relative_to(copied) for p in copied.rglob("*") if p.is_file()) == expected
    for relative in expected:
        assert (copied / relative).read_bytes() == (PIPELINE / relative).read_bytes()
    assert _play(tmp_path, root)["changed"] == 0
