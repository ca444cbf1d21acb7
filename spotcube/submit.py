"""Submit a run: upload inputs to the raw bucket, record the run, queue one job per observation.

The same functions serve ``spotcube submit`` on a user's AWS stack and ``spotcube demo`` on
the embedded local cloud; only the :class:`~spotcube.stack.StackOutputs` differ.
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from payload import inputs as input_store
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
from spotcube.errors import RefusedError, UsageError
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


def upload_inputs(
    outputs: StackOutputs, inputs: Sequence[str], *, log: Callable[[str], None] | None = None
) -> list[Observation]:
    """Store local files and folders in the raw bucket by content; pass ``s3://`` URIs through.

    Each file is stored once under the SHA-256 of its bytes with its name as metadata
    (:mod:`payload.inputs`): another file of the same name gets another key, and bytes
    already stored are not uploaded again. A folder (a Measurement Set, an MWA raw file set)
    is stored as one archive that the worker restores. ``log`` hears one line per input.

    Raises :class:`UsageError` naming the input at fault (missing path, two inputs that
    would get the same observation id) and :class:`RefusedError` when the stack has no raw
    bucket.
    """
    if not inputs:
        raise UsageError("no inputs given: name files, folders or s3:// URIs to process")
    observations: list[Observation] = []
    seen: dict[str, str] = {}
    for item in inputs:
        obs_id = obs_id_for(item)
        if obs_id in seen:
            raise UsageError(
                f"inputs {seen[obs_id]} and {item} both give observation id {obs_id!r}; "
                "rename one of them"
            )
        seen[obs_id] = item
        if item.startswith("s3://"):
            try:
                parse_s3_uri(item)
            except InvalidInputError as exc:
                raise UsageError(f"input {exc}") from None
            observations.append(Observation(obs_id, item))
            continue
        path = Path(item)
        if not path.exists():
            raise UsageError(f"input {item}: no such file or folder")
        if not outputs.raw_bucket:
            raise RefusedError(
                "the stack has no raw bucket output; pass s3:// URIs of data already in S3"
            )
        uri, uploaded = store_input(outputs, path)
        if log is not None:
            log(f"{item}: {'uploaded' if uploaded else 'already stored'} as {uri}")
        observations.append(Observation(obs_id, uri))
    return observations


def store_input(outputs: StackOutputs, path: Path) -> tuple[str, bool]:
    """Store one file or folder under its digest; the URI and whether bytes were sent."""
    if path.is_dir():
        # The archive's digest names the object, so it is written before the upload; it
        # needs as much temporary space as the folder.
        with tempfile.TemporaryDirectory(prefix="spotcube-submit-") as tmp:
            archive = Path(tmp) / "input.tar"
            try:
                with archive.open("wb") as out:
                    input_store.pack_directory(path, out)
            except ValueError as exc:
                raise UsageError(f"input {exc}") from None
            return _put_by_content(outputs, archive, name=path.name, form=input_store.FORM_TAR)
    return _put_by_content(outputs, path, name=path.name, form=input_store.FORM_FILE)


def _put_by_content(outputs: StackOutputs, path: Path, *, name: str, form: str) -> tuple[str, bool]:
    key = input_store.content_key(outputs.raw_prefix, input_store.file_sha256(path))
    uri = f"s3://{outputs.raw_bucket}/{key}"
    s3 = outputs.client("s3")
    try:
        s3.head_object(Bucket=outputs.raw_bucket, Key=key)
        return uri, False
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3.upload_file(
        str(path),
        outputs.raw_bucket,
        key,
        ExtraArgs={
            # S3 checks the SHA-256 and rejects a corrupted upload instead of storing it.
            "ChecksumAlgorithm": "SHA256",
            "Metadata": input_store.metadata_for(name, form),
        },
    )
    return uri, True


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
                raise UsageError(f"cannot read {source}: {exc.strerror}") from None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{source} is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise UsageError(f"{source} must be a JSON object, not {type(doc).__name__}")
        params.update(doc)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r} is not KEY=VALUE")
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
        raise UsageError(str(exc)) from None
    if not messages:
        raise UsageError("no observations to submit")
    record = RunRecord(
        run_id=run_id,
        kind=kind,
        params=dict(params or {}),
        params_hash=messages[0].params_hash,
        submitted_at=utc_now(),
        observations=[{"obs_id": o.obs_id, "input": o.input} for o in observations],
    )
    publish_run(outputs, record, messages)
    return run_id, messages


def publish_run(outputs: StackOutputs, record: RunRecord, messages: Sequence[JobMessage]) -> None:
    """Write the run record (once: ``If-None-Match: *``), then queue the job messages.

    The one writer of a run record: :func:`submit_run` and a job file's runs
    (:func:`spotcube.jobdef.submit_job`, ``spotcube demo --job``) both come here.
    """
    run_id = record.run_id
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
            raise RefusedError(f"run {run_id} already exists; choose another --run-id") from None
        raise
    sqs = outputs.client("sqs")
    for start in range(0, len(messages), _BATCH):
        batch = messages[start : start + _BATCH]
        entries = [{"Id": str(i), "MessageBody": m.to_json()} for i, m in enumerate(batch)]
        result = sqs.send_message_batch(QueueUrl=outputs.job_queue_url, Entries=entries)
        if result.get("Failed"):
            first = result["Failed"][0]
            raise RefusedError(
                f"the job queue refused {len(result['Failed'])} message(s) of run {run_id}: "
                f"{first.get('Code')}: {first.get('Message')}"
            )


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
        raise RefusedError("--selftest needs the stack's raw bucket output")
    body = canonical_json({"selftest": True, "bytes": list(range(256))}).encode()
    body = (body * (size // len(body) + 1))[:size]
    with tempfile.TemporaryDirectory(prefix="spotcube-selftest-") as tmp:
        path = Path(tmp) / "selftest.json"
        path.write_bytes(body)
        uri, _ = store_input(outputs, path)
    return uri
