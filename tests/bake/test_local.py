"""The local target's logic that runs without root: no-op detection, recap parsing, base list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spotcube.bake.artifacts import BuildError
from spotcube.bake.local import LocalImage, base_packages, parse_stats
from spotcube.bake.provenance import BakeInputs, repo_root
from spotcube.cli import main

# A real play for the real ansible-playbook: one file written (changed the first time only).
PLAY = """
- name: Two tasks on localhost
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write a file
      ansible.builtin.copy:
        content: "x\\n"
        dest: "{{ target }}"
        mode: "0644"
    - name: Do nothing
      ansible.builtin.debug:
        msg: ok
"""


def fake_image(out: Path, digest: str) -> LocalImage:
    image = LocalImage(out)
    (image.rootfs / "etc" / "spotcube").mkdir(parents=True)
    (image.rootfs / "etc" / "spotcube" / "image.json").write_text("{}")
    image.tarball.write_bytes(b"tar")
    image.metadata_path.write_text(json.dumps({"content_hash": digest}))
    return image


def _json_callback_output(tmp_path: Path) -> str:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    executable = Path(sys.executable).parent / "ansible-playbook"
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    target = f"target={tmp_path / 'out.txt'}"
    result = subprocess.run(
        [str(executable), "-i", "localhost,", "-e", target,
         "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
        capture_output=True, text=True, env=env, check=True, timeout=300,
    )  # fmt: skip
    return result.stdout


def test_parse_stats_reads_ansible_json_callback(tmp_path: Path) -> None:
    """The counts come from the stats of Ansible's own json callback, run here for real.

    ansible.builtin.json documents ``stats`` per host with ok/changed/unreachable/failures
    (ansible-core, plugins/callback/json.py); a second run of the same play changes nothing.
    """
    first = parse_stats(_json_callback_output(tmp_path))
    assert first == {"ok": 2, "changed": 1, "unreachable": 0, "failed": 0}
    assert parse_stats(_json_callback_output(tmp_path))["changed"] == 0


@pytest.mark.parametrize(
    "document", ["", "ERROR! the playbook could not be found", "{}", '{"stats": 3}', "[]"]
)
def test_parse_stats_without_stats_is_an_error(document: str) -> None:
    with pytest.raises(BuildError, match="no JSON stats"):
        parse_stats(document)


def test_base_packages_come_from_the_base_role() -> None:
    packages = base_packages(repo_root())
    assert {"python3", "python3-venv", "systemd", "python3-packaging"} <= set(packages)
    assert packages == sorted(packages)


@pytest.mark.parametrize(
    "damage", ["metadata", "tarball", "rootfs", "other-hash"], ids=lambda d: f"no-{d}"
)
def test_image_is_current_only_when_complete(tmp_path: Path, damage: str) -> None:
    image = fake_image(tmp_path, "a" * 64)
    assert image.is_current("a" * 64)
    if damage == "metadata":
        image.metadata_path.unlink()
    elif damage == "tarball":
        image.tarball.unlink()
    elif damage == "rootfs":
        (image.rootfs / "etc" / "spotcube" / "image.json").unlink()
    assert not image.is_current("b" * 64 if damage == "other-hash" else "a" * 64)


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time (ns)."""
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def test_noop_bake_of_current_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digest = BakeInputs.read(repo_root()).digest.hexdigest
    fake_image(tmp_path / "image", digest)
    before = tree_state(tmp_path / "image")
    status = main(["bake", "--target", "local", "--out", str(tmp_path / "image")])
    assert status == 0
    assert tree_state(tmp_path / "image") == before  # nothing rebuilt, nothing rewritten
    out = capsys.readouterr().out
    assert "up to date" in out
    assert digest[:12] in out


def test_print_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bake", "--print-hash"]) == 0
    assert capsys.readouterr().out.strip() == BakeInputs.read(repo_root()).digest.hexdigest
