"""hera_pspec, the HERA collaboration's delay-spectrum estimator, driven on spotcube's simulations.

The reference the power-spectrum tests compare with: the same visibilities as the
:mod:`.pspec_sim` cases put into pyuvdata ``UVData`` objects (even and odd time samples as
two data sets) and through ``PSpecData.pspec`` (per-baseline delay spectra, even x odd,
Blackman-Harris taper, ``PSpecBeamGauss`` of the same FWHM), then
``grouping.spherical_average`` over spotcube's own |k| bins.

Two details of hera_pspec's conventions, both from its source (hera_pspec 0.5.0,
``pspecdata.py``): the power-spectrum scalar ``X^2 Y / (Omega_pp B_pp) * Omega_p^2``
(``pspecbeam.compute_pspec_scalar``) expects visibilities in mK, so a data set in Jy must go
through ``PSpecData.Jy_to_mK`` (which divides by Omega_p and multiplies by lambda^2 / 2 k_B)
— without it the result is in Jy^2 Mpc^3, ~30 times below the input here; and
``Jy_to_mK`` scales each data set's ``data_array`` in place, so two data sets must not share
one array.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from . import pspec_sim as sim

# Planck 2018 (astropy's Planck18), the cosmology spotcube's estimator uses; hera_pspec's
# Cosmo_Conversions has no radiation or neutrinos: its X^2 Y is 0.80 % above astropy's at
# 167 MHz (z = 7.5; computed 2026-12-07 with hera_pspec 0.5.0, X2Y(little_h=False)).
PLANCK18 = {"Om_L": 0.68885, "Om_b": 0.04897, "Om_c": 0.26069, "H0": 67.66}
JD_START = 2459001.75


def _uvdata(
    enu_ant: npt.NDArray[np.float64],
    pairs: list[tuple[int, int]],
    vis: npt.NDArray[np.complex128],
    times_jd: npt.NDArray[np.float64],
    band: sim.Band,
) -> Any:
    """A UVData of these baselines (time-major rows) holding ``vis`` (Jy) as xx."""
    from pyuvdata import Telescope, UVData, utils

    from payload.sites import install_offline_sites

    install_offline_sites()
    telescope = Telescope.from_known_telescopes("mwa")
    n_ant = max(max(p) for p in pairs) + 1
    lat, lon, alt = telescope.location_lat_lon_alt
    ecef = utils.ECEF_from_ENU(enu_ant[:n_ant], latitude=lat, longitude=lon, altitude=alt)
    telescope.antenna_positions = np.asarray(ecef - telescope._location.xyz())
    telescope.antenna_numbers = np.arange(n_ant)
    telescope.antenna_names = [f"T{i:03d}" for i in range(n_ant)]
    telescope.Nants = n_ant
    telescope.antenna_diameters = np.full(n_ant, 4.0)
    telescope.instrument = "MWA"
    # the known telescope's per-antenna arrays cover all its tiles: keep ours
    if telescope.feed_array is not None:
        telescope.feed_array = telescope.feed_array[:n_ant]
    if telescope.feed_angle is not None:
        telescope.feed_angle = telescope.feed_angle[:n_ant]
    telescope.mount_type = ["phased"] * n_ant
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return UVData.new(
            freq_array=band.freq_hz,
            polarization_array=np.asarray([-5]),  # an int array (a list breaks lookups)
            telescope=telescope,
            times=times_jd,
            antpairs=pairs,
            do_blt_outer=True,
            time_axis_faster_than_bls=False,
            # a copy: PSpecData.Jy_to_mK scales data_array in place, once per data set
            data_array=vis.reshape(len(times_jd) * len(pairs), band.n_freqs, 1).copy(),
            vis_units="Jy",
        )


def cosmology() -> Any:
    """hera_pspec's ``Cosmo_Conversions`` with spotcube's Planck 2018 parameters."""
    import hera_pspec as hp

    return hp.conversions.Cosmo_Conversions(**PLANCK18)


def _pspec(
    first: Any, second: Any, pairs: list[tuple[int, int]], band: sim.Band, fwhm_deg: float
) -> Any:
    """hera_pspec's UVPSpec of ``first`` x ``second`` for every baseline, in mK^2 Mpc^3."""
    import hera_pspec as hp

    beam = hp.PSpecBeamGauss(math.radians(fwhm_deg), band.freq_hz, cosmo=cosmology())
    return pspec_with_beam(first, second, pairs, beam)


def pspec_with_beam(
    first: Any,
    second: Any,
    pairs: list[tuple[int, int]],
    beam: Any,
    *,
    pol: str = "xx",
    cov_model: str | None = None,
) -> Any:
    """hera_pspec's UVPSpec of ``first`` x ``second`` (UVData in Jy) for every baseline.

    Each baseline with itself across the two data sets, Blackman-Harris taper, no little h,
    in mK^2 Mpc^3 through ``Jy_to_mK`` with ``beam`` (any hera_pspec beam object). With
    ``cov_model`` (e.g. ``"autos"``: the radiometer equation from the data sets'
    autocorrelations) hera_pspec's analytic covariance of every bandpower is kept too.
    """
    import hera_pspec as hp

    data = hp.PSpecData(dsets=[first, second], wgts=[None, None], beam=beam)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data.Jy_to_mK()
        return data.pspec(
            pairs,
            pairs,
            dsets=(0, 1),
            pols=[(pol, pol)],
            taper="blackman-harris",
            little_h=False,
            verbose=False,
            store_cov=cov_model is not None,
            cov_model=cov_model or "empirical",
        )


def spherical_on(
    uvp: Any, k_edges: npt.NDArray[np.float64], pol: str = "xx"
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    """hera_pspec's spherical average of ``uvp`` over the |k| bins ``k_edges`` (Mpc^-1).

    Returns the real part of P per bin and, when ``uvp`` carries a covariance, its 1 sigma
    per bin (hera_pspec propagates the covariance through its average); NaN where no
    delay mode of any baseline falls in a bin (hera_pspec leaves such bins at 0).
    """
    import hera_pspec as hp

    centres = 0.5 * (k_edges[:-1] + k_edges[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sph = hp.grouping.spherical_average(
            uvp, centres, np.diff(k_edges), time_avg=True, little_h=False
        )
    kperp = uvp.get_kperps(0, little_h=False)
    kpara = uvp.get_kparas(0, little_h=False)
    kmag = np.hypot(np.unique(kperp)[:, None], kpara[None]).ravel()
    index = np.digitize(kmag, k_edges) - 1
    have = np.bincount(index[index >= 0], minlength=len(k_edges))[: len(centres)] > 0
    key = (0, sph.get_blpairs()[0], pol)
    power = np.where(have, np.asarray(sph.get_data(key)).real.ravel(), np.nan)
    if not hasattr(sph, "cov_array_real"):
        return power, None
    cov = np.asarray(sph.get_cov(key)).real.reshape(len(centres), len(centres))
    return power, np.where(have, np.sqrt(np.clip(np.diag(cov), 0.0, None)), np.nan)


def spherical_power(
    vis: npt.NDArray[np.complex128],
    enu_ant: npt.NDArray[np.float64],
    pairs: list[tuple[int, int]],
    n_times: int,
    step_s: float,
    band: sim.Band,
    fwhm_deg: float,
    k_edges: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """hera_pspec's even x odd spherical P(k) [mK^2 Mpc^3] of ``vis`` in the bins ``k_edges``.

    ``vis`` holds (time, baseline) rows in time-major order, as :func:`pspec_sim.track_uvw`
    makes them. Even and odd samples get the same time stamps (they are ``step_s`` apart; the
    sky is the same within a snapshot), so hera_pspec pairs them one to one.
    """
    rows = vis.reshape(n_times, len(pairs), band.n_freqs)
    stamps = np.asarray(JD_START + np.arange(0, n_times, 2) * step_s / 86400.0, dtype=np.float64)
    even = _uvdata(enu_ant, pairs, rows[0::2], stamps, band)
    odd = _uvdata(enu_ant, pairs, rows[1::2], stamps, band)
    uvp = _pspec(even, odd, pairs, band, fwhm_deg)
    return spherical_on(uvp, k_edges)[0]


def noise_power(
    sigma_jy: float, band: sim.Band, fwhm_deg: float, n_times: int = 40, seed: int = 1
) -> float:
    """hera_pspec's mean power [mK^2 Mpc^3] of complex white noise of std ``sigma_jy``.

    The same noise in both data sets (the auto power), over a few short baselines.
    """
    enu_ant, all_pairs = sim.short_baseline_pairs(30.0)
    pairs = all_pairs[:6]
    rng = np.random.default_rng(seed)
    shape = (n_times, len(pairs), band.n_freqs)
    noise = np.asarray(
        sigma_jy * (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / math.sqrt(2),
        dtype=np.complex128,
    )
    stamps = np.asarray(JD_START + np.arange(n_times) * 1e-4, dtype=np.float64)
    first = _uvdata(enu_ant, pairs, noise, stamps, band)
    second = _uvdata(enu_ant, pairs, noise, stamps, band)
    uvp = _pspec(first, second, pairs, band, fwhm_deg)
    return float(np.mean([uvp.get_data((0, bp, "xx")).real for bp in uvp.get_blpairs()]))
