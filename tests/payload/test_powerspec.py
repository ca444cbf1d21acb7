"""Power spectra: cosmological normalisation and foreground containment."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from payload.cosmology import CosmoScales, jy_to_mk_sr, redshift
from payload.params import ImagingParams
from payload.powerspec import (
    PowerSpectrum,
    blackman_harris,
    compute_power_spectrum,
    delay_power,
)
from payload.reading import read_chunk, read_info
from payload.uvcube import UVCube, UVGrid, grid_chunk, sky_to_uv

from .conftest import Observation


def test_redshift_and_scales_at_150_mhz() -> None:
    scales = CosmoScales.at(150e6)
    assert redshift(150e6) == pytest.approx(8.4694, abs=1e-3)
    # Planck18 at z = 8.47: ~9.4 Gpc comoving distance, ~17 Mpc per MHz.
    assert scales.x_mpc_per_rad == pytest.approx(9.4e3, rel=0.03)
    assert scales.y_mpc_per_hz * 1e6 == pytest.approx(17.0, rel=0.05)


def test_blackman_harris_matches_its_definition() -> None:
    window = blackman_harris(9)
    assert window[4] == pytest.approx(1.0)
    assert window[0] == pytest.approx(6e-5, abs=1e-5)
    np.testing.assert_allclose(window, window[::-1])


def test_white_noise_sky_gives_its_voxel_power() -> None:
    """A sky of white noise (sigma_T per voxel) has P = sigma_T^2 x voxel volume."""
    params = ImagingParams.from_mapping({"uv_max_lambda": 32.0})
    grid = UVGrid.from_params(params)
    freqs = np.asarray(150e6 + 0.5e6 * np.arange(32), dtype=np.float64)
    sigma_mk = 20.0
    omega_pix = grid.pixsize**2
    rng = np.random.default_rng(42)
    vis = np.empty((1, len(freqs), grid.n, grid.n // 2 + 1), dtype=complex)
    for c, f in enumerate(freqs):
        temperature = rng.normal(0.0, sigma_mk, (grid.n, grid.n))
        vis[0, c] = sky_to_uv(temperature / jy_to_mk_sr(f) * omega_pix, grid)
    weights = np.ones(vis.shape)
    scales = CosmoScales.at(float(freqs.mean()))
    power, valid, _ = delay_power(
        vis[0], weights[0], freqs, omega_pp=grid.omega_pp(), scales=scales
    )
    voxel = scales.x_mpc_per_rad**2 * omega_pix * scales.y_mpc_per_hz * 0.5e6
    expected = sigma_mk**2 * voxel
    assert float(power[:, valid].mean()) == pytest.approx(expected, rel=0.05)
    # and the binned spectra carry the same amplitude
    cube = UVCube(vis, weights, freqs, ("I",), grid, params.stack_params())
    ps = compute_power_spectrum(cube, n_k_bins=8)
    assert float(np.nanmedian(ps.p_sph[0])) == pytest.approx(expected, rel=0.05)


@pytest.fixture(scope="module")
def wideband_ps(wideband_obs: Observation) -> PowerSpectrum:
    params = ImagingParams.from_mapping(wideband_obs.params)
    info = read_info(wideband_obs.path)
    chunk = read_chunk(info, range(info.n_freqs), params.polarizations)
    grid = UVGrid.from_params(params)
    G, W = grid_chunk(chunk, grid, params, max_freq_hz=float(info.freq_hz.max()))
    assert W.max() > 0
    cube = UVCube(G, W, info.freq_hz, params.polarizations, grid, params.stack_params())
    return compute_power_spectrum(cube, n_k_bins=12)


def test_flat_spectrum_foregrounds_stay_below_the_horizon(wideband_ps: PowerSpectrum) -> None:
    assert wideband_ps.wedge_leakage[0] < 1e-3
    # the test means something: the wedge is inside the band, not all of it
    assert wideband_ps.horizon_slope * wideband_ps.k_perp_edges[-1] < wideband_ps.k_par[-1]
    assert np.nanmax(wideband_ps.p_cyl[0]) > 1e6 * np.nanmin(wideband_ps.p_cyl[0])


def test_powerspec_product_states_units(tiny_products: dict[str, Path]) -> None:
    with h5py.File(tiny_products["powerspec.h5"], "r") as handle:
        assert "mK^2 Mpc^3" in handle.attrs["units"]
        assert "Planck18" in handle.attrs["units"]
        assert handle["p_cyl"].shape[0] == 3
        assert handle.attrs["provenance_params_hash"]
        assert math.isfinite(float(handle.attrs["horizon_slope"]))
