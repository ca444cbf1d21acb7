"""A pointed MWA tile over a 20-minute drift, simulated by matvis with mwa_hyperbeam's beam.

MWA tiles do not track: an observation is a drift at fixed beamformer delays. Here 24 tiles
(at least 5 m apart within 45 m) at the MWA's site watch a white sky drift through the beam
pointed 12.8 deg west (delays 6,4,2,0 x 4) for 10 x 120 s; matvis computes the visibilities
with mwa_hyperbeam's own ``AnalyticBeam`` tabulated as a pyuvdata ``UVBeam``
(:func:`.drift_sim.mwa_uvbeam`), pyuvdata phases them to the middle time's zenith as the
reader does, and spotcube (two drift segments, each rephased to its own zenith) is compared
bin by bin with the per-baseline delay spectrum of the same visibilities (Parsons et al.
2012, :mod:`.delay_spectrum`, normalised by int A^2 dOmega of the hyperbeam pattern, the
expectation of |V|^2 for this sky, which is white per solid angle) and with the input
amplitude. Coarse sky pixels (0.03 rad) and 16 channels keep it near half a minute; the bench
(``bench/pspec_matrix.py``, MWA drift rows) runs the hour.

This tile seen from the zenith phase centre has int A^2 dOmega 4.0 % above the flat-sky
int A^2 dl dm: until spotcube's normaliser took the solid angle (2026-12-07), its P(k) read
that much high here (1.055 of this delay spectrum), which
``test_the_flat_sky_normaliser_is_caught`` keeps visible.

Tolerances, from what these seeds give (measured 2026-12-07): spotcube over the delay
spectrum of the same skies is 1.019 (per sky and bin 0.97-1.04; the same sky in both), so
its mean is held to 2.5 %, midway between that and x0.95 (0.968), which fails it, as do
x1.05 (1.070) and the flat-sky measure (x1.040: 1.060). Over the input (two skies, 16
channels: a few per cent of sample variance per bin) 1.023, bins 0.99-1.04 (1.058 under the
flat-sky measure): the mean is held to 0.9-1.1 and every bin to 0.75-1.25.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from . import delay_spectrum
from . import drift_sim as ds

pytestmark = pytest.mark.slow

DELAYS = (6, 4, 2, 0) * 4
AMPLITUDE = 1e4
K_MIN = 0.18
FREQ = np.asarray(167e6 - 8 * 200e3 + 200e3 * np.arange(16), dtype=np.float64)
MEAN_TOLERANCE = 0.025


@pytest.fixture(scope="module")
def ratios() -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    obs = ds.simulate(
        "mwa",
        0.0,
        FREQ,
        n_times=10,
        step_s=120.0,
        amplitude=AMPLITUDE,
        seeds=(11, 12),
        pixsize=0.03,
        delays=DELAYS,
        enu=ds.compact_array(24, 45.0, 5.0, 3),
    )
    ps = ds.spotcube_spectrum(obs, "mwa:" + ",".join(str(d) for d in DELAYS))
    centres = np.sqrt(ps.k_edges[:-1] * ps.k_edges[1:])
    tested = centres > K_MIN
    ours = np.asarray(ps.p_sph)[:, tested]
    omega_pp = ds.mwa_omega_pp(DELAYS, float(FREQ.mean()))  # int A^2 dOmega
    theirs = np.asarray(
        [
            delay_spectrum.spherical_power(
                obs.vis[name], obs.uvw_m, 10, FREQ, omega_pp, ps.k_edges
            )[tested]
            for name in obs.vis
        ]
    )
    segments = json.loads(ps.segments)
    segments["solid_angle_over_dl_dm"] = omega_pp / ds.mwa_omega_pp(
        DELAYS, float(FREQ.mean()), solid_angle=False
    )
    return ours, theirs, segments


def _agrees_with_delay_spectrum(ours: np.ndarray, theirs: np.ndarray) -> bool:
    return abs(float((ours / theirs).mean()) - 1) < MEAN_TOLERANCE


def test_segments_are_used(ratios: tuple[np.ndarray, np.ndarray, dict[str, object]]) -> None:
    assert ratios[2]["n_segments"] == 2


def test_spotcube_matches_the_delay_spectrum_and_the_input(
    ratios: tuple[np.ndarray, np.ndarray, dict[str, object]],
) -> None:
    ours, theirs, _ = ratios
    assert ours.shape[1] >= 4, "too few bins above k_min"
    assert _agrees_with_delay_spectrum(ours, theirs), np.round(ours / theirs, 3)
    over_input = ours.mean(axis=0) / AMPLITUDE
    assert 0.9 < over_input.mean() < 1.1, np.round(over_input, 3)
    assert np.all((over_input > 0.75) & (over_input < 1.25)), np.round(over_input, 3)


@pytest.mark.parametrize("factor", [0.95, 1.05], ids=["x0.95", "x1.05"])
def test_a_five_percent_error_is_caught(
    ratios: tuple[np.ndarray, np.ndarray, dict[str, object]], factor: float
) -> None:
    ours, theirs, _ = ratios
    assert not _agrees_with_delay_spectrum(factor * ours, theirs)


def test_the_flat_sky_normaliser_is_caught(
    ratios: tuple[np.ndarray, np.ndarray, dict[str, object]],
) -> None:
    """The error this test file was written to catch: P(k) normalised by int A^2 dl dm reads
    int A^2 dOmega / int A^2 dl dm (4.0 % here) high, and that fails the comparison."""
    ours, theirs, segments = ratios
    factor = segments["solid_angle_over_dl_dm"]
    assert isinstance(factor, float)
    assert factor == pytest.approx(1.040, abs=0.002)
    assert not _agrees_with_delay_spectrum(ours * factor, theirs)
