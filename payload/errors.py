"""Errors the payload raises, each mapped to one job outcome.

The worker never guesses: it looks at ``error.outcome`` to decide whether a job is retried
(``transient``), handed back at once (``preempted``) or failed for good (``invalid``).
"""

from __future__ import annotations

from payload.outcomes import Outcome


class PayloadError(Exception):
    """Base class of every error the payload raises on purpose."""

    outcome: Outcome = Outcome.TRANSIENT


class InvalidInputError(PayloadError, ValueError):
    """The input or the parameters are wrong; retrying cannot help.

    The message names the file or parameter at fault and says what is wrong with it.
    """

    outcome = Outcome.INVALID


class TransientError(PayloadError):
    """A failure that may go away on retry (throttling, 5xx, a dropped connection)."""

    outcome = Outcome.TRANSIENT


class PreemptedError(PayloadError):
    """The instance is being reclaimed; the job must be handed back to the queue.

    ``lost`` is the compute, in seconds, the hand-back throws away (a chunk abandoned at the
    deadline, a command's run since its last sync); the worker records it in the attempt.
    """

    outcome = Outcome.PREEMPTED

    def __init__(self, *args: object, lost: float = 0.0) -> None:
        super().__init__(*args)
        self.lost = lost
