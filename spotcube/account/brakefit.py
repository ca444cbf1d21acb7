"""Does a planned run fit the stack's budget and its fast brake? (`spotcube plan --config`)

The fast brake (ADR 0002) fires when the fleet's month-to-date spend, priced at most
(on-demand for the on-demand base; spot minutes at the hour's highest Spot price of the
fleet's types, capped at ``min(on-demand, fleet.maxSpotPrice)``), exceeds
``budget.monthlyUsd``. A run fits when its instance-hours, priced the same way at the plan's
spot price, stay within the budget -- assuming it falls in one calendar month, nothing else of
the fleet runs that month, and the market stays at the plan's price (the verdict says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from infra.config import StackConfig
from infra.lambdas import meter


@dataclass(frozen=True)
class BrakeFit:
    bound_usd: float  # the run priced as the meter prices it
    budget_usd: float
    least_budget_usd: float  # the budget it needs (at least what config accepts)
    spot_cap_usd: float | None  # a fleet.maxSpotPrice that would make it fit, if one would

    @property
    def fits(self) -> bool:
        return self.bound_usd <= self.budget_usd

    def lines(self) -> list[str]:
        head = (
            f"brake: the run's instance-hours priced at most cost ${self.bound_usd:,.2f} of "
            f"budget.monthlyUsd ${self.budget_usd:,.2f}"
        )
        if self.fits:
            return [f"{head}: fits (the fast brake fires only above the budget)"]
        fixes = [f"budget.monthlyUsd {self.least_budget_usd:,.0f}"]
        if self.spot_cap_usd is not None:
            fixes.append(
                f"fleet.maxSpotPrice {self.spot_cap_usd:.4f} (spot above it will not launch)"
            )
        return [f"{head}: does NOT fit, the brake would stop it; set " + " or ".join(fixes)]


def brake_fit(
    config: StackConfig,
    *,
    instance_hours: float,
    turnaround_hours: float,
    spot_usd: float | None = None,
) -> BrakeFit:
    """``instance_hours`` of a run lasting ``turnaround_hours`` on ``config``'s fleet, spot
    hours at ``spot_usd`` (the market price the plan assumes; None: at the cap)."""
    budget = config.budget
    base_hours = min(instance_hours, config.fleet.on_demand_base * turnaround_hours)
    spot_hours = instance_hours - base_hours
    spot_price = budget.spot_bound_usd if spot_usd is None else min(spot_usd, budget.spot_bound_usd)
    bound = base_hours * budget.on_demand_usd + spot_hours * spot_price
    # Whole dollars, rounded up: a budget that fits to the cent fits (GreaterThanThreshold).
    least = max(math.ceil(bound), math.ceil(budget.brake_overshoot_usd / meter.BRAKE_MARGIN))
    cap: float | None = None
    room = budget.monthly_usd - base_hours * budget.on_demand_usd
    if spot_hours > 0 and room > 0:
        cap = math.floor(room / spot_hours * 10_000) / 10_000
    return BrakeFit(
        bound_usd=bound,
        budget_usd=budget.monthly_usd,
        least_budget_usd=least,
        spot_cap_usd=cap,
    )


def plan_lines(
    config: StackConfig,
    strategies: dict[str, dict[str, dict[str, float]]],
    *,
    spot_usd: float | None = None,
) -> list[str]:
    """The verdict for a `spotcube plan` result: its p99 run under spotcube's policy."""
    run = strategies["spot, spotcube"]
    fit = brake_fit(
        config,
        instance_hours=run["instance_hours"]["p99"],
        turnaround_hours=run["turnaround"]["p99"],
        spot_usd=spot_usd,
    )
    lines = [line.replace("the run's", "the p99 run's") for line in fit.lines()]
    if spot_usd is not None:
        lines.append(
            f"  (spot at the plan's ${spot_usd:.4g}/h; the brake bills each hour's highest "
            "Spot price of the fleet's types, so a dearer market brakes sooner)"
        )
    return lines
