"""Monte Carlo of a processing run on spot instances: cost, turnaround, terminations.

A run is ``jobs`` independent jobs of ``runtime`` hours of compute each, processed by at most
``fleet_cap`` instances at a time. Every attempt at a job first spends ``overhead`` hours
(boot, download, set-up) that produce no progress, then works from the job's last durable
checkpoint. A spot instance is terminated at the first event of a Poisson process whose rate
(the *hazard*, per hour) may change with wall-clock time since the run started; progress since
the last checkpoint is lost. Checkpoints fall every ``interval`` hours of progress and each
costs ``checkpoint_cost`` hours of wall time (not the final one: writing products is part of
the runtime).

Two resubmission policies:

``manual`` (the published practice)
    A run proceeds in *rounds*. In each round every pending job is started (fleet cap
    permitting); terminated jobs wait until the last running job of the round has ended, then a
    human notices after ``lag`` hours and resubmits them all together. ``rerun_rounds`` counts
    the rounds after the first.
``auto`` (spotcube's work plane)
    A terminated job's message becomes visible again and is picked up by the next free
    instance ``delay`` hours after the termination. ``rerun_rounds`` is then the largest number
    of times one job was restarted, the quantity that plays the same role.

After ``fallback_after`` terminations a job's further attempts run on on-demand capacity,
which is never terminated. Instances are billed per second of running time (overhead
included) at the spot or on-demand price.

Rates and the published model
-----------------------------
The published MWA study quotes hazards as a *probability per hour* ``p`` ("15 %/h"): a
633-minute job is then terminated with probability ``1 - (1 - p)**(633/60)`` = 82 % at 15 %/h.
The equivalent constant hazard is ``λ = -ln(1 - p)`` (:func:`hazard_from_percent`); this
module works in ``λ`` and the CLI accepts ``p``. The study matched its two observed runs (one
and six rerun rounds) by simulating 100 jobs of 633 minutes with 2 minutes of overhead, two
evenly spaced checkpoints (every 211 minutes of progress) and manual resubmission 4 hours after
the last job ended, then reading off the hourly rate that gives that many rounds: about 0.7 %/h
for one round and about 9 %/h for six. ``tests/spotsim/test_published.py`` repeats that
matching with this simulator: the rate whose median number of rounds is 1 (resp. 6) brackets
0.7 %/h (resp. 9 %/h). With zero overhead each job's number of terminations is negative
binomial (``k + 1`` segments, each survived with probability ``exp(-λ τ)``) and the rounds of a
run are the maximum over jobs, which the tests check exactly.

Not modelled: correlated reclamation of many instances at once, capacity shortages (an
instance is always available when asked for), the 60-second minimum charge, storage and data
transfer.

Implementation
--------------
:func:`simulate` is vectorised over runs: each step of its loop makes one attempt in every run
that is not finished, choosing, as a work-conserving scheduler would, the job that has waited
longest and the instance slot that frees first. The number of steps is the largest number of
attempts any run needs, so 1,000 runs of 100 jobs take a few hundred numpy steps.
:func:`simulate_loop` is the same model written as a plain per-run, per-job Python loop; the
tests check that the two agree statistically and ``bench/spotsim.py`` times both.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

# The interval rule the stack deploys (planning recommends the same one), re-exported here.
from infra.checkpointing import hazard_from_percent as hazard_from_percent
from infra.checkpointing import young_daly_interval as young_daly_interval

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Policy = Literal["manual", "auto"]


def percent_from_hazard(hazard_per_hour: float) -> float:
    """Probability (in %) that an instance is terminated within one hour at this hazard."""
    return -math.expm1(-hazard_per_hour) * 100.0


@dataclass(frozen=True)
class Hazard:
    """A termination hazard, piecewise constant in wall-clock hours since the run started.

    Parameters
    ----------
    rates : tuple of float
        Hazard per hour in each piece; the last piece lasts for ever.
    starts : tuple of float
        Start of each piece in hours; ``starts[0]`` must be 0 and the starts increase.
    """

    rates: tuple[float, ...]
    starts: tuple[float, ...] = (0.0,)

    def __post_init__(self) -> None:
        if len(self.rates) != len(self.starts) or not self.rates:
            raise ValueError("a hazard needs one start time per rate")
        if self.starts[0] != 0.0 or any(
            b <= a for a, b in zip(self.starts, self.starts[1:], strict=False)
        ):
            raise ValueError("hazard pieces must start at 0 h and follow each other in time")
        if any(not math.isfinite(r) or r < 0 for r in self.rates):
            raise ValueError("hazard rates must be finite and non-negative")

    @classmethod
    def constant(cls, rate_per_hour: float) -> Hazard:
        return cls(rates=(float(rate_per_hour),))

    @property
    def is_constant(self) -> bool:
        return len(set(self.rates)) == 1

    @property
    def max_rate(self) -> float:
        return max(self.rates)

    def _cumulative_at_starts(self) -> FloatArray:
        starts = np.asarray(self.starts)
        rates = np.asarray(self.rates)
        return np.concatenate(([0.0], np.cumsum(rates[:-1] * np.diff(starts))))

    def cumulative(self, t: FloatArray | float) -> FloatArray:
        """Integrated hazard from 0 to ``t`` hours."""
        t = np.asarray(t, dtype=float)
        starts = np.asarray(self.starts)
        piece = np.searchsorted(starts, t, side="right") - 1
        return self._cumulative_at_starts()[piece] + np.asarray(self.rates)[piece] * (
            t - starts[piece]
        )

    def inverse_cumulative(self, y: FloatArray) -> FloatArray:
        """The time at which the integrated hazard reaches ``y`` (``inf`` if it never does)."""
        y = np.asarray(y, dtype=float)
        starts = np.asarray(self.starts)
        rates = np.asarray(self.rates)
        cum = self._cumulative_at_starts()
        # side="right" skips pieces of zero rate, whose cumulative hazard does not grow.
        piece = np.searchsorted(cum, y, side="right") - 1
        rate = rates[piece]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            dt = np.where(rate > 0, (y - cum[piece]) / np.where(rate > 0, rate, 1.0), np.inf)
        return np.asarray(starts[piece] + dt, dtype=float)

    def termination_time_scalar(self, start: float, draw: float) -> float:
        """:meth:`termination_time` for one instance, walking the pieces in plain Python."""
        bounds = [*self.starts[1:], math.inf]
        for rate, begin, end in zip(self.rates, self.starts, bounds, strict=True):
            if end <= start:
                continue
            t0 = max(begin, start)
            if rate > 0 and draw <= rate * (end - t0):
                return t0 + draw / rate
            draw -= rate * (end - t0)
        return math.inf

    def termination_time(self, start: FloatArray, exp_draws: FloatArray) -> FloatArray:
        """When instances started at ``start`` are terminated, given Exp(1) draws."""
        if self.is_constant:
            rate = self.rates[0]
            if rate == 0.0:
                return np.full(np.shape(start), np.inf)
            # A vanishing rate overflows to inf: never terminated, which is right.
            with np.errstate(over="ignore"):
                return np.asarray(start + exp_draws / rate, dtype=float)
        # rounding in a numerically flat piece must not move a termination before its start
        return np.maximum(start, self.inverse_cumulative(self.cumulative(start) + exp_draws))


@dataclass(frozen=True)
class RunModel:
    """Everything that defines one kind of processing run (times in hours, prices in USD/h).

    ``interval`` is the progress between checkpoints (``inf``: none); build it from a count of
    evenly spaced checkpoints with :meth:`with_checkpoints`.
    """

    jobs: int
    runtime: float
    hazard: Hazard
    spot_price: float
    on_demand_price: float
    overhead: float = 2.0 / 60.0
    fleet_cap: int | None = None
    interval: float = math.inf
    checkpoint_cost: float = 0.0
    policy: Policy = "manual"
    lag: float = 4.0
    delay: float = 3.0 / 60.0
    fallback_after: int | None = None
    on_demand_only: bool = False

    def __post_init__(self) -> None:
        checks = {
            "jobs": self.jobs >= 1,
            "runtime": self.runtime > 0 and math.isfinite(self.runtime),
            "overhead": self.overhead >= 0,
            "fleet_cap": self.fleet_cap is None or self.fleet_cap >= 1,
            "interval": self.interval > 0,
            "checkpoint_cost": self.checkpoint_cost >= 0,
            "lag": self.lag >= 0,
            "delay": self.delay >= 0,
            "fallback_after": self.fallback_after is None or self.fallback_after >= 0,
            "spot_price": self.spot_price >= 0,
            "on_demand_price": self.on_demand_price >= 0,
            "policy": self.policy in ("manual", "auto"),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"run model has invalid {', '.join(bad)}")

    def with_checkpoints(self, count: int) -> RunModel:
        """The same model with ``count`` evenly spaced checkpoints inside each job."""
        if count < 0:
            raise ValueError("checkpoint count must be non-negative")
        return replace(self, interval=self.runtime / (count + 1) if count else math.inf)

    @property
    def cap(self) -> int:
        return self.jobs if self.fleet_cap is None else min(self.fleet_cap, self.jobs)

    @property
    def segments(self) -> int:
        """Number of checkpointed segments a job is split into."""
        if not math.isfinite(self.interval) or self.interval >= self.runtime:
            return 1
        # a hair of tolerance so runtime/3 * 3 counts as 3 segments, not 4
        return math.ceil(self.runtime / self.interval - 1e-9)

    def remaining_wall(self, segments_done: IntArray | int) -> FloatArray:
        """Wall time of an uninterrupted attempt that starts after ``segments_done`` segments."""
        done = np.asarray(segments_done)
        progress = np.minimum(done * self._step, self.runtime)
        left = self.segments - done
        return np.asarray(
            self.overhead + (self.runtime - progress) + self.checkpoint_cost * (left - 1),
            dtype=float,
        )

    @property
    def _step(self) -> float:
        return self.interval if self.segments > 1 else self.runtime

    def segments_reached(self, worked: FloatArray) -> IntArray:
        """Segments made durable in ``worked`` hours of wall time after the overhead."""
        if self.segments == 1:
            return np.zeros(np.shape(worked), dtype=np.int64)
        per_segment = self._step + self.checkpoint_cost
        return np.floor(np.maximum(worked, 0.0) / per_segment).astype(np.int64)


@dataclass
class RunStats:
    """Per-simulated-run results (one entry per run).

    Attributes
    ----------
    cost : USD of instance time.
    turnaround : hours from the start of the run to the end of its last job.
    attempts, terminations : totals over the run's jobs.
    jobs_terminated : jobs terminated at least once.
    rerun_rounds : see the module docstring.
    instance_hours, on_demand_hours : billed instance time, and the on-demand part of it.
    lost_hours : billed time that produced no durable progress (overhead and lost work of
        terminated attempts).
    """

    cost: FloatArray
    turnaround: FloatArray
    attempts: IntArray
    terminations: IntArray
    jobs_terminated: IntArray
    rerun_rounds: IntArray
    instance_hours: FloatArray
    on_demand_hours: FloatArray
    lost_hours: FloatArray

    FIELDS = (
        "cost",
        "turnaround",
        "attempts",
        "terminations",
        "jobs_terminated",
        "rerun_rounds",
        "instance_hours",
        "on_demand_hours",
        "lost_hours",
    )

    def summary(self, quantiles: tuple[float, ...] = (0.5, 0.9)) -> dict[str, dict[str, float]]:
        """Mean and the given quantiles of every field, for tables and JSON."""
        out: dict[str, dict[str, float]] = {}
        for name in self.FIELDS:
            values = np.asarray(getattr(self, name), dtype=float)
            row = {"mean": float(values.mean())}
            for q in quantiles:
                row[f"p{round(q * 100)}"] = float(np.quantile(values, q))
            out[name] = row
        return out


# A bound on every loop: a job terminated this often will not finish in any useful time.
MAX_TERMINATIONS_PER_JOB = 2_000


def _too_many_terminations(model: RunModel) -> str:
    return (
        f"a job was terminated more than {MAX_TERMINATIONS_PER_JOB} times: at a hazard of "
        f"{model.hazard.max_rate:.3g}/h a job needs checkpoints closer than "
        f"{min(model.interval, model.runtime):.3g} h to finish"
    )


def simulate(model: RunModel, runs: int, *, seed: int | np.random.Generator | None = 0) -> RunStats:
    """Simulate ``runs`` independent runs of ``model`` at once (numpy, vectorised over runs).

    Parameters
    ----------
    model : RunModel
        What to simulate.
    runs : int
        Number of independent runs.
    seed : int or numpy.random.Generator, optional
        Seed (or generator) for reproducible results.

    Returns
    -------
    RunStats
        One value per run in each field.
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n, cap = model.jobs, model.cap
    manual = model.policy == "manual"
    fallback = math.inf if model.fallback_after is None else model.fallback_after
    spot_possible = not model.on_demand_only

    ready = np.zeros((runs, n))  # when each job may start; inf while running, parked or done
    parked = np.zeros((runs, n), dtype=bool)  # terminated, waiting for a manual resubmission
    segs = np.zeros((runs, n), dtype=np.int64)
    terms = np.zeros((runs, n), dtype=np.int64)
    remaining = np.full(runs, n, dtype=np.int64)
    free = np.zeros((runs, cap))  # when each instance slot is next free
    stats = {
        name: np.zeros(runs)
        for name in ("cost", "turnaround", "instance_hours", "on_demand_hours", "lost_hours")
    }
    attempts = np.zeros(runs, dtype=np.int64)
    rounds = np.zeros(runs, dtype=np.int64)

    rows = np.arange(runs)
    while rows.size:
        job_ready = ready[rows]
        if manual:
            # A round ends when nothing is runnable and parked jobs remain: release them all.
            waiting = np.isinf(job_ready.min(axis=1))
            if waiting.any():
                r = rows[waiting]
                release = free[r].max(axis=1) + model.lag
                ready[r] = np.where(parked[r], release[:, None], ready[r])
                parked[r] = False
                rounds[r] += 1
                job_ready = ready[rows]
        job = job_ready.argmin(axis=1)
        slot = free[rows].argmin(axis=1)
        start = np.maximum(job_ready[np.arange(rows.size), job], free[rows, slot])

        seg = segs[rows, job]
        wall = model.remaining_wall(seg)
        on_demand = (terms[rows, job] >= fallback) | (not spot_possible)
        if spot_possible:
            killed_at = model.hazard.termination_time(start, rng.standard_exponential(rows.size))
            terminated = ~on_demand & (killed_at < start + wall)
        else:
            killed_at = np.full(rows.size, np.inf)
            terminated = np.zeros(rows.size, dtype=bool)
        end = np.where(terminated, killed_at, start + wall)
        worked = np.where(terminated, killed_at - start - model.overhead, 0.0)
        gained = np.where(terminated, model.segments_reached(worked), 0)
        billed = end - start
        # what a terminated attempt paid for beyond the checkpoints it made durable
        useful = np.minimum(gained * (model._step + model.checkpoint_cost), billed)
        stats["lost_hours"][rows] += np.where(terminated, billed - useful, model.overhead)
        stats["instance_hours"][rows] += billed
        stats["on_demand_hours"][rows] += np.where(on_demand, billed, 0.0)
        stats["cost"][rows] += billed * np.where(on_demand, model.on_demand_price, model.spot_price)
        attempts[rows] += 1
        free[rows, slot] = end

        segs[rows, job] = np.where(terminated, seg + gained, model.segments)
        terms[rows, job] += terminated
        if terms[rows, job].max(initial=0) > MAX_TERMINATIONS_PER_JOB:
            raise ValueError(_too_many_terminations(model))
        if manual:
            ready[rows, job] = np.inf
            parked[rows, job] = terminated
        else:
            ready[rows, job] = np.where(terminated, end + model.delay, np.inf)
        finished = ~terminated
        stats["turnaround"][rows] = np.where(
            finished, np.maximum(stats["turnaround"][rows], end), stats["turnaround"][rows]
        )
        remaining[rows] -= finished
        rows = rows[remaining[rows] > 0]

    return RunStats(
        cost=stats["cost"],
        turnaround=stats["turnaround"],
        attempts=attempts,
        terminations=terms.sum(axis=1),
        jobs_terminated=(terms > 0).sum(axis=1),
        rerun_rounds=rounds if manual else terms.max(axis=1),
        instance_hours=stats["instance_hours"],
        on_demand_hours=stats["on_demand_hours"],
        lost_hours=stats["lost_hours"],
    )


def simulate_loop(
    model: RunModel, runs: int, *, seed: int | np.random.Generator | None = 0
) -> RunStats:
    """The model of :func:`simulate` as a straightforward Python loop over runs and jobs.

    Kept as the reference the vectorised version is checked against, and as the peer of
    ``bench/spotsim.py``. Same parameters and results as :func:`simulate`.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    fallback = math.inf if model.fallback_after is None else model.fallback_after
    per_segment = model._step + model.checkpoint_cost
    out: dict[str, list[float]] = {name: [] for name in RunStats.FIELDS}
    for _ in range(runs):
        run = _LoopRun(model, rng, fallback, per_segment)
        if model.policy == "manual":
            run.manual()
        else:
            run.auto()
        for name in RunStats.FIELDS:
            out[name].append(getattr(run, name))
    return RunStats(
        **{
            name: np.asarray(values, dtype=float if isinstance(values[0], float) else np.int64)
            for name, values in out.items()
        }
    )


class _LoopRun:
    """One run of :func:`simulate_loop`: jobs are plain Python ints and floats."""

    def __init__(
        self, model: RunModel, rng: np.random.Generator, fallback: float, per_segment: float
    ) -> None:
        self.model, self.rng, self.fallback, self.per_segment = model, rng, fallback, per_segment
        self.segs = [0] * model.jobs
        self.terms = [0] * model.jobs
        self.slots = [0.0] * model.cap  # heap of the times instance slots free up
        self.cost = self.turnaround = self.instance_hours = 0.0
        self.on_demand_hours = self.lost_hours = 0.0
        self.attempts = self.rerun_rounds = 0

    @property
    def terminations(self) -> int:
        return sum(self.terms)

    @property
    def jobs_terminated(self) -> int:
        return sum(1 for t in self.terms if t)

    def attempt(self, job: int, ready: float) -> tuple[float, bool]:
        """Run one attempt of ``job``; return its end time and whether it was terminated."""
        m = self.model
        start = max(ready, heapq.heappop(self.slots))
        left = m.segments - self.segs[job]
        wall = m.overhead + (m.runtime - min(self.segs[job] * m._step, m.runtime))
        wall += m.checkpoint_cost * (left - 1)
        on_demand = m.on_demand_only or self.terms[job] >= self.fallback
        killed_at = math.inf
        if not on_demand:
            draw = self.rng.standard_exponential()
            killed_at = m.hazard.termination_time_scalar(start, draw)
        terminated = killed_at < start + wall
        end = killed_at if terminated else start + wall
        billed = end - start
        if terminated:
            worked = max(killed_at - start - m.overhead, 0.0)
            gained = int(worked // self.per_segment) if m.segments > 1 else 0
            self.segs[job] += gained
            self.terms[job] += 1
            if self.terms[job] > MAX_TERMINATIONS_PER_JOB:
                raise ValueError(_too_many_terminations(m))
            self.lost_hours += billed - min(gained * self.per_segment, billed)
        else:
            self.segs[job] = m.segments
            self.lost_hours += m.overhead
            self.turnaround = max(self.turnaround, end)
        self.cost += billed * (m.on_demand_price if on_demand else m.spot_price)
        self.instance_hours += billed
        self.on_demand_hours += billed if on_demand else 0.0
        self.attempts += 1
        heapq.heappush(self.slots, end)
        return end, terminated

    def manual(self) -> None:
        pending = list(range(self.model.jobs))
        round_start = 0.0
        while True:
            round_end, again = round_start, []
            for job in pending:  # in order: every job of a round is ready at its start
                end, terminated = self.attempt(job, round_start)
                round_end = max(round_end, end)
                if terminated:
                    again.append(job)
            if not again:
                return
            self.rerun_rounds += 1
            # the last running job may end after a later-started one: wait for all slots
            round_start = max([round_end, *self.slots]) + self.model.lag
            pending = again

    def auto(self) -> None:
        queue = [(0.0, job) for job in range(self.model.jobs)]  # (ready time, job)
        heapq.heapify(queue)
        while queue:
            ready, job = heapq.heappop(queue)
            end, terminated = self.attempt(job, ready)
            if terminated:
                heapq.heappush(queue, (end + self.model.delay, job))
        self.rerun_rounds = max(self.terms)
