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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract.jobs import JobKind
from contract.layout import run_record_key
from payload import inputs as input_store
from payload.errors import InvalidInputError
from payload.inputcheck import check_input_path
from payload.jobparams import check_job_params, image_chunk_channels
from payload.records import (
    JobMessage,
    ObservationRef,
    RunRecord,
    canonical_json,
    check_id,
    parse_s3_uri,
    utc_now,
)
from spotcube.errors import CloudUnreachableError, RefusedError, UsageError
from spotcube.publish import Submission, publish_run, refuse_other_content, submission_key
from spotcube.stack import StackOutputs

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Extensions stripped when an observation id is derived from a file name.
_DATA_SUFFIXES = (
    ".uvh5", ".uvfits", ".ms", ".h5", ".hdf5", ".fits", ".bin", ".tar", ".gz", ".zip"
)  # fmt: skip


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


def plan_inputs(inputs: Sequence[str]) -> list[tuple[str, str]]:
    """Each input with its observation id, every input checked before any is uploaded.

    Raises :class:`UsageError` naming the input at fault: a local path that is missing,
    unreadable, empty or no regular file or folder (:func:`payload.inputcheck.check_input_path`,
    the worker's own check), a malformed ``s3://`` URI, or two inputs that would get the same
    observation id.
    """
    if not inputs:
        raise UsageError("no inputs given: name files, folders or s3:// URIs to process")
    planned: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for item in inputs:
        obs_id = obs_id_for(item)
        if obs_id in seen:
            raise UsageError(
                f"inputs {seen[obs_id]} and {item} both give observation id {obs_id!r}; "
                "rename one of them"
            )
        seen[obs_id] = item
        try:
            if item.startswith("s3://"):
                parse_s3_uri(item)
            elif not Path(item).exists() and not Path(item).is_symlink():
                raise InvalidInputError(f"{item}: no such file or folder")
            else:
                check_input_path(Path(item))
        except InvalidInputError as exc:
            raise UsageError(f"input {exc}") from None
        planned.append((obs_id, item))
    return planned


def check_stack(outputs: StackOutputs, *, raw_bucket: bool) -> None:
    """Refuse a stack whose products bucket, job queue or (if needed) raw bucket is missing.

    A missing stack resource is the CLI's "unreachable" (exit 5), as for every command: the
    endpoint, outputs or stack name point where the stack is not.

    Called before anything is uploaded, so a submit to a half-deployed or torn-down stack
    writes nothing. Credential and connection errors propagate to the CLI's one-line map.
    """
    where = outputs.endpoint_url or "AWS"
    s3 = outputs.client("s3")
    buckets = [("products", outputs.products_bucket)]
    if raw_bucket:
        if not outputs.raw_bucket:
            raise RefusedError(
                "the stack has no raw bucket output; pass s3:// URIs of data already in S3"
            )
        buckets.append(("raw", outputs.raw_bucket))
    for role, name in buckets:
        try:
            s3.head_bucket(Bucket=name)
        except s3.exceptions.ClientError as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise CloudUnreachableError(
                    f"the stack's {role} bucket {name} does not exist at {where}; deploy the stack "
                    "(pulumi up, or spotcube demo for the local cloud) before submitting"
                ) from None
            raise
    sqs = outputs.client("sqs")
    try:
        sqs.get_queue_attributes(QueueUrl=outputs.job_queue_url, AttributeNames=["QueueArn"])
    except sqs.exceptions.ClientError as exc:
        if _code(exc) in ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"):
            raise CloudUnreachableError(
                f"the stack's job queue {outputs.job_queue_url} does not exist at {where}; "
                "deploy the stack (pulumi up, or spotcube demo for the local cloud) before "
                "submitting"
            ) from None
        raise


def check_s3_inputs(outputs: StackOutputs, planned: Sequence[tuple[str, str]]) -> None:
    """Refuse an ``s3://`` input that does not exist or that the stack's credentials cannot read."""
    s3 = outputs.client("s3")
    for _, item in planned:
        if not item.startswith("s3://"):
            continue
        bucket, key = parse_s3_uri(item)
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError as exc:
            code = _code(exc)
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                raise UsageError(f"input {item}: no such object") from None
            if code in ("403", "AccessDenied", "Forbidden"):
                raise RefusedError(
                    f"input {item}: access denied to these credentials; grant read access "
                    "to the stack (and the instances' role) or copy the data to the raw bucket"
                ) from None
            raise


def check_run_id_free(
    outputs: StackOutputs,
    run_id: str,
    *,
    kind: str,
    params: Mapping[str, Any],
    obs_ids: Sequence[str],
) -> None:
    """Refuse, before any upload, a run id already used for another kind, params or inputs.

    The same run id with the same content passes: it resumes (or confirms) that submit.
    """
    s3 = outputs.client("s3")
    wanted = {"kind": kind, "params": dict(params), "obs_ids": list(obs_ids)}
    for key in (run_record_key(run_id), submission_key(run_id)):
        try:
            raw = s3.get_object(Bucket=outputs.products_bucket, Key=key)["Body"].read()
        except s3.exceptions.ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                continue
            raise
        what = f"s3://{outputs.products_bucket}/{key}"
        if key == run_record_key(run_id):
            record = RunRecord.from_json(raw, what=what)
        else:  # the intent wraps the record
            record = Submission.from_json(raw, what=what).record
        stored = {"kind": record.kind, "params": record.params, "obs_ids": record.obs_ids}
        refuse_other_content(run_id, stored, wanted)
        return


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def upload_inputs(
    outputs: StackOutputs, inputs: Sequence[str], *, log: Callable[[str], None] | None = None
) -> list[ObservationRef]:
    """Store local files and folders in the raw bucket by content; pass ``s3://`` URIs through.

    Each file is stored once under the SHA-256 of its bytes with its name as metadata
    (:mod:`payload.inputs`): another file of the same name gets another key, and bytes
    already stored are not uploaded again. A folder (a Measurement Set, an MWA raw file set)
    is stored as one archive that the worker restores. ``log`` hears one line per input.

    Every input is checked (:func:`plan_inputs`) before the first is uploaded. Raises
    :class:`UsageError` naming the input at fault and :class:`RefusedError` when the stack
    has no raw bucket.
    """
    observations: list[ObservationRef] = []
    for obs_id, item in plan_inputs(inputs):
        if item.startswith("s3://"):
            observations.append(ObservationRef(obs_id, item))
            continue
        if not outputs.raw_bucket:
            raise RefusedError(
                "the stack has no raw bucket output; pass s3:// URIs of data already in S3"
            )
        uri, uploaded = store_input(outputs, Path(item))
        if log is not None:
            log(f"{item}: {'uploaded' if uploaded else 'already stored'} as {uri}")
        observations.append(ObservationRef(obs_id, uri))
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


# A uvh5 input at least this large that a worker would download whole gets a hint.
RANGED_HINT_BYTES = 2 * 1000**3


def layout_hint(path: Path, *, chunk_channels: int) -> str | None:
    """One line for a large uvh5 file that a worker must download whole, or ``None``.

    A worker reads a stored uvh5 file one chunk's channels at a time only when its
    visibilities are stored in frequency chunks (:mod:`payload.ranged`); otherwise each
    observation needs its whole size on a worker's disk. Reads only the HDF5 header.
    """
    try:
        if not path.is_file() or path.stat().st_size < RANGED_HINT_BYTES:
            return None
        # Here, not at import: h5py costs every submit time, and most open no HDF5 file.
        import h5py

        from payload.inputlayout import HDF5_SIGNATURE, frequency_chunking_problem

        with path.open("rb") as stream:
            if stream.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
                return None
        with h5py.File(path, "r") as handle:
            if "Header" not in handle or "Data" not in handle:
                return None
            problem = frequency_chunking_problem(handle, chunk_channels)
    except (OSError, KeyError, ValueError):
        return None  # a file the worker cannot read either says so there, in full
    if problem is None:
        return None
    size = path.stat().st_size / 1e9
    return (
        f"hint: {path} ({size:.1f} GB): {problem}, so each worker downloads it whole; "
        f"`python -m payload rechunk {path} OUT --chunk-channels {chunk_channels}` lets "
        "workers read each chunk's channels by range instead (docs/work-plane.md)"
    )


def layout_hints(
    planned: Sequence[tuple[str, str]], *, kind: str, params: Mapping[str, Any]
) -> list[str]:
    """:func:`layout_hint` for each local input of an ``image`` run."""
    if kind != JobKind.IMAGE.value:
        return []
    channels = image_chunk_channels(params)
    hints = (
        layout_hint(Path(item), chunk_channels=channels)
        for _, item in planned
        if not item.startswith("s3://")
    )
    return [hint for hint in hints if hint is not None]


def _put_by_content(outputs: StackOutputs, path: Path, *, name: str, form: str) -> tuple[str, bool]:
    digest = input_store.file_sha256(path)
    key = input_store.content_key(outputs.raw_prefix, digest)
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
            "Metadata": input_store.metadata_for(name, form, sha256=digest),
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


def check_run_options(kind: str, params: Mapping[str, Any], run_id: str | None) -> None:
    """Refuse params or a run id the worker would refuse, by the worker's own validators.

    Raises :class:`UsageError` with the validator's one line (``--params``/``--run-id``).
    """
    try:
        if run_id is not None:
            check_id(run_id, "--run-id")
        check_job_params(kind, params)
    except InvalidInputError as exc:
        raise UsageError(f"{exc}") from None


def build_run(
    observations: Sequence[ObservationRef],
    *,
    kind: str,
    params: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> tuple[RunRecord, list[JobMessage]]:
    """The run record and one job message per observation, checked as a worker checks them."""
    run_id = run_id or new_run_id()
    params = dict(params or {})
    check_run_options(kind, params, run_id)
    try:
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
        params=params,
        params_hash=messages[0].params_hash,
        submitted_at=utc_now(),
        observations=[ObservationRef(obs_id=o.obs_id, input=o.input) for o in observations],
    )
    return record, messages


def submit_run(
    outputs: StackOutputs,
    observations: Sequence[ObservationRef],
    *,
    kind: str,
    params: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> tuple[str, list[JobMessage]]:
    """Record the run and send one job message per observation, all or nothing.

    :func:`spotcube.publish.publish_run` is the protocol: a submit that fails halfway is
    finished by the same call with the same run id; another content under that id is refused.
    """
    record, messages = build_run(observations, kind=kind, params=params, run_id=run_id)
    published = publish_run(outputs, record, messages)
    return record.run_id, published.messages or messages


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
