"""Job kinds the worker can run, looked up by the ``kind`` of a job message.

Factories are imported lazily so the worker starts fast and a kind's heavy dependencies load
only when a job of that kind arrives. ``command`` jobs are not chunked: the worker runs them
through :mod:`payload.jobs.command` directly.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from contract.jobs import CHUNKED_KINDS, JobKind
from payload.errors import InvalidInputError
from payload.jobs.base import ChunkedJob, JobContext, JobFactory

__all__ = ["ChunkedJob", "JobContext", "JobFactory", "build_job", "preload_job_kinds"]

# The code of each chunked kind (contract.jobs.CHUNKED_KINDS names them).
CHUNKED_JOBS: dict[str, str] = {
    JobKind.IMAGE: "payload.jobs.image:ImageJob",
    JobKind.INTEGRATE: "payload.jobs.integrate:IntegrateJob",
    JobKind.SELFTEST: "payload.jobs.selftest:SelfTestJob",
}


def build_job(context: JobContext) -> ChunkedJob:
    """Instantiate the chunked job named by ``context.message.kind``."""
    kind = context.message.kind
    try:
        target = CHUNKED_JOBS[kind]
    except KeyError:
        raise InvalidInputError(
            f"job kind {kind!r} is not a chunked job; chunked kinds are "
            f"{', '.join(sorted(CHUNKED_KINDS))}"
        ) from None
    module_name, _, attr = target.partition(":")
    factory: JobFactory = getattr(importlib.import_module(module_name), attr)
    return factory(context)


def preload_job_kinds(kinds: Iterable[str]) -> None:
    """Import every job kind now, so the first job does not wait for numpy/h5py/ducc0 imports.

    A worker calls this before it polls the queue: the import cost (seconds) is paid while
    no job is held, instead of after a job's visibility clock has started.
    """
    for kind in kinds:
        if kind not in CHUNKED_KINDS:
            raise InvalidInputError(
                f"cannot preload job kind {kind!r}: chunked kinds are "
                f"{', '.join(sorted(CHUNKED_KINDS))}"
            )
        importlib.import_module(CHUNKED_JOBS[kind].partition(":")[0])
