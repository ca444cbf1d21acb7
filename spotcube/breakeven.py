"""Cloud or own cluster: the break-even time of Sabater et al. (2017), eq. 1, for a plan.

Sabater et al., "Calibration of LOFAR data on the cloud", Astronomy and Computing 19, 75
(2017), arXiv:1704.05064, compare buying a cluster (investment ``I``, running cost ``R`` per
year: power, cooling, administration) with renting the same capacity in the cloud (cost ``C``
per year). The cluster pays for itself after

    t = I / (C - R)

years, when ``I + R t = C t``; if the cloud costs no more per year than running the cluster
(``C <= R``), it never does.

spotcube takes ``C`` from the plan's own simulation: the mean cost of one run on spot under
spotcube, for runs done back to back, each taking the plan's mean turnaround. That is the
paper's comparison with a *fully used* cluster of the fleet's size; a group that runs less
often than back to back pays the cloud less per year, and the break-even moves further out.
The number of runs that fit in ``t`` is ``t`` over the turnaround, which is also the number
of runs after which the cloud would have cost as much as the cluster: ``n S = I + R n T``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

HOURS_PER_YEAR = 365.25 * 24


@dataclass(frozen=True)
class ClusterCosts:
    """What an own cluster of the fleet's capacity costs: ``--cluster INVESTMENT,RUNNING``."""

    investment: float  # USD, once
    running_per_year: float  # USD per year

    @classmethod
    def parse(cls, text: str, option: str = "--cluster") -> ClusterCosts:
        """``INVESTMENT,RUNNING_PER_YEAR`` in USD, e.g. ``250000,30000``."""
        parts = [p.strip().replace("_", "") for p in text.split(",")]
        try:
            investment, running = (float(p) for p in parts)
        except ValueError:
            raise ValueError(
                f"{option} {text!r}: give INVESTMENT,RUNNING_PER_YEAR in USD, e.g. "
                "250000,30000 (the cluster's price, then its power, cooling and staff per year)"
            ) from None
        if not (math.isfinite(investment) and investment > 0):
            raise ValueError(f"{option} {text!r}: the investment must be a positive amount")
        if not (math.isfinite(running) and running >= 0):
            raise ValueError(f"{option} {text!r}: the running cost must not be negative")
        return cls(investment, running)


def breakeven_years(investment: float, cloud_per_year: float, running_per_year: float) -> float:
    """Sabater et al. (2017) eq. 1: ``I / (C - R)``; ``inf`` when the cloud is not dearer."""
    margin = cloud_per_year - running_per_year
    return investment / margin if margin > 0 else math.inf


@dataclass(frozen=True)
class BreakEven:
    """The break-even of one plan against one cluster."""

    cluster: ClusterCosts
    cost_per_run: float  # USD, the plan's mean under spotcube
    turnaround_hours: float  # the plan's mean turnaround of one run
    cloud_per_year: float
    years: float
    runs: float

    def to_dict(self) -> dict[str, Any]:
        finite = math.isfinite(self.years)
        return {
            "investment_usd": self.cluster.investment,
            "running_usd_per_year": self.cluster.running_per_year,
            "cloud_usd_per_run": self.cost_per_run,
            "run_turnaround_hours": self.turnaround_hours,
            "cloud_usd_per_year_back_to_back": self.cloud_per_year,
            "breakeven_years": self.years if finite else None,
            "runs_in_breakeven": self.runs if finite else None,
            "formula": "t = I / (C - R) (Sabater et al. 2017, eq. 1)",
        }

    def describe(self) -> str:
        """One or two sentences for the plan's table."""
        c = self.cluster
        head = (
            f"own cluster (${c.investment:,.0f} + ${c.running_per_year:,.0f}/yr) vs this "
            f"fleet run back to back (${self.cost_per_run:,.0f} per run of "
            f"{self.turnaround_hours:.3g} h = ${self.cloud_per_year:,.0f}/yr)"
        )
        if not math.isfinite(self.years):
            return (
                f"{head}: the cloud never costs more per year than running the cluster, so the "
                "cluster never pays for itself"
            )
        return (
            f"{head}: the cluster pays for itself after {self.years:.2g} years "
            f"(Sabater et al. 2017, eq. 1), i.e. after {self.runs:,.0f} runs of this size; "
            "fewer runs than that over the cluster's life favour the cloud"
        )


def breakeven(cluster: ClusterCosts, *, cost_per_run: float, turnaround_hours: float) -> BreakEven:
    """Break-even of ``cluster`` against runs costing ``cost_per_run`` done back to back."""
    if not (turnaround_hours > 0 and math.isfinite(turnaround_hours)):
        raise ValueError("a run's turnaround must be positive and finite")
    cloud_per_year = cost_per_run * HOURS_PER_YEAR / turnaround_hours
    years = breakeven_years(cluster.investment, cloud_per_year, cluster.running_per_year)
    return BreakEven(
        cluster=cluster,
        cost_per_run=cost_per_run,
        turnaround_hours=turnaround_hours,
        cloud_per_year=cloud_per_year,
        years=years,
        runs=years * HOURS_PER_YEAR / turnaround_hours,
    )
