"""The local target's logic that runs without root: no-op detection, recap parsing, base list."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from spotcube.bake.artifacts import BuildError
from spotcube.bake.local import LocalImage, base_packages, parse_recap
from spotcube.bake.provenance import BakeInputs, repo_root
from spotcube.cli import main

RECAP = """
PLAY RECAP *********************************************************************
image                      : ok=37   changed=23   unreachable=0    failed=0    skipped=6
"""


def fake_image(out: Path, digest: str) -> LocalImage:
    image = LocalImage(out)
    (image.rootfs / "etc" / "spotcube").mkdir(parents=True)
    (image.rootfs / "etc" / "spotcube" / "image.json").write_text("{}")
    image.tarball.write_bytes(b"tar")
    image.metadata_path.write_text(json.dumps({"content_hash": digest}))
    return image


def test_parse_recap_takes_the_last_play() -> None:
    second = RECAP.replace("changed=23", "changed=0")
    assert parse_recap(RECAP + second) == {"ok": 37, "changed": 0, "unreachable": 0, "failed": 0}


def test_parse_recap_without_recap_is_an_error() -> None:
    with pytest.raises(BuildError, match="PLAY RECAP"):
        parse_recap("ERROR! the playbook could not be found")


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


def test_noop_bake_of_current_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digest = BakeInputs.read(repo_root()).digest.hexdigest
    fake_image(tmp_path / "image", digest)
    started = time.monotonic()
    status = main(["bake", "--target", "local", "--out", str(tmp_path / "image")])
    assert status == 0
    assert time.monotonic() - started < 5.0
    out = capsys.readouterr().out
    assert "up to date" in out
    assert digest[:12] in out


def test_print_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bake", "--print-hash"]) == 0
    assert capsys.readouterr().out.strip() == BakeInputs.read(repo_root()).digest.hexdigest
