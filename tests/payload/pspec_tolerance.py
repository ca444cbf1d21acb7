"""A power spectrum against its expected value, with a tolerance set by realisation scatter.

The checks of the power-spectrum tests are one function, :func:`judge`, so that the suite can
show they see a 5 % error: the same function applied to spotcube's P(k) scaled by 0.95 and
1.05 must fail (``test_pspec_five_percent.py``).

``ratios`` are spotcube / expected for R independent sky realisations (rows) and the B
spherical bins above k = 0.18 Mpc^-1 (columns). Disjoint bins hold disjoint Fourier modes of
a Gaussian field, and the realisations are independent, so the R x B ratios scatter about
their mean with a standard error ``std / sqrt(R B)``; the mean must lie within
``Z_SIGMA`` standard errors of 1. The tolerance must itself be below ``RESOLVE``, or the case
cannot tell a 5 % error and the check fails as inconclusive. Each bin's mean over the
realisations must lie within 0.8-1.2 (the issue's per-bin bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# A mean that is Z_SIGMA standard errors off is a bias, not scatter (p ~ 6e-5, two-sided).
Z_SIGMA = 4.0
# The largest tolerance that still resolves a 5 % error with room for a ~1 % true bias.
RESOLVE = 0.035
BIN_BOUNDS = (0.8, 1.2)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    mean: float
    tolerance: float
    why: str


def judge(ratios: npt.NDArray[np.float64]) -> Verdict:
    """Is the mean of ``ratios`` (realisation x bin) 1 within its scatter, every bin in bounds?"""
    values = np.asarray(ratios, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 2 or values.shape[1] < 3:
        raise ValueError(f"need >= 2 realisations x >= 3 bins, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        return Verdict(False, math.nan, math.nan, "a ratio is not finite")
    mean = float(values.mean())
    tolerance = Z_SIGMA * float(values.std(ddof=1)) / math.sqrt(values.size)
    per_bin = values.mean(axis=0)
    shown = ", ".join(f"{r:.3f}" for r in per_bin)
    if tolerance > RESOLVE:
        return Verdict(False, mean, tolerance, f"scatter too large to see 5 %: ±{tolerance:.3f}")
    if abs(mean - 1.0) > tolerance:
        return Verdict(False, mean, tolerance, f"mean {mean:.4f} not 1 ± {tolerance:.4f} [{shown}]")
    low, high = BIN_BOUNDS
    if not np.all((per_bin >= low) & (per_bin <= high)):
        return Verdict(False, mean, tolerance, f"a bin outside {low}-{high}: [{shown}]")
    return Verdict(True, mean, tolerance, f"mean {mean:.4f} ± {tolerance:.4f} [{shown}]")
