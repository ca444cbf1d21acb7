"""MWA raw correlator input (legacy gpubox files + metafits), from a synthetic observation.

The observation (payload.synth_mwaraw) holds a known visibility pattern for all 128 tiles,
one coarse channel of 8 fine 40 kHz channels and 2 integrations; its metafits values make
pyuvdata's default corrections the identity, so only the routine edge/DC channel flags
remain.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from astropy.io import fits

from payload import reading
from payload.cli import main
from payload.errors import InvalidInputError
from payload.reading import UVData
from payload.synth_mwaraw import (
    MWARawObservation,
    expected_flagged_channels,
    pattern_visibility,
    write_mwa_raw,
)

N_FINE = 8
N_TIMES = 2
N_BASELINES = 128 * 129 // 2


@pytest.fixture(scope="module")
def mwa_raw(tmp_path_factory: pytest.TempPathFactory) -> MWARawObservation:
    return write_mwa_raw(tmp_path_factory.mktemp("mwaraw") / "obs", n_fine=N_FINE, n_times=N_TIMES)


def _read(obs: MWARawObservation, **kwargs: object) -> UVData:
    uvd = UVData()
    files = [str(obs.metafits), *(str(p) for p in obs.gpubox_files)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DERIPPLE notice; no IERS lookups are needed
        uvd.read(files, file_type="mwa_corr_fits", run_check_acceptability=False, **kwargs)
    return uvd


def _expected(uvd: UVData, obs: MWARawObservation) -> npt.NDArray[np.complex128]:
    """The pattern for every row, channel and polarization of ``uvd``."""
    a1 = obs.antenna_index(uvd.ant_1_array)[:, None, None]
    a2 = obs.antenna_index(uvd.ant_2_array)[:, None, None]
    t = np.searchsorted(np.unique(uvd.time_array), uvd.time_array)[:, None, None]
    chan = np.arange(uvd.Nfreqs)[None, :, None]
    return pattern_visibility(a1, a2, uvd.polarization_array[None, None, :], chan, t)


def test_pyuvdata_reads_the_pattern_exactly(mwa_raw: MWARawObservation) -> None:
    uvd = _read(mwa_raw)
    assert uvd.data_array.shape == (N_TIMES * N_BASELINES, N_FINE, 4)
    assert list(uvd.polarization_array) == [-5, -6, -7, -8]
    np.testing.assert_allclose(uvd.freq_array, mwa_raw.freq_hz, rtol=0, atol=1e-3)
    np.testing.assert_array_equal(uvd.data_array, _expected(uvd, mwa_raw))
    assert uvd.Ntimes == N_TIMES
    assert uvd.integration_time[0] == pytest.approx(mwa_raw.integration_time_s)
    # only pyuvdata's routine flags: 80 kHz at each coarse-channel edge and the DC channel
    flagged = np.nonzero(uvd.flag_array.any(axis=(0, 2)))[0]
    np.testing.assert_array_equal(flagged, expected_flagged_channels(N_FINE, 40_000.0))
    assert uvd.flag_array[:, flagged].all()
    assert np.all(uvd.nsample_array == 1.0)
    # with every correction and flag turned off the same numbers come back, unflagged
    raw = _read(
        mwa_raw,
        flag_init=False,
        remove_dig_gains=False,
        remove_coarse_band=False,
        correct_cable_len=False,
    )
    np.testing.assert_array_equal(raw.data_array, uvd.data_array)
    assert not raw.flag_array.any()


def test_digital_gains_and_flagged_tiles_are_applied(tmp_path: Path) -> None:
    obs = write_mwa_raw(
        tmp_path / "obs", n_fine=4, n_times=1, digital_gain=128, flagged_tiles=(11, 168)
    )
    uvd = _read(obs)
    # pyuvdata divides by (gain / 64) of both tiles, and removes the flagged tiles
    np.testing.assert_array_equal(uvd.data_array, _expected(uvd, obs) / 4.0)
    assert uvd.Nants_data == 126
    assert not {11, 168} & (set(uvd.ant_1_array) | set(uvd.ant_2_array))
    kept = _read(obs, remove_dig_gains=False, remove_flagged_ants=False)
    np.testing.assert_array_equal(kept.data_array, _expected(kept, obs))
    flagged_rows = np.isin(kept.ant_1_array, (11, 168)) | np.isin(kept.ant_2_array, (11, 168))
    assert kept.flag_array[flagged_rows].all()


def test_our_reader_opens_the_directory(mwa_raw: MWARawObservation, tmp_path: Path) -> None:
    cached = reading.prepare_input(mwa_raw.directory, tmp_path / "cache")
    assert cached.suffix == ".uvh5"
    info = reading.read_info(cached, source=mwa_raw.directory)
    assert info.source == mwa_raw.directory
    assert info.n_freqs == N_FINE
    assert info.n_times == N_TIMES
    assert info.n_baselines == N_BASELINES
    np.testing.assert_allclose(info.freq_hz, mwa_raw.freq_hz, rtol=0, atol=1e-3)
    assert info.channel_width_hz == pytest.approx(40_000.0)
    assert info.telescope == "MWA"
    assert not info.projected
    reading.check_not_fully_flagged(info)

    # the cache holds exactly what pyuvdata read, corrections and flags included
    uvd = UVData()
    uvd.read(str(cached))
    np.testing.assert_array_equal(uvd.data_array, _expected(uvd, mwa_raw))

    chunk = reading.read_chunk(info, range(0, N_FINE), ("XX", "YY", "I"))
    n_cross = N_TIMES * (N_BASELINES - 128)
    good = np.ones(N_FINE, dtype=bool)
    good[expected_flagged_channels(N_FINE, 40_000.0)] = False
    np.testing.assert_allclose(chunk.freq_hz, mwa_raw.freq_hz, rtol=0, atol=1e-3)
    for pol in ("XX", "YY", "I"):
        assert chunk.vis[pol].shape == (n_cross, N_FINE)
        assert np.all(chunk.weights[pol][:, good] == 1.0)
        assert np.all(chunk.weights[pol][:, ~good] == 0.0)
        assert np.all(chunk.vis[pol][:, ~good] == 0.0)


def test_cli_images_the_directory(mwa_raw: MWARawObservation, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["image", str(mwa_raw.directory), "--out", str(out), "--image-size", "64", "--quiet"]
    assert main(argv) == 0
    for name in ("image_cube.fits", "psf_cube.fits", "uvcube.h5", "powerspec.h5"):
        assert (out / name).is_file(), name
    with fits.open(out / "image_cube.fits") as hdul:
        cube = hdul[0].data
        assert cube.shape[-3:] == (N_FINE, 64, 64)
        np.testing.assert_allclose(hdul[0].header["CRVAL3"], mwa_raw.freq_hz[0], atol=1.0)
    peak = np.abs(cube.reshape(N_FINE, -1)).max(axis=1)
    flagged = expected_flagged_channels(N_FINE, 40_000.0)
    assert np.all(np.isfinite(cube))
    assert np.all(peak[flagged] == 0.0)
    assert np.all(np.delete(peak, flagged) > 0.0)


def test_truncated_gpubox_file_is_invalid_input(mwa_raw: MWARawObservation, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in (mwa_raw.metafits, *mwa_raw.gpubox_files):
        data = path.read_bytes()
        if "gpubox" in path.name:
            data = data[: len(data) // 2]
        (bad / path.name).write_bytes(data)
    with pytest.raises(InvalidInputError) as caught:
        reading.prepare_input(bad, tmp_path / "cache")
    message = str(caught.value)
    assert message.startswith(str(bad))
    assert not list((tmp_path / "cache").glob("*.uvh5"))
    assert mwa_raw.gpubox_files[0].name in message  # the file at fault, not just its directory
    assert "truncated" in message
