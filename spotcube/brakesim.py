"""Months of fleet activity, honest and hostile, run through the fast brake as deployed.

The brake's rule (ADR 0002, infra/lambdas/meter.py): every ``METER_MINUTES`` the meter sums the
group's per-minute ``GroupTotalInstances`` samples since 00:00 UTC on the first of the month
into hour buckets, prices them at most (:func:`infra.lambdas.meter.priced_usd`), and the
alarm fires when that exceeds :func:`infra.lambdas.meter.brake_threshold_usd`. This module
builds per-minute instance counts for a span of calendar months and evaluates exactly that:
the same functions, the same hour buckets, the metric delay, the meter's schedule.

Workloads
---------
*Honest*: runs of ``jobs`` jobs of ``work`` minutes on at most ``cap`` instances, each attempt
paying a boot, spot interruptions drawn from :class:`spotcube.spotsim.Hazard` (progress since
the last checkpoint is lost, the job is requeued, the group launches a replacement; with
capacity rebalancing a replacement may overlap its predecessor, at most 10 % over the
maximum); and a fleet held at its maximum for days. *Hostile*: a fleet stuck at
``maxSize x 1.1`` from some minute on, and a resubmission loop (poison jobs that fail minutes
after boot and come back at once, so every slot churns for ever), each after an honest run.

Instances outside the group (a stolen deployer key) are not in the group's metric; they are
the account vCPU alarm's and the quarantine's (infra/guards.py), not this brake's.

Resolution is one minute, like the metric; billing by the second and the 60-second minimum
charge are not modelled (each changes an instance's cost by under a minute).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from infra.config import MAX_BUDGET_USD, BudgetConfig, FleetConfig, StackConfig, parse_config
from infra.lambdas import meter
from spotcube.spotsim import Hazard

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
SEED_JOBS = 100
SEED_WORK_MINUTES = 633  # one MWA observation on a 16-vCPU instance (DESIGN.md)
BOOT_MINUTES = 2
CHECKPOINT_MINUTES = 211  # two evenly spaced checkpoints in a 633-minute job
RELAUNCH_MINUTES = 1
REBALANCE_LEAD_MINUTES = 10
NO_INTERRUPTIONS = Hazard.constant(0.0)


@dataclass(frozen=True)
class Span:
    """Whole calendar months in UTC, minute by minute."""

    start: datetime  # 00:00 UTC on the first of a month
    months: int

    def month_bounds(self) -> list[tuple[int, int]]:
        """(first minute, end minute) of each month, relative to ``start``."""
        bounds: list[tuple[int, int]] = []
        begin = self.start
        for _ in range(self.months):
            end = (begin + timedelta(days=32)).replace(day=1)
            bounds.append((self.minute(begin), self.minute(end)))
            begin = end
        return bounds

    def minute(self, when: datetime) -> int:
        return int((when - self.start).total_seconds() // 60)

    @property
    def minutes(self) -> int:
        return self.month_bounds()[-1][1]


def counts_of(intervals: list[tuple[int, int]], minutes: int) -> IntArray:
    """Instances running in each minute, from [start, end) intervals in minutes."""
    diff = np.zeros(minutes + 1, dtype=np.int64)
    for begin, end in intervals:
        begin, end = max(0, begin), min(minutes, end)
        if end > begin:
            diff[begin] += 1
            diff[end] -= 1
    return np.cumsum(diff[:-1])


def run_intervals(
    rng: np.random.Generator,
    *,
    start: int,
    cap: int,
    jobs: int = SEED_JOBS,
    work: int = SEED_WORK_MINUTES,
    hazard: Hazard = NO_INTERRUPTIONS,
    rebalance: bool = True,
) -> list[tuple[int, int]]:
    """Instance intervals of one run on the work plane (requeue at once, group relaunches)."""
    ready: list[tuple[int, int, int]] = [(start, job, 0) for job in range(jobs)]
    slots = [start] * cap
    heapq.heapify(ready)
    intervals: list[tuple[int, int]] = []
    extra_ends: list[int] = []  # rebalancing replacements above the maximum still running
    over = math.ceil(0.1 * cap)
    while ready:
        t_ready, job, done = heapq.heappop(ready)
        t0 = max(t_ready, heapq.heappop(slots))
        life_h = hazard.termination_time_scalar(0.0, float(rng.exponential()))
        life = math.inf if math.isinf(life_h) else max(1, round(life_h * 60))
        needed = BOOT_MINUTES + work - done
        if needed <= life:
            intervals.append((t0, t0 + needed))
            heapq.heappush(slots, t0 + needed)
            continue
        end = t0 + int(life)
        intervals.append((t0, end))
        progress = done + max(0, int(life) - BOOT_MINUTES)
        done = max(done, (progress // CHECKPOINT_MINUTES) * CHECKPOINT_MINUTES)
        heapq.heappush(ready, (end, job, done))
        heapq.heappush(slots, end + RELAUNCH_MINUTES)
        if rebalance and rng.random() < 0.5:
            # A rebalance recommendation came first: the replacement overlaps the old one.
            extra_ends = [e for e in extra_ends if e > end - REBALANCE_LEAD_MINUTES]
            if len(extra_ends) < over:
                intervals.append((end - REBALANCE_LEAD_MINUTES, end))
                extra_ends.append(end)
    return intervals


def full_fleet_intervals(*, start: int, cap: int, minutes: int) -> list[tuple[int, int]]:
    return [(start, start + minutes)] * cap


def stuck_intervals(*, start: int, cap: int, until: int) -> list[tuple[int, int]]:
    """A fleet that never scales in, at its maximum plus rebalancing's 10 %."""
    return [(start, until)] * meter.most_instances(cap)


def loop_intervals(
    rng: np.random.Generator, *, start: int, cap: int, until: int
) -> list[tuple[int, int]]:
    """Poison jobs resubmitted for ever: each slot boots, fails after 1-5 minutes, relaunches."""
    intervals: list[tuple[int, int]] = []
    for _ in range(cap):
        t = start
        while t < until:
            end = t + BOOT_MINUTES + int(rng.integers(1, 6))
            intervals.append((t, end))
            t = end + RELAUNCH_MINUTES
    return intervals


@dataclass(frozen=True)
class MonthVerdict:
    month: int
    priced_usd: float  # the month's instance-minutes priced at most, brake included
    fired_minute: int | None  # minute of the span the alarm fired, None if it did not
    threshold_usd: float


def meter_value(
    counts: IntArray,
    month_begin: int,
    now: int,
    budget: BudgetConfig,
    base: int,
    spot_hourly: FloatArray | None = None,
) -> float:
    """What the meter publishes at minute ``now``: the month's visible samples, hour buckets,
    spot minutes at ``spot_hourly`` (the market's highest Spot price of each hour of the
    span, as DescribeSpotPriceHistory gives the meter; None: at the price cap)."""
    visible_end = max(month_begin, now - meter.METRIC_DELAY_MINUTES)
    samples = counts[month_begin:visible_end].astype(float)
    pad = (-len(samples)) % 60
    hourly = np.concatenate([samples, np.zeros(pad)]).reshape(-1, 60).sum(axis=1)
    first_hour = month_begin // 60  # months begin on the hour
    prices = None
    if spot_hourly is not None:
        prices = spot_hourly[first_hour : first_hour + len(hourly)].tolist()
    return meter.priced_usd(
        hourly.tolist(),
        on_demand_usd=budget.on_demand_usd,
        spot_bound_usd=budget.spot_bound_usd,
        on_demand_base=base,
        hourly_spot_usd=prices,
    )


def first_fire(
    counts: IntArray,
    begin: int,
    end: int,
    budget: BudgetConfig,
    base: int,
    spot_hourly: FloatArray | None = None,
) -> int | None:
    """The first meter run in [begin, end) whose value the alarm finds above its threshold.

    The value only grows within a month (more samples, each priced at a positive price), so
    the first run above the threshold is found by bisection over the meter's schedule.
    """
    ticks = list(range(begin + meter.METER_MINUTES, end + 1, meter.METER_MINUTES))
    threshold = budget.brake_threshold_usd

    def fires(i: int) -> bool:
        return meter_value(counts, begin, ticks[i], budget, base, spot_hourly) > threshold

    if not ticks or not fires(len(ticks) - 1):
        return None
    low, high = 0, len(ticks) - 1
    while low < high:
        mid = (low + high) // 2
        if fires(mid):
            high = mid
        else:
            low = mid + 1
    return ticks[low]


def brake(counts: IntArray, fired: int, fleet: FleetConfig) -> IntArray:
    """Counts after the brake: the fleet runs on for the alarm, the Lambda, the lifecycle
    hook's grace and the shutdown, then nothing (the brake stays on)."""
    stop = fired + math.ceil(
        meter.ALARM_MINUTES
        + meter.ACTION_MINUTES
        + fleet.checkpoint_grace_seconds / 60
        + meter.SHUTDOWN_MINUTES
    )
    braked = counts.copy()
    braked[stop:] = 0
    return braked


def evaluate(
    counts: IntArray,
    span: Span,
    budget: BudgetConfig,
    fleet: FleetConfig,
    spot_hourly: FloatArray | None = None,
) -> list[MonthVerdict]:
    """Each month of ``counts`` through the brake as deployed; a brake holds to the end."""
    verdicts: list[MonthVerdict] = []
    base = fleet.on_demand_base
    for month, (begin, end) in enumerate(span.month_bounds()):
        fired = first_fire(counts, begin, end, budget, base, spot_hourly)
        if fired is not None:
            counts = brake(counts, fired, fleet)
        priced = meter_value(
            counts, begin, end + meter.METRIC_DELAY_MINUTES, budget, base, spot_hourly
        )
        verdicts.append(MonthVerdict(month, priced, fired, budget.brake_threshold_usd))
    return verdicts


def month_spend(
    counts: IntArray,
    span: Span,
    budget: BudgetConfig,
    base: int,
    spot_hourly: FloatArray | None = None,
) -> list[float]:
    """Each month's instance-minutes priced as the meter prices them, with no brake."""
    return [
        meter_value(counts, b, e + meter.METRIC_DELAY_MINUTES, budget, base, spot_hourly)
        for b, e in span.month_bounds()
    ]


def spot_market(rng: np.random.Generator, span: Span, on_demand_usd: float) -> FloatArray:
    """An hourly Spot price: a level of 25-70 % of on-demand (AWS's "up to 90 % off"; the
    seed group paid about 40 %) that drifts by up to +-20 % over the span, never above
    on-demand."""
    hours = -(-span.minutes // 60)
    level = on_demand_usd * float(rng.uniform(0.25, 0.7))
    steps = rng.normal(0.0, 0.01, size=hours).cumsum()
    drift = np.clip(steps, -0.2, 0.2)
    return np.minimum(level * (1.0 + drift), on_demand_usd)


def span_of(year: int, month: int, months: int) -> Span:
    return Span(datetime(year, month, 1, tzinfo=UTC), months)


# --- months to judge ------------------------------------------------------------------------

EMAIL = "sim@example.org"


def stack_config(
    monthly_usd: float,
    *,
    max_size: int = 10,
    on_demand_base: int = 0,
    max_spot_price: float | None = None,
) -> StackConfig:
    """A stack config as `pulumi up` parses it (the brake's prices and threshold come from it)."""
    return parse_config(
        {
            "owner": "sim",
            "budget": {"monthlyUsd": monthly_usd, "emails": [EMAIL]},
            "fleet": {
                "maxSize": max_size,
                "onDemandBase": on_demand_base,
                "maxSpotPrice": max_spot_price,
            },
        },
        stack="sim",
    )


def smallest_budget(*, max_size: int, on_demand_base: int, max_spot_price: float | None) -> float:
    """The least monthlyUsd config accepts for this fleet (the brake stops within the margin)."""
    probe = stack_config(
        MAX_BUDGET_USD,
        max_size=max_size,
        on_demand_base=on_demand_base,
        max_spot_price=max_spot_price,
    )
    return math.ceil(probe.budget.brake_overshoot_usd / meter.BRAKE_MARGIN * 100) / 100


@dataclass(frozen=True)
class Month:
    """A generated workload with the stack it runs on."""

    kind: str  # "honest" or "hostile"
    story: str
    counts: IntArray
    config: StackConfig
    span: Span
    # The market's highest Spot price of each hour (None: priced at the cap, as before the
    # meter read Spot price history).
    spot_hourly: FloatArray | None = None


def _fleet(rng: np.random.Generator) -> dict[str, Any]:
    max_size = int(rng.choice([2, 5, 10, 10, 10, 20, 40]))
    base = int(rng.choice([0, 0, 0, 1, 2])) if max_size > 2 else 0
    price = None if rng.random() < 0.6 else round(float(rng.uniform(0.2, 0.9)), 3)
    return {"max_size": max_size, "on_demand_base": base, "max_spot_price": price}


def _honest_intervals(
    rng: np.random.Generator, span: Span, cap: int
) -> tuple[str, list[tuple[int, int]]]:
    minutes = span.minutes
    story = str(rng.choice(["seed", "seed-twice", "full-fleet-days", "mixed"]))
    hazard = Hazard.constant(-math.log1p(-float(rng.uniform(0.0, 0.15))))
    start = int(rng.integers(0, minutes - 1))
    if story == "seed":
        return story, run_intervals(rng, start=start, cap=cap, hazard=hazard)
    if story == "seed-twice":
        later = int(rng.integers(start, minutes))
        return story, [
            *run_intervals(rng, start=start, cap=cap, hazard=hazard),
            *run_intervals(rng, start=later, cap=cap, hazard=hazard),
        ]
    if story == "full-fleet-days":
        days = int(rng.integers(1, 8))
        return story, full_fleet_intervals(start=start, cap=cap, minutes=days * 1440)
    jobs = int(rng.integers(1, 300))
    work = int(rng.integers(30, 1500))
    return story, [
        *run_intervals(rng, start=start, cap=cap, jobs=jobs, work=work, hazard=hazard),
        *full_fleet_intervals(
            start=int(rng.integers(0, minutes)), cap=cap, minutes=int(rng.integers(60, 4000))
        ),
    ]


def honest_month(rng: np.random.Generator, span: Span) -> Month:
    """A workload whose every month fits a budget it is given (sometimes to the cent)."""
    fleet = _fleet(rng)
    story, intervals = _honest_intervals(rng, span, fleet["max_size"])
    counts = counts_of(intervals, span.minutes)
    probe = stack_config(MAX_BUDGET_USD, **fleet)
    market = spot_market(rng, span, probe.budget.on_demand_usd)
    # Honest means the real bill fits: spot minutes at the market price, not at the cap.
    spend = max(month_spend(counts, span, probe.budget, fleet["on_demand_base"], market))
    slack = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.0, 0.3))
    budget = max(spend * (1 + slack), smallest_budget(**fleet))
    return Month("honest", story, counts, stack_config(budget, **fleet), span, market)


def hostile_month(rng: np.random.Generator, span: Span) -> Month:
    """An honest run, then a stuck fleet or a resubmission loop from some minute to the end."""
    fleet = _fleet(rng)
    cap = fleet["max_size"]
    story, intervals = _honest_intervals(rng, span, cap)
    start = int(rng.integers(0, span.minutes - 60))
    if rng.random() < 0.5:
        story = f"{story}+stuck"
        intervals += stuck_intervals(start=start, cap=cap, until=span.minutes)
    else:
        story = f"{story}+loop"
        intervals += loop_intervals(rng, start=start, cap=cap, until=span.minutes)
    counts = counts_of(intervals, span.minutes)
    probe = stack_config(MAX_BUDGET_USD, **fleet)
    market = spot_market(rng, span, probe.budget.on_demand_usd)
    spend = max(month_spend(counts, span, probe.budget, fleet["on_demand_base"], market))
    low = smallest_budget(**fleet)
    budget = float(rng.uniform(low, max(low, 0.9 * spend)))
    config = stack_config(round(budget, 2), **fleet)
    return Month("hostile", story, counts, config, span, market)


@dataclass(frozen=True)
class Judgement:
    month: Month
    verdicts: list[MonthVerdict]

    @property
    def braked(self) -> bool:
        return any(v.fired_minute is not None for v in self.verdicts)

    @property
    def worst_overshoot(self) -> float:
        """The largest month spend over the budget, as a share of it (negative: under)."""
        budget = self.month.config.budget.monthly_usd
        return max(v.priced_usd for v in self.verdicts) / budget - 1

    def violations(self) -> list[str]:
        """What the brake got wrong in this workload, one line each (empty: nothing)."""
        m = self.month
        found: list[str] = []
        if m.kind == "honest" and self.braked:
            found.append(f"honest {m.story} braked")
        if self.worst_overshoot > meter.BRAKE_MARGIN + 1e-9:
            found.append(
                f"{m.kind} {m.story} spent {self.worst_overshoot:+.2%} of the budget "
                f"(margin {meter.BRAKE_MARGIN:.0%})"
            )
        return found


def judge(month: Month) -> Judgement:
    fleet = month.config.fleet
    verdicts = evaluate(month.counts, month.span, month.config.budget, fleet, month.spot_hourly)
    return Judgement(month, verdicts)


def generate(seed: int, count: int, *, year: int = 2026, months: int = 2) -> list[Month]:
    """``count`` workloads, alternately honest and hostile, each over ``months`` months
    starting in a month of ``year`` drawn from the seed (28- to 31-day months)."""
    rng = np.random.default_rng(seed)
    out: list[Month] = []
    for i in range(count):
        span = span_of(year, int(rng.integers(1, 12)), months)
        out.append(honest_month(rng, span) if i % 2 == 0 else hostile_month(rng, span))
    return out
