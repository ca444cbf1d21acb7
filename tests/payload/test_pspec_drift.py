"""An hour of drift scan through a fixed beam: spotcube's P(k) is the input's within 5 %
(issue 19, item 2).

Invariant: for a white sky (P = const) drifting for an hour through a beam fixed at zenith
(HERA's ``airy:14``, a Gaussian of 12 deg FWHM), the mean of spotcube / input over the
spherical bins above k = 0.18 Mpc^-1 is 1 within the realisations' scatter, every bin's mean
within 0.8-1.2; and the same check fails on spotcube's P(k) x 0.95 and x 1.05, and on the
estimator without segments (every time sample gridded into one cube: the power comes out
low, the sky of one end of the hour not being the sky of the other).

Oracle: matvis's visibilities of an isotropic white sky through pyuvdata's analytic beams,
phased as the reader phases drift data by pyuvdata (:mod:`.drift_sim`); a white sky's
expected value is the input amplitude in every bin, whatever the binning, so nothing of
spotcube's is in the expected value. The check and its tolerance are
:func:`.pspec_tolerance.judge`'s (``REALISATIONS`` skies x the bins).
"""

from __future__ import annotations

import json
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
# An hour of drift in 24 samples of 150 s: airy:14's segments (at most ~7.7 min at 164 MHz)
# hold 3 samples, the Gaussian's (~11 min) 4.
N_TIMES, STEP_S = 24, 150.0
REALISATIONS = 6
PIXSIZE = 0.015  # rad: the sky's aliases in uv at 67 wavelengths, beyond any coupled pair
BEAMS = {"airy:14": ("airy", 14.0), "gaussian:12": ("gaussian", 12.0)}


@dataclass(frozen=True)
class Drift:
    segmented: npt.NDArray[np.float64]  # (realisation, bin above K_MIN_TESTED) / input
    unsegmented: npt.NDArray[np.float64]
    segments: dict[str, object]


def _ratios(ps: object) -> npt.NDArray[np.float64]:
    edges = ps.k_edges  # type: ignore[attr-defined]
    centres = np.sqrt(edges[:-1] * edges[1:])
    return np.asarray(ps.p_sph[:, centres > K_MIN_TESTED]) / AMPLITUDE  # type: ignore[attr-defined]


@pytest.fixture(scope="module", params=list(BEAMS), ids=list(BEAMS))
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
    return Drift(_ratios(segmented), _ratios(unsegmented), json.loads(segmented.segments))


def test_the_hour_is_cut_into_segments(drift: Drift) -> None:
    assert int(drift.segments["n_segments"]) >= 5  # type: ignore[call-overload]
    assert sum(drift.segments["seconds"]) == pytest.approx(N_TIMES * STEP_S)  # type: ignore[arg-type]


def test_spotcube_recovers_the_input_over_an_hour_of_drift(drift: Drift) -> None:
    verdict = judge(drift.segmented)
    assert verdict.ok, verdict.why


@pytest.mark.parametrize("factor", [0.95, 1.05], ids=["x0.95", "x1.05"])
def test_a_five_percent_error_fails_the_check(drift: Drift, factor: float) -> None:
    verdict = judge(drift.segmented * factor)
    assert not verdict.ok, f"P(k) x {factor} passes: {verdict.why}"


def test_the_estimator_without_segments_fails_the_check(drift: Drift) -> None:
    """The old estimator (one coherent cube over the hour) is low: the check sees it."""
    verdict = judge(drift.unsegmented)
    assert not verdict.ok, f"the unsegmented estimator passes: {verdict.why}"
    assert verdict.mean < 0.95, verdict.why


def test_noise_sigma_of_segments_matches_the_scatter() -> None:
    """Segments averaged in power: their noise is independent, their error sums add.

    The noise-only setup of ``test_pspec_noise.py`` (MWA baselines < 60 m, 16 x 60 s, 64
    realisations) gridded in two segments of 8 samples; the quoted sigma of every spherical
    bin against the scatter over the realisations, with that file's bounds.
    """
    import math

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
