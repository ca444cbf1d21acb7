"""An hour of drift scan through a fixed beam: spotcube's P(k) is right within 5 % (issue
19, item 2).

Invariant: for a white sky (P = const) drifting for an hour through a beam fixed at zenith
(HERA's ``airy:14``, a Gaussian of 12 deg FWHM), over the spherical bins above k = 0.18
Mpc^-1, spotcube / the input is 1 within the realisations' scatter and within 0.95-1.05,
and spotcube / an estimator that owes spotcube nothing (a per-baseline delay spectrum written
from Parsons et al. 2012, :mod:`.delay_spectrum`, on the same visibilities) is 1 within its
scatter, which is small enough to see 5 %: the same sky in both, their ratio scatters by
~2 % per bin where either over the input scatters by 7-9 %. The suite shows P(k) x 0.95 and
x 1.05 fail that check, and so does the estimator without segments (every time sample in
one coherent cube, normalised as if the beam stood still: 0.67 of the input for airy:14,
0.83 for the Gaussian).

Oracle: matvis's visibilities of an isotropic white sky through pyuvdata's analytic beams,
phased as the reader phases drift data by pyuvdata (:mod:`.drift_sim`); a white sky's
expected value is the input amplitude in every bin, whatever the binning, so nothing of
spotcube's is in the expected value. Checks and tolerances: :func:`.pspec_tolerance.judge`
(4 standard errors of realisations x bins, at most 3.5 %). Resolving 5 % against the input
itself takes ~12-20 realisations per beam (a few minutes of matvis each):
``bench/pspec_matrix.py --modes drift-1h`` does that (docs/imaging.md), and runs airy:14,
which the suite leaves to it (``SIMULATED``; measured 1.004 +- 0.015 of the delay spectrum
and 0.665 for the unsegmented estimator when it was here).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from . import drift_sim
from .pspec_tolerance import judge

pytestmark = pytest.mark.slow

FREQ_HZ = 167e6 - 16 * 200e3 + 200e3 * np.arange(32)
AMPLITUDE = 1e4  # mK^2 Mpc^3
K_MIN_TESTED = 0.18
# An hour of drift in 24 samples of 150 s: airy:14's segments (at most ~7.2 min at the
# band's top) hold 2 samples, the Gaussian's (~11.8 min) 4.
N_TIMES, STEP_S = 24, 150.0
REALISATIONS = 3
PIXSIZE = 0.015  # rad: the sky's aliases in uv at 67 wavelengths, beyond any coupled pair
BEAMS = {"airy:14": ("airy", 14.0), "gaussian:12": ("gaussian", 12.0)}
# The beams simulated in the suite. airy:14 (12 segments, ~160 s here) runs in the bench
# matrix instead (`bench/pspec_matrix.py --modes drift-1h`, 12 skies: docs/imaging.md), and
# end to end through the image job in test_drift_segments.py: the suite stays under 30 min.
SIMULATED = ("gaussian:12",)


@dataclass(frozen=True)
class Drift:
    segmented: npt.NDArray[np.float64]  # (realisation, bin above K_MIN_TESTED) / input
    unsegmented: npt.NDArray[np.float64]
    delay: npt.NDArray[np.float64]  # the delay spectrum / input, same bins
    segments: dict[str, object]


@pytest.fixture(scope="module", params=SIMULATED, ids=SIMULATED)
def drift(request: pytest.FixtureRequest) -> Drift:
    kind, size = BEAMS[request.param]
    obs = drift_sim.simulate(
        kind,
        size,
        FREQ_HZ,
        n_times=N_TIMES,
        step_s=STEP_S,
        amplitude=AMPLITUDE,
        seeds=tuple(range(31, 31 + REALISATIONS)),
        pixsize=PIXSIZE,
    )
    segmented = drift_sim.spotcube_spectrum(obs, request.param)
    unsegmented = drift_sim.spotcube_spectrum(obs, request.param, segmented=False)
    # both estimators bin the same k edges (one segment or many)
    np.testing.assert_array_equal(segmented.k_edges, unsegmented.k_edges)
    centres = np.sqrt(segmented.k_edges[:-1] * segmented.k_edges[1:])
    tested = centres > K_MIN_TESTED
    delay = drift_sim.delay_ratios(obs, segmented, K_MIN_TESTED, kind, size)
    return Drift(
        np.asarray(segmented.p_sph[:, tested]) / AMPLITUDE,
        np.asarray(unsegmented.p_sph[:, tested]) / AMPLITUDE,
        delay / AMPLITUDE,
        json.loads(segmented.segments),
    )


def test_the_hour_is_cut_into_segments(drift: Drift) -> None:
    assert int(drift.segments["n_segments"]) >= 5  # type: ignore[call-overload]
    assert sum(drift.segments["seconds"]) == pytest.approx(N_TIMES * STEP_S)  # type: ignore[arg-type]


@pytest.mark.parametrize("beam", list(BEAMS))
def test_the_simulated_sky_covers_the_beam(beam: str) -> None:
    """The sky's pixels reach SKY_RADIUS beyond the beam's track: the int A^2 left out is
    below 0.1 % (measured 2.4e-4 for airy:14, 8e-6 for the Gaussian)."""
    kind, size = BEAMS[beam]
    assert drift_sim.missing_share(kind, size, float(FREQ_HZ.min())) < 1e-3


def test_spotcube_over_the_delay_spectrum_is_one(drift: Drift) -> None:
    verdict = judge(drift.segmented / drift.delay)
    assert verdict.ok, verdict.why


@pytest.mark.parametrize("factor", [0.95, 1.05], ids=["x0.95", "x1.05"])
def test_a_five_percent_error_fails_the_check(drift: Drift, factor: float) -> None:
    verdict = judge(drift.segmented * factor / drift.delay)
    assert not verdict.ok, f"P(k) x {factor} passes: {verdict.why}"


def test_the_estimator_without_segments_fails_the_check(drift: Drift) -> None:
    """The old estimator (one coherent cube over the hour) is low, and the check sees it."""
    verdict = judge(drift.unsegmented / drift.delay)
    assert not verdict.ok, f"the unsegmented estimator passes: {verdict.why}"
    assert verdict.mean < 0.9, verdict.why


@pytest.mark.parametrize("estimator", ["spotcube", "delay spectrum"])
def test_both_recover_the_input_within_their_scatter(drift: Drift, estimator: str) -> None:
    """Against the input itself: the mean within 0.95-1.05 and within 4 standard errors of
    1, every bin's mean within 0.8-1.2 (the realisations here are too few for the standard
    error to resolve 5 %; the ratio above does, and the bench does with more skies)."""
    ratios = drift.segmented if estimator == "spotcube" else drift.delay
    mean = float(ratios.mean())
    tolerance = 4 * float(ratios.std(ddof=1)) / math.sqrt(ratios.size)
    per_bin = ratios.mean(axis=0)
    assert 0.95 <= mean <= 1.05, (mean, per_bin)
    assert abs(mean - 1) <= tolerance, (mean, tolerance, per_bin)
    assert np.all((per_bin >= 0.8) & (per_bin <= 1.2)), per_bin


def test_noise_sigma_of_segments_matches_the_scatter() -> None:
    """Segments averaged in power: their noise is independent, their error sums add.

    The noise-only setup of ``test_pspec_noise.py`` (MWA baselines < 60 m, 16 x 60 s, 64
    realisations) gridded in two segments of 8 samples; the quoted sigma of every spherical
    bin against the scatter over the realisations, with that file's bounds.
    """

    from payload.powerspec import DriftSegment, compute_power_spectrum

    from . import pspec_sim as sim
    from .test_pspec_noise import (
        N_REALISATIONS,
        _cube_of_realisations,
        _per_bin_bounds,
        _scatter_over_sigma,
    )

    uvw, times = sim.track_uvw(sim.short_baselines_enu(60.0), 16, 60.0)
    segments = [
        DriftSegment(_cube_of_realisations(uvw[rows], times[rows], 40.0, seed=11 + s), None, 480.0)
        for s, rows in enumerate((times < 8, times >= 8))
    ]
    ps = compute_power_spectrum(segments, n_k_bins=10)
    ratio, kurtosis = _scatter_over_sigma(ps.p_sph, ps.sigma_sph)
    low, high = _per_bin_bounds(float(kurtosis.mean()), N_REALISATIONS)
    pooled = math.sqrt(float((ratio**2).mean()))
    assert 0.85 <= pooled <= 1.15, (pooled, ratio)
    assert np.all((ratio > low) & (ratio < high)), (low, high, ratio)
    assert json.loads(ps.segments)["n_segments"] == 2
