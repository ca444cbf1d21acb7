"""uvh5 read with h5py alone gives exactly what pyuvdata gives, and falls back to it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from payload import reading, uvh5
from payload.errors import InvalidInputError
from payload.jobs.image import ImageJob
from payload.reading import UVData

from .conftest import Observation, make_context, run_job

POLARIZATION_SETS = [("XX", "YY", "I"), ("YY",), ("I",)]


def _flagged_and_weighted(source: Path, target: Path) -> None:
    """A copy with random flags, NaN under some flags, and fractional nsamples."""
    uvd = UVData()
    uvd.read(str(source))
    rng = np.random.default_rng(5)
    uvd.flag_array = rng.random(uvd.flag_array.shape) < 0.2
    uvd.data_array[uvd.flag_array & (rng.random(uvd.flag_array.shape) < 0.5)] = np.nan
    uvd.nsample_array = rng.choice([0.0, 0.25, 0.5, 1.0], size=uvd.nsample_array.shape).astype(
        np.float32
    )
    uvd.write_uvh5(str(target))


def _casa_polarization_order(source: Path, target: Path) -> None:
    """XX, XY, YX, YY: the two linear polarizations are not adjacent in the file."""
    uvd = UVData()
    uvd.read(str(source))
    uvd.reorder_pols(order="CASA")
    assert list(uvd.polarization_array) == [-5, -7, -8, -6]
    uvd.write_uvh5(str(target))


def _converted_from_uvfits(source: Path, target: Path) -> None:
    uvd = UVData()
    uvd.read(str(source))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd.write_uvfits(str(target.with_suffix(".uvfits")))
    cached = reading.prepare_input(target.with_suffix(".uvfits"), target.parent / "cache")
    target.write_bytes(cached.read_bytes())


def _assert_same_chunk(a: reading.VisChunk, b: reading.VisChunk) -> None:
    assert a.uvw_m.tobytes() == b.uvw_m.tobytes()
    assert a.freq_hz.tobytes() == b.freq_hz.tobytes()
    assert a.vis.keys() == b.vis.keys() == a.weights.keys()
    for pol in a.vis:
        assert a.vis[pol].dtype == b.vis[pol].dtype
        assert a.vis[pol].shape == b.vis[pol].shape
        assert a.vis[pol].tobytes() == b.vis[pol].tobytes(), pol
        assert a.weights[pol].tobytes() == b.weights[pol].tobytes(), pol


@pytest.mark.parametrize("variant", ["plain", "flagged", "casa-pol-order", "from-uvfits"])
def test_direct_read_is_bit_identical_to_pyuvdata(
    tiny_obs: Observation, tmp_path: Path, variant: str
) -> None:
    path = tmp_path / "obs.uvh5"
    if variant == "plain":
        path.write_bytes(tiny_obs.path.read_bytes())
    elif variant == "flagged":
        _flagged_and_weighted(tiny_obs.path, path)
    elif variant == "casa-pol-order":
        _casa_polarization_order(tiny_obs.path, path)
    else:
        _converted_from_uvfits(tiny_obs.path, path)
    direct = reading.read_info(path)
    through_pyuvdata = reading.read_info(path, use_pyuvdata=True)
    assert direct.direct
    assert not through_pyuvdata.direct
    for field in dataclasses.fields(direct):
        if field.name != "direct":
            mine, theirs = getattr(direct, field.name), getattr(through_pyuvdata, field.name)
            assert np.array_equal(mine, theirs), field.name
    n = direct.n_freqs
    for channels in (range(0, n), range(1, min(n, 3)), range(n - 1, n)):
        for pols in POLARIZATION_SETS:
            _assert_same_chunk(
                reading.read_chunk(direct, channels, pols),
                reading.read_chunk(through_pyuvdata, channels, pols),
            )


def test_drift_scans_and_several_phase_centres_go_through_pyuvdata(
    tiny_obs: Observation, tmp_path: Path
) -> None:
    uvd = UVData()
    uvd.read(str(tiny_obs.path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd.unproject_phase()
        uvd.write_uvh5(str(tmp_path / "drift.uvh5"))
    assert uvh5.read_header(tmp_path / "drift.uvh5") is None
    assert not reading.read_info(tmp_path / "drift.uvh5").direct

    uvd = UVData()
    uvd.read(str(tiny_obs.path))
    half = uvd.time_array > np.median(uvd.time_array)
    uvd.phase(ra=0.1, dec=-0.5, cat_name="second", select_mask=half)
    uvd.write_uvh5(str(tmp_path / "two.uvh5"))
    assert uvh5.read_header(tmp_path / "two.uvh5") is None
    with pytest.raises(InvalidInputError, match="2 phase centres"):
        reading.read_info(tmp_path / "two.uvh5")


def test_reading_a_uvh5_file_does_not_import_pyuvdata(tiny_obs: Observation) -> None:
    script = (
        "import sys\n"
        "from payload.reading import read_chunk, read_info\n"
        f"info = read_info({str(tiny_obs.path)!r})\n"
        "read_chunk(info, range(0, 2), ('XX', 'YY', 'I'))\n"
        "print(sorted(m for m in ('pyuvdata', 'numba', 'astropy.coordinates') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_unreadable_visibilities_under_a_good_header_are_invalid(
    tiny_obs: Observation, tmp_path: Path
) -> None:
    path = tmp_path / "corrupt.uvh5"
    uvd = UVData()
    uvd.read(str(tiny_obs.path))
    uvd.write_uvh5(str(path), data_compression="lzf")  # compressed: damage becomes an error
    with h5py.File(path, "r") as handle:
        visdata = handle["Data/visdata"]
        chunks = [visdata.id.get_chunk_info(i) for i in range(visdata.id.get_num_chunks())]
    # garbage over the last chunk of XX visibilities (the first polarization in the file)
    last = [info for info in chunks if info.chunk_offset[2] == 0][-1]
    with path.open("r+b") as raw:
        raw.seek(last.byte_offset)
        raw.write(b"\xff" * last.size)
    assert reading.read_info(path).direct  # header, flags and nsamples still read
    out = tmp_path / "out"
    job = ImageJob(make_context(path, tiny_obs.params, tmp_path / "work"))
    with pytest.raises(InvalidInputError, match="cannot be read as interferometer data") as info:
        run_job(job, tmp_path / "chunks", out)
    assert str(path) in str(info.value)
    assert not out.exists() or not any(out.iterdir())


def test_inconsistent_header_is_invalid(tiny_obs: Observation, tmp_path: Path) -> None:
    path = tmp_path / "short.uvh5"
    path.write_bytes(tiny_obs.path.read_bytes())
    with h5py.File(path, "r+") as handle:
        ant_1 = handle["Header/ant_1_array"][()]
        del handle["Header/ant_1_array"]
        handle["Header/ant_1_array"] = ant_1[:-5]  # fewer rows than the visibilities
    with pytest.raises(InvalidInputError, match="Nblts = 272, but ant_1_array has 267") as info:
        reading.read_info(path)
    assert str(path) in str(info.value)


def test_shapes_that_disagree_go_to_pyuvdata_and_are_invalid(
    tiny_obs: Observation, tmp_path: Path
) -> None:
    """Counts that agree but arrays that do not (uvw one row short) are pyuvdata's to judge."""
    path = tmp_path / "short-uvw.uvh5"
    path.write_bytes(tiny_obs.path.read_bytes())
    with h5py.File(path, "r+") as handle:
        uvw = handle["Header/uvw_array"][()]
        del handle["Header/uvw_array"]
        handle["Header/uvw_array"] = uvw[:-5]
    assert uvh5.read_header(path) is None
    with pytest.raises(InvalidInputError, match="cannot be read as interferometer data") as info:
        reading.read_info(path)
    assert str(path) in str(info.value)
