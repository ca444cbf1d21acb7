"""What a run actually cost and what the spot market did, from its checkpoint manifests.

A view of :class:`spotcube.runstate.RunState`: every observation's manifest lists the attempts
made at it (instance, type, zone, start, end, how it ended), classified once by
:func:`payload.records.attempt_states`. From those this module derives instance-hours, an
estimated cost, the work lost to terminations, and the maximum-likelihood estimate of the
hourly termination hazard: with exponential instance lifetimes, ``λ̂ = terminations /
exposure``, where exposure is the total running time of all ended attempts (attempts that
ended for another reason are censored observations, which is why they count in the exposure
but not in the terminations). A termination is an interrupted attempt: one preempted after a
notice, or one killed without a word (it never ended and a later attempt exists); a killed
attempt's time runs to its last manifest commit, the latest time it is known to have been
alive, and is in the cost and the exposure like any other attempt's. ``spotcube plan --rate
from:RUN_ID`` feeds ``λ̂`` back into the simulator.

The local demo compresses time; ``speedup`` multiplies every measured duration back to the
durations being modelled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from spotcube import prices
from spotcube.estimates import poisson_interval
from spotcube.progress import ProgressAssessment, assess_manifests
from spotcube.runstate import RunState, read_run


@dataclass
class TypeUsage:
    """Use of one instance type within a run."""

    attempts: int = 0
    terminations: int = 0
    hours: float = 0.0
    price_per_hour: float | None = None
    price_source: str = ""


@dataclass
class RunReport:
    """Summary of one run (durations in modelled hours, i.e. after ``speedup``).

    ``hazard_per_hour`` is the maximum-likelihood hazard (``None`` with no exposure);
    ``hazard_interval`` its exact 95 % Poisson confidence interval.
    """

    run_id: str
    speedup: float
    observations: int = 0
    observations_done: int = 0
    attempts: int = 0
    open_attempts: int = 0
    terminations: int = 0  # attempts interrupted: preempted, or killed without a notice
    outcomes: dict[str, int] = field(default_factory=dict)
    instance_hours: float = 0.0
    exposure_hours: float = 0.0
    lost_hours: float = 0.0
    chunk_hours: float = 0.0
    turnaround_hours: float = 0.0
    estimated_cost: float = 0.0
    unpriced_hours: float = 0.0
    by_type: dict[str, TypeUsage] = field(default_factory=dict)
    zones: dict[str, int] = field(default_factory=dict)
    hazard_per_hour: float | None = None
    hazard_interval: tuple[float, float] | None = None
    # Did interrupted instances make chunks durable before they went? (spotcube.progress)
    progress: ProgressAssessment | None = None

    @property
    def hazard_percent_per_hour(self) -> float | None:
        """The hazard as a probability of termination per hour, in %."""
        if self.hazard_per_hour is None:
            return None
        return -math.expm1(-self.hazard_per_hour) * 100.0

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["hazard_percent_per_hour"] = self.hazard_percent_per_hour
        doc["schema"] = 1
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)


def spot_price_lookup(
    overrides: Mapping[str, float] | None = None, default: float | None = None
) -> Callable[[str], tuple[float | None, str]]:
    """Price per hour of a type: ``overrides``, then the embedded table, then ``default``."""

    def lookup(instance_type: str) -> tuple[float | None, str]:
        if overrides and instance_type in overrides:
            return overrides[instance_type], "given"
        if instance_type in prices.EMBEDDED:
            q = prices.quote(instance_type)
            return q.spot, q.spot_source
        if default is not None:
            return default, "--spot-price"
        return None, "unknown type: not priced"

    return lookup


def summarise(
    run: RunState,
    *,
    speedup: float = 1.0,
    price: Callable[[str], tuple[float | None, str]] | None = None,
) -> RunReport:
    """Build a :class:`RunReport` from a run already read (see :func:`summarise_run`)."""
    if not speedup > 0:
        raise ValueError(f"--speedup must be positive, not {speedup}")
    price = price or spot_price_lookup()
    observed = [o for o in run.observations if o.manifest is not None]
    report = RunReport(run_id=run.run_id, speedup=speedup, observations=len(observed))
    first: datetime | None = None
    last: datetime | None = None
    for obs in observed:
        assert obs.manifest is not None
        report.chunk_hours += sum(c.seconds for c in obs.manifest.chunks.values()) / 3600 * speedup
        report.observations_done += obs.done
        for view in obs.attempts:
            attempt = view.record
            report.attempts += 1
            start = _parse_time(attempt.start)
            first = start if first is None else min(first, start)
            hours = view.hours(speedup)
            if hours is None or view.end_estimate is None:
                report.open_attempts += 1
                continue
            end = _parse_time(view.end_estimate)
            last = end if last is None else max(last, end)
            report.outcomes[view.state.value] = report.outcomes.get(view.state.value, 0) + 1
            interrupted = view.state.interrupted
            report.terminations += interrupted
            report.instance_hours += hours
            report.exposure_hours += hours
            report.lost_hours += attempt.lost_seconds / 3600 * speedup
            report.zones[attempt.availability_zone] = (
                report.zones.get(attempt.availability_zone, 0) + 1
            )
            usage = report.by_type.setdefault(attempt.instance_type, TypeUsage())
            usage.attempts += 1
            usage.terminations += interrupted
            usage.hours += hours
    for instance_type, usage in report.by_type.items():
        usage.price_per_hour, usage.price_source = price(instance_type)
        if usage.price_per_hour is None:
            report.unpriced_hours += usage.hours
        else:
            report.estimated_cost += usage.hours * usage.price_per_hour
    if first is not None and last is not None:
        report.turnaround_hours = max((last - first).total_seconds(), 0.0) / 3600 * speedup
    if report.exposure_hours > 0:
        report.hazard_per_hour = report.terminations / report.exposure_hours
        low, high = poisson_interval(report.terminations)
        report.hazard_interval = (low / report.exposure_hours, high / report.exposure_hours)
    report.progress = assess_manifests(
        (o.manifest for o in observed if o.manifest),
        finished=bool(run.observations) and all(o.done for o in run.observations),
    )
    return report


def summarise_run(
    s3: Any,
    bucket: str,
    run_id: str,
    *,
    speedup: float = 1.0,
    price: Callable[[str], tuple[float | None, str]] | None = None,
) -> RunReport:
    """Read ``run_id`` from ``bucket`` (:func:`spotcube.runstate.read_run`) and summarise it.

    Parameters
    ----------
    s3 : botocore client
        S3 client (AWS or the local cloud).
    bucket : str
        The products bucket.
    run_id : str
        The run to report on.
    speedup : float, optional
        Factor that turns measured durations into modelled ones (the demo's time compression).
    price : callable, optional
        ``instance_type -> (USD per hour or None, source)``; default :func:`spot_price_lookup`.

    Raises
    ------
    NothingYetError
        If the run exists but no job has written a manifest yet.
    LookupError
        If the bucket holds nothing of the run.
    """
    try:
        run = read_run(s3, bucket, run_id)
    except LookupError:
        raise LookupError(f"run {run_id!r} not found in s3://{bucket}/") from None
    if not any(o.manifest is not None for o in run.observations):
        raise NothingYetError(
            f"run {run_id}: nothing yet; no job has written a checkpoint manifest "
            f"({len(run.observations)} observation(s) submitted). Try again once workers run"
        )
    return summarise(run, speedup=speedup, price=price)


class NothingYetError(LookupError):
    """The run exists, but there is nothing to report on: a state, not an error."""


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
