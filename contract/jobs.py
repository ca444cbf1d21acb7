"""The kinds of job a message can ask for: the operator submits them, the worker runs them.

``spotcube submit --kind`` and a job file's ``kind`` are checked against :data:`JOB_KINDS`,
the worker refuses any other, and the places that treat ``command`` jobs apart (they keep a
working directory instead of chunks) compare with :attr:`JobKind.COMMAND`. A ``StrEnum``
member equals its string, so messages keep plain strings on the wire.
"""

from __future__ import annotations

from enum import StrEnum


class JobKind(StrEnum):
    IMAGE = "image"  # a dirty image cube (payload.jobs.image)
    INTEGRATE = "integrate"  # a delay-spectrum power spectrum from visibilities
    COMMAND = "command"  # any program; its working directory is checkpointed, not chunks
    SELFTEST = "selftest"  # a deterministic chunked job for fleet smoke tests


# In the order help texts and refusals list them.
JOB_KINDS: tuple[str, ...] = tuple(kind.value for kind in JobKind)
# Kinds that make their products chunk by chunk through a manifest (payload.jobs builds them).
CHUNKED_KINDS: frozenset[str] = frozenset(JOB_KINDS) - {JobKind.COMMAND}
