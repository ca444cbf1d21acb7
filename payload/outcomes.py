"""The ways a job attempt can end (DESIGN.md, "Outcomes")."""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """How one attempt at a job ended, and what the work plane does about it."""

    DONE = "done"  # products and DONE written; message deleted
    PREEMPTED = "preempted"  # checkpoint durable; message visible again at once; unlimited
    TRANSIENT = "transient"  # retried with jittered backoff, a bounded number of times
    INVALID = "invalid"  # bad input or parameters: FAILED.json, message to the DLQ, no retry
    # Another attempt's DONE won the conditional write: this attempt deleted what it wrote;
    # the job is done, but not by this attempt, so the attempt must not say "done".
    SUPERSEDED = "superseded"

    @property
    def exit_code(self) -> int:
        """Process exit code of a worker whose last attempt ended this way."""
        return _EXIT_CODES[self]


# EX_TEMPFAIL (75) for "try again elsewhere", EX_DATAERR (65) for bad input: sysexits.h.
_EXIT_CODES = {
    Outcome.DONE: 0,
    Outcome.PREEMPTED: 75,
    Outcome.TRANSIENT: 69,
    Outcome.INVALID: 65,
    Outcome.SUPERSEDED: 76,  # EX_PROTOCOL: lost the commit race
}
