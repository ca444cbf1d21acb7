"""Check a job's params with the validator its worker uses, without running the job.

``spotcube submit`` calls :func:`check_job_params` before it uploads anything, so a job the
worker would refuse (``chunk_channels: 0``, ``weighting: "foo"``, a command without argv) is
refused at the operator's desk in one line instead of in the dead-letter queue an hour later.
There is no second copy of any rule here: each kind is checked by the very function its job
calls when a worker builds it. Heavy modules are imported only for the kind being checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contract.jobs import JOB_KINDS, JobKind
from payload.errors import InvalidInputError
from payload.records import JobMessage, params_hash


def check_job_params(kind: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidInputError` naming the first parameter the worker would refuse."""
    if kind not in JOB_KINDS:
        raise InvalidInputError(
            f"job kind {kind!r} is unknown; expected one of {', '.join(JOB_KINDS)}"
        )
    if not isinstance(params, Mapping):
        raise InvalidInputError("job params must be a JSON object")
    if kind == JobKind.IMAGE:
        from payload.params import ImagingParams  # what ImageJob.__init__ calls

        ImagingParams.from_mapping(params)
    elif kind == JobKind.INTEGRATE:
        from payload.jobs.integrate import parse_params  # what IntegrateJob.__init__ calls

        parse_params(params)
    elif kind == JobKind.COMMAND:
        from payload.jobs.command import CommandParams  # what run_command_job calls

        CommandParams.parse(params)
    elif kind == JobKind.SELFTEST:
        # SelfTestJob checks its params in its constructor and touches nothing else there
        # (the input is fetched by its first chunk), so building one is the check itself.
        from payload.jobs.base import JobContext
        from payload.jobs.selftest import SelfTestJob

        message = JobMessage(
            run_id="check",
            obs_id="check",
            input="s3://check/check",
            kind=kind,
            params=dict(params),
            params_hash=params_hash(kind, params),
            submitted_at="",
        )
        SelfTestJob(JobContext(message=message, workdir=Path("."), fetch=_no_fetch))


def image_chunk_channels(params: Mapping[str, Any]) -> int:
    """The channels per chunk of an ``image`` job with these (checked) params."""
    from payload.params import ImagingParams

    return ImagingParams.from_mapping(params).chunk_channels


def _no_fetch(uri: str) -> Path:
    raise AssertionError(f"checking params must not fetch {uri}")
