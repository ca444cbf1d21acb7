"""``spotcube demo``'s report: report.json (facts, each traceable) and report.md (for people).

The facts come from the run as :mod:`spotcube.runstate` reads it (the same model ``spotcube
status`` and ``report`` show), the local fleet's timeline and the product comparison
(:mod:`spotcube.compare`); the cost is simulated, on the demo's compressed clock. Each
attempt's shipped log is copied next to the report and linked from it.

Two counts that sound alike are kept apart: ``instances_reclaimed`` is what the fleet did
(instances the interruption model took away, idle or busy), ``attempts_interrupted`` what
the jobs saw (attempts preempted or killed, :attr:`payload.records.AttemptState.interrupted`).

report.json is one record, :class:`DemoReport`, written by :func:`payload.records.to_doc` in
field order; report.md, the console summary and the demo's exit status read the same record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from contract.jobs import JobKind
from payload.records import to_doc
from spotcube.demorecords import DemoOptions, PhaseResult
from spotcube.demoverify import ObsVerdict, ProductComparison
from spotcube.local.timeline import Event
from spotcube.progress import ProgressAssessment, assess, lives_with_idle_instances
from spotcube.runreport import summarise
from spotcube.runstate import RunState, read_object, read_run
from spotcube.spotsim import percent_from_hazard
from spotcube.stack import StackOutputs

REPORT_SCHEMA = 1


# --- the records of report.json (field order is the documents' key order) ---------------------


@dataclass(frozen=True)
class HazardUnavailable:
    """No manifest to estimate a hazard from (yet)."""

    available: bool = field(default=False, init=False)
    reason: str


@dataclass(frozen=True)
class HazardEstimate:
    """The hazard ``spotcube report`` estimates from the run's manifests."""

    available: bool = field(default=True, init=False)
    terminations: int
    exposure_hours_simulated: float
    hazard_per_hour: float | None
    hazard_interval_95: list[float] | None
    configured_rate_per_hour: float


@dataclass
class AttemptFacts:
    """One attempt of an observation; ``log_file`` is set once its log is copied next to it."""

    number: int
    instance_id: str
    state: str
    log_key: str | None
    log_file: str | None = None


@dataclass(frozen=True)
class ObservationFacts:
    obs_id: str
    state: str
    chunks: int
    attempts: int
    attempts_interrupted: int
    lost_chunk_seconds: float
    instances: list[str]
    attempts_detail: list[AttemptFacts]
    done_by: str | None
    done_in_spot_phase: bool
    products: dict[str, ProductComparison]  # by product name
    identical: bool
    verdict: str


@dataclass(frozen=True)
class PhaseFacts:
    run_id: str
    done: int
    wall_time_seconds: float
    timed_out: bool
    stalled_in_dead_letter_queue: bool


@dataclass(frozen=True)
class Phases:
    spot: PhaseFacts
    reference: PhaseFacts


@dataclass(frozen=True)
class SimulatedCost:
    simulated: bool = field(default=True, init=False)
    instance_type: str
    spot_price_usd_per_hour: float
    instance_seconds_wall: float
    instance_hours_simulated: float
    cost_usd_simulated: float


@dataclass(frozen=True)
class DemoSettings:
    workers: int
    reference_workers: int
    interrupt_rate_per_hour: float
    speedup: float
    paced_by: str  # "work" (computed chunks), "cpu" (a job's programs' CPU) or "wall"
    chunk_work_hours: float
    seed: int | None
    notice_seconds_simulated: float
    notice_seconds_wall: float
    replacement_seconds_wall: float
    replacement_delay_simulated: float
    preset: str | None


@dataclass(frozen=True)
class DemoOutcome:
    """Did the demo show what it claims? ``ok`` and, when not, the first real cause."""

    ok: bool
    cause: str


@dataclass(frozen=True)
class DemoReport:
    """report.json: the facts of the demo, each traceable to the manifests or the fleet."""

    schema: int = field(default=REPORT_SCHEMA, init=False)
    run_id: str
    reference_run_id: str
    kind: str | None  # None only when the run record could not be read
    observations: int
    done: int
    failed: int
    phases: Phases
    timed_out: bool
    stalled_in_dead_letter_queue: bool
    instances_reclaimed: int
    spot_notices: int
    instances_launched: int
    attempts_interrupted: int
    lost_chunk_seconds: float
    wall_time_seconds: float
    reference_wall_time_seconds: float
    total_wall_time_seconds: float
    cost: SimulatedCost
    reference_cost: SimulatedCost
    verified_identical: bool
    hazard_from_manifests: HazardEstimate | HazardUnavailable
    progress: ProgressAssessment
    settings: DemoSettings
    per_observation: list[ObservationFacts]
    timeline: list[Event]  # the fleet's own record (spotcube.local.timeline)
    outcome: DemoOutcome

    def to_json(self) -> str:
        """report.json's text."""
        return json.dumps(to_doc(self), indent=1) + "\n"


# --- the facts -----------------------------------------------------------------------------------


def manifest_hazard(run: RunState, options: DemoOptions) -> HazardEstimate | HazardUnavailable:
    """The hazard ``spotcube report`` estimates from the run's manifests, as a cross-check.

    The estimate sees only the time instances spent on jobs, so it is noisier than the rate
    the fleet drew lifetimes from; with a handful of interruptions its interval is wide.
    """
    if not any(o.manifest is not None for o in run.observations):
        return HazardUnavailable(reason=f"run {run.run_id} has no checkpoint manifests")
    summary = summarise(
        run,
        speedup=options.speedup,
        price=lambda _type: (options.spot_price, "spotcube demo --spot-price"),
    )
    return HazardEstimate(
        terminations=summary.terminations,
        exposure_hours_simulated=round(summary.exposure_hours, 3),
        hazard_per_hour=summary.hazard_per_hour,
        hazard_interval_95=list(summary.hazard_interval) if summary.hazard_interval else None,
        configured_rate_per_hour=options.interrupt_rate,
    )


def attempt_facts(run: RunState) -> dict[str, list[AttemptFacts]]:
    """Per observation, each attempt: number, instance, state and the key of its shipped log."""
    return {
        obs.obs_id: [
            AttemptFacts(
                number=a.number,
                instance_id=a.record.instance_id,
                state=a.state.value,
                log_key=a.log_key,
            )
            for a in obs.attempts
        ]
        for obs in run.observations
    }


def save_attempt_logs(report: DemoReport, outputs: StackOutputs, out: Path) -> None:
    """Copy every attempt's shipped log to ``out/logs/<obs>/`` and note the file in the report."""
    s3 = outputs.client("s3")
    for obs in report.per_observation:
        for attempt in obs.attempts_detail:
            attempt.log_file = None
            if not attempt.log_key:
                continue
            body = read_object(s3, outputs.products_bucket, attempt.log_key)
            if body is None:
                continue  # killed before its first shipment
            rel = Path("logs") / obs.obs_id / f"attempt-{attempt.number}.log"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(body)
            attempt.log_file = rel.as_posix()


def progress_facts(run: RunState, main: PhaseResult) -> ProgressAssessment:
    """Did the interrupted fleet make progress? (:mod:`spotcube.progress`, as `spotcube report`)."""
    manifests = [obs.manifest for obs in run.observations if obs.manifest is not None]
    reclaimed = {i.instance_id: i.end_reason == "reclaimed" for i in main.fleet.instances}
    return assess(
        lives_with_idle_instances(manifests, reclaimed),
        finished=bool(run.observations) and all(o.done for o in run.observations),
        remedy="Lower --speedup or --interrupt-rate: an instance must live longer than a "
        "worker needs to start and finish a chunk",
    )


def simulated_cost(instance_seconds: float, options: DemoOptions) -> SimulatedCost:
    """The bill the same fleet time would cost on AWS, on the demo's compressed clock."""
    hours = instance_seconds * options.speedup / 3600.0
    return SimulatedCost(
        instance_type=options.instance_type,
        spot_price_usd_per_hour=options.spot_price,
        instance_seconds_wall=round(instance_seconds, 2),
        instance_hours_simulated=round(hours, 3),
        cost_usd_simulated=round(hours * options.spot_price, 2),
    )


def phase_facts(phase: PhaseResult, done: int, observations: int) -> PhaseFacts:
    """One fleet phase; ``timed_out`` only when its deadline came with work unfinished.

    ``done`` is counted from the same run read as the rest of the report, so "timed out"
    can never stand next to "all done".
    """
    return PhaseFacts(
        run_id=phase.run_id,
        done=done,
        wall_time_seconds=round(phase.wall_seconds, 2),
        timed_out=phase.timed_out and done < observations,
        stalled_in_dead_letter_queue=phase.stalled and done < observations,
    )


def outcome(
    *,
    done: int,
    failed: int,
    phases: Phases,
    progress: ProgressAssessment,
    per_observation: Sequence[ObservationFacts],
) -> DemoOutcome:
    """Did the demo show what it claims? ``ok`` and, when not, the first real cause.

    Order matters: a spot phase that did not finish is the cause even when verification
    fails too (nothing finished cannot be compared), and its message names the progress
    verdict, which says whether the fleet was outpaced or merely slow.
    """
    n = len(per_observation)
    spot, ref = phases.spot, phases.reference
    if done < n:
        why = (
            f"timed out after {spot.wall_time_seconds:.0f} s"
            if spot.timed_out
            else "jobs stuck in the dead-letter queue"
            if spot.stalled_in_dead_letter_queue
            else f"{failed} failed"
        )
        return DemoOutcome(
            ok=False,
            cause=f"spot phase finished {done}/{n} observations ({why}); {progress.message}",
        )
    if ref.done < n:
        why = "timed out" if ref.timed_out else "did not finish"
        return DemoOutcome(
            ok=False,
            cause=f"reference run {why} with {ref.done}/{n} done: nothing to compare with",
        )
    bad = [o for o in per_observation if not o.identical]
    if bad:
        return DemoOutcome(ok=False, cause=f"{bad[0].obs_id} not verified: {bad[0].verdict}")
    return DemoOutcome(ok=True, cause="")


def build_report(
    options: DemoOptions,
    main: PhaseResult,
    reference: PhaseResult,
    verdicts: Sequence[ObsVerdict],
    outputs: StackOutputs,
    total_wall: float,
) -> DemoReport:
    """report.json: the facts of the demo, each traceable to the manifests or the fleet.

    report.md is rendered from this record alone (:func:`render_markdown`), so the two cannot
    disagree; each fact is computed once here (an observation's ``identical`` is its
    verdict, and ``verified_identical`` is the conjunction of those).
    """
    s3 = outputs.client("s3")
    run = read_run(s3, outputs.products_bucket, main.run_id)
    ref_run = read_run(s3, outputs.products_bucket, reference.run_id)
    by_obs = {v.obs_id: v for v in verdicts}
    details = attempt_facts(run)
    per_obs = []
    for obs in run.observations:
        verdict = by_obs.get(obs.obs_id)
        per_obs.append(
            ObservationFacts(
                obs_id=obs.obs_id,
                state=obs.phase.value,
                chunks=obs.chunks_done,
                attempts=len(obs.attempts),
                attempts_interrupted=obs.interruptions,
                lost_chunk_seconds=round(obs.lost_seconds, 3),
                instances=[a.record.instance_id for a in obs.attempts],
                attempts_detail=details[obs.obs_id],
                done_by=verdict.done_by if verdict else None,
                done_in_spot_phase=bool(verdict and verdict.from_spot_phase),
                products=verdict.products if verdict else {},
                identical=bool(verdict and verdict.verified),
                verdict=(verdict.reason or "identical to the reference")
                if verdict
                else "not compared",
            )
        )
    lost = sum(o.lost_seconds for o in run.observations)
    # Done means: DONE written by an instance of the spot phase (see spotcube.demoverify).
    done = sum(1 for o in per_obs if o.done_in_spot_phase)
    ref_done = sum(1 for o in ref_run.observations if o.done)
    n = len(per_obs)
    phases = Phases(
        spot=phase_facts(main, done, n),
        reference=phase_facts(reference, ref_done, n),
    )
    failed = sum(1 for o in run.observations if o.has_failed)
    progress = progress_facts(run, main)
    return DemoReport(
        run_id=main.run_id,
        reference_run_id=reference.run_id,
        kind=run.record.kind if run.record else main.status.kind,
        observations=n,
        done=done,
        failed=failed,
        phases=phases,
        timed_out=phases.spot.timed_out or phases.reference.timed_out,
        stalled_in_dead_letter_queue=phases.spot.stalled_in_dead_letter_queue
        or phases.reference.stalled_in_dead_letter_queue,
        instances_reclaimed=main.fleet.interruptions(),
        spot_notices=len(main.fleet.timeline.of_kind("notice")),
        instances_launched=len(main.fleet.instances),
        attempts_interrupted=sum(o.attempts_interrupted for o in per_obs),
        lost_chunk_seconds=round(lost, 3),
        wall_time_seconds=round(main.wall_seconds, 2),
        reference_wall_time_seconds=round(reference.wall_seconds, 2),
        total_wall_time_seconds=round(total_wall, 2),
        cost=simulated_cost(main.fleet.instance_seconds(), options),
        reference_cost=simulated_cost(reference.fleet.instance_seconds(), options),
        verified_identical=n > 0 and ref_done == n and all(o.identical for o in per_obs),
        hazard_from_manifests=manifest_hazard(run, options),
        progress=progress,
        settings=DemoSettings(
            workers=options.workers,
            reference_workers=options.reference_workers,
            interrupt_rate_per_hour=options.interrupt_rate,
            speedup=options.speedup,
            # chunks counted by a work schedule, a --job run's CPU seconds, or the wall clock
            paced_by="work" if options.storm() is not None else options.clock(),
            chunk_work_hours=options.chunk_work_hours,
            seed=options.seed,
            notice_seconds_simulated=options.notice_seconds,
            notice_seconds_wall=main.fleet.model.notice_real,
            replacement_seconds_wall=main.fleet.model.replacement_real,
            replacement_delay_simulated=options.replacement_delay,
            preset=None if options.inputs or options.kind == JobKind.SELFTEST else options.preset,
        ),
        per_observation=per_obs,
        timeline=list(main.fleet.timeline.events),
        outcome=outcome(
            done=done, failed=failed, phases=phases, progress=progress, per_observation=per_obs
        ),
    )


def _hazard_line(hazard: HazardEstimate | HazardUnavailable, paced_by: str = "wall") -> list[str]:
    if not isinstance(hazard, HazardEstimate) or not hazard.hazard_interval_95:
        return []
    low, high = hazard.hazard_interval_95
    return [
        f"- hazard estimated from the manifests (`spotcube report`): "
        f"{hazard.hazard_per_hour:.3f}/h (95 % interval {low:.3f}-{high:.3f}) from "
        f"{hazard.terminations} terminations in {hazard.exposure_hours_simulated:.2f} "
        "simulated job-hours; the fleet drew lifetimes at "
        f"{hazard.configured_rate_per_hour:.3f}/h"
        + (
            " of work (chunk-paced: this machine's chunk took a different time than the "
            "2.64 h a chunk stands for, so the two rates need not agree)"
            if paced_by == "work"
            else ""
        )
    ]


def _timed_out_note(phases: Phases) -> str:
    notes = [
        f"{name} phase **timed out** with {p.done} done"
        for name, p in (("spot", phases.spot), ("reference", phases.reference))
        if p.timed_out
    ]
    return " — " + "; ".join(notes) if notes else ""


def render_markdown(report: DemoReport, figures: Sequence[str]) -> str:
    """report.md: the same facts as report.json, for people."""
    cost, ref = report.cost, report.reference_cost
    s = report.settings
    outpaced = "**" if report.progress.outpaced else ""
    lines = [
        f"# spotcube demo: run {report.run_id}",
        "",
        f"- outcome: **{'ok' if report.outcome.ok else 'FAILED'}**"
        + (f" — {report.outcome.cause}" if report.outcome.cause else ""),
        f"- observations: {report.observations} ({report.kind}); done in the spot "
        f"phase {report.done}, failed {report.failed}" + _timed_out_note(report.phases),
        f"- fleet: {s.workers} workers, interruption chance "
        f"{percent_from_hazard(s.interrupt_rate_per_hour):.1f}% per instance-hour"
        + (
            f" of work (interruptions counted in chunks, one chunk = {s.chunk_work_hours:.2f} h)"
            if s.paced_by == "work"
            else f" of work (lifetimes in CPU seconds of the job's programs x {s.speedup:g})"
            if s.paced_by == "cpu"
            else f" on the wall clock compressed {s.speedup:g}x"
        )
        + f", seed {s.seed}",
        f"- spot interruptions: {report.instances_reclaimed} instances reclaimed "
        f"({report.spot_notices} notices, {report.instances_launched} instances launched); "
        f"{report.attempts_interrupted} job attempts interrupted (preempted or killed)",
        f"- lost chunk-seconds: {report.lost_chunk_seconds:.1f} s of compute thrown away",
        f"- wall time: {report.wall_time_seconds:.1f} s interrupted run, "
        f"{report.reference_wall_time_seconds:.1f} s uninterrupted reference, "
        f"{report.total_wall_time_seconds:.1f} s in all",
        f"- **simulated** AWS cost ({cost.instance_type} spot at "
        f"${cost.spot_price_usd_per_hour:.3f}/h, {cost.instance_hours_simulated:.2f} "
        f"simulated instance-hours): ${cost.cost_usd_simulated:.2f} "
        f"(uninterrupted reference: ${ref.cost_usd_simulated:.2f}). Not a bill: the "
        "demo's clock runs fast, so instance time is scaled by the speedup.",
        *_hazard_line(report.hazard_from_manifests, s.paced_by),
        f"- progress: {outpaced}{report.progress.message}{outpaced}",
        f"- verified_identical: **{str(report.verified_identical).lower()}** — every "
        f"product compared with reference run {report.reference_run_id} (sha256; "
        "provenance.json without instance and run fields)",
        "",
        "| observation | state | chunks | attempts | interrupted | lost s | verified |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for o in report.per_observation:
        lines.append(
            f"| {o.obs_id} | {o.state} | {o.chunks} | {o.attempts} | "
            f"{o.attempts_interrupted} | {o.lost_chunk_seconds:.1f} | "
            f"{'yes' if o.identical else 'NO: ' + o.verdict} |"
        )
    lines += ["", "## Attempt logs", ""]
    for o in report.per_observation:
        links = [
            f"[{a.number}: {a.state} on {a.instance_id}]({a.log_file})"
            if a.log_file
            else f"{a.number}: {a.state} on {a.instance_id} (no log shipped)"
            for a in o.attempts_detail
        ]
        lines.append(f"- {o.obs_id}: " + ", ".join(links))
    lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"
