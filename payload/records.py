"""Typed, versioned records of a run in the products bucket, and what an attempt's end means.

Each record has one writer and is read through these classes by everyone else:

============== ========================================= =====================================
record         key (:mod:`contract.layout`)              writer
============== ========================================= =====================================
RunRecord      ``runs/<run>/run.json``                   ``spotcube submit`` (submit_run)
Manifest       ``.../checkpoint/manifest.json``          the checkpointer (payload.checkpoint)
DoneRecord     ``.../DONE``                              ``JobAttempt.publish``
FailedRecord   ``.../FAILED.json``                       ``JobAttempt.write_failed``
WorkdirIndex   ``.../checkpoint/workdir-index.json``     ``WorkdirSync.sync`` (command jobs)
============== ========================================= =====================================

:class:`AttemptState` is the one answer to "was this attempt interrupted, did it fail, is it
done": ``spotcube status``, ``report``, ``logs`` and the demo's report all classify attempts
with :func:`attempt_states`, so they cannot disagree.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from payload.contracts import SCHEMA, Attempt
from payload.errors import InvalidInputError
from payload.outcomes import Outcome


class AttemptState(enum.StrEnum):
    """How one attempt stands, as far as the manifest and DONE/FAILED.json show."""

    RUNNING = "running"  # no end yet, the latest attempt, the observation not finished
    DONE = "done"
    PREEMPTED = "preempted"  # a notice: checkpoint made, job handed back
    KILLED = "killed"  # never ended, yet a later attempt exists or the observation finished
    TRANSIENT = "transient"
    INVALID = "invalid"
    SUPERSEDED = "superseded"  # finished, lost the DONE race, deleted what it wrote
    UNKNOWN = "unknown"  # an end reason this payload version does not know

    @property
    def interrupted(self) -> bool:
        """The instance went away under the attempt (a spot reclaim with or without notice)."""
        return self in (AttemptState.PREEMPTED, AttemptState.KILLED)

    @property
    def failed(self) -> bool:
        """The attempt ended in an error of the job or its input."""
        return self in (AttemptState.TRANSIENT, AttemptState.INVALID, AttemptState.UNKNOWN)

    @property
    def ended(self) -> bool:
        return self is not AttemptState.RUNNING


_BY_OUTCOME = {
    Outcome.DONE.value: AttemptState.DONE,
    Outcome.PREEMPTED.value: AttemptState.PREEMPTED,
    Outcome.TRANSIENT.value: AttemptState.TRANSIENT,
    Outcome.INVALID.value: AttemptState.INVALID,
    Outcome.SUPERSEDED.value: AttemptState.SUPERSEDED,
}


def attempt_states(attempts: Sequence[Attempt], *, finished: bool) -> list[AttemptState]:
    """Classify every attempt of one observation (``finished``: DONE or FAILED.json exists).

    An attempt without an end was killed (SIGKILL at a spot deadline, a lost instance) when a
    later attempt exists or the observation has finished since; otherwise it is running.
    """
    states = []
    for i, attempt in enumerate(attempts):
        if attempt.end is None:
            later = i < len(attempts) - 1
            states.append(AttemptState.KILLED if later or finished else AttemptState.RUNNING)
        else:
            states.append(_BY_OUTCOME.get(attempt.reason or "", AttemptState.UNKNOWN))
    return states


# --- records ---------------------------------------------------------------------------------

_R = TypeVar("_R")


def _parse(cls: type[_R], raw: str | bytes, what: str) -> _R:
    """Build a record dataclass from JSON; unknown keys are ignored (added by newer writers)."""
    try:
        doc = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{what} must be a JSON object")
    if doc.get("schema", SCHEMA) != SCHEMA:
        raise InvalidInputError(
            f"{what} has schema {doc.get('schema')!r}; this spotcube reads schema {SCHEMA}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    required = [
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in doc]
    if missing:
        raise InvalidInputError(f"{what} lacks key(s): {', '.join(missing)}")
    return cls(**{k: v for k, v in doc.items() if k in fields})


def _dump(record: Any) -> bytes:
    return json.dumps(dataclasses.asdict(record), indent=1, sort_keys=True).encode()


@dataclass(frozen=True)
class RunRecord:
    """What a run submitted; written once (``If-None-Match: *``) by ``spotcube submit``."""

    run_id: str
    kind: str
    params_hash: str
    submitted_at: str
    params: Mapping[str, Any] = field(default_factory=dict)
    observations: list[dict[str, str]] = field(default_factory=list)  # obs_id, input
    schema: int = SCHEMA

    @property
    def obs_ids(self) -> list[str]:
        return [o["obs_id"] for o in self.observations]

    def to_json(self) -> bytes:
        return _dump(self)

    @classmethod
    def from_json(cls, raw: str | bytes, *, what: str = "run record") -> RunRecord:
        return _parse(cls, raw, what)


@dataclass(frozen=True)
class DoneRecord:
    """Written last and once per observation: the commit point of its products.

    ``products`` names, for each product, the key of the object the winning attempt wrote
    (under its private ``attempts/<token>/`` prefix) and its sha256; nothing writes those keys
    again, so the listing stays true. Readers find products here, never by listing a prefix.
    ``code_id`` and ``input_identity`` say which code and which input bytes made them.
    """

    run_id: str
    obs_id: str
    params_hash: str
    products: dict[str, dict[str, Any]]  # name -> key, size, sha256
    instance_id: str
    finished_at: str
    code_id: str = ""  # payload.codeid of the code that made the products ("" before it existed)
    input_identity: dict[str, Any] = field(default_factory=dict)
    attempt: str = ""  # the token of the attempt that won
    schema: int = SCHEMA

    def product_key(self, name: str) -> str | None:
        """The stored key of product ``name``, or ``None`` if DONE does not list it."""
        entry = self.products.get(name)
        key = entry.get("key") if isinstance(entry, Mapping) else None
        return key if isinstance(key, str) else None

    def to_json(self) -> bytes:
        return _dump(self)

    @classmethod
    def from_json(cls, raw: str | bytes, *, what: str = "DONE") -> DoneRecord:
        return _parse(cls, raw, what)


@dataclass(frozen=True)
class FailedRecord:
    """Why an observation failed for good (an invalid input, or too many transient failures)."""

    error_class: str
    message: str
    outcome: str = Outcome.TRANSIENT.value
    instance_id: str | None = None
    failed_at: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)  # the manifest's, as written
    frames: list[str] | None = None  # the last frames of an unexpected exception (a bug)
    schema: int = SCHEMA

    def summary(self) -> str:
        return f"{self.error_class}: {self.message}".strip()

    def to_json(self) -> bytes:
        return _dump(self)

    @classmethod
    def from_json(cls, raw: str | bytes, *, what: str = "FAILED.json") -> FailedRecord:
        record = _parse(cls, raw, what)
        if not isinstance(record.attempts, list):
            # Older writers stored a count here; the manifest has the attempts anyway.
            record = dataclasses.replace(record, attempts=[])
        return record


@dataclass
class WorkdirIndex:
    """The files of a command job's working directory that are durable in S3."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # relpath -> size, sha256
    schema: int = SCHEMA

    def to_json(self) -> bytes:
        return _dump(self)

    @classmethod
    def from_json(cls, raw: str | bytes, *, what: str = "workdir index") -> WorkdirIndex:
        return _parse(cls, raw, what)
