"""Cross-check of spotcube's power spectrum against hera_pspec on the same visibilities.

One simulated case of ``tests/payload/test_pspec_recovery.py``: a powerbox sky (white, and
P ~ k^-2) times a 25 degree Gaussian power beam, MWA Phase I baselines shorter than 110 m,
a snapshot of 8 x 8 s, 32 x 200 kHz channels at 167 MHz, visibilities predicted with ducc0's
``dirty2vis``. The same visibilities go

* through spotcube's uv cube and power spectrum (even x odd cross power, gridded, per-cell
  normalisation with the beam), and
* into pyuvdata ``UVData`` objects (even and odd time samples) and hera_pspec's
  ``PSpecData.pspec`` (per-baseline delay spectra, even x odd, Blackman-Harris taper,
  ``PSpecBeamGauss`` of the same FWHM, the Planck18 parameters given to its
  ``Cosmo_Conversions``, ``little_h=False``), then ``grouping.spherical_average`` over
  spotcube's own |k| bins.

Both are divided by the input P(k) binned the estimator's way (the window's leakage
included, as in the test) and printed per bin, with the two estimators' ratio; at the end
hera_pspec's power of pure noise against the radiometer level. The same comparison, with its
tolerances and why, is a test: ``tests/payload/test_pspec_vs_hera_pspec.py``; how hera_pspec
is driven (its units convention above all) is :mod:`tests.payload.hera_reference`.

Usage::

    .venv/bin/python bench/pspec_crosscheck.py
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from payload.powerspec import blackman_harris
from tests.payload import hera_reference as hera
from tests.payload import pspec_sim as sim

FWHM_DEG = 25.0
BAND = sim.Band(32, 167e6 - 16 * 200e3, 200e3)
AMPLITUDE = 1e4
SKIES = {
    "white": lambda k: AMPLITUDE * np.ones_like(k),
    "k^-2": lambda k: np.where(k > 0, AMPLITUDE * (0.2 / np.maximum(k, 1e-12)) ** 2, 0.0),
}


def main() -> int:
    started = time.perf_counter()
    enu_ant, pairs = sim.short_baseline_pairs(110.0)
    n_times, step = 8, 8.0
    uvw, times, vis = sim.observe_skies(SKIES, BAND, FWHM_DEG, n_times, step)
    # spotcube: the two skies as two polarizations of one cube (they share the sampling)
    ps = sim.spectrum_of(uvw, times, BAND, {"XX": vis["white"], "YY": vis["k^-2"]}, FWHM_DEG)
    edges = ps.k_edges
    centres = 0.5 * (edges[:-1] + edges[1:])

    # hera_pspec
    report = []
    for p, name in enumerate(SKIES):
        theirs = hera.spherical_power(
            vis[name], enu_ant, pairs, n_times, step, BAND, FWHM_DEG, edges
        )
        expected = ps.bin_model(
            sim.windowed_model(SKIES[name], BAND, blackman_harris(BAND.n_freqs)), pol_index=p
        )
        report.append((name, ps.p_sph[p] / expected, theirs / expected))

    print(f"# {time.perf_counter() - started:.0f} s; recovered / input per |k| bin (Mpc^-1)")
    for name, ours, theirs in report:
        print(f"\n{name} sky, 25 deg Gaussian beam, snapshot 8 x 8 s:")
        print("| k | spotcube | hera_pspec | spotcube / hera_pspec |")
        print("|---|---|---|---|")
        for k, a, b in zip(centres, ours, theirs, strict=True):
            if np.isfinite(a) and np.isfinite(b):
                print(f"| {k:.3f} | {a:.3f} | {b:.3f} | {a / b:.3f} |")
        sel = (centres > 0.18) & np.isfinite(ours) & np.isfinite(theirs)
        ratio = ours[sel] / theirs[sel]
        factor = float(np.median(ratio))
        print(
            f"mean above k = 0.18: spotcube {np.mean(ours[sel]):.3f}, "
            f"hera_pspec {np.mean(theirs[sel]):.3f}; spotcube / hera_pspec: median "
            f"{factor:.2f}, largest deviation from it {np.max(np.abs(ratio / factor - 1)):.3f}"
        )
    print(f"\nhera_pspec on pure noise / radiometer equation: {_noise_ratio():.4f}")
    return 0


def _noise_ratio() -> float:
    """hera_pspec's auto power of white noise against X^2 Y c^2 sigma^2 df / Omega_pp."""
    from payload.cosmology import CosmoScales, jy_to_mk_sr

    freq = float(BAND.freq_hz.mean())
    scales = CosmoScales.at(freq)
    omega_pp = math.pi * math.radians(FWHM_DEG) ** 2 / (8 * math.log(2))
    expected = (
        scales.x_mpc_per_rad**2
        * scales.y_mpc_per_hz
        * jy_to_mk_sr(freq) ** 2
        * BAND.width_hz
        / omega_pp
    )
    return hera.noise_power(1.0, BAND, FWHM_DEG) / expected


if __name__ == "__main__":
    raise SystemExit(main())
