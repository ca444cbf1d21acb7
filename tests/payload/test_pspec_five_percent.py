"""spotcube's P(k) is the input's within 5 %, and the checks would see a 5 % error (issue 19).

Invariant: for a sky of known power spectrum seen through a known beam, the mean of
spotcube / input over the spherical bins above k = 0.18 Mpc^-1 is 1 within the realisations'
scatter (a few per cent at most), and so is that of an estimator spotcube did not write
(a per-baseline delay spectrum of the same visibilities written from Parsons et al. 2012,
:mod:`.delay_spectrum`; hera_pspec's takes a minute and 11 GB per realisation here, so it
stays in ``test_pspec_vs_hera_pspec.py`` on one realisation), and spotcube / that estimator
is 1 within the scatter of their ratio.

Oracle: a white sky (powerbox, P = const). Seen through any frequency window normalised to
unit power (sum of |FFT(window)|^2 = 1, as the estimator's B_pp does), a constant P stays the
same constant in every (cell, delay) element, so the expected value of every bin is the input
amplitude itself: no binning, nothing of spotcube's in the oracle (``PowerSpectrum.bin_model``
is not used). The visibilities come from pyuvdata's Gaussian beam and ducc0's ``dirty2vis``
(:mod:`.pspec_sim`), the check and its tolerance from :mod:`.pspec_tolerance` (the scatter of
6 realisations x the bins).

Mutation: the same check on spotcube's P(k) x 0.95 and x 1.05 must fail, so a 5 % error in
the normalisation cannot pass the suite. (Tried by hand too: dividing ``cross`` in
``compute_power_spectrum`` by 1.05 makes ``test_spotcube_recovers_the_input`` fail.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from . import delay_spectrum
from . import pspec_sim as sim
from .pspec_tolerance import judge

pytestmark = pytest.mark.slow

BAND = sim.Band(32, 167e6 - 16 * 200e3, 200e3)
AMPLITUDE = 1e4  # mK^2 Mpc^3
K_MIN_TESTED = 0.18
N_TIMES, STEP_S = 8, 8.0
NPIX, PIXSIZE = 200, 0.005
# Cubes per beam, two realisations each (XX and YY share the sampling, hence the
# normalisation): a 12 degree beam's uv footprint is twice as wide, so a bin holds fewer
# independent modes and it takes twice the realisations to resolve 5 % (measured: ±0.039
# from 6 realisations, above pspec_tolerance.RESOLVE).
CUBES_PER_BEAM = {25.0: 3, 12.0: 6}


@dataclass(frozen=True)
class Realisations:
    spotcube: npt.NDArray[np.float64]  # (realisation, bin above K_MIN_TESTED) / input
    delay: npt.NDArray[np.float64]  # the same, the per-baseline delay spectrum's


def _white(k: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return AMPLITUDE * np.ones_like(k)


@pytest.fixture(
    scope="module", params=list(CUBES_PER_BEAM), ids=lambda f: f"gaussian{f:g}-snapshot"
)
def realisations(request: pytest.FixtureRequest) -> Realisations:
    fwhm = float(request.param)
    uvw, times = sim.track_uvw(sim.short_baselines_enu(110.0), N_TIMES, STEP_S)
    beam = sim.gaussian_beam_power(fwhm, NPIX, PIXSIZE, float(BAND.freq_hz.mean()))
    omega_pp = sim.omega_pp(beam, PIXSIZE)  # the simulation's beam, int A^2 dOmega
    ours, theirs = [], []
    for cube in range(CUBES_PER_BEAM[fwhm]):
        seeds = (101 + 2 * cube, 102 + 2 * cube)
        vis = {
            pol: sim.predict(
                uvw,
                BAND,
                sim.sky_cube(_white, BAND, npix=NPIX, pixsize=PIXSIZE, seed=s),
                beam,
                PIXSIZE,
            )
            for pol, s in zip(("XX", "YY"), seeds, strict=True)
        }
        ps = sim.spectrum_of(uvw, times, BAND, vis, fwhm)
        centres = np.sqrt(ps.k_edges[:-1] * ps.k_edges[1:])
        tested = centres > K_MIN_TESTED
        for p, pol in enumerate(ps.polarizations):
            ours.append(ps.p_sph[p][tested] / AMPLITUDE)
            reference = delay_spectrum.spherical_power(
                vis[pol], uvw, N_TIMES, BAND.freq_hz, omega_pp, ps.k_edges
            )
            theirs.append(reference[tested] / AMPLITUDE)
    return Realisations(np.asarray(ours), np.asarray(theirs))


def test_spotcube_recovers_the_input(realisations: Realisations) -> None:
    verdict = judge(realisations.spotcube)
    assert verdict.ok, verdict.why


def test_the_delay_spectrum_recovers_the_input(realisations: Realisations) -> None:
    """The independent estimator meets the same bound: the oracle and the simulation are right."""
    verdict = judge(realisations.delay)
    assert verdict.ok, verdict.why


def test_spotcube_over_the_delay_spectrum_is_one(realisations: Realisations) -> None:
    """Same sky, two estimators: their ratio scatters less than either, a tighter check."""
    verdict = judge(realisations.spotcube / realisations.delay)
    assert verdict.ok, verdict.why


@pytest.mark.parametrize("factor", [0.95, 1.05], ids=["x0.95", "x1.05"])
def test_a_five_percent_error_fails_the_check(realisations: Realisations, factor: float) -> None:
    verdict = judge(realisations.spotcube * factor)
    assert not verdict.ok, f"P(k) x {factor} passes: {verdict.why}"


@pytest.mark.parametrize("factor", [0.95, 1.05], ids=["x0.95", "x1.05"])
def test_a_five_percent_error_fails_the_comparison(
    realisations: Realisations, factor: float
) -> None:
    verdict = judge(realisations.spotcube * factor / realisations.delay)
    assert not verdict.ok, f"P(k) x {factor} passes: {verdict.why}"
