"""The operator's one reader of a run in the products bucket.

``spotcube status``, ``report``, ``logs``, ``down`` and the demo's report are views of the
:class:`RunState` this module reads: one listing of the run's prefix taken apart by
:func:`contract.layout.parse_key`, then the typed records of :mod:`payload.records`. Attempts
are classified once, by :func:`payload.records.attempt_states`, so the views agree on what
was interrupted, what failed and what is still running.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contract.layout import RUNS, KeyKind, ObsLayout, ParsedKey, parse_key, run_prefix
from contract.layout import run_record_key as _run_record_key
from payload.errors import InvalidInputError
from payload.records import (
    Attempt,
    AttemptState,
    DoneRecord,
    FailedRecord,
    Manifest,
    RunRecord,
    attempt_states,
)


class ObsPhase(enum.StrEnum):
    """Where an observation stands."""

    QUEUED = "queued"  # no attempt yet, or the last one ended and the job waits in the queue
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (ObsPhase.DONE, ObsPhase.FAILED)


@dataclass(frozen=True)
class AttemptView:
    """One attempt with its number (1-based, manifest order) and its classification."""

    number: int
    record: Attempt
    state: AttemptState
    log_key: str | None
    end_estimate: str | None  # the end, or for a killed attempt the latest it can have been

    def hours(self, speedup: float = 1.0) -> float | None:
        """Instance time of an ended attempt (modelled hours), ``None`` while it runs."""
        if self.end_estimate is None:
            return None
        seconds = (_parse_time(self.end_estimate) - _parse_time(self.record.start)).total_seconds()
        return max(seconds, 0.0) / 3600 * speedup


@dataclass
class ObsState:
    """Everything the products bucket says about one observation."""

    layout: ObsLayout
    kinds: set[KeyKind] = field(default_factory=set)  # what objects exist
    manifest: Manifest | None = None
    failed: FailedRecord | None = None
    done_record: DoneRecord | None = None  # read when DONE exists: the products' one listing
    logs: dict[int, str] = field(default_factory=dict)  # attempt number -> key, as listed
    problems: list[str] = field(default_factory=list)  # records that could not be read

    @property
    def obs_id(self) -> str:
        return self.layout.obs_id

    @property
    def done(self) -> bool:
        return KeyKind.DONE in self.kinds

    @property
    def products(self) -> dict[str, str]:
        """Product name -> key, as DONE lists them: the only objects that are products.

        Objects under ``attempts/`` that DONE does not list (an attempt killed before its
        DONE write, or one that lost the race) are never the observation's products.
        """
        done = self.done_record
        if done is None:
            return {}
        return {name: key for name in done.products if (key := done.product_key(name))}

    @property
    def has_failed(self) -> bool:
        return KeyKind.FAILED in self.kinds and not self.done

    @property
    def finished(self) -> bool:
        return self.done or self.has_failed

    @property
    def checkpointed(self) -> bool:
        """A manifest exists: some attempt has started and recorded itself."""
        return KeyKind.MANIFEST in self.kinds

    @property
    def attempts(self) -> list[AttemptView]:
        records = self.manifest.attempts if self.manifest else []
        states = attempt_states(records, finished=self.finished)
        views = []
        for i, (record, state) in enumerate(zip(records, states, strict=True)):
            if record.end is not None:
                end: str | None = record.end
            elif state is AttemptState.KILLED:
                end = _killed_end(records, i, self.manifest_time)
            else:
                end = None
            log_key = record.log or self.logs.get(i + 1)
            views.append(AttemptView(i + 1, record, state, log_key, end))
        return views

    @property
    def manifest_time(self) -> str | None:
        return self.manifest.updated_at if self.manifest else None

    @property
    def phase(self) -> ObsPhase:
        if self.done:
            return ObsPhase.DONE
        if self.has_failed:
            return ObsPhase.FAILED
        attempts = self.attempts
        if attempts and attempts[-1].state is AttemptState.RUNNING:
            return ObsPhase.RUNNING
        return ObsPhase.QUEUED

    @property
    def interruptions(self) -> int:
        """Attempts whose instance went away under them (preempted or killed)."""
        return sum(1 for a in self.attempts if a.state.interrupted)

    @property
    def lost_seconds(self) -> float:
        return sum(a.record.lost_seconds for a in self.attempts)

    @property
    def chunks_done(self) -> int:
        return len(self.manifest.chunks) if self.manifest else 0

    @property
    def chunks_total(self) -> int | None:
        if self.manifest and self.manifest.chunks_total is not None:
            return self.manifest.chunks_total
        return self.chunks_done if self.done else None

    @property
    def running_on(self) -> str | None:
        attempts = self.attempts
        if self.phase is ObsPhase.RUNNING:
            return attempts[-1].record.instance_id
        return None

    @property
    def error(self) -> str | None:
        if not self.has_failed:
            return None
        if self.failed is None:
            return "FAILED.json unreadable: " + "; ".join(self.problems)
        return self.failed.summary()


@dataclass
class RunState:
    """A run: its record (if submitted through spotcube) and its observations in order."""

    run_id: str
    record: RunRecord | None
    observations: list[ObsState]

    def obs(self, obs_id: str) -> ObsState:
        for state in self.observations:
            if state.obs_id == obs_id:
                return state
        known = ", ".join(o.obs_id for o in self.observations) or "none"
        raise LookupError(f"run {self.run_id} has no observation {obs_id!r} (it has: {known})")


def list_runs(s3: Any, bucket: str) -> list[str]:
    """Run ids in the products bucket, oldest first (run ids from ``new_run_id`` sort by time)."""
    runs: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=RUNS, Delimiter="/"):
        for prefix in page.get("CommonPrefixes", []):
            runs.append(prefix["Prefix"][len(RUNS) :].rstrip("/"))
    return sorted(runs)


def list_keys(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object under ``prefix`` (``Key``, ``Size``, ``StorageClass``, ...)."""
    found: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(page.get("Contents", []))
    return found


def observations_from_keys(keys: Iterable[str]) -> dict[tuple[str, str], ObsState]:
    """Observations named by ``keys``, with what exists of each; no object is read."""
    found: dict[tuple[str, str], ObsState] = {}
    for key in keys:
        parsed = parse_key(key)
        if parsed is None or parsed.obs_id is None:
            continue
        state = found.setdefault((parsed.run_id, parsed.obs_id), ObsState(_layout(parsed)))
        state.kinds.add(parsed.kind)
        if parsed.kind is KeyKind.LOG and parsed.attempt is not None:
            state.logs[parsed.attempt] = key
    return found


def read_run(s3: Any, bucket: str, run_id: str) -> RunState:
    """Read a run's record, manifests and FAILED.json files.

    Raises
    ------
    LookupError
        Neither a run record nor any observation of ``run_id`` is in ``bucket``.
    """
    keys = [item["Key"] for item in list_keys(s3, bucket, run_prefix(run_id))]
    record = None
    if _run_record_key(run_id) in keys:
        raw = _get(s3, bucket, _run_record_key(run_id))
        try:
            record = None if raw is None else RunRecord.from_json(raw)
        except InvalidInputError:
            record = None  # the observations are still listed from their own keys
    found = {obs: state for (run, obs), state in observations_from_keys(keys).items()}
    order = record.obs_ids if record else []
    order += sorted(o for o in found if o not in order)
    if not order:
        raise LookupError(f"run {run_id} not found in products bucket {bucket}")
    observations = []
    for obs_id in order:
        state = found.get(obs_id) or ObsState(ObsLayout(run_id, obs_id))
        _read_records(s3, bucket, state)
        observations.append(state)
    return RunState(run_id=run_id, record=record, observations=observations)


def _read_records(s3: Any, bucket: str, state: ObsState) -> None:
    layout = state.layout
    if state.checkpointed:
        raw = _get(s3, bucket, layout.manifest)
        if raw is not None:
            try:
                state.manifest = Manifest.from_json(raw)
            except (InvalidInputError, ValueError, TypeError) as exc:
                state.problems.append(f"s3://{bucket}/{layout.manifest}: {exc}")
    if state.done:
        raw = _get(s3, bucket, layout.done)
        if raw is not None:
            try:
                state.done_record = DoneRecord.from_json(raw, what=f"s3://{bucket}/{layout.done}")
            except InvalidInputError as exc:
                state.problems.append(str(exc))
    if state.has_failed:
        raw = _get(s3, bucket, layout.failed)
        if raw is not None:
            try:
                state.failed = FailedRecord.from_json(raw, what=f"s3://{bucket}/{layout.failed}")
            except InvalidInputError as exc:
                state.problems.append(str(exc))


def _killed_end(records: list[Attempt], i: int, manifest_time: str | None) -> str | None:
    """When an attempt killed without a word is taken to have ended.

    Its last manifest commit (``last_seen``) is the latest time it is known to have lived;
    it died before it could commit the next chunk, so this is short by less than one chunk.
    The next attempt's start is no substitute: the message waits out its visibility timeout
    and then any backlog in the queue. Manifests written before ``last_seen`` existed fall
    back to the next attempt's start (or the manifest's last write), an upper bound.
    """
    record = records[i]
    if record.last_seen is not None:
        return record.last_seen
    return records[i + 1].start if i + 1 < len(records) else manifest_time


def _layout(parsed: ParsedKey) -> ObsLayout:
    layout = parsed.layout
    assert layout is not None
    return layout


def _get(s3: Any, bucket: str, key: str) -> bytes | None:
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return body


def read_object(s3: Any, bucket: str, key: str) -> bytes | None:
    """One object's bytes, or ``None`` if it does not exist (logs, records)."""
    return _get(s3, bucket, key)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
