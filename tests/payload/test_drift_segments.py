"""Drift segments: how an observation is cut, and the rephasing of each segment (issue 19).

The estimator's recovery over an hour of drift is ``test_pspec_drift.py``; here the pieces
it rests on, fast: segments within the coherent limit and of near-equal length, one-line
refusals where no segmentation can be right, and the rephasing to a segment's own zenith
against pyuvdata's ``phase_to_time``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from payload.beamframe import SIDEREAL_RAD_PER_S, BeamFrame
from payload.beams import parse_beam
from payload.drift import (
    MAX_SEGMENTS,
    plan_drift,
    plan_segments,
    rephase,
    segment_frames,
    segment_offsets,
)
from payload.errors import InvalidInputError
from payload.psnorm import MAX_DRIFT_SIGMA, beam_sky_fit, coherent_seconds
from payload.uvcube import UVGrid

LAT = math.radians(-30.72)
GRID = UVGrid(du=1.0, n=140, taper_sigma_l=0.15)


def _times(n: int, step_s: float) -> np.ndarray:
    return 2459845.25 + np.arange(n) * step_s / 86400.0


@pytest.mark.parametrize(("n", "step_s", "longest_s"), [(60, 60.0, 417.0), (24, 150.0, 680.0)])
def test_segments_stay_within_the_coherent_limit(n: int, step_s: float, longest_s: float) -> None:
    plan = plan_segments(_times(n, step_s), step_s, longest_s)
    assert max(plan.seconds) <= longest_s
    assert sum(b - a for a, b in plan.bounds) == n
    assert plan.bounds[0][0] == 0
    assert plan.bounds[-1][1] == n
    # as few as the limit allows (whole samples of step_s each), of near-equal sizes
    assert plan.n_segments == math.ceil(n / math.floor(longest_s / step_s))
    sizes = [b - a for a, b in plan.bounds]
    assert max(sizes) - min(sizes) <= 1


def test_a_short_observation_is_one_segment() -> None:
    plan = plan_segments(_times(8, 8.0), 8.0, 417.0)
    assert plan.bounds == ((0, 8),)


def test_a_segment_without_an_even_and_an_odd_sample_is_refused_in_one_line() -> None:
    with pytest.raises(InvalidInputError, match="fewer than two") as raised:
        plan_segments(_times(12, 300.0), 300.0, 417.0)
    assert "\n" not in str(raised.value)


def test_too_many_segments_are_refused_in_one_line() -> None:
    with pytest.raises(InvalidInputError, match="split it into files") as raised:
        plan_segments(_times(400, 60.0), 60.0, 417.0)
    assert "\n" not in str(raised.value)
    assert str(MAX_SEGMENTS) in str(raised.value)


def test_the_coherent_limit_is_half_a_sigma_of_drift() -> None:
    frame = BeamFrame(LAT, 0.0, LAT, 3600.0)
    _, sigma = beam_sky_fit(parse_beam("airy:14"), (164e6,), GRID, frame=frame)
    limit = coherent_seconds(frame, sigma)
    drift = limit * SIDEREAL_RAD_PER_S * math.cos(LAT)
    assert drift == pytest.approx(MAX_DRIFT_SIGMA * sigma)
    assert 400 < limit < 500  # HERA's airy:14: about 7.5 minutes
    assert coherent_seconds(BeamFrame(LAT, 0.0, LAT, 3600.0, fixed=False), sigma) == math.inf


def test_a_tracking_beam_is_one_segment_whatever_the_duration() -> None:
    plan = plan_drift(
        parse_beam("gaussian:12"),
        (160e6, 170e6),
        GRID,
        None,
        times_jd=_times(60, 60.0),
        lst_rad=np.linspace(0, 0.26, 60),
        integration_s=60.0,
        projected=True,
    )
    assert plan.segments.n_segments == 1
    assert plan.shifts_ra_rad is None


def test_segment_frames_follow_the_hour_angle_of_projected_data() -> None:
    frame = BeamFrame(LAT, 0.01, LAT, 3600.0)
    lst = 1.0 + np.arange(60) * 60.0 * SIDEREAL_RAD_PER_S
    plan = plan_segments(_times(60, 60.0), 60.0, 700.0)
    frames = segment_frames(frame, plan, lst, rephased=False)
    offsets = segment_offsets(plan, lst)
    for f, offset, seconds in zip(frames, offsets, plan.seconds, strict=True):
        assert f.hour_angle_rad == pytest.approx(0.01 + offset)
        assert f.duration_s == seconds
    rephased = segment_frames(frame, plan, lst, rephased=True)
    assert all(f.hour_angle_rad == 0.01 for f in rephased)
    assert offsets[0] < 0 < offsets[-1]


def test_rephasing_agrees_with_pyuvdata_phase_to_time() -> None:
    """A drift scan phased by pyuvdata to one zenith, rephased by spotcube to another,
    against pyuvdata's own phasing to that other zenith 12.5 minutes away."""
    from astropy.coordinates import EarthLocation
    from astropy.time import Time
    from pyuvdata import UVData

    from . import drift_sim

    location = EarthLocation.from_geodetic(
        drift_sim.HERA_LON_DEG, drift_sim.HERA_LAT_DEG, drift_sim.HERA_ALT_M
    )
    enu = drift_sim.compact_array(8)
    i, j = np.triu_indices(len(enu), 1)
    times = Time(drift_sim.JD_MIDDLE + (np.arange(12) - 6) * 150 / 86400, format="jd")
    freq = np.linspace(160e6, 170e6, 4)
    uvd = UVData.new(
        freq_array=freq,
        polarization_array=np.asarray([-5]),
        antpairs=[(int(a), int(b)) for a, b in zip(i, j, strict=True)],
        times=times.jd,
        telescope=drift_sim._telescope(location, enu),
        integration_time=150.0,
        channel_width=float(freq[1] - freq[0]),
        do_blt_outer=True,
        time_axis_faster_than_bls=False,
    )
    rng = np.random.default_rng(0)
    shape = (uvd.Nblts, len(freq), 1)
    uvd.data_array = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    uvd.flag_array = np.zeros(shape, bool)
    uvd.nsample_array = np.ones(shape, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        middle, other = uvd.copy(), uvd.copy()
        middle.phase_to_time(times[6])
        other.phase_to_time(times[1])
    centre = next(iter(middle.phase_center_catalog.values()))
    target = next(iter(other.phase_center_catalog.values()))
    uvw, vis = rephase(
        middle.uvw_array,
        {"XX": middle.data_array[:, :, 0]},
        freq,
        shift_ra_rad=float(target["cat_lon"] - centre["cat_lon"]),
        dec_rad=float(centre["cat_lat"]),
    )
    # pyuvdata's zenith (apparent place) is not a pure shift in RA: 1e-4 rad in dec,
    # 6 mm of the 66 m baselines, 0.02 rad of phase at 170 MHz
    np.testing.assert_allclose(uvw, other.uvw_array, atol=0.01)
    expected = other.data_array[:, :, 0]
    assert np.abs(vis["XX"] - expected).max() < 0.03 * np.abs(expected).max()
    # the opposite sign of the phase would be far off
    turned = middle.data_array[:, :, 0] * np.exp(
        2j * math.pi * (uvw[:, 2] - middle.uvw_array[:, 2])[:, None] * freq[None] / 299792458.0
    )
    assert np.abs(turned - expected).max() > 0.5 * np.abs(expected).max()


def _drift_uvh5(path: Path, *, n_times: int, step_s: float) -> None:
    """A HERA drift scan (unprojected) of random visibilities: 8 dishes, 8 channels."""
    from astropy.coordinates import EarthLocation
    from astropy.time import Time
    from pyuvdata import UVData

    from . import drift_sim

    location = EarthLocation.from_geodetic(
        drift_sim.HERA_LON_DEG, drift_sim.HERA_LAT_DEG, drift_sim.HERA_ALT_M
    )
    enu = drift_sim.compact_array(8)
    telescope = drift_sim._telescope(location, enu)
    telescope.name = "HERA"
    i, j = np.triu_indices(len(enu), 1)
    times = Time(drift_sim.JD_MIDDLE + np.arange(n_times) * step_s / 86400, format="jd")
    freq = 150e6 + 100e3 * np.arange(8)
    uvd = UVData.new(
        freq_array=freq,
        polarization_array=np.asarray([-5, -6]),
        antpairs=[(int(a), int(b)) for a, b in zip(i, j, strict=True)],
        times=times.jd,
        telescope=telescope,
        integration_time=step_s,
        channel_width=100e3,
        do_blt_outer=True,
        time_axis_faster_than_bls=False,
    )
    rng = np.random.default_rng(5)
    shape = (uvd.Nblts, len(freq), 2)
    uvd.data_array = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    uvd.flag_array = np.zeros(shape, bool)
    uvd.nsample_array = np.ones(shape, np.float32)
    uvd.write_uvh5(str(path))


def test_the_image_job_grids_a_drift_scan_in_segments(tmp_path: Path) -> None:
    """End to end through ``run_chunk`` and ``combine``: 20 minutes of HERA drift scan with
    airy:14 (the telescope's default) in segments of at most ~7 minutes, recorded in every
    product; the uv cube's schema-2 datasets are the segments' sums."""
    import json

    import h5py

    from payload.jobs.image import ImageJob

    from .conftest import make_context, run_job

    path = tmp_path / "drift.uvh5"
    _drift_uvh5(path, n_times=20, step_s=60.0)
    job = ImageJob(make_context(path, {"chunk_channels": 4, "image_size": 64}, tmp_path / "w"))
    assert job.beam.spec == "airy:14"
    assert job.drift_plan.segments.n_segments == 3
    assert job.drift_plan.shifts_ra_rad is not None  # unprojected: rephased per segment
    products = {p.name: p for p in run_job(job, tmp_path / "chunks", tmp_path / "out")}
    with h5py.File(products["powerspec.h5"], "r") as handle:
        segments = json.loads(handle.attrs["drift_segments"])
        assert "per drift segment" in handle.attrs["estimator"]
        assert np.isfinite(handle["p_sph"][()]).any()
    assert segments["n_segments"] == 3
    assert sum(segments["seconds"]) == pytest.approx(1200.0)
    with h5py.File(products["uvcube.h5"], "r") as handle:
        parts = handle["segment_vis_halves"][()]
        assert parts.shape[0] == 3
        np.testing.assert_allclose(parts.sum(axis=0), handle["vis_halves"][()])
        assert json.loads(handle.attrs["drift_segments"])["rephased_to_segment_zenith"]
    provenance = json.loads(products["provenance.json"].read_text())
    recorded = provenance["drift_segments"]
    recorded = json.loads(recorded) if isinstance(recorded, str) else recorded
    assert recorded["n_segments"] == 3


def test_a_segmented_uv_cube_is_not_integrated(tmp_path: Path) -> None:
    """Its schema-2 datasets are sums over the whole drift: refused in one line."""
    import h5py

    from payload.uvcube import UVCube

    path = tmp_path / "uvcube.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["product"] = "uvcube"
        handle.attrs["schema"] = 2
        handle.create_dataset("segment_vis_halves", data=np.zeros((3, 2, 1, 4, 8, 5), complex))
    with pytest.raises(InvalidInputError, match="3 segments") as raised:
        UVCube.read(path)
    assert "\n" not in str(raised.value)
