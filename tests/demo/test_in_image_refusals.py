"""``spotcube demo --in-image``: what it refuses before anything starts, in one line each.

The image itself is baked and booted in tests/image/test_in_image.py; these need no root.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from payload.codeid import CODE_ROOTS
from spotcube.cli import main
from spotcube.jobdef import JobDefinition
from spotcube.local import inimage


def fake_image(root: Path, *, stale: bool = False) -> Path:
    """A root filesystem with this checkout's payload and contract where the image has them."""
    rootfs = root / "rootfs"
    (rootfs / inimage.IMAGE_RECORD).parent.mkdir(parents=True)
    (rootfs / inimage.IMAGE_RECORD).write_text(json.dumps({"git_commit": "0123456789abcdef"}))
    site = rootfs / inimage.IMAGE_SITE
    for package in CODE_ROOTS:
        shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    if stale:
        (site / "payload" / "worker.py").write_text("# an older worker\n")
    return rootfs


def test_a_bake_folder_or_its_rootfs_is_found(tmp_path: Path) -> None:
    rootfs = fake_image(tmp_path)
    assert inimage.find_rootfs(tmp_path) == rootfs.resolve()
    assert inimage.find_rootfs(rootfs) == rootfs.resolve()
    inimage.check_current(rootfs)  # this checkout's code: accepted


def test_no_image_is_refused_with_how_to_bake_one(tmp_path: Path) -> None:
    with pytest.raises(inimage.ImageError, match="spotcube bake --target local"):
        inimage.find_rootfs(tmp_path)


def test_an_image_of_other_payload_code_is_refused(tmp_path: Path) -> None:
    """Its workers would refuse every job of this checkout (the params hash covers the code)."""
    rootfs = fake_image(tmp_path, stale=True)
    with pytest.raises(inimage.ImageError, match=r"baked from 0123456789.*bake it again"):
        inimage.check_current(rootfs)


def test_a_job_folder_the_image_lacks_is_refused(tmp_path: Path) -> None:
    rootfs = fake_image(tmp_path)
    folder = tmp_path / "my-pipeline"
    folder.mkdir()
    job_file = folder / "job.json"
    job_file.write_text(json.dumps({"kind": "command", "params": {"argv": ["{job_dir}/run"]}}))
    job = JobDefinition.load(job_file)
    with pytest.raises(inimage.ImageError, match="no /opt/spotcube/pipelines/my-pipeline"):
        inimage.check_job_dir(rootfs, job)
    (rootfs / "opt/spotcube/pipelines/my-pipeline").mkdir(parents=True)
    inimage.check_job_dir(rootfs, job)
    # a job that does not use {job_dir} needs nothing of the image
    job_file.write_text(json.dumps({"kind": "command", "params": {"argv": ["true"]}}))
    inimage.check_job_dir(fake_image(tmp_path / "other"), JobDefinition.load(job_file))


def test_the_cli_says_it_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["demo", "--out", str(tmp_path / "out"), "--in-image", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert f"--in-image {tmp_path}" in err
