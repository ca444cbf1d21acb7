"""Submit a run: upload inputs to the raw bucket, record the run, queue one job per observation.

The same functions serve ``spotcube submit`` on a user's AWS stack and ``spotcube demo`` on
the embedded local cloud; only the :class:`~spotcube.stack.StackOutputs` differ.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from payload.contracts import (
    JobMessage,
    canonical_json,
    check_id,
    parse_s3_uri,
    run_record_key,
    utc_now,
)
from payload.errors import InvalidInputError
from payload.records import RunRecord
from spotcube.cli import CommandError
from spotcube.stack import StackOutputs

# SQS SendMessageBatch takes at most ten entries.
_BATCH = 10
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Extensions stripped when an observation id is derived from a file name.
_DATA_SUFFIXES = (
    ".uvh5", ".uvfits", ".ms", ".h5", ".hdf5", ".fits", ".bin", ".tar", ".gz", ".zip"
)  # fmt: skip


@dataclass(frozen=True)
class Observation:
    """One observation of a run: its id and the ``s3://`` URI of its input."""

    obs_id: str
    input: str


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id such as ``run-20261121T224500Z-3f9a``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"run-{stamp}-{secrets.token_hex(2)}"


def obs_id_for(name: str) -> str:
    """Observation id derived from a file name or URI: its base name without data suffixes."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    stripped = True
    while stripped:
        stripped = False
        for suffix in _DATA_SUFFIXES:
            if base.lower().endswith(suffix) and len(base) > len(suffix):
                base = base[: -len(suffix)]
                stripped = True
    obs_id = _UNSAFE.sub("-", base).strip("-._") or "obs"
    return obs_id[:128]


def upload_inputs(outputs: StackOutputs, inputs: Sequence[str]) -> list[Observation]:
    """Upload local files to the raw bucket; pass ``s3://`` URIs through unchanged.

    Raises :class:`CommandError` naming the input at fault (missing file, no raw bucket,
    two inputs that would get the same observation id).
    """
    if not inputs:
        raise CommandError("no inputs given: name files or s3:// URIs to process")
    observations: list[Observation] = []
    seen: dict[str, str] = {}
    s3 = None
    for item in inputs:
        obs_id = obs_id_for(item)
        if obs_id in seen:
            raise CommandError(
                f"inputs {seen[obs_id]} and {item} both give observation id {obs_id!r}; "
                "rename one of them"
            )
        seen[obs_id] = item
        if item.startswith("s3://"):
            try:
                parse_s3_uri(item)
            except InvalidInputError as exc:
                raise CommandError(f"input {exc}") from None
            observations.append(Observation(obs_id, item))
            continue
        path = Path(item)
        if not path.is_file():
            raise CommandError(f"input {item}: no such file")
        if not outputs.raw_bucket:
            raise CommandError(
                "the stack has no raw bucket output; pass s3:// URIs of data already in S3"
            )
        if s3 is None:
            s3 = outputs.client("s3")
        key = f"{outputs.raw_prefix}inputs/{path.name}"
        # SHA-256 checksums let S3 reject a corrupted upload instead of storing it.
        s3.upload_file(
            str(path), outputs.raw_bucket, key, ExtraArgs={"ChecksumAlgorithm": "SHA256"}
        )
        observations.append(Observation(obs_id, f"s3://{outputs.raw_bucket}/{key}"))
    return observations


def parse_params(text: str | None, pairs: Sequence[str] = ()) -> dict[str, Any]:
    """Job params from a JSON object (``--params``; ``@FILE`` reads a file) and ``KEY=VALUE``.

    A ``VALUE`` is parsed as JSON when it is valid JSON (numbers, booleans, lists), otherwise
    taken as a string.
    """
    params: dict[str, Any] = {}
    if text:
        source = "--params"
        if text.startswith("@"):
            source = f"--params file {text[1:]}"
            try:
                text = Path(text[1:]).read_text()
            except OSError as exc:
                raise CommandError(f"cannot read {source}: {exc.strerror}") from None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise CommandError(f"{source} is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise CommandError(f"{source} must be a JSON object, not {type(doc).__name__}")
        params.update(doc)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--param {pair!r} is not KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def submit_run(
    outputs: StackOutputs,
    observations: Sequence[Observation],
    *,
    kind: str,
    params: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> tuple[str, list[JobMessage]]:
    """Record the run in the products bucket and send one job message per observation.

    The run record is written first and with ``If-None-Match: *``: a run id is used once,
    and ``spotcube status`` can list observations that no worker has touched yet.
    """
    run_id = run_id or new_run_id()
    try:
        check_id(run_id, "--run-id")
        messages = [
            JobMessage.create(
                run_id=run_id, obs_id=o.obs_id, input=o.input, kind=kind, params=params
            )
            for o in observations
        ]
    except InvalidInputError as exc:
        raise CommandError(str(exc)) from None
    if not messages:
        raise CommandError("no observations to submit")
    record = RunRecord(
        run_id=run_id,
        kind=kind,
        params=dict(params or {}),
        params_hash=messages[0].params_hash,
        submitted_at=utc_now(),
        observations=[{"obs_id": o.obs_id, "input": o.input} for o in observations],
    )
    s3 = outputs.client("s3")
    try:
        s3.put_object(
            Bucket=outputs.products_bucket,
            Key=run_record_key(run_id),
            Body=record.to_json(),
            ContentType="application/json",
            IfNoneMatch="*",
        )
    except s3.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "412"):
            raise CommandError(f"run {run_id} already exists; choose another --run-id") from None
        raise
    sqs = outputs.client("sqs")
    for start in range(0, len(messages), _BATCH):
        batch = messages[start : start + _BATCH]
        entries = [{"Id": str(i), "MessageBody": m.to_json()} for i, m in enumerate(batch)]
        result = sqs.send_message_batch(QueueUrl=outputs.job_queue_url, Entries=entries)
        if result.get("Failed"):
            first = result["Failed"][0]
            raise CommandError(
                f"the job queue refused {len(result['Failed'])} message(s) of run {run_id}: "
                f"{first.get('Code')}: {first.get('Message')}"
            )
    return run_id, messages


def read_run_record(outputs: StackOutputs, run_id: str) -> dict[str, Any] | None:
    """The run record written by :func:`submit_run`, or ``None`` if there is none."""
    s3 = outputs.client("s3")
    try:
        body = s3.get_object(Bucket=outputs.products_bucket, Key=run_record_key(run_id))["Body"]
    except s3.exceptions.NoSuchKey:
        return None
    doc: dict[str, Any] = json.loads(body.read())
    return doc


def selftest_input(outputs: StackOutputs, *, size: int = 4096) -> str:
    """Upload a small deterministic input for selftest jobs and return its URI."""
    if not outputs.raw_bucket:
        raise CommandError("--selftest needs the stack's raw bucket output")
    body = canonical_json({"selftest": True, "bytes": list(range(256))}).encode()
    body = (body * (size // len(body) + 1))[:size]
    key = f"{outputs.raw_prefix}inputs/selftest.json"
    outputs.client("s3").put_object(Bucket=outputs.raw_bucket, Key=key, Body=body)
    return f"s3://{outputs.raw_bucket}/{key}"
