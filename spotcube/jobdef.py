"""A job definition file: a user's own pipeline as a ``command`` job, for ``spotcube demo --job``.

The file is a JSON object::

    {"schema": 1, "kind": "command",
     "params": {"argv": ["make", "-f", "{job_dir}/Makefile", "INPUT={input}"],
                "products": ["products/*.fits"]}}

In every string of ``params``, ``{input}`` becomes the observation's input URI and
``{job_dir}`` the folder of the job file where the instances find it: this machine's folder
on the local cloud (``spotcube demo --job``, ``spotcube submit --job --endpoint``), whose
instances share this machine's files; ``/opt/spotcube/pipelines/<folder name>`` on AWS, where
the image variant that lists the folder under ``pipelines`` put it (:meth:`JobDefinition.on_image`;
docs/pipelines.md). Both go through :meth:`JobDefinition.params_for`. Plain replacement, not
``str.format``: braces elsewhere (awk, shell) stay as they are.

Directory inputs (a Measurement Set) are packed into a reproducible ``.tar`` first: same
files, same bytes, so a rerun uploads the same object.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from contract.jobs import JOB_KINDS, JobKind
from payload.errors import InvalidInputError
from payload.jobparams import check_job_params
from payload.records import JobMessage, ObservationRef, RunRecord, check_id, utc_now
from spotcube.errors import UsageError
from spotcube.stack import StackOutputs
from spotcube.submit import new_run_id, publish_run

SCHEMA = 1
PLACEHOLDERS = ("{input}", "{job_dir}")
# Where an image variant puts each folder of its `pipelines` list (the pipelines role's
# pipelines_root; tests/pipelines/test_job_on_image.py checks the two agree).
IMAGE_PIPELINES_ROOT = PurePosixPath("/opt/spotcube/pipelines")


@dataclass(frozen=True)
class JobDefinition:
    """A job kind and its parameter template, read from ``path``."""

    path: Path
    kind: str
    params: dict[str, Any]
    job_dir: str = ""  # what {job_dir} becomes; the job file's folder when empty

    @classmethod
    def load(cls, path: Path) -> JobDefinition:
        """Read and check a job file; every error names the file and the key."""
        try:
            doc = json.loads(path.read_text())
        except OSError as exc:
            raise UsageError(f"--job {path}: cannot be read ({exc.strerror})") from None
        except ValueError as exc:
            raise UsageError(f"--job {path} is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise UsageError(f"--job {path}: must be a JSON object with kind and params")
        if doc.get("schema", SCHEMA) != SCHEMA:
            raise UsageError(f"--job {path}: schema {doc['schema']!r} unknown; expected {SCHEMA}")
        unknown = sorted(set(doc) - {"schema", "kind", "params", "description"})
        if unknown:
            raise UsageError(f"--job {path}: unknown key(s) {', '.join(unknown)}")
        kind = doc.get("kind", JobKind.COMMAND.value)
        if kind not in JOB_KINDS:
            raise UsageError(f"--job {path}: kind {kind!r} is not one of {', '.join(JOB_KINDS)}")
        params = doc.get("params", {})
        if not isinstance(params, dict):
            raise UsageError(f"--job {path}: params must be a JSON object")
        if kind == JobKind.COMMAND:
            argv = params.get("argv")
            if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
                raise UsageError(f"--job {path}: params.argv must be a non-empty list of strings")
            try:  # the worker's own check, so a bad file fails here and not on an instance
                check_job_params(kind, params)
            except InvalidInputError as exc:
                raise UsageError(f"--job {path}: {exc}") from None
        return cls(path.resolve(), kind, params)

    def on_image(self) -> JobDefinition:
        """The job as an instance of a baked image runs it: ``{job_dir}`` is where the
        variant's ``pipelines`` key put the job file's folder."""
        return replace(self, job_dir=str(image_job_dir(self.path.parent)))

    def params_for(self, input_uri: str) -> dict[str, Any]:
        """The params of one observation: placeholders replaced in every string."""
        values = {"{input}": input_uri, "{job_dir}": self.job_dir or str(self.path.parent)}
        expanded: dict[str, Any] = _expand(self.params, values)
        return expanded


def image_job_dir(folder: Path) -> PurePosixPath:
    """Where a pipeline folder lands on an image whose variant lists it: by its name."""
    return IMAGE_PIPELINES_ROOT / folder.resolve().name


def _expand(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for token, text in values.items():
            value = value.replace(token, text)
        return value
    if isinstance(value, list):
        return [_expand(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, values) for k, v in value.items()}
    return value


def _reproducible(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Archive members without owner, time or mode noise, so the same files give one tar."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def pack_directory(folder: Path, dest: Path) -> Path:
    """Pack ``folder`` as ``dest`` (``<name>.tar``, members sorted, times zeroed)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(folder, arcname=folder.name, recursive=False, filter=_reproducible)
        for path in sorted(folder.rglob("*")):
            arcname = f"{folder.name}/{path.relative_to(folder).as_posix()}"
            tar.add(path, arcname=arcname, recursive=False, filter=_reproducible)
    partial.replace(dest)
    return dest


def prepare_inputs(paths: Sequence[Path], folder: Path) -> list[Path]:
    """Files to upload: files as they are, directories packed as ``folder/<name>.tar``."""
    prepared = []
    for path in paths:
        if path.is_dir():
            prepared.append(pack_directory(path, folder / f"{path.name}.tar"))
        elif path.is_file():
            prepared.append(path)
        else:
            raise UsageError(f"--input {path}: no such file or folder")
    return prepared


def submit_job(
    outputs: StackOutputs,
    observations: Sequence[ObservationRef],
    job: JobDefinition,
    *,
    run_id: str | None = None,
) -> tuple[str, list[JobMessage]]:
    """Record the run and queue one job per observation, each with its own expanded params.

    :func:`spotcube.submit.submit_run` sends one set of params to every observation; a job
    file's ``{input}`` differs per observation. The run record keeps the template and each
    observation's params, so ``status`` and ``report`` read it as any other run.
    """
    run_id = run_id or new_run_id()
    try:
        check_id(run_id, "--run-id")
        for o in observations:  # what a worker would refuse, refused before anything is sent
            check_job_params(job.kind, job.params_for(o.input))
        messages = [
            JobMessage.create(
                run_id=run_id,
                obs_id=o.obs_id,
                input=o.input,
                kind=job.kind,
                params=job.params_for(o.input),
            )
            for o in observations
        ]
    except InvalidInputError as exc:
        raise UsageError(f"--job {job.path}: {exc}") from None
    if not messages:
        raise UsageError("no observations to submit: give --input")
    # Each observation's params name its own input, so each has its own params hash; the
    # record's is the first's, as for a run of one kind (RunRecord is the one writer).
    record = RunRecord(
        run_id=run_id,
        kind=job.kind,
        params=job.params,
        params_hash=messages[0].params_hash,
        submitted_at=utc_now(),
        observations=[
            ObservationRef(obs_id=m.obs_id, input=m.input, params_hash=m.params_hash)
            for m in messages
        ],
    )
    publish_run(outputs, record, messages)
    return run_id, messages


def for_local_cloud(
    job: JobDefinition, outputs: StackOutputs, *, path: str | None = None
) -> JobDefinition:
    """The job as a local instance runs it: its program's boto3 reaches the local cloud.

    The program inherits the worker's environment, which carries the local credentials but
    not the endpoint (the worker gets that as an option); and the payload's Python comes
    first on PATH, as ``/opt/spotcube/venv/bin`` would on an instance that puts it there.
    ``path``: the PATH to give instead (an instance inside a baked image: the image's).
    """
    if job.kind != JobKind.COMMAND:
        return job
    env = dict(job.params.get("env") or {})
    if outputs.endpoint_url:
        env.setdefault("AWS_ENDPOINT_URL", outputs.endpoint_url)
    python_bin = str(Path(sys.executable).parent)
    host_path = os.pathsep.join([python_bin, os.environ.get("PATH", os.defpath)])
    env.setdefault("PATH", path if path is not None else host_path)
    return replace(job, params={**job.params, "env": env})
