"""What a run is doing: per-observation state, and the depth of the job queue and the DLQ.

A view of :class:`spotcube.runstate.RunState` (run record, manifests, DONE and FAILED.json)
plus the queues' attributes, so status needs nothing but the stack outputs and works the same
on AWS and on the local cloud.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.markup import escape
from rich.table import Table

from spotcube import runstate
from spotcube.errors import RefusedError, UsageError
from spotcube.runstate import ObsPhase, ObsState, RunState
from spotcube.stack import StackOutputs

TERMINAL_STATES = tuple(p.value for p in ObsPhase if p.final)


@dataclass
class ObsStatus:
    """The state of one observation, as far as S3 shows it."""

    obs_id: str
    state: str  # an ObsPhase: queued | running | done | failed
    chunks_done: int = 0
    chunks_total: int | None = None  # known once the job has said it or finished
    attempts: int = 0
    interruptions: int = 0  # attempts preempted or killed (AttemptState.interrupted)
    lost_seconds: float = 0.0
    instance_id: str | None = None  # the instance of the open attempt, when running
    error: str | None = None  # from FAILED.json
    attempt_states: list[str] = field(default_factory=list)  # AttemptState of each, in order
    # When the running attempt's instance last reported (its last manifest commit, else its
    # start) and how long before this status that was. A SIGKILLed instance says nothing, so
    # its attempt stays "running" until the next one starts: the age is what shows it died.
    last_report: str | None = None
    last_report_age_seconds: float | None = None

    @classmethod
    def of(cls, obs: ObsState, now: datetime | None = None) -> ObsStatus:
        last_report = age = None
        if obs.phase is ObsPhase.RUNNING:
            record = obs.attempts[-1].record
            last_report = record.last_seen or record.start
            seen = datetime.fromisoformat(last_report)  # records end in Z: UTC
            age = max(0.0, ((now or datetime.now(UTC)) - seen).total_seconds())
        return cls(
            obs_id=obs.obs_id,
            state=obs.phase.value,
            chunks_done=obs.chunks_done,
            chunks_total=obs.chunks_total,
            attempts=len(obs.attempts),
            interruptions=obs.interruptions,
            lost_seconds=obs.lost_seconds,
            instance_id=obs.running_on,
            error=obs.error,
            attempt_states=[a.state.value for a in obs.attempts],
            last_report=last_report,
            last_report_age_seconds=age,
        )


@dataclass
class QueueDepth:
    """Approximate message counts of one SQS queue (AWS updates them within a minute)."""

    visible: int = 0
    in_flight: int = 0


@dataclass
class RunStatus:
    """A run's observations plus the depth of the job queue and of its dead-letter queue."""

    run_id: str
    kind: str | None
    submitted_at: str | None
    observations: list[ObsStatus] = field(default_factory=list)
    queue: QueueDepth = field(default_factory=QueueDepth)
    dead_letter: QueueDepth | None = None

    def count(self, state: str) -> int:
        return sum(1 for o in self.observations if o.state == state)

    @property
    def finished(self) -> bool:
        """True when every observation is done or failed."""
        return bool(self.observations) and all(
            o.state in TERMINAL_STATES for o in self.observations
        )

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["counts"] = {p.value: self.count(p.value) for p in ObsPhase}
        return doc

    @classmethod
    def of(cls, run: RunState, now: datetime | None = None) -> RunStatus:
        now = now or datetime.now(UTC)
        return cls(
            run_id=run.run_id,
            kind=run.record.kind if run.record else None,
            submitted_at=run.record.submitted_at if run.record else None,
            observations=[ObsStatus.of(o, now) for o in run.observations],
        )


def list_runs(outputs: StackOutputs) -> list[str]:
    """Run ids in the products bucket, oldest first (run ids from ``new_run_id`` sort by time)."""
    return runstate.list_runs(outputs.client("s3"), outputs.products_bucket)


def queue_depth(outputs: StackOutputs, url: str) -> QueueDepth:
    attrs = outputs.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return QueueDepth(
        visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


def newest_run(outputs: StackOutputs) -> str:
    runs = list_runs(outputs)
    if not runs:
        raise RefusedError(
            f"no runs in products bucket {outputs.products_bucket}; submit one first"
        )
    return runs[-1]


def run_status(outputs: StackOutputs, run_id: str | None = None) -> RunStatus:
    """Collect the status of ``run_id`` (default: the newest run in the products bucket)."""
    run_id = run_id or newest_run(outputs)
    try:
        run = runstate.read_run(outputs.client("s3"), outputs.products_bucket, run_id)
    except LookupError as exc:
        raise UsageError(str(exc)) from None
    status = RunStatus.of(run)
    status.queue = queue_depth(outputs, outputs.job_queue_url)
    if outputs.dead_letter_queue_url:
        status.dead_letter = queue_depth(outputs, outputs.dead_letter_queue_url)
    return status


def _instance(obs: ObsStatus) -> str:
    """The running attempt's instance and when it last reported."""
    if obs.instance_id is None or obs.last_report_age_seconds is None:
        return obs.instance_id or ""
    return f"{obs.instance_id} (last report {_age(obs.last_report_age_seconds)} ago)"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


_STATE_STYLE = {"done": "green", "failed": "bold red", "running": "cyan", "queued": "yellow"}


def render(status: RunStatus) -> Table:
    """A rich table with one row per observation and the queue depths in the caption."""
    counts = ", ".join(
        f"{status.count(s)} {s}" for s in ("done", "running", "queued", "failed") if status.count(s)
    )
    table = Table(title=f"run {status.run_id} ({status.kind or 'unknown kind'}): {counts}")
    for name, justify in (
        ("observation", "left"),
        ("state", "left"),
        ("chunks", "right"),
        ("attempts", "right"),
        ("interruptions", "right"),
        ("lost s", "right"),
        ("instance / error", "left"),
    ):
        # fold, not ellipsis: an error message or instance id cut short is useless
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for obs in status.observations:
        total = "?" if obs.chunks_total is None else str(obs.chunks_total)
        style = _STATE_STYLE.get(obs.state, "")
        table.add_row(
            obs.obs_id,
            f"[{style}]{obs.state}[/{style}]" if style else obs.state,
            f"{obs.chunks_done}/{total}",
            str(obs.attempts),
            str(obs.interruptions),
            f"{obs.lost_seconds:.1f}",
            escape(obs.error or _instance(obs)),  # an error may contain [brackets]
        )
    dlq = (
        "no dead-letter queue output"
        if status.dead_letter is None
        else f"dead-letter queue: {status.dead_letter.visible} message(s)"
    )
    table.caption = (
        f"job queue: {status.queue.visible} waiting, {status.queue.in_flight} in flight; {dlq}"
    )
    return table
