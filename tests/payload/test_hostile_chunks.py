"""Chunks are keyed by what they were made from: a changed input never resumes old chunks.

Issue 10 found that imaging ``obs.uvh5``, replacing the file with another observation and
imaging again into the same ``--out`` gave the old observation's pixels under the new one's
header. The replacement here has the same size and the same mtime as the original (as
``cp -p``, ``rsync -t`` or tar leave it), so only the content tells them apart.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from payload.cli import main
from payload.errors import InvalidInputError
from payload.jobs.image import ImageJob
from payload.synth import write_preset

from .conftest import PROVENANCE, Observation, make_context

ARGS = ["--chunk-channels", "4", "--image-size", "64", "--quiet"]


def _image(path: Path, out: Path) -> np.ndarray:
    assert main(["image", str(path), "--out", str(out), *ARGS]) == 0
    with fits.open(out / "image_cube.fits") as hdul:
        return np.asarray(hdul[0].data)


def test_replacing_the_input_between_runs_never_reuses_its_chunks(
    tiny_obs: Observation, tmp_path: Path
) -> None:
    other = tmp_path / "other.uvh5"
    write_preset(other, "tiny", noise_jy=0.05, seed=11)  # same shapes, other sky and noise
    assert other.stat().st_size == tiny_obs.path.stat().st_size
    fresh_other = _image(other, tmp_path / "reference")

    obs = tmp_path / "obs.uvh5"
    shutil.copyfile(tiny_obs.path, obs)
    out = tmp_path / "out"
    first = _image(obs, out)
    stat = obs.stat()
    shutil.copyfile(other, obs)  # replaced in place: same name, size and mtime
    os.utime(obs, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = _image(obs, out)

    assert not np.array_equal(first, fresh_other)  # the two observations differ
    np.testing.assert_array_equal(second, fresh_other)
    assert len(list((out / ".chunks").iterdir())) == 2  # one chunk set per input content


def test_combine_refuses_a_chunk_of_another_input(tiny_obs: Observation, tmp_path: Path) -> None:
    made = ImageJob(make_context(tiny_obs.path, tiny_obs.params, tmp_path / "a"))
    paths = {c: tmp_path / "chunks" / f"{c}.h5" for c in made.chunk_ids()}
    for chunk_id, path in paths.items():
        made.run_chunk(chunk_id, path)
    other = {**PROVENANCE, "input_identity": '{"name":"test","sha256":"1"}'}
    job = ImageJob(make_context(tiny_obs.path, tiny_obs.params, tmp_path / "b", provenance=other))
    with pytest.raises(InvalidInputError, match="made from another input"):
        job.combine(paths, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
