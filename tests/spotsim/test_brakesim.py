"""The fast brake as deployed, on simulated months (ADR 0002; long version: bench/brake_month.py).

Invariants: a month whose real bill (spot minutes at the market's Spot price, as the meter
reads it from DescribeSpotPriceHistory) fits the budget is never braked; no month
ends more than ``BRAKE_MARGIN`` over the budget, whatever runs; the brake fires at the first
meter run whose month-to-date value exceeds the budget, not a cent earlier.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.lambdas import meter
from spotcube import brakesim
from spotcube.spotsim import Hazard, hazard_from_percent

SEED = 20261207


def test_seeded_months_keep_the_brakes_promise() -> None:
    months = brakesim.generate(SEED, 24)
    judged = [brakesim.judge(m) for m in months]
    assert [line for j in judged for line in j.violations()] == []
    honest = [j for j in judged if j.month.kind == "honest"]
    hostile = [j for j in judged if j.month.kind == "hostile"]
    assert not any(j.braked for j in honest)
    # Every hostile workload is given a budget below what it would spend: each is braked.
    assert all(j.braked for j in hostile), [j.month.story for j in hostile if not j.braked]


def _seed_run(budget_usd: float, seed: int = 3) -> brakesim.Judgement:
    """The seed workload: 100 x 633 min, maxSize 10, spot interruptions at 9 %/h."""
    span = brakesim.span_of(2026, 3, 1)
    rng = np.random.default_rng(seed)
    intervals = brakesim.run_intervals(
        rng, start=600, cap=10, hazard=Hazard.constant(hazard_from_percent(9.0))
    )
    counts = brakesim.counts_of(intervals, span.minutes)
    config = brakesim.stack_config(budget_usd)
    return brakesim.judge(brakesim.Month("honest", "seed", counts, config, span))


def test_seed_workload_billed_at_the_spot_market_is_not_braked_by_its_on_demand_price() -> None:
    """The seed workload at a Spot price of 40 % of on-demand, on a budget that fits its real
    bill but not the same minutes at on-demand: it runs unbraked. (Before the meter read the
    Spot price history it priced spot at the cap, on-demand by default, and braked it.)"""
    probe = _seed_run(10_000.0)
    span, counts = probe.month.span, probe.month.counts
    on_demand = probe.month.config.budget.on_demand_usd
    market = np.full(-(-span.minutes // 60), 0.4 * on_demand)
    minutes = int(counts.sum())
    real_bill = minutes / 60 * 0.4 * on_demand  # computed here, not by the meter
    budget = math.ceil(real_bill * 1.05)
    assert minutes / 60 * on_demand > budget  # at the cap this month would be braked
    config = brakesim.stack_config(budget)
    month = brakesim.Month("honest", "seed-at-market", counts, config, span, market)
    judged = brakesim.judge(month)
    assert not judged.braked
    assert judged.verdicts[0].priced_usd == pytest.approx(real_bill, abs=0.01)
    capped = brakesim.judge(brakesim.Month("honest", "seed-at-cap", counts, config, span))
    assert capped.braked


def test_seed_workload_runs_at_its_cost_and_brakes_a_cent_below() -> None:
    """At a budget equal to the run's priced spend it finishes unbraked (GreaterThanThreshold);
    a cent less and it is braked, still within the margin."""
    probe = _seed_run(10_000.0)
    spend = probe.verdicts[0].priced_usd
    # An independent count of the same minutes: the meter's hour buckets lose nothing.
    minutes = int(probe.month.counts.sum())
    assert spend == pytest.approx(minutes / 60 * probe.month.config.budget.spot_bound_usd, abs=0.01)
    # Interruptions and requeues cost more than the 100 x 633 minutes of work.
    assert minutes > 100 * 633
    fits = _seed_run(spend)
    assert not fits.braked
    assert fits.verdicts[0].priced_usd == spend
    short = _seed_run(spend - 0.01)
    assert short.braked
    assert short.worst_overshoot <= meter.BRAKE_MARGIN


def test_full_fleet_for_days_that_fits_is_not_braked() -> None:
    """The issue's complaint: a fleet at maxSize for hours was always braked. Ten instances
    for six days, at a budget of exactly their price-bound cost, run to the end."""
    span = brakesim.span_of(2026, 2, 1)
    counts = brakesim.counts_of(
        brakesim.full_fleet_intervals(start=0, cap=10, minutes=6 * 1440), span.minutes
    )
    cost = 10 * 6 * 24 * brakesim.stack_config(1000.0).budget.on_demand_usd
    judged = brakesim.judge(
        brakesim.Month("honest", "days", counts, brakesim.stack_config(cost), span)
    )
    assert not judged.braked
    # the meter counts whole cents
    assert judged.verdicts[0].priced_usd == pytest.approx(cost, abs=0.01)


def test_stuck_fleet_brakes_at_the_first_meter_run_above_the_budget() -> None:
    """Oracle by hand: 11 instances (10 + rebalancing's 10 %) at $0.768/h from minute 0; the
    meter at minute t sees t - 5 minutes. It fires at the first multiple of 10 minutes whose
    visible spend exceeds the budget."""
    budget = 200.0
    config = brakesim.stack_config(budget)
    span = brakesim.span_of(2026, 5, 1)
    counts = brakesim.counts_of(
        brakesim.stuck_intervals(start=0, cap=10, until=span.minutes), span.minutes
    )
    judged = brakesim.judge(brakesim.Month("hostile", "stuck", counts, config, span))
    rate = 11 * config.budget.on_demand_usd / 60  # USD per minute
    visible = math.floor(budget / rate) + 1  # first whole minute above the budget
    expected = math.ceil((visible + meter.METRIC_DELAY_MINUTES) / 10) * 10
    assert judged.verdicts[0].fired_minute == expected
    assert 0 < judged.worst_overshoot <= meter.BRAKE_MARGIN


def test_month_boundary_starts_the_count_again() -> None:
    """A month's spend does not count against the next: a run spending the whole budget in the
    last days of one month and again in the first days of the next is not braked."""
    span = brakesim.span_of(2026, 4, 2)
    (_, april_end), _ = span.month_bounds()
    days = 3 * 1440
    intervals = [
        *brakesim.full_fleet_intervals(start=april_end - days, cap=10, minutes=days),
        *brakesim.full_fleet_intervals(start=april_end, cap=10, minutes=days),
    ]
    counts = brakesim.counts_of(intervals, span.minutes)
    cost = 10 * 3 * 24 * brakesim.stack_config(1000.0).budget.on_demand_usd
    judged = brakesim.judge(
        brakesim.Month("honest", "straddle", counts, brakesim.stack_config(cost), span)
    )
    assert not judged.braked
    assert [v.priced_usd for v in judged.verdicts] == pytest.approx([cost, cost], abs=0.01)


def test_on_demand_base_is_priced_at_on_demand() -> None:
    """With a spot cap below on-demand, the base's minutes cost on-demand: a fleet of only the
    base is priced at on-demand, a larger one at on-demand for the base and the cap above."""
    config = brakesim.stack_config(5000.0, on_demand_base=2, max_spot_price=0.3)
    budget = config.budget
    assert budget.spot_bound_usd == 0.3
    hour = [5 * 60.0]
    priced = meter.priced_usd(
        hour, on_demand_usd=budget.on_demand_usd, spot_bound_usd=0.3, on_demand_base=2
    )
    assert priced == pytest.approx(2 * budget.on_demand_usd + 3 * 0.3, abs=0.01)


def test_budget_too_small_for_the_fleet_is_refused_with_the_amount() -> None:
    from infra.config import ConfigError

    least = brakesim.smallest_budget(max_size=40, on_demand_base=0, max_spot_price=None)
    brakesim.stack_config(least, max_size=40)
    with pytest.raises(ConfigError, match=r"give at least \$"):
        brakesim.stack_config(least - 1, max_size=40)


def test_plan_verdict_agrees_with_the_brake() -> None:
    """`spotcube plan --budget-config` says what to set; set it and the simulated run is not
    braked, one dollar less and it is."""
    from spotcube.account.brakefit import brake_fit

    probe = _seed_run(10_000.0)
    hours = float(probe.month.counts.sum()) / 60
    small = brakesim.stack_config(200.0)
    verdict = brake_fit(small, instance_hours=hours, turnaround_hours=100.0)
    assert not verdict.fits
    assert not brake_fit(
        brakesim.stack_config(verdict.least_budget_usd - 1),
        instance_hours=hours,
        turnaround_hours=100.0,
    ).fits
    assert not _seed_run(verdict.least_budget_usd).braked
    assert _seed_run(verdict.least_budget_usd - 1).braked
    assert verdict.spot_cap_usd is not None
    capped = brakesim.stack_config(200.0, max_spot_price=verdict.spot_cap_usd)
    assert brake_fit(capped, instance_hours=hours, turnaround_hours=100.0).fits


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(0, 44), min_size=1, max_size=300),
    base=st.integers(0, 5),
    spot=st.floats(0.01, 0.768),
)
def test_meter_price_is_an_upper_bound_of_the_minute_by_minute_bill(
    counts: list[int], base: int, spot: float
) -> None:
    """Independent oracle: bill each minute as the group would be billed (the base's
    instances on-demand, the rest at the spot bound). The meter, which sees only hourly
    sums, never prices less (the honest guarantee needs no more), and for a group without
    an on-demand base it is exact to the cent (the hostile margin needs no less)."""
    on_demand = 0.768
    exact = sum(min(n, base) * on_demand + max(n - base, 0) * spot for n in counts) / 60
    hours = np.add.reduceat(np.array(counts, dtype=float), np.arange(0, len(counts), 60))
    priced = meter.priced_usd(
        hours.tolist(), on_demand_usd=on_demand, spot_bound_usd=spot, on_demand_base=base
    )
    assert priced >= exact - 0.01  # rounded down to the cent
    if base == 0:
        assert priced == pytest.approx(exact, abs=0.01)


def test_plan_verdict_at_the_market_price_agrees_with_the_brake() -> None:
    """With the plan's spot price the verdict's least budget runs the seed workload unbraked
    when the market is at that price, and a dollar less brakes it."""
    from spotcube.account.brakefit import brake_fit

    probe = _seed_run(10_000.0)
    span, counts = probe.month.span, probe.month.counts
    spot = 0.4 * probe.month.config.budget.on_demand_usd
    market = np.full(-(-span.minutes // 60), spot)
    hours = float(counts.sum()) / 60
    verdict = brake_fit(
        brakesim.stack_config(200.0), instance_hours=hours, turnaround_hours=100.0, spot_usd=spot
    )
    at_cap = brake_fit(brakesim.stack_config(200.0), instance_hours=hours, turnaround_hours=100.0)
    assert verdict.least_budget_usd < at_cap.least_budget_usd

    def judged(budget: float) -> brakesim.Judgement:
        config = brakesim.stack_config(budget)
        return brakesim.judge(brakesim.Month("honest", "seed", counts, config, span, market))

    assert not judged(verdict.least_budget_usd).braked
    assert judged(verdict.least_budget_usd - 1).braked
