"""``spotcube plan``'s logic: parse its options, compare strategies, recommend, draw.

Three strategies are simulated with :mod:`spotcube.spotsim` for the same jobs and prices:

``on-demand``
    never terminated; the price ceiling.
``spot, manual resubmission``
    the published practice: rounds, a person resubmitting ``manual_lag`` after the last job of
    a round ends, ``manual_checkpoints`` evenly spaced checkpoints.
``spot, spotcube``
    the work plane: automatic requeue ``requeue_delay`` after a termination, a checkpoint every
    ``interval`` of progress (each costing ``checkpoint_cost``), optional on-demand fallback.

and a fourth, spotcube with the recommended interval, when it differs from the work plane's.
The work plane's interval is the one the stack deploys
(``spotcube:fleet.checkpointIntervalSeconds``, by default
:func:`infra.checkpointing.stack_interval_seconds` of its interruption rate), read from
``--config`` or given with ``--interval``. Recommendations: the checkpoint interval
(:func:`infra.checkpointing.recommended_interval` at the highest hazard given),
the fleet cap (the smallest that keeps the p90 turnaround within ``--deadline``, by default
within 10 % of an uncapped fleet's) and the budget (p99 of spotcube's cost plus 20 % for the
storage, transfer and requests the model leaves out).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np

from infra.checkpointing import (
    CHECKPOINT_COST_SECONDS,
    PUBLISHED_PERCENT_PER_HOUR,
    recommended_interval,
    stack_interval_seconds,
)
from spotcube import spotsim
from spotcube.prices import PriceQuote
from spotcube.spotsim import Hazard, RunModel

_UNIT_HOURS = {"s": 1 / 3600, "m": 1 / 60, "h": 1.0, "d": 24.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd])")
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*/\s*h\s*$")
BUDGET_MARGIN = 1.2
# Bounds of what `spotcube plan` simulates, so a typo gets a message, not a 20-minute run.
# The simulation's time grows as jobs^2 x runs (every event scans every job of every run):
# measured on one loaded core, 300 jobs x 1000 runs take 13 s and 2000 x 1000 eight minutes.
# 4e8 keeps a plan within about a minute: the default 1000 runs allow 632 jobs.
MAX_SIMULATION_WORK = 400_000_000  # jobs * jobs * runs
MIN_RUNS = 100  # fewer simulated runs say little about a p90 or p99
# One job is one observation on one instance: a month of compute is several jobs.
MAX_RUNTIME_HOURS = 24 * 31
# 90 %/h: an instance lives 26 minutes on average. No spot pool is that bad for long; a plan
# at such rates says only "use on-demand", which a lower rate says as well.
MAX_PERCENT_PER_HOUR = 90.0
MAX_MANUAL_CHECKPOINTS = 10_000
# A job terminated this often on average finishes in no useful time, and the simulator, which
# stops at spotsim.MAX_TERMINATIONS_PER_JOB in any one job, would work long before saying so.
# 50 keeps that stop out of reach: even a single-segment job (geometric terminations) passes
# 2,000 with probability e^-40.
MAX_EXPECTED_TERMINATIONS = 50
# Checkpoints in one job: past this an interval is a typo (a checkpoint every 2.7 s of a
# month-long job), and the simulator's segment counts must stay far inside int64.
MAX_CHECKPOINTS_PER_JOB = 1_000_000
# The stack's interval when no --config or --interval says otherwise (a stack's default).
STACK_DEFAULT_INTERVAL_HOURS = stack_interval_seconds(PUBLISHED_PERCENT_PER_HOUR) / 3600
STACK_DEFAULT_INTERVAL_SOURCE = (
    f"a stack's default: fleet.interruptionPercentPerHour {PUBLISHED_PERCENT_PER_HOUR:g}"
)


def parse_duration(text: str, option: str) -> float:
    """Hours in ``text`` such as ``633m``, ``10.5h``, ``1h30m``, ``300s`` or ``2d``."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _DURATION.sub("", compact):
        raise ValueError(
            f"{option} {text!r} is not a duration; write e.g. 633m, 10.5h, 1h30m, 300s"
        )
    return sum(float(n) * _UNIT_HOURS[u] for n, u in _DURATION.findall(compact))


def parse_rate_value(text: str, option: str) -> float:
    """A hazard per hour from ``P%/h`` (probability per hour) or ``L/h`` (a hazard rate)."""
    match = _RATE.match(text)
    if not match:
        raise ValueError(
            f"{option} {text!r} is not a rate; write e.g. 9%/h (probability per hour) or "
            "0.094/h (hazard per hour)"
        )
    value, percent = float(match.group(1)), match.group(2)
    if percent:
        if value >= 100:
            raise ValueError(f"{option} {text!r}: a probability per hour must be below 100%")
        return spotsim.hazard_from_percent(value)
    return value


def parse_rate(text: str, option: str = "--rate") -> Hazard:
    """A constant or piecewise hazard.

    ``9%/h`` is constant; ``5%/h@0-6h,12%/h`` is 5 %/h for the first six hours of the run and
    12 %/h after; pieces must follow each other from 0, and only the last may be open
    (no ``@`` or ``@6h-``).
    """
    pieces = [p.strip() for p in text.split(",")]
    rates: list[float] = []
    starts: list[float] = []
    expected_start = 0.0
    for index, piece in enumerate(pieces):
        rate_text, at, window = piece.partition("@")
        rates.append(parse_rate_value(rate_text, option))
        last = index == len(pieces) - 1
        if not at:
            if not last:
                raise ValueError(f"{option} {text!r}: only the last piece may omit @START-END")
            starts.append(expected_start)
            continue
        begin_text, dash, end_text = window.partition("-")
        begin = parse_duration(begin_text, option) if begin_text.strip() not in ("", "0") else 0.0
        if not dash or not math.isclose(begin, expected_start, abs_tol=1e-9):
            raise ValueError(
                f"{option} {text!r}: piece {piece!r} must start at "
                f"{expected_start:g}h, where the previous one ended"
            )
        starts.append(begin)
        if end_text.strip():
            end = parse_duration(end_text, option)
            if end <= begin:
                raise ValueError(f"{option} {text!r}: piece {piece!r} ends before it starts")
            expected_start = end
            if last:  # a closed last piece: the run keeps its rate afterwards
                continue
        elif not last:
            raise ValueError(f"{option} {text!r}: only the last piece may be open-ended")
    return Hazard(rates=tuple(rates), starts=tuple(starts))


def check_bounds(inputs: PlanInputs) -> None:
    """Refuse a plan the simulation cannot answer in useful time; say what to change.

    Every bound is computed from the inputs before any simulation: the size of the run (jobs
    and simulated runs) and, from :func:`expected_terminations`, how many attempts each job
    would need under every strategy the plan simulates.
    """
    jobs, runs = inputs.jobs, inputs.runs
    max_jobs = math.isqrt(MAX_SIMULATION_WORK // MIN_RUNS)
    if jobs > max_jobs:
        raise ValueError(
            f"--jobs {jobs:,} is more than the {max_jobs:,} a plan simulates (its time grows "
            f"as the square of the jobs); plan a batch of {max_jobs:,} and scale its cost"
        )
    if jobs * jobs * runs > MAX_SIMULATION_WORK:
        raise ValueError(
            f"--jobs {jobs:,} with --runs {runs:,} would take many minutes to simulate; pass "
            f"--runs {MAX_SIMULATION_WORK // (jobs * jobs)} or fewer (a run of many jobs varies "
            "little from one simulated run to the next)"
        )
    if inputs.runtime > MAX_RUNTIME_HOURS:
        raise ValueError(
            f"--runtime of {inputs.runtime:,.6g} h is more than {MAX_RUNTIME_HOURS} h of "
            "compute for one job; split the observation into several jobs"
        )
    percent = spotsim.percent_from_hazard(inputs.hazard.max_rate)
    if percent > MAX_PERCENT_PER_HOUR:
        raise ValueError(
            f"--rate of {percent:.6g}%/h is above {MAX_PERCENT_PER_HOUR:g}%/h: instances "
            "would live minutes; use on-demand, or another instance type or region"
        )
    if inputs.manual_checkpoints > MAX_MANUAL_CHECKPOINTS:
        raise ValueError(
            f"--manual-checkpoints {inputs.manual_checkpoints} is more than "
            f"{MAX_MANUAL_CHECKPOINTS}; by hand, a checkpoint every few minutes is spotcube"
        )
    for name, model in simulated_models(inputs).items():
        if model.segments > MAX_CHECKPOINTS_PER_JOB:
            rate = inputs.hazard.max_rate
            best = recommended_interval(rate, inputs.checkpoint_cost) if rate else inputs.runtime
            advice = _duration(max(best, inputs.runtime / MAX_CHECKPOINTS_PER_JOB))
            raise ValueError(
                f"under {name!r} a job would make {model.segments:,} checkpoints, more than "
                f"{MAX_CHECKPOINTS_PER_JOB:,}; pass --interval {advice} or longer"
            )
        if expected_terminations(model) > MAX_EXPECTED_TERMINATIONS:
            raise ValueError(_unfinishable(inputs, name, model))
    # Each simulated step makes one attempt in every run: the simulation's time grows with
    # the attempts a job needs, as measured for MAX_SIMULATION_WORK at about one termination.
    attempts = max(1 + expected_terminations(m) for m in simulated_models(inputs).values())
    if jobs * jobs * runs * attempts > 2 * MAX_SIMULATION_WORK:
        fewer = max(1, int(2 * MAX_SIMULATION_WORK / (jobs * jobs * attempts)))
        raise ValueError(
            f"{jobs:,} jobs needing about {attempts:.3g} attempts each would take many "
            f"minutes to simulate {runs:,} times; pass --runs {fewer} or fewer"
        )


def simulated_models(inputs: PlanInputs) -> dict[str, RunModel]:
    """The spot strategies :func:`make_plan` simulates, by name."""
    recommended = min(
        recommended_interval(inputs.hazard.max_rate, inputs.checkpoint_cost), inputs.runtime
    )
    models = {"spot, spotcube": inputs.spotcube()}  # first: a refusal is about the user's run
    if recommended > 0:  # 0 (free checkpoints) means "continuously": make_plan simulates no row
        models["spot, spotcube, recommended interval"] = inputs.spotcube(recommended)
    models["spot, manual resubmission"] = inputs.manual()
    return models


def expected_terminations(model: RunModel) -> float:
    """Mean terminations of one job of ``model`` at its highest hazard (an upper bound).

    Exact for a constant hazard λ: an attempt first survives the overhead ``o`` (probability
    ``p0 = exp(-λ o)``), then each of the ``S`` segments of ``s`` = interval + checkpoint cost
    (probability ``q = exp(-λ s)``), and a termination restarts from the last checkpoint. The
    segment failures number ``S (1 - q) / q`` (negative binomial), and each restart, plus the
    first attempt, fails its overhead ``(1 - p0) / p0`` times on average:
    ``S (1 - q) / (q p0) + (1 - p0) / p0``. Counting the last segment's checkpoint too makes it
    an upper bound; a piecewise hazard is bounded by its highest rate.
    """
    if model.on_demand_only:
        return 0.0
    rate = model.hazard.max_rate
    segment = model._step + model.checkpoint_cost
    exponent = rate * (model.overhead + segment)
    if exponent > 700:  # exp would overflow: no attempt survives
        expected = math.inf
    else:
        expected = model.segments * math.expm1(rate * segment) * math.exp(
            rate * model.overhead
        ) + math.expm1(rate * model.overhead)
    if model.fallback_after is not None:
        expected = min(expected, float(model.fallback_after))
    return expected


def _unfinishable(inputs: PlanInputs, strategy: str, model: RunModel) -> str:
    """Why a strategy's jobs would not finish, and the input to change (never to its value)."""
    rate = inputs.hazard.max_rate
    life = 1 / rate
    # Free checkpoints recommend 0 ("continuously"), which no model can run: the finest
    # interval a plan accepts stands for it.
    recommended = max(
        recommended_interval(rate, inputs.checkpoint_cost),
        inputs.runtime / MAX_CHECKPOINTS_PER_JOB,
    )
    at_recommended = replace(model, interval=min(recommended, inputs.runtime))
    why = (
        f"under {strategy!r} a job would be terminated {_count(expected_terminations(model))} "
        f"at {describe_hazard(inputs.hazard)}, where an instance lives {_hours(life)} on average"
    )
    if expected_terminations(at_recommended) <= MAX_EXPECTED_TERMINATIONS:
        if model.policy == "manual":
            count = math.ceil(inputs.runtime / recommended) - 1
            return f"{why}; pass --manual-checkpoints {count} or more"
        return f"{why}; pass --interval {_duration(recommended)} (recommended for this rate)"
    # Even the best interval cannot help: start-up or checkpoint writing outlasts instances.
    if rate * model.overhead >= rate * model.checkpoint_cost:
        return (
            f"{why}; each attempt spends --overhead starting: keep it well under "
            f"{_hours(life)} (a few minutes is typical)"
        )
    return (
        f"{why}; each checkpoint takes --checkpoint-cost to write: keep it well under "
        f"{_hours(life)} (seconds to a minute is typical)"
    )


def _count(value: float) -> str:
    return "without end" if not math.isfinite(value) else f"about {value:,.3g} times"


def _duration(hours: float) -> str:
    """``hours`` as a value ``--interval`` accepts: whole seconds, or minutes above two hours."""
    seconds = max(1, round(hours * 3600))
    return f"{round(seconds / 60)}m" if seconds >= 7200 else f"{seconds}s"


def describe_hazard(hazard: Hazard) -> str:
    """Inverse of :func:`parse_rate`, in probability per hour."""
    parts = []
    bounds = [*hazard.starts[1:], math.inf]
    for rate, start, end in zip(hazard.rates, hazard.starts, bounds, strict=True):
        pct = f"{spotsim.percent_from_hazard(rate):.3g}%/h"
        if math.isinf(end):
            parts.append(pct if start == 0 else f"{pct}@{start:g}h-")
        else:
            parts.append(f"{pct}@{start:g}h-{end:g}h")
    return ",".join(parts)


@dataclass(frozen=True)
class PlanInputs:
    """Everything ``spotcube plan`` needs (hours and USD/h)."""

    jobs: int
    runtime: float
    hazard: Hazard
    prices: PriceQuote
    overhead: float = 2 / 60
    fleet_cap: int | None = None
    manual_checkpoints: int = 2
    manual_lag: float = 4.0
    interval: float = STACK_DEFAULT_INTERVAL_HOURS  # the work plane's checkpoint interval
    checkpoint_cost: float = CHECKPOINT_COST_SECONDS / 3600
    requeue_delay: float = 3 / 60 + 5 / 3600  # ASG replacement + visibility reset
    fallback_after: int | None = None
    deadline: float | None = None
    runs: int = 1000
    seed: int = 0
    interval_source: str = STACK_DEFAULT_INTERVAL_SOURCE  # where the work plane's interval is from

    def base(self) -> RunModel:
        return RunModel(
            jobs=self.jobs,
            runtime=self.runtime,
            hazard=self.hazard,
            spot_price=self.prices.spot,
            on_demand_price=self.prices.on_demand,
            overhead=self.overhead,
            fleet_cap=self.fleet_cap,
        )

    def on_demand(self) -> RunModel:
        return replace(self.base(), on_demand_only=True)

    def manual(self) -> RunModel:
        return replace(self.base(), policy="manual", lag=self.manual_lag).with_checkpoints(
            self.manual_checkpoints
        )

    def spotcube(self, interval: float | None = None) -> RunModel:
        return replace(
            self.base(),
            policy="auto",
            delay=self.requeue_delay,
            interval=self.interval if interval is None else interval,
            checkpoint_cost=self.checkpoint_cost,
            fallback_after=self.fallback_after,
        )


@dataclass
class Plan:
    """Simulated strategies and recommendations."""

    inputs: PlanInputs
    strategies: dict[str, dict[str, dict[str, float]]]
    recommended_interval: float
    recommended_fleet_cap: int
    fleet_turnaround_p90: dict[int, float]
    budget: float
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        i = self.inputs
        return {
            "schema": 1,
            "inputs": {
                "jobs": i.jobs,
                "runtime_hours": i.runtime,
                "rate": describe_hazard(i.hazard),
                "hazard_per_hour": {
                    "starts_h": list(i.hazard.starts),
                    "rates": list(i.hazard.rates),
                },
                "overhead_hours": i.overhead,
                "fleet_cap": i.fleet_cap or i.jobs,
                "manual_checkpoints": i.manual_checkpoints,
                "manual_lag_hours": i.manual_lag,
                "interval_hours": i.interval,
                "interval_source": i.interval_source,
                "checkpoint_cost_hours": i.checkpoint_cost,
                "requeue_delay_hours": i.requeue_delay,
                "fallback_after": i.fallback_after,
                "runs": i.runs,
                "seed": i.seed,
            },
            "prices": i.prices.to_dict(),
            "strategies": self.strategies,
            "recommended": {
                "checkpoint_interval_hours": self.recommended_interval,
                "fleet_cap": self.recommended_fleet_cap,
                "budget_usd": self.budget,
                "fleet_cap_p90_turnaround_hours": {
                    str(k): v for k, v in self.fleet_turnaround_p90.items()
                },
            },
            "notes": self.notes,
        }


def make_plan(inputs: PlanInputs) -> Plan:
    """Simulate every strategy and work out the recommendations."""
    summaries: dict[str, dict[str, dict[str, float]]] = {}
    quantiles = (0.5, 0.9, 0.99)
    summaries["on-demand"] = spotsim.simulate(inputs.on_demand(), 1, seed=inputs.seed).summary(
        quantiles
    )
    summaries["spot, manual resubmission"] = spotsim.simulate(
        inputs.manual(), inputs.runs, seed=inputs.seed
    ).summary(quantiles)
    spotcube_stats = spotsim.simulate(inputs.spotcube(), inputs.runs, seed=inputs.seed)
    summaries["spot, spotcube"] = spotcube_stats.summary(quantiles)
    interval = min(
        recommended_interval(inputs.hazard.max_rate, inputs.checkpoint_cost), inputs.runtime
    )
    notes: list[str] = []
    if not math.isclose(interval, inputs.interval, rel_tol=0.05) and interval > 0:
        summaries["spot, spotcube, recommended interval"] = spotsim.simulate(
            inputs.spotcube(interval), inputs.runs, seed=inputs.seed
        ).summary(quantiles)
    if inputs.checkpoint_cost == 0:
        notes.append("checkpoint cost 0: Young/Daly says checkpoint continuously")
    if not math.isclose(interval, inputs.interval, rel_tol=0.05) and interval > 0:
        percent = spotsim.percent_from_hazard(inputs.hazard.max_rate)
        notes.append(
            f"to deploy the recommended interval, set spotcube:fleet.interruptionPercentPerHour "
            f"to {percent:.3g} (or fleet.checkpointIntervalSeconds to {interval * 3600:.0f})"
        )
    caps = _fleet_caps(inputs)
    target = inputs.deadline
    if target is None:
        target = 1.1 * caps[max(caps)]
    fitting = [cap for cap, p90 in caps.items() if p90 <= target]
    fleet_cap = min(fitting) if fitting else max(caps)
    if inputs.deadline is not None and not fitting:
        notes.append(f"no fleet cap up to {max(caps)} meets --deadline {inputs.deadline:g}h at p90")
    if inputs.prices.vcpus:
        notes.append(
            f"a fleet of {fleet_cap} x {inputs.prices.vcpus} vCPUs needs a spot vCPU quota "
            f"of {fleet_cap * inputs.prices.vcpus} (Service Quotas, 'All Standard Spot "
            "Instance Requests')"
        )
    budget = math.ceil(spotcube_stats.summary((0.99,))["cost"]["p99"] * BUDGET_MARGIN / 10) * 10
    return Plan(
        inputs=inputs,
        strategies=summaries,
        recommended_interval=interval,
        recommended_fleet_cap=fleet_cap,
        fleet_turnaround_p90=caps,
        budget=float(budget),
        notes=notes,
    )


def _fleet_caps(inputs: PlanInputs) -> dict[int, float]:
    """p90 turnaround of spotcube's policy for fleets of N, N/2, N/4, ... instances."""
    top = inputs.fleet_cap or inputs.jobs
    caps: list[int] = []
    cap = top
    while cap >= 1 and len(caps) < 8:
        caps.append(cap)
        cap = math.ceil(cap / 2) if cap > 1 else 0
    runs = max(100, inputs.runs // 5)
    return {
        c: float(
            np.quantile(
                spotsim.simulate(
                    replace(inputs.spotcube(), fleet_cap=c), runs, seed=inputs.seed
                ).turnaround,
                0.9,
            )
        )
        for c in caps
    }


def render_table(plan: Plan, *, width: int = 110) -> str:
    """The human-readable plan: a table of strategies and the recommendations."""
    from rich.console import Console
    from rich.table import Table

    i = plan.inputs
    table = Table(
        title=(
            f"{i.jobs} jobs x {_hours(i.runtime)} on {i.prices.instance_type}, "
            f"rate {describe_hazard(i.hazard)}, {i.runs} simulated runs"
        )
    )
    table.add_column("strategy")
    for column in ("cost mean", "cost p90", "turnaround mean", "turnaround p90"):
        table.add_column(column, justify="right")
    table.add_column("terminations", justify="right")
    table.add_column("rerun rounds", justify="right")
    for name, s in plan.strategies.items():
        table.add_row(
            name,
            f"${s['cost']['mean']:,.0f}",
            f"${s['cost']['p90']:,.0f}",
            _hours(s["turnaround"]["mean"]),
            _hours(s["turnaround"]["p90"]),
            f"{s['terminations']['mean']:.1f}",
            f"{s['rerun_rounds']['mean']:.1f}",
        )
    buffer = StringIO()
    console = Console(file=buffer, width=width, no_color=True, highlight=False)
    console.print(table)
    console.print(
        f"prices: on-demand ${i.prices.on_demand:.4g}/h ({i.prices.on_demand_source}); "
        f"spot ${i.prices.spot:.4g}/h ({i.prices.spot_source})"
    )
    console.print(
        f"recommended checkpoint interval: {_hours(plan.recommended_interval)} "
        f"(Young/Daly, shortened for the slowest job; the work plane uses {_hours(i.interval)}, "
        f"{i.interval_source})"
    )
    console.print(
        f"recommended fleet cap: {plan.recommended_fleet_cap} "
        + "(p90 turnaround by cap: "
        + ", ".join(f"{c}: {_hours(t)}" for c, t in plan.fleet_turnaround_p90.items())
        + ")"
    )
    console.print(
        f"budget to set for this run: ${plan.budget:,.0f} "
        "(p99 of spotcube's cost + 20% for storage and transfer)"
    )
    console.print(
        "rerun rounds: manual = resubmission rounds after the first; spotcube = most restarts "
        "of one job (spotcube requeues by itself)"
    )
    for note in plan.notes:
        console.print(f"note: {note}")
    return buffer.getvalue()


def _hours(hours: float) -> str:
    if not math.isfinite(hours):
        return "none"
    if hours < 1:
        return f"{hours * 60:.3g} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def plot(inputs: PlanInputs, path: Path, *, runs: int = 200) -> None:
    """Draw mean cost and turnaround against hourly rate, manual vs spotcube, to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    percents = np.array([0.25, 0.5, 1, 2, 4, 7, 10, 15, 20])
    fig, (ax_cost, ax_time) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    manual_intervals = {
        "manual, no checkpoints": math.inf,
        f"manual, {inputs.manual_checkpoints} checkpoints": inputs.runtime
        / (inputs.manual_checkpoints + 1),
        "manual, hourly checkpoints": 1.0,
    }
    curves: list[tuple[str, RunModel, dict[str, Any]]] = [
        (label, replace(inputs.manual(), interval=interval), {"lw": 1.2})
        for label, interval in manual_intervals.items()
    ]
    curves.append(
        (
            f"spotcube (requeue, {_hours(inputs.interval)} checkpoints)",
            inputs.spotcube(),
            {"lw": 2.8, "color": "black"},
        )
    )
    for label, model, style in curves:
        costs, times = [], []
        for pct in percents:
            hazard = Hazard.constant(spotsim.hazard_from_percent(float(pct)))
            stats = spotsim.simulate(replace(model, hazard=hazard), runs, seed=inputs.seed)
            costs.append(stats.cost.mean())
            times.append(stats.turnaround.mean())
        ax_cost.plot(percents, costs, marker="o", label=label, **style)
        ax_time.plot(percents, times, marker="o", label=label, **style)
    on_demand = spotsim.simulate(inputs.on_demand(), 1)
    for ax, value in ((ax_cost, on_demand.cost[0]), (ax_time, on_demand.turnaround[0])):
        ax.axhline(value, ls="--", color="grey", label="on-demand")
        ax.set_xscale("log")
        ax.set_xlabel("termination probability per hour (%)")
        ax.grid(alpha=0.3)
    ax_cost.set_ylabel("mean cost of the run (USD)")
    ax_time.set_ylabel("mean turnaround (h)")
    ax_time.set_yscale("log")
    ax_cost.legend(fontsize=8)
    fig.suptitle(
        f"{inputs.jobs} jobs x {_hours(inputs.runtime)} on {inputs.prices.instance_type} "
        f"(spot \\${inputs.prices.spot:.3g}/h, on-demand \\${inputs.prices.on_demand:.3g}/h)"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
