"""Failures classified at the boundary where they happen (DESIGN.md, "Outcomes").

Whatever goes wrong while an input is opened, read or checked is the input's fault, and
retrying cannot help: ``invalid``. The exceptions to that are the machine's and the
network's failures (a full disk, no memory, a dropped connection), which another attempt
may not meet: ``transient``. Anything else is a bug: it is retried a bounded number of
times, and what is recorded about it (FAILED.json, the CLI's line) carries the last frames
of its traceback so it can be found without the worker's logs.
"""

from __future__ import annotations

import errno
import os
import traceback
from pathlib import Path
from typing import Any

from payload.errors import InvalidInputError, PayloadError, TransientError
from payload.outcomes import Outcome

# Errors of the machine, not of the file: another attempt (another instance) may not meet them.
_RESOURCE_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.ENOMEM,
        errno.EMFILE,
        errno.ENFILE,
        errno.EAGAIN,
        errno.EIO,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
    }
)
# Exit status of ``python -m payload`` for a bug (EX_SOFTWARE, sysexits.h), beside the
# outcomes' statuses (see payload.outcomes).
UNEXPECTED_EXIT_CODE = 70
_FRAMES = 5
_MAX_LINE = 2_000


def one_line(text: str) -> str:
    """``text`` on one line: newlines (in a message, or in a file name) shown as ``\\n``."""
    flat = text.replace("\r", "\\r").replace("\n", "\\n")
    return flat if len(flat) <= _MAX_LINE else flat[: _MAX_LINE - 3] + "..."


# HDF5 (h5py) and some C libraries report a full disk as an OSError without errno, with
# the C library's text in the message instead.
_RESOURCE_TEXTS = (
    *(os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT, errno.ENOMEM)),
    "errno = 28",
    "errno = 122",
)


def is_resource_error(exc: BaseException) -> bool:
    """A failure of the machine or the network rather than of the input."""
    if isinstance(exc, MemoryError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS:
        return True
    if isinstance(exc, OSError) and any(text in str(exc) for text in _RESOURCE_TEXTS):
        return True
    module = type(exc).__module__
    return module.startswith(("botocore", "urllib3", "boto3"))


def reason(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def input_failure(shown: str | Path, exc: BaseException) -> PayloadError:
    """What a failure while opening, reading or checking the input ``shown`` means.

    The payload's own errors keep their class; resource errors become transient; anything
    else becomes ``invalid``, one line naming the file and what the reader said.
    """
    if isinstance(exc, PayloadError):
        return exc
    if is_resource_error(exc):
        return TransientError(f"{shown}: reading it failed on this machine ({reason(exc)})")
    return InvalidInputError(f"{shown}: cannot be read as interferometer data ({reason(exc)})")


def outcome_of(exc: BaseException) -> Outcome:
    """The outcome an exception stands for: its own, transient for resources and bugs."""
    if isinstance(exc, PayloadError):
        return exc.outcome
    return Outcome.TRANSIENT


def last_frames(exc: BaseException, n: int = _FRAMES) -> list[str]:
    """The innermost ``n`` frames of the traceback, one ``file:line in function`` each."""
    frames = traceback.extract_tb(exc.__traceback__)[-n:]
    return [f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames]


def failure_record(exc: BaseException) -> dict[str, Any]:
    """What FAILED.json says about an exception: class, one-line message, outcome, frames.

    Frames only for exceptions the payload did not raise on purpose: a PayloadError's
    message is the whole story.
    """
    record: dict[str, Any] = {
        "error_class": type(exc).__name__,
        "message": one_line(str(exc) or type(exc).__name__),
        "outcome": outcome_of(exc).value,
    }
    if not isinstance(exc, PayloadError):
        record["frames"] = last_frames(exc)
    return record


def with_uris(exc: PayloadError, local_to_uri: dict[str, str]) -> PayloadError:
    """The same error with the worker's local copies of inputs named by their s3:// URIs."""
    message = str(exc)
    for local, uri in sorted(local_to_uri.items(), key=lambda item: -len(item[0])):
        message = message.replace(local, uri)
    if message == str(exc):
        return exc
    try:
        renamed = type(exc)(message)
    except TypeError:  # an error class with another constructor: keep it as it is
        return exc
    renamed.__dict__.update(exc.__dict__)
    return renamed
