"""What ``spotcube demo`` runs and what one of its fleet runs gave: the records it shares.

:mod:`spotcube.demo` runs the demo and :mod:`spotcube.demoreport` reports on it; both read
these records, so they live apart from either (the report no longer imports the module that
calls it, which was a circle in the import graph).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.jobs import JobKind
from spotcube.local.fleet import Fleet, WorkSchedule
from spotcube.spotsim import hazard_from_percent
from spotcube.status import RunStatus

# EC2 spot price the simulated bill uses unless --spot-price says otherwise (us-east-1,
# m5.4xlarge, order of magnitude of 2024-2025 prices; the report labels it simulated).
DEFAULT_INSTANCE_TYPE = "m5.4xlarge"
DEFAULT_SPOT_PRICE = 0.432
# What one chunk of a demo observation stands for on AWS: DESIGN.md's MWA observation took
# 633 min on a 16-vCPU instance, and the demo preset cuts an observation into 4 chunks.
CHUNK_WORK_HOURS = 633 / 60 / 4
PACINGS = ("work", "wall")


@dataclass(frozen=True)
class DemoOptions:
    """What ``spotcube demo`` runs; the CLI fills it from its options."""

    out: Path
    workers: int = 2
    observations: int = 4
    inputs: tuple[Path, ...] = ()
    kind: str = JobKind.IMAGE.value
    job: Path | None = None  # a job definition file (spotcube.jobdef): the user's own pipeline
    preset: str = "demo"
    params: dict[str, Any] = field(default_factory=dict)
    interrupt_rate: float = hazard_from_percent(9.0)  # hazard per instance-hour ("9%/h")
    speedup: float = 2400.0
    seed: int = 10979
    notice_seconds: float = 120.0
    replacement_delay: float = 90.0
    min_notice_real: float = 6.0
    reference_workers: int = 2
    instance_type: str = DEFAULT_INSTANCE_TYPE
    spot_price: float = DEFAULT_SPOT_PRICE
    timeout: float = 600.0
    poll: float = 1.0
    hold: bool = False
    # "work": instances are interrupted at seeded counts of computed chunks, at
    # ``interrupt_rate`` per hour of work (a chunk standing for ``chunk_work_hours``), so a
    # loaded machine sees the same storm as an idle one; --job runs, whose commands compute
    # no chunks, draw the wall-clock lifetimes in CPU seconds of each instance's worker and
    # programs instead. "wall": lifetimes on the wall clock times ``speedup``.
    paced_by: str = "work"
    chunk_work_hours: float = CHUNK_WORK_HOURS
    # Tests: an explicit schedule (spotcube.local.fleet.WorkSchedule) instead of either.
    schedule: WorkSchedule | None = None
    # A locally baked image's root filesystem: workers (both phases) run inside it.
    rootfs: Path | None = None

    def storm(self) -> WorkSchedule | None:
        """The work schedule of the spot phase (None: lifetimes on :meth:`clock`)."""
        if self.schedule is not None:
            return self.schedule
        if self.paced_by == "work" and self.job is None and self.interrupt_rate > 0:
            return WorkSchedule.paced(self.interrupt_rate, self.chunk_work_hours)
        return None

    def clock(self) -> str:
        """What the spot phase's lifetimes count when there is no work schedule."""
        return "cpu" if self.paced_by == "work" and self.job is not None else "wall"


@dataclass
class PhaseResult:
    """One fleet run over the demo's observations."""

    run_id: str
    status: RunStatus
    fleet: Fleet
    wall_seconds: float
    timed_out: bool
    stalled: bool = False  # jobs ended up in the dead-letter queue without FAILED.json
