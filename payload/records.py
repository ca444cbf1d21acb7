"""Typed, versioned records of a run, and the one parser that reads and writes them.

Every document the work plane exchanges is one record here, read and written by
:func:`parse_json` and :func:`dump_json` (and :func:`from_doc`/:func:`to_doc` underneath), so
there is one answer to "what may a newer writer add" and "what does an old document mean":

============== ========================================= =====================================
record         key (:mod:`contract.layout`)              writer
============== ========================================= =====================================
JobMessage     the SQS message body                      ``spotcube submit``
RunRecord      ``runs/<run>/run.json``                   ``spotcube submit`` (submit_run)
Manifest       ``.../checkpoint/manifest.json``          the checkpointer (payload.checkpoint)
DoneRecord     ``.../DONE``                              ``JobAttempt.publish``
FailedRecord   ``.../FAILED.json``                       ``JobAttempt.write_failed``
WorkdirIndex   ``.../checkpoint/workdir-index.json``     ``WorkdirSync.sync`` (command jobs)
============== ========================================= =====================================

The parts of a record are records too (:class:`ObservationRef`, :class:`InputIdentity`,
:class:`ChunkRecord`, :class:`ProductEntry`, :class:`Attempt`, :class:`WorkdirFile`). They
carry ``"schema": 1`` and change only with a new schema number; within it a newer payload may
add optional fields, which this parser ignores at every level.

An :class:`Attempt` is frozen: it changes only through the manifest's owner, the
:class:`~payload.checkpoint.Checkpointer`, under its commit lock, so a commit never writes an
attempt half-way through a change.

:class:`AttemptState` is the one answer to "was this attempt interrupted, did it fail, is it
done": ``spotcube status``, ``report``, ``logs`` and the demo's report all classify attempts
with :func:`attempt_states`, so they cannot disagree.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from contract.jobs import JOB_KINDS, JobKind
from contract.layout import ID_PATTERN
from payload import __version__
from payload.codeid import current_code_identity
from payload.errors import InvalidInputError
from payload.outcomes import Outcome

SCHEMA = 1
# Taken when this module is imported, i.e. of the code this process runs: a source file
# edited under a running worker must not change what the worker claims to be.
CODE_ID = current_code_identity()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace, so equal values hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def params_hash(
    kind: str,
    params: Mapping[str, Any],
    *,
    payload_version: str = __version__,
    code_id: str = CODE_ID,
) -> str:
    """sha256 of the canonical JSON of kind, params, payload version and code identity.

    A checkpoint is only resumed by a job whose hash matches: a change of parameters or of
    the payload's code (:mod:`payload.codeid`, not only its version string) means the
    finished chunks are not the chunks this job would make.
    """
    doc = {
        "kind": kind,
        "params": dict(params),
        "payload_version": payload_version,
        "code_id": code_id,
    }
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


def check_params_hash(message: JobMessage) -> str:
    """Recompute the message's params hash here; refuse a message whose hash differs.

    The worker never trusts the hash a message carries: it names the checkpoint a job may
    resume and the identity DONE records, so a hash that does not follow from the params
    (a re-sent message with other params, a submit from other payload code) would let a
    product mix chunks of two parameter sets or two codes.
    """
    expected = params_hash(message.kind, message.params)
    if message.params_hash != expected:
        raise InvalidInputError(
            f"job message {message.run_id}/{message.obs_id}: params_hash "
            f"{str(message.params_hash)[:12]} does not follow from its params under this payload "
            f"code ({CODE_ID[:12]}), which give {expected[:12]}; submit again with the code the "
            "workers run"
        )
    return expected


def utc_now() -> str:
    """Current time as an ISO 8601 UTC string with a trailing ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_id(value: object, what: str) -> str:
    """Return ``value`` if it is a usable run or observation id, else raise a clear error."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise InvalidInputError(
            f"{what} {value!r} is not a valid id: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; raise a clear error otherwise."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise InvalidInputError(f"{uri!r} is not an S3 URI of the form s3://bucket/key")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise InvalidInputError(f"{uri!r} has no bucket name")
    return bucket, key


# --- the one parser ----------------------------------------------------------------------------

_R = TypeVar("_R")

# A field whose value is left out of the document when it is None, instead of written as null:
# for records whose writers used to leave the key out (an input identity without an ETag).
OMIT_NONE = {"omit_none": True}


def parse_json(cls: type[_R], raw: str | bytes, what: str) -> _R:
    """Read one record from its JSON document; raise :class:`InvalidInputError` if it is not one.

    Unknown keys are ignored at every level (a newer writer may add optional fields); a
    missing key that has no default, a part of the wrong shape or another schema number is
    an error that names the document.
    """
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
    return from_doc(cls, doc, what)


def dump_json(record: Any) -> bytes:
    """The stored form of a record: indented one space, keys sorted (as every writer did)."""
    return json.dumps(to_doc(record), indent=1, sort_keys=True).encode()


def from_doc(cls: type[_R], doc: Any, what: str) -> _R:
    """Build record ``cls`` from a decoded JSON object, its parts by their annotations."""
    if not isinstance(doc, Mapping):
        raise InvalidInputError(f"{what} must be a JSON object, not {type(doc).__name__}")
    hints = _hints(cls)
    every = dataclasses.fields(cls)  # type: ignore[arg-type]
    # A field outside __init__ is a constant of the record (a tag such as "available"): a
    # document that says otherwise is another record.
    for f in every:
        if not f.init and f.name in doc and doc[f.name] != f.default:
            raise InvalidInputError(f"{what}: {f.name} is {doc[f.name]!r}, not {f.default!r}")
    fields = {f.name: f for f in every if f.init}
    missing = [
        name
        for name, f in fields.items()
        if name not in doc
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise InvalidInputError(f"{what} lacks key(s): {', '.join(missing)}")
    values = {
        name: _value(hints[name], doc[name], f"{what}: {name}") for name in fields if name in doc
    }
    return cls(**values)


def to_doc(record: Any) -> Any:
    """The JSON value of a record or of one of its parts (the inverse of :func:`from_doc`)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {
            f.name: to_doc(value)
            for f in dataclasses.fields(record)
            if not ((value := getattr(record, f.name)) is None and f.metadata.get("omit_none"))
        }
    if isinstance(record, enum.Enum):
        return record.value
    if isinstance(record, Mapping):
        return {key: to_doc(value) for key, value in record.items()}
    if isinstance(record, list | tuple):
        return [to_doc(value) for value in record]
    return record


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a record class (once per class: parsing is hot in status)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _value(hint: Any, value: Any, what: str) -> Any:
    """``value`` as annotation ``hint`` says; plain JSON values are taken as they are."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None:
            return None
        args = typing.get_args(hint)
        if value == {} and type(None) in args and any(dataclasses.is_dataclass(a) for a in args):
            return None  # an identity as versions whose default was an empty dict wrote it
        records = [arg for arg in args if dataclasses.is_dataclass(arg)]
        for arg in records:  # the first record the value is (a union of tagged records)
            try:
                return _value(arg, value, what)
            except InvalidInputError:
                if arg is records[-1]:
                    raise
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_doc(hint, value, what)
    if origin is list and typing.get_args(hint):
        if not isinstance(value, list):
            raise InvalidInputError(f"{what} must be a JSON list")
        (item,) = typing.get_args(hint)
        return [_value(item, v, f"{what}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Mapping) and typing.get_args(hint):
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"{what} must be a JSON object")
        _, item = typing.get_args(hint)
        return {k: _value(item, v, f"{what}[{k!r}]") for k, v in value.items()}
    return value


# --- the job message ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobMessage:
    """The body of one SQS job message: one observation to process in one run."""

    run_id: str
    obs_id: str
    input: str
    kind: str
    params: Mapping[str, Any]
    params_hash: str
    submitted_at: str
    schema: int = SCHEMA

    @classmethod
    def create(
        cls,
        *,
        run_id: str,
        obs_id: str,
        input: str,
        kind: str,
        params: Mapping[str, Any] | None = None,
    ) -> JobMessage:
        """Build a message for a new job, computing its params hash and timestamp."""
        params = dict(params or {})
        message = cls(
            run_id=run_id,
            obs_id=obs_id,
            input=input,
            kind=kind,
            params=params,
            params_hash=params_hash(kind, params),
            submitted_at=utc_now(),
        )
        message.validate()
        return message

    def validate(self) -> None:
        """Raise :class:`InvalidInputError` naming the first field that is wrong."""
        if self.schema != SCHEMA:
            raise InvalidInputError(
                f"job message schema {self.schema!r} is not supported by payload "
                f"{__version__} (expects {SCHEMA})"
            )
        check_id(self.run_id, "run_id")
        check_id(self.obs_id, "obs_id")
        if self.kind not in JOB_KINDS:
            raise InvalidInputError(
                f"job kind {self.kind!r} is unknown; expected one of {', '.join(JOB_KINDS)}"
            )
        if self.kind != JobKind.COMMAND:
            parse_s3_uri(self.input)
        if not isinstance(self.params, Mapping):
            raise InvalidInputError("job params must be a JSON object")

    def to_json(self) -> str:
        """Serialise to the SQS message body (canonical JSON: it is hashed and compared)."""
        return canonical_json(to_doc(self))

    @classmethod
    def from_json(cls, body: str) -> JobMessage:
        """Parse an SQS message body; raise :class:`InvalidInputError` if it is not one."""
        try:
            doc = json.loads(body)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"job message is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidInputError("job message must be a JSON object")
        # Checked by validate(), with a message naming the payload version, not here.
        message = from_doc(cls, doc | {"schema": doc.get("schema", SCHEMA)}, "job message")
        message.validate()
        return message


# --- what an observation is made from ----------------------------------------------------------


@dataclass(frozen=True)
class ObservationRef:
    """One observation of a run: its id and the URI of its input.

    ``params_hash`` is written only by runs from a job definition (``spotcube submit
    --job``), whose observations each have their own params.
    """

    obs_id: str
    input: str
    params_hash: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class InputIdentity:
    """Which bytes an input was when a job read it: ``spotcube submit``'s URI, S3's answer.

    ``etag`` and ``size`` are what a HEAD of an ``s3://`` input said; a ``command`` job whose
    input is not in S3 has only its ``uri``. Keys without a value are left out of the stored
    document, as the dicts this record replaces did.
    """

    uri: str
    etag: str | None = field(default=None, metadata=OMIT_NONE)
    size: int | None = field(default=None, metadata=OMIT_NONE)
    sha256: str | None = field(default=None, metadata=OMIT_NONE)

    def changed_from(self, other: InputIdentity) -> str | None:
        """The first of etag, size, sha256 both identities know and disagree on, if any."""
        for name in ("etag", "size", "sha256"):
            old, new = getattr(other, name), getattr(self, name)
            if old is not None and new is not None and old != new:
                return name
        return None


@typing.overload
def known_outcome(value: None) -> None: ...
@typing.overload
def known_outcome(value: Outcome | str) -> Outcome | str: ...
def known_outcome(value: Outcome | str | None) -> Outcome | str | None:
    """``value`` as an :class:`Outcome` when this payload knows it; other strings as they are.

    An outcome only a newer payload knows must survive this one reading and rewriting the
    document (classified :attr:`AttemptState.UNKNOWN` meanwhile), so it is never an error.
    """
    if isinstance(value, str) and not isinstance(value, Outcome):
        try:
            return Outcome(value)
        except ValueError:
            return value
    return value


# --- the checkpoint manifest -------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkRecord:
    """A finished chunk that is durable in S3."""

    key: str
    size: int
    sha256: str
    seconds: float = 0.0  # compute time of the chunk, for deadline decisions and reports
    # S3's ETag of the upload: combine reads the chunk by range pinned to it (If-Match),
    # so a chunk object rewritten with other bytes is refused without reading it whole.
    # Omitted when unknown, so a manifest of an older payload keeps its bytes.
    etag: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class Attempt:
    """One instance's attempt at a job.

    Frozen: the manifest's owner (:class:`payload.checkpoint.Checkpointer`) replaces it,
    under its commit lock, when the attempt commits chunks or ends.
    """

    instance_id: str
    start: str
    instance_type: str = "unknown"
    availability_zone: str = "unknown"
    end: str | None = None
    # How the attempt ended, once it did. A str only for an outcome a newer payload wrote
    # and this one does not know (AttemptState.UNKNOWN); kept so a rewrite does not lose it.
    reason: Outcome | str | None = None
    chunks_done: int = 0  # chunks this attempt made durable
    lost_seconds: float = 0.0  # compute thrown away (a chunk abandoned at a deadline)
    log: str | None = None  # key of this attempt's shipped log (payload.logship)
    # When this attempt last committed the manifest: the latest time it is known to have been
    # alive, which is what an attempt killed without a word is reported to have lasted.
    last_seen: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", known_outcome(self.reason))

    @property
    def outcome(self) -> Outcome | None:
        """How the attempt ended, if it did and this payload knows the outcome."""
        return self.reason if isinstance(self.reason, Outcome) else None


@dataclass
class Manifest:
    """What is durable for one job (DESIGN.md, "Manifest").

    A chunk counts only when it is listed here, and the manifest is written only after the
    chunks it lists are durable, so a reader never sees a chunk that is not there. On an
    instance its one writer is the :class:`~payload.checkpoint.Checkpointer`.
    """

    run_id: str
    obs_id: str
    kind: str
    params_hash: str
    # None only in manifests older than it, which had no key (left out again when rewritten).
    input_identity: InputIdentity | None = field(default=None, metadata=OMIT_NONE)
    chunks: dict[str, ChunkRecord] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    chunks_total: int | None = None  # how many chunks the job has, once a worker built it
    code_id: str = ""  # payload.codeid of the code that made the chunks (also in params_hash)
    updated_at: str = field(default_factory=utc_now)
    schema: int = SCHEMA

    @classmethod
    def new(cls, message: JobMessage, input_identity: InputIdentity) -> Manifest:
        return cls(
            run_id=message.run_id,
            obs_id=message.obs_id,
            kind=message.kind,
            params_hash=message.params_hash,
            input_identity=input_identity,
            code_id=CODE_ID,
        )

    def to_json(self) -> bytes:
        return dump_json(self)

    @classmethod
    def from_json(cls, raw: str | bytes, *, what: str = "checkpoint manifest") -> Manifest:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            found = doc.get("schema") if isinstance(doc, dict) else None
            raise InvalidInputError(
                f"{what} schema {found!r} is not {SCHEMA}; "
                "delete the checkpoint prefix to start the observation afresh"
            )
        return from_doc(cls, doc, what)


# --- how an attempt stands ---------------------------------------------------------------------


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
    Outcome.DONE: AttemptState.DONE,
    Outcome.PREEMPTED: AttemptState.PREEMPTED,
    Outcome.TRANSIENT: AttemptState.TRANSIENT,
    Outcome.INVALID: AttemptState.INVALID,
    Outcome.SUPERSEDED: AttemptState.SUPERSEDED,
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
            outcome = attempt.outcome
            states.append(AttemptState.UNKNOWN if outcome is None else _BY_OUTCOME[outcome])
    return states


# --- the records of a run ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """What a run submitted; written once (``If-None-Match: *``) by ``spotcube submit``."""

    run_id: str
    kind: str
    params_hash: str
    submitted_at: str
    params: Mapping[str, Any] = field(default_factory=dict)
    observations: list[ObservationRef] = field(default_factory=list)
    schema: int = SCHEMA

    @property
    def obs_ids(self) -> list[str]:
        return [o.obs_id for o in self.observations]

    def to_json(self) -> bytes:
        return dump_json(self)

    @classmethod
    def from_json(cls, raw: str | bytes, *, what: str = "run record") -> RunRecord:
        return parse_json(cls, raw, what)


@dataclass(frozen=True)
class ProductEntry:
    """One product an attempt uploaded: where it is and what it holds."""

    key: str  # under the attempt's private prefix (contract.layout ObsLayout.attempt_product)
    size: int
    sha256: str


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
    products: dict[str, ProductEntry]
    instance_id: str
    finished_at: str
    code_id: str = ""  # payload.codeid of the code that made the products ("" before it existed)
    # None only in DONEs older than it, which had no key (left out again when rewritten).
    input_identity: InputIdentity | None = field(default=None, metadata=OMIT_NONE)
    attempt: str = ""  # the token of the attempt that won
    schema: int = SCHEMA

    def product_key(self, name: str) -> str | None:
        """The stored key of product ``name``, or ``None`` if DONE does not list it."""
        entry = self.products.get(name)
        return None if entry is None else entry.key

    def to_json(self) -> bytes:
        return dump_json(self)

    @classmethod
    def from_json(cls, raw: str | bytes, *, what: str = "DONE") -> DoneRecord:
        return parse_json(cls, raw, what)


@dataclass(frozen=True)
class FailedRecord:
    """Why an observation failed for good (an invalid input, or too many transient failures)."""

    error_class: str
    message: str
    outcome: Outcome | str = Outcome.TRANSIENT
    instance_id: str | None = None
    failed_at: str | None = None
    attempts: list[Attempt] = field(default_factory=list)  # the manifest's, as written
    frames: list[str] | None = None  # the last frames of an unexpected exception (a bug)
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", known_outcome(self.outcome))

    def summary(self) -> str:
        return f"{self.error_class}: {self.message}".strip()

    def to_json(self) -> bytes:
        return dump_json(self)

    @classmethod
    def from_json(cls, raw: str | bytes, *, what: str = "FAILED.json") -> FailedRecord:
        try:
            doc = json.loads(raw)
        except (TypeError, ValueError):
            doc = None  # parse_json says what is wrong
        if isinstance(doc, dict) and not isinstance(doc.get("attempts", []), list):
            # Older writers stored a count here; the manifest has the attempts anyway.
            raw = json.dumps(doc | {"attempts": []})
        return parse_json(cls, raw, what)


@dataclass(frozen=True)
class WorkdirFile:
    """One file of a command job's working directory, durable in S3 with this content.

    ``stat`` is ``(size, mtime_ns)`` of the local copy when it was synced (or restored): the
    sync compares it with the file as it is now to find what changed since. It describes the
    instance that wrote the index, so a restore replaces it with its own copy's.
    """

    size: int
    sha256: str
    # None only in an index written without it (by hand): the file then counts as changed.
    stat: tuple[int, int] | None = field(default=None, metadata=OMIT_NONE)

    def __post_init__(self) -> None:
        if self.stat is None:
            return
        stat = tuple(self.stat) if isinstance(self.stat, list | tuple) else ()
        if len(stat) != 2 or not all(isinstance(v, int) for v in stat):
            raise InvalidInputError(f"workdir file stat {self.stat!r} is not [size, mtime_ns]")
        object.__setattr__(self, "stat", stat)  # a JSON list, read back


@dataclass
class WorkdirIndex:
    """The files of a command job's working directory that are durable in S3."""

    files: dict[str, WorkdirFile] = field(default_factory=dict)  # by path in the directory
    schema: int = SCHEMA

    def to_json(self) -> bytes:
        return dump_json(self)

    @classmethod
    def from_json(cls, raw: str | bytes, *, what: str = "workdir index") -> WorkdirIndex:
        return parse_json(cls, raw, what)
