"""A local stand-in for the spot Auto Scaling group: worker processes that AWS may reclaim.

Each instance is a ``python -m payload worker`` process with its own IMDSv2 emulator. An
interruption injector gives every instance a lifetime drawn from an exponential distribution
with the hourly interruption rate; the demo's clock runs ``speedup`` times faster than the
wall clock for these draws and for the two-minute notice. At the end of its lifetime the
instance gets a spot notice through its IMDS, and at the notice deadline the process is
SIGKILLed, as AWS does. Like an ASG, the fleet launches a replacement after a delay.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from spotcube.local.motoserver import local_environment
from spotcube.local.timeline import Timeline
from spotcube.stack import StackOutputs

# AWS gives about two minutes between the spot notice and the reclaim.
NOTICE_SECONDS = 120.0
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f")


def die_with_parent() -> None:
    """In the child: ask Linux to SIGKILL it if the demo dies, so no worker is orphaned."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass(frozen=True)
class InterruptionModel:
    """When instances are reclaimed, on a clock that runs ``speedup`` times the wall clock.

    ``rate_per_hour`` is the hazard: expected interruptions per instance-hour (0.09 is
    "9 %/h"). Times are simulated seconds; the ``min_*_real`` floors keep the compressed
    notice long enough for a worker to react and a replacement from launching instantly.
    """

    rate_per_hour: float
    speedup: float = 1.0
    seed: int = 0
    notice_seconds: float = NOTICE_SECONDS
    replacement_delay: float = 90.0
    min_notice_real: float = 6.0
    min_replacement_real: float = 1.0

    def __post_init__(self) -> None:
        if not (self.rate_per_hour >= 0 and math.isfinite(self.rate_per_hour)):
            raise ValueError(f"interruption rate {self.rate_per_hour!r} must be >= 0")
        if not self.speedup > 0:
            raise ValueError(f"speedup {self.speedup!r} must be positive")

    @property
    def notice_real(self) -> float:
        """Wall-clock seconds between a notice and the kill."""
        return max(self.notice_seconds / self.speedup, self.min_notice_real)

    @property
    def replacement_real(self) -> float:
        """Wall-clock seconds between a kill and the replacement's launch."""
        return max(self.replacement_delay / self.speedup, self.min_replacement_real)

    def draw_notice_after(self, rng: random.Random) -> float:
        """Wall-clock seconds from launch to the spot notice of a new instance (inf: never)."""
        if self.rate_per_hour == 0:
            return math.inf
        simulated = rng.expovariate(self.rate_per_hour / 3600.0)
        return simulated / self.speedup


@dataclass(frozen=True)
class WorkerSpec:
    """How to start the worker of an instance."""

    outputs: StackOutputs
    root: Path  # per-instance workdirs and logs go under here
    extra_args: Sequence[str] = ()
    python: str = sys.executable

    def command(self, workdir: Path) -> list[str]:
        o = self.outputs
        cmd = [self.python, "-m", "payload", "worker"]
        cmd += ["--queue-url", o.job_queue_url, "--products-bucket", o.products_bucket]
        cmd += ["--region", o.region, "--workdir", str(workdir)]
        if o.dead_letter_queue_url:
            cmd += ["--dlq-url", o.dead_letter_queue_url]
        if o.endpoint_url:
            cmd += ["--endpoint-url", o.endpoint_url]
        return cmd + list(self.extra_args)


@dataclass
class Instance:
    """One local spot instance: a worker process and its IMDS emulator."""

    instance_id: str
    instance_type: str
    availability_zone: str
    imds: Any
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    launched_at: float
    notice_at: float  # fleet time of the spot notice (inf: never)
    noticed_at: float | None = None
    kill_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None  # reclaimed | exited | stopped
    exit_code: int | None = None

    @property
    def alive(self) -> bool:
        return self.ended_at is None


def _default_imds_factory(instance_id: str, instance_type: str, zone: str) -> Any:
    from spotcube.local.imds import ImdsEmulator

    return ImdsEmulator(
        instance_id=instance_id, instance_type=instance_type, availability_zone=zone
    )


@dataclass
class Fleet:
    """Keep ``size`` workers running, interrupt them per ``model``, replace the reclaimed."""

    spec: WorkerSpec
    size: int
    model: InterruptionModel
    instance_type: str = "m5.4xlarge"
    imds_factory: Callable[[str, str, str], Any] = _default_imds_factory
    timeline: Timeline = field(default_factory=Timeline)
    instances: list[Instance] = field(default_factory=list)
    _rng: random.Random = field(init=False)
    _t0: float = field(init=False, default=0.0)
    _pending_launches: list[float] = field(init=False, default_factory=list)
    _draining: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"fleet size {self.size} must be at least 1")
        self._rng = random.Random(self.model.seed)

    def now(self) -> float:
        """Seconds since :meth:`start`."""
        return time.monotonic() - self._t0

    def start(self) -> None:
        self._t0 = time.monotonic()
        for _ in range(self.size):
            self._launch()

    @property
    def running(self) -> list[Instance]:
        return [i for i in self.instances if i.alive]

    def _launch(self) -> Instance:
        n = len(self.instances)
        # Seeded ids and lifetimes: the same --seed gives the same sequence of instances.
        instance_id = f"i-{self._rng.getrandbits(68):017x}"
        zone = ZONES[n % len(ZONES)]
        imds = self.imds_factory(instance_id, self.instance_type, zone)
        imds.start()
        workdir = self.spec.root / instance_id
        workdir.mkdir(parents=True, exist_ok=True)
        log = (self.spec.root / f"{instance_id}.log").open("wb")
        env = dict(os.environ)
        env.pop("AWS_EC2_METADATA_DISABLED", None)  # the worker must reach its emulated IMDS
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.endpoint
        env["PYTHONUNBUFFERED"] = "1"
        if self.spec.outputs.endpoint_url:
            env.update(local_environment())
        process = subprocess.Popen(
            self.spec.command(workdir / "work"),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=die_with_parent,
        )
        now = self.now()
        instance = Instance(
            instance_id=instance_id,
            instance_type=self.instance_type,
            availability_zone=zone,
            imds=imds,
            process=process,
            log=log,
            launched_at=now,
            notice_at=now + self.model.draw_notice_after(self._rng),
        )
        self.instances.append(instance)
        self.timeline.add(now, "launch", instance_id, f"{self.instance_type} {zone}")
        return instance

    def tick(self) -> None:
        """Advance the fleet: deliver notices, reclaim at deadlines, launch replacements."""
        now = self.now()
        for inst in self.running:
            code = inst.process.poll()
            if inst.noticed_at is None and now >= inst.notice_at and code is None:
                inst.imds.schedule_interruption(self.model.notice_real, action="terminate")
                inst.noticed_at = now
                inst.kill_at = now + self.model.notice_real
                self.timeline.add(now, "notice", inst.instance_id)
            if inst.kill_at is not None and now >= inst.kill_at:
                # AWS reclaims the instance at the deadline whether or not the worker is done.
                self._end(inst, "reclaimed", now)
            elif code is not None and inst.kill_at is None:
                # The worker died or quit on its own; an ASG replaces the unhealthy instance.
                self._end(inst, "exited", now)
        if not self._draining:
            due = [t for t in self._pending_launches if t <= now]
            self._pending_launches = [t for t in self._pending_launches if t > now]
            for _ in due:
                self._launch()

    def seconds_to_next_event(self) -> float:
        """Wall-clock seconds until the next notice, reclaim or launch (inf: none planned).

        The demo sleeps no longer than this, so a SIGKILL lands on its deadline and not a
        polling interval later.
        """
        now = self.now()
        times = list(self._pending_launches)
        for inst in self.running:
            times.append(inst.kill_at if inst.kill_at is not None else inst.notice_at)
        return max(0.0, min(times, default=math.inf) - now)

    def _end(self, inst: Instance, reason: str, now: float) -> None:
        if inst.process.poll() is None:
            inst.process.send_signal(signal.SIGKILL)
        inst.exit_code = inst.process.wait()
        inst.ended_at = now
        inst.end_reason = reason
        inst.log.close()
        inst.imds.stop()
        kind = {"reclaimed": "kill", "exited": "exit", "stopped": "stop"}[reason]
        self.timeline.add(now, kind, inst.instance_id, f"exit code {inst.exit_code}")
        if reason != "stopped" and not self._draining:
            self._pending_launches.append(now + self.model.replacement_real)

    def stop(self, *, grace: float = 15.0) -> None:
        """Scale to zero: SIGTERM every worker (it hands back its job), SIGKILL after ``grace``."""
        self._draining = True
        self._pending_launches.clear()
        for inst in self.running:
            if inst.process.poll() is None:
                inst.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for inst in self.running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                inst.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            self._end(inst, "stopped", self.now())

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- accounting ---------------------------------------------------------------------

    def instance_seconds(self) -> float:
        """Wall-clock seconds summed over instance lives (the billed time, uncompressed)."""
        now = self.now()
        return sum(
            (i.ended_at if i.ended_at is not None else now) - i.launched_at for i in self.instances
        )

    def interruptions(self) -> int:
        """Instances reclaimed after a spot notice."""
        return sum(1 for i in self.instances if i.end_reason == "reclaimed")
