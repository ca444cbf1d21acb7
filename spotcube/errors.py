"""The operator CLI's exit statuses and the errors library code raises to reach them.

Library modules raise these; only :mod:`spotcube.cli` turns them into a one-line message and
an exit status (the httpie pattern: one enum, one place that maps exceptions to codes).
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """What a ``spotcube`` exit status means; documented in the README."""

    OK = 0
    INTERNAL_ERROR = 1  # a bug: the traceback is shown with --debug
    USAGE = 2  # the command line is wrong (argparse uses 2 as well)
    REFUSED = 3  # understood, but spotcube will not do it (a failed check, a bound, a guard)
    FAILED = 4  # the command ran; some observations failed
    UNREACHABLE = 5  # the cloud endpoint, credentials or profile could not be used
    INTERRUPTED = 130  # Ctrl-C


class SpotcubeError(Exception):
    """A user-facing failure: printed as one line, no traceback."""

    status: ExitStatus = ExitStatus.REFUSED


class UsageError(SpotcubeError):
    """An argument or option value is wrong; the message says which and how to fix it."""

    status = ExitStatus.USAGE


class RefusedError(SpotcubeError):
    """The request is understood but refused (a check failed, a bound was exceeded)."""

    status = ExitStatus.REFUSED


class CloudUnreachableError(SpotcubeError):
    """An endpoint, profile or credential could not be used; the message names it."""

    status = ExitStatus.UNREACHABLE
