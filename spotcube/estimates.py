"""Confidence intervals for what a run observed, from scipy.stats rather than by hand."""

from __future__ import annotations

from scipy.stats import chi2


def poisson_interval(count: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) confidence interval for the mean of a Poisson count.

    The chi-square form of the exact interval (Garwood 1936; e.g. Ulm 1990, Am. J.
    Epidemiol. 131, 373): ``chi2.ppf(α/2, 2k) / 2`` to ``chi2.ppf(1 - α/2, 2k + 2) / 2``,
    with 0 as the lower bound of a zero count. Divide by the exposure (instance-hours) for
    the interval of a hazard rate.
    """
    if count < 0:
        raise ValueError("a count cannot be negative")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    tail = (1 - confidence) / 2
    low = 0.0 if count == 0 else float(chi2.ppf(tail, 2 * count)) / 2
    high = float(chi2.ppf(1 - tail, 2 * count + 2)) / 2
    return low, high
