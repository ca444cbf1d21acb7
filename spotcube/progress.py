"""Is the fleet getting anywhere? Instances reclaimed before their workers make progress.

A spot fleet whose instances are reclaimed faster than a worker starts, takes a job and makes
a chunk durable keeps paying for instances and finishes nothing: every replacement boots
into the next interruption. The checkpoint manifests show it: attempts that ended by an
interruption (``preempted``, or cut off by a SIGKILL and so never closed while a later
attempt exists) with no chunk made durable. ``spotcube demo`` also knows the instances that
were reclaimed before they took any job at all, which no manifest sees.

One rule, used by the demo's report and by ``spotcube report``: when at least
:data:`MIN_INTERRUPTED` instance lives were interrupted and at least :data:`STALL_SHARE` of
them had made no chunk durable, the run is *outpaced*, and the message says so and what to
change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from contract.jobs import JobKind
from payload.outcomes import Outcome
from payload.records import Attempt, Manifest

# Fewer interrupted lives than this say nothing either way (one unlucky early notice).
MIN_INTERRUPTED = 3
# Share of interrupted lives without a durable chunk at which the fleet is outpaced: half of
# the instances paying for nothing is the point where waiting longer costs more than a change.
STALL_SHARE = 0.5


@dataclass(frozen=True)
class InstanceLife:
    """What one instance did before it ended: was it interrupted, how many chunks it saved."""

    instance_id: str
    interrupted: bool
    chunks_done: int  # units of durable work (durable_work): chunks, DONE, synced files


@dataclass(frozen=True)
class ProgressAssessment:
    """The verdict on a run: how many interrupted lives saved nothing, and what it means."""

    interrupted: int
    without_progress: int
    outpaced: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def durable_work(kind: str, attempt: Attempt) -> int:
    """Units of work ``attempt`` made durable: every kind counts, not only chunks.

    Chunks it committed; its ``DONE`` (the products, counted as one unit); and for a
    ``command`` job, which has no chunks, the working directory it synced when it handed the
    job back on a notice (``preempted`` means that sync was made durable).
    """
    published = attempt.outcome is Outcome.DONE
    synced = kind == JobKind.COMMAND and attempt.outcome is Outcome.PREEMPTED
    return attempt.chunks_done + int(published) + int(synced)


def lives_from_manifests(manifests: Iterable[Manifest]) -> list[InstanceLife]:
    """Instance lives as the manifests record them (one per instance id).

    An attempt was interrupted when it ended ``preempted``, or when it never ended and a
    later attempt at the same job exists (its worker was killed before it could say so).
    """
    lives: dict[str, tuple[bool, int]] = {}
    for manifest in manifests:
        attempts = sorted(manifest.attempts, key=lambda a: a.start)
        for index, attempt in enumerate(attempts):
            cut_off = attempt.end is None and index < len(attempts) - 1
            interrupted = attempt.outcome is Outcome.PREEMPTED or cut_off
            was_interrupted, work = lives.get(attempt.instance_id, (False, 0))
            lives[attempt.instance_id] = (
                was_interrupted or interrupted,
                work + durable_work(manifest.kind, attempt),
            )
    return [InstanceLife(i, interrupted, chunks) for i, (interrupted, chunks) in lives.items()]


def assess(
    lives: Iterable[InstanceLife], *, remedy: str = "", finished: bool = False
) -> ProgressAssessment:
    """Apply the rule of this module to ``lives``; ``remedy`` ends the message when outpaced.

    ``finished``: every observation is done, so the fleet got where it was going, however
    many lives were wasted on the way; no warning then.
    """
    interrupted = [life for life in lives if life.interrupted]
    empty = sum(1 for life in interrupted if life.chunks_done == 0)
    outpaced = (
        not finished
        and len(interrupted) >= MIN_INTERRUPTED
        and empty >= STALL_SHARE * len(interrupted)
    )
    if outpaced:
        message = (
            f"no progress: {empty} of {len(interrupted)} interrupted instances were reclaimed "
            "before they made any work durable (a chunk, synced files or DONE); instances are "
            "reclaimed faster than workers start and finish a unit of work"
            + (f". {remedy}" if remedy else "")
        )
    elif not interrupted:
        message = "no instance was interrupted"
    else:
        message = (
            f"{len(interrupted) - empty} of {len(interrupted)} interrupted instances made "
            "work durable before they were reclaimed"
        )
    return ProgressAssessment(len(interrupted), empty, outpaced, message)


def assess_manifests(
    manifests: Iterable[Manifest], *, finished: bool = False
) -> ProgressAssessment:
    """The verdict from a run's manifests alone (``spotcube report``)."""
    return assess(
        lives_from_manifests(manifests),
        remedy="Use instance types or zones with fewer interruptions, or smaller chunks",
        finished=finished,
    )


def lives_with_idle_instances(
    manifests: Iterable[Manifest], reclaimed: Mapping[str, bool]
) -> list[InstanceLife]:
    """Manifest lives plus instances the fleet reclaimed before they took a job.

    ``reclaimed`` maps every instance id the fleet launched to whether it was reclaimed;
    one that no manifest mentions made no progress.
    """
    lives = {life.instance_id: life for life in lives_from_manifests(manifests)}
    for instance_id, was_reclaimed in reclaimed.items():
        life = lives.get(instance_id)
        if life is None:
            lives[instance_id] = InstanceLife(instance_id, was_reclaimed, 0)
        elif was_reclaimed and not life.interrupted:
            lives[instance_id] = InstanceLife(instance_id, True, life.chunks_done)
    return list(lives.values())
