"""Versioned contracts between the operator, the queue, the workers and the products bucket.

Everything here is pure data: the SQS job message, the S3 key layout of a run, and the
checkpoint manifest. Other parts (``spotcube submit``, the worker, ``spotcube status`` and
``spotcube report``) depend on these shapes, so they carry ``"schema": 1`` and change only
with a new schema number.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contract.jobs import JOB_KINDS, JobKind

# The S3 layout has its own module; these names stay importable from here for callers that
# predate it.
from contract.layout import (  # noqa: F401
    CHECKPOINT_TAG,
    ID_PATTERN,
    ObsLayout,
    is_checkpoint_key,
    run_prefix,
    run_record_key,
)
from payload import __version__
from payload.codeid import current_code_identity
from payload.errors import InvalidInputError

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
        """Serialise to the SQS message body."""
        return canonical_json(dataclasses.asdict(self) | {"params": dict(self.params)})

    @classmethod
    def from_json(cls, body: str) -> JobMessage:
        """Parse an SQS message body; raise :class:`InvalidInputError` if it is not one."""
        try:
            doc = json.loads(body)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"job message is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidInputError("job message must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - {"schema"} - doc.keys())
        if missing:
            raise InvalidInputError(f"job message lacks field(s): {', '.join(missing)}")
        message = cls(**{k: v for k, v in doc.items() if k in names})
        message.validate()
        return message


# --- Checkpoint manifest ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkRecord:
    """A finished chunk that is durable in S3."""

    key: str
    size: int
    sha256: str
    seconds: float = 0.0  # compute time of the chunk, for deadline decisions and reports


@dataclass
class Attempt:
    """One instance's attempt at a job."""

    instance_id: str
    start: str
    instance_type: str = "unknown"
    availability_zone: str = "unknown"
    end: str | None = None
    reason: str | None = None  # an Outcome value once the attempt ended
    chunks_done: int = 0  # chunks this attempt made durable
    lost_seconds: float = 0.0  # compute thrown away (a chunk abandoned at a deadline)
    log: str | None = None  # key of this attempt's shipped log (payload.logship)
    # When this attempt last committed the manifest: the latest time it is known to have been
    # alive, which is what an attempt killed without a word is reported to have lasted.
    last_seen: str | None = None


@dataclass
class Manifest:
    """What is durable for one job (DESIGN.md, "Manifest").

    A chunk counts only when it is listed here, and the manifest is written only after the
    chunks it lists are durable, so a reader never sees a chunk that is not there.
    """

    run_id: str
    obs_id: str
    kind: str
    params_hash: str
    input_identity: dict[str, Any] = field(default_factory=dict)  # uri, etag, size, sha256
    chunks: dict[str, ChunkRecord] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    chunks_total: int | None = None  # how many chunks the job has, once a worker built it
    code_id: str = ""  # payload.codeid of the code that made the chunks (also in params_hash)
    updated_at: str = field(default_factory=utc_now)
    schema: int = SCHEMA

    @classmethod
    def new(cls, message: JobMessage, input_identity: Mapping[str, Any]) -> Manifest:
        return cls(
            run_id=message.run_id,
            obs_id=message.obs_id,
            kind=message.kind,
            params_hash=message.params_hash,
            input_identity=dict(input_identity),
            code_id=CODE_ID,
        )

    def to_json(self) -> str:
        self.updated_at = utc_now()
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        doc = json.loads(text)
        if doc.get("schema") != SCHEMA:
            raise InvalidInputError(
                f"checkpoint manifest schema {doc.get('schema')!r} is not {SCHEMA}; "
                "delete the checkpoint prefix to start the observation afresh"
            )
        chunks = {
            cid: ChunkRecord(**_known(ChunkRecord, rec))
            for cid, rec in doc.pop("chunks", {}).items()
        }
        attempts = [Attempt(**_known(Attempt, a)) for a in doc.pop("attempts", [])]
        return cls(chunks=chunks, attempts=attempts, **_known(cls, doc))


def _known(cls: type, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``doc`` that are fields of ``cls``: a newer writer may add optional fields."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in doc.items() if k in names}
