"""Every kind of bad input gives one clear InvalidInputError and no product."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from payload.classify import failure_record, input_failure, one_line, with_uris
from payload.errors import InvalidInputError
from payload.jobs.image import ImageJob
from payload.outcomes import Outcome
from payload.resources import estimate_image_job

from .conftest import Observation, make_context, run_job


def _truncated(source: Path, target: Path) -> None:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])


def _fully_flagged(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "r+") as handle:
        handle["Data/flags"][...] = True


def _zero_nsamples(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "r+") as handle:
        handle["Data/nsamples"][...] = 0.0


def _wrong_format(source: Path, target: Path) -> None:
    target.write_bytes(b"SIMPLE  = this is not a FITS file, nor anything else\n" * 50)


def _empty(source: Path, target: Path) -> None:
    target.write_bytes(b"")


def _only_cross_pols(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "r+") as handle:
        handle["Header/polarization_array"][...] = np.array([-7, -8, -3, -4])


BAD_INPUTS: dict[str, tuple[str, Callable[[Path, Path], None], str]] = {
    "missing": ("missing.uvh5", lambda s, t: None, "does not exist"),
    "empty": ("empty.uvh5", _empty, "empty"),
    "truncated": ("truncated.uvh5", _truncated, "truncated or corrupt"),
    "wrong-format": ("notdata.uvfits", _wrong_format, "cannot be read"),
    "fully-flagged": ("flagged.uvh5", _fully_flagged, "every cross-correlation"),
    "no-nsamples": ("nosamples.uvh5", _zero_nsamples, "every cross-correlation"),
    "no-linear-pols": ("xy.uvh5", _only_cross_pols, "no XX or YY"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_invalid_and_leaves_no_product(
    tiny_obs: Observation, tmp_path: Path, kind: str
) -> None:
    name, make, message = BAD_INPUTS[kind]
    path = tmp_path / name
    make(tiny_obs.path, path)
    out = tmp_path / "out"

    def attempt() -> None:
        job = ImageJob(make_context(path, tiny_obs.params, tmp_path / "work"))
        run_job(job, tmp_path / "chunks", out)

    with pytest.raises(InvalidInputError, match=message) as info:
        attempt()
    assert str(path) in str(info.value)
    assert info.value.outcome is Outcome.INVALID
    assert not out.exists() or not any(out.iterdir())
    assert not (tmp_path / "chunks").exists()


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"weighting": "robust"}, "weighting"),
        ({"image_size": 63}, "image_size"),
        ({"chunk_channels": 0}, "chunk_channels"),
        ({"polarizations": ["RR"]}, "polarizations"),
        ({"pixel_scale_arcsec": -1}, "pixel_scale_arcsec"),
        ({"wgridding": "yes"}, "wgridding"),
        ({"colour": "blue"}, "colour"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_params_are_invalid_at_construction(
    tiny_obs: Observation, tmp_path: Path, params: dict[str, object], name: str
) -> None:
    with pytest.raises(InvalidInputError, match=name):
        ImageJob(make_context(tiny_obs.path, params, tmp_path))


def test_combine_refuses_missing_chunks(tiny_obs: Observation, tmp_path: Path) -> None:
    job = ImageJob(make_context(tiny_obs.path, tiny_obs.params, tmp_path / "work"))
    first = job.chunk_ids()[0]
    job.run_chunk(first, tmp_path / "c.h5")
    with pytest.raises(InvalidInputError, match="missing"):
        job.combine({first: tmp_path / "c.h5"}, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), Outcome.TRANSIENT),
        (OSError(errno.EIO, "Input/output error"), Outcome.TRANSIENT),
        (MemoryError(), Outcome.TRANSIENT),
        (ConnectionResetError(errno.ECONNRESET, "reset"), Outcome.TRANSIENT),
        (PermissionError(errno.EACCES, "Permission denied"), Outcome.INVALID),
        (OSError("Unable to open file (truncated file: eof = 1024)"), Outcome.INVALID),
        (ValueError("cannot reshape array of size 7 into shape (2,3)"), Outcome.INVALID),
        (RuntimeError("ducc0: assertion failed\n  at wgridder.h:123\n  ..."), Outcome.INVALID),
    ],
    ids=["enospc", "eio", "memory", "conn-reset", "eacces", "h5py", "numpy", "cxx-dump"],
)
def test_failures_while_reading_are_classified_at_the_boundary(
    exc: BaseException, outcome: Outcome
) -> None:
    """The machine's errors (errno(3): ENOSPC, EIO, ...) may pass; the file's never do."""
    failure = input_failure("s3://raw/obs.uvh5", exc)
    assert failure.outcome is outcome
    assert str(failure).startswith("s3://raw/obs.uvh5: ")
    assert "\n" not in str(failure)


def test_an_unexpected_error_is_recorded_with_its_last_frames() -> None:
    def inner() -> None:
        raise KeyError("phase_center_catalog")

    try:
        inner()
    except KeyError as exc:
        record = failure_record(exc)
    assert record["outcome"] == "transient"  # retried a bounded number of times
    assert record["error_class"] == "KeyError"
    assert record["frames"][-1].startswith("test_bad_input.py:")
    assert record["frames"][-1].endswith("in inner")


def test_failed_json_names_the_s3_input_not_the_local_copy() -> None:
    local = "/var/lib/spotcube/work/run/obs/input/obs.uvh5"
    exc = InvalidInputError(f"{local}: has uvw = 0 for every cross-correlation")
    renamed = with_uris(exc, {local: "s3://raw/obs.uvh5"})
    assert str(renamed) == "s3://raw/obs.uvh5: has uvw = 0 for every cross-correlation"
    assert renamed.outcome is Outcome.INVALID
    assert failure_record(renamed)["message"] == str(renamed)
    assert "frames" not in failure_record(renamed)


def test_one_line_keeps_a_newline_in_a_name_visible() -> None:
    assert one_line("/data/two\nlines.uvh5: empty") == "/data/two\\nlines.uvh5: empty"


def test_resource_estimate_bounds_what_a_run_writes(tiny_obs: Observation, tmp_path: Path) -> None:
    """The disk estimate is an upper bound of the chunks and products a run really writes."""
    job = ImageJob(make_context(tiny_obs.path, tiny_obs.params, tmp_path / "work"))
    estimate = estimate_image_job(job.info, job.geometry, job.params)
    run_job(job, tmp_path / "chunks", tmp_path / "out")
    written = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert written <= estimate.disk
    # Not so generous that a job that fits would be refused: within 10x of what is written
    # (PNGs, HDF5 metadata and the power spectrum are small next to the cubes).
    assert estimate.disk <= 10 * written
