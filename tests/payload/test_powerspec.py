"""Power spectra: cosmology, foreground containment and the product's contents.

The normalisation is checked against powerbox skies in ``test_pspec_recovery.py`` (the old
white-noise test here filled every uv cell with weight 1, the one coverage where any
normalisation holds, and is gone), thermal noise in ``test_pspec_noise.py``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from payload.cosmology import CosmoScales, redshift
from payload.jobs.image import ImageJob
from payload.params import ImagingParams
from payload.powerspec import PowerSpectrum, blackman_harris, compute_power_spectrum
from payload.reading import read_chunk, read_info
from payload.uvcube import UVCube, UVGrid, grid_chunk

from .conftest import Observation, make_context


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


@pytest.fixture(scope="module")
def wideband_ps(
    wideband_obs: Observation, tmp_path_factory: pytest.TempPathFactory
) -> PowerSpectrum:
    params = ImagingParams.from_mapping(wideband_obs.params)
    info = read_info(wideband_obs.path)
    chunk = read_chunk(info, range(info.n_freqs), params.polarizations)
    grid = UVGrid.from_params(params)
    job = ImageJob(
        make_context(wideband_obs.path, wideband_obs.params, tmp_path_factory.mktemp("w"))
    )
    gridded = grid_chunk(
        chunk, grid, params, max_freq_hz=float(info.freq_hz.max()), halves=job.halves
    )
    assert gridded.weights[0].max() > 0
    assert gridded.weights[1].max() > 0  # two time samples: one in each half
    cube = UVCube(
        gridded.vis,
        gridded.weights,
        gridded.sampling,
        info.freq_hz,
        params.polarizations,
        grid,
        params.stack_params(),
        job.beam.spec,
    )
    return compute_power_spectrum(cube, n_k_bins=12)


def test_flat_spectrum_foregrounds_stay_below_the_horizon(wideband_ps: PowerSpectrum) -> None:
    """Point sources of flat spectrum through the MWA beam (the telescope's default)."""
    assert wideband_ps.primary_beam.startswith("mwa:")
    assert wideband_ps.wedge_leakage[0] < 1e-3
    # the test means something: the wedge is inside the band, not all of it
    assert wideband_ps.horizon_slope * wideband_ps.k_perp_edges[-1] < wideband_ps.k_par[-1]
    auto = wideband_ps.p_cyl_auto[0]
    assert np.nanmax(auto) > 1e6 * np.nanmin(auto[auto > 0])


def test_powerspec_product_states_units(tiny_products: dict[str, Path]) -> None:
    with h5py.File(tiny_products["powerspec.h5"], "r") as handle:
        assert "mK^2 Mpc^3" in handle.attrs["units"]
        assert "Planck18" in handle.attrs["units"]
        assert handle["p_cyl"].shape[0] == 3
        assert handle.attrs["provenance_params_hash"]
        assert math.isfinite(float(handle.attrs["horizon_slope"]))
        # the beam used (MWA data: the MWA tile beam, zenith when the metadata has no delays)
        assert handle.attrs["primary_beam"] == "mwa:" + ",".join(["0"] * 16)
        for name in ("sigma_cyl", "p_cyl_auto", "noise_cyl"):
            assert handle[name].shape == handle["p_cyl"].shape
        for name in ("sigma_sph", "p_sph_auto", "noise_sph", "sigma_sph_window"):
            assert handle[name].shape == handle["p_sph"].shape
    provenance = json.loads(tiny_products["provenance.json"].read_text())
    assert provenance["primary_beam"] == "mwa:" + ",".join(["0"] * 16)
