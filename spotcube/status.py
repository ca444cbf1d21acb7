"""What a run is doing: per-observation state from the products bucket, queue and DLQ depth.

Everything is read from the stack's products bucket (run record, manifests, DONE and
FAILED.json, per :class:`payload.contracts.ObsLayout`) and the queues' attributes, so status
needs nothing but the stack outputs and works the same on AWS and on the local cloud.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.markup import escape
from rich.table import Table

from payload.contracts import ObsLayout, run_prefix
from spotcube.errors import RefusedError, UsageError
from spotcube.stack import StackOutputs
from spotcube.submit import read_run_record

PREEMPTED = "preempted"
TERMINAL_STATES = ("done", "failed")


@dataclass
class ObsStatus:
    """The state of one observation, as far as S3 shows it."""

    obs_id: str
    state: str  # queued | running | done | failed
    chunks_done: int = 0
    chunks_total: int | None = None  # known once the job has said it or finished
    attempts: int = 0
    interruptions: int = 0
    lost_seconds: float = 0.0
    instance_id: str | None = None  # the instance of the open attempt, when running
    error: str | None = None  # from FAILED.json


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
        doc["counts"] = {s: self.count(s) for s in ("queued", "running", "done", "failed")}
        return doc


def list_runs(outputs: StackOutputs) -> list[str]:
    """Run ids in the products bucket, oldest first (run ids from ``new_run_id`` sort by time)."""
    s3 = outputs.client("s3")
    runs: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=outputs.products_bucket, Prefix="runs/", Delimiter="/"):
        for prefix in page.get("CommonPrefixes", []):
            runs.append(prefix["Prefix"][len("runs/") :].rstrip("/"))
    return sorted(runs)


def observation_status(s3: Any, bucket: str, layout: ObsLayout) -> ObsStatus:
    """State of one observation from its DONE, FAILED.json and checkpoint manifest."""
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=layout.prefix, Delimiter="/")
    top = {item["Key"] for item in listing.get("Contents", [])}
    status = ObsStatus(obs_id=layout.obs_id, state="queued")
    manifest = _get_json(s3, bucket, layout.manifest)
    if manifest is not None:
        _apply_manifest(status, manifest)
    if layout.done in top:
        status.state = "done"
        status.instance_id = None
        if status.chunks_total is None:
            status.chunks_total = status.chunks_done
    elif layout.failed in top:
        status.state = "failed"
        status.instance_id = None
        failed = _get_json(s3, bucket, layout.failed) or {}
        status.error = f"{failed.get('error_class', 'error')}: {failed.get('message', '')}".strip()
    return status


def _apply_manifest(status: ObsStatus, manifest: dict[str, Any]) -> None:
    chunks = manifest.get("chunks") or {}
    attempts = manifest.get("attempts") or []
    status.chunks_done = len(chunks)
    total = manifest.get("chunks_total")
    status.chunks_total = total if isinstance(total, int) else None
    status.attempts = len(attempts)
    status.lost_seconds = float(sum(a.get("lost_seconds") or 0.0 for a in attempts))
    # An attempt is an interruption when it ended preempted, or when it never ended but a
    # later attempt exists: its instance was killed before it could say anything.
    status.interruptions = sum(
        1
        for i, a in enumerate(attempts)
        if a.get("reason") == PREEMPTED or (a.get("end") is None and i < len(attempts) - 1)
    )
    if attempts and attempts[-1].get("end") is None:
        status.state = "running"
        status.instance_id = attempts[-1].get("instance_id")


def _get_json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    doc = json.loads(body)
    return doc if isinstance(doc, dict) else None


def _obs_ids_in_bucket(s3: Any, bucket: str, run_id: str) -> list[str]:
    prefix = f"{run_prefix(run_id)}obs/"
    ids: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/"
    ):
        ids += [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
    return ids


def queue_depth(outputs: StackOutputs, url: str) -> QueueDepth:
    attrs = outputs.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return QueueDepth(
        visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


def run_status(outputs: StackOutputs, run_id: str | None = None) -> RunStatus:
    """Collect the status of ``run_id`` (default: the newest run in the products bucket)."""
    if run_id is None:
        runs = list_runs(outputs)
        if not runs:
            raise RefusedError(
                f"no runs in products bucket {outputs.products_bucket}; submit one first"
            )
        run_id = runs[-1]
    s3 = outputs.client("s3")
    record = read_run_record(outputs, run_id)
    obs_ids = [o["obs_id"] for o in record["observations"]] if record else []
    extra = [o for o in _obs_ids_in_bucket(s3, outputs.products_bucket, run_id) if o not in obs_ids]
    obs_ids += sorted(extra)
    if not obs_ids:
        raise UsageError(f"run {run_id} not found in products bucket {outputs.products_bucket}")
    status = RunStatus(
        run_id=run_id,
        kind=record.get("kind") if record else None,
        submitted_at=record.get("submitted_at") if record else None,
        observations=[
            observation_status(s3, outputs.products_bucket, ObsLayout(run_id, o)) for o in obs_ids
        ],
        queue=queue_depth(outputs, outputs.job_queue_url),
    )
    if outputs.dead_letter_queue_url:
        status.dead_letter = queue_depth(outputs, outputs.dead_letter_queue_url)
    return status


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
            escape(obs.error or obs.instance_id or ""),  # an error may contain [brackets]
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
