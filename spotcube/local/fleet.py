"""A local stand-in for the spot Auto Scaling group: worker processes that AWS may reclaim.

Each instance is a ``python -m payload worker`` process with its own IMDSv2 emulator. An
interruption injector gives every instance a lifetime drawn from an exponential distribution
with the hourly interruption rate; the demo's clock runs ``speedup`` times faster than the
wall clock for these draws and for the two-minute notice. At the end of its lifetime the
instance gets a spot notice through its IMDS, and at the notice deadline the process is
SIGKILLed, as AWS does. Like an ASG, the fleet launches a replacement after a delay.

Wall-clock lifetimes suit a market the user watches, but on a slow or loaded machine the
same seed then interrupts less work. Two clocks count work instead. A :class:`WorkSchedule`
interrupts an instance when its worker reaches a seeded work point for the n-th time (a
computed chunk, a multipart part, a manifest write; see ``payload.store.faultpoint``): the
same seed interrupts the same work on any machine (the demo, tests, ``bench/soak.py``).
Command jobs compute no chunks; for them ``clock="cpu"`` draws the same exponential
lifetimes in CPU seconds of the programs the worker runs (``spotcube.local.cpuclock``), so a
loaded machine reclaims an instance after the same work, later on the wall clock.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from contract.settings import FAULTPOINT_ENV
from spotcube.local import cpuclock, inimage
from spotcube.local.motoserver import local_environment
from spotcube.local.timeline import Timeline
from spotcube.stack import StackOutputs

# How often the CPU clock of running instances is read (a /proc scan).
CPU_POLL_SECONDS = 0.2
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


# Work points the worker announces (payload.store.faultpoint); a WorkSchedule picks among them.
WORK_POINTS = ("chunk-computed", "multipart-part", "multipart-complete", "manifest-write")
# How long a worker waits at a point chosen for a hard kill: far longer than the fleet needs
# to see the marker, so the SIGKILL lands inside the point even on a loaded machine.
HOLD_FOR_KILL_SECONDS = 120.0
# How often the fleet looks for work markers: a notice then comes at most this late.
WORK_POLL_SECONDS = 0.05
# After the worker was answered its notice, how long it stays held at the work point, so its
# watcher thread has set the flag its job loop checks before the next chunk starts.
NOTICE_SEEN_SLACK = 0.3


@dataclass(frozen=True)
class WorkSchedule:
    """Interruptions counted in work done, not in seconds: reproducible on any machine.

    Every instance draws, from the fleet's seeded generator, one of ``points`` and an
    arrival count in ``arrivals`` (inclusive). When its worker reaches that point for that
    many times, the instance is interrupted: with probability ``notice_fraction`` by a spot
    notice (the worker goes on, reacts, and is SIGKILLed at the notice deadline if still
    up), otherwise by a SIGKILL at once while the worker is held inside the point.
    """

    points: tuple[str, ...] = ("chunk-computed",)
    arrivals: tuple[int, int] = (1, 4)
    notice_fraction: float = 1.0
    # An instance that drew a point its jobs never reach (a multipart point, small jobs) is
    # interrupted at this many computed chunks instead, so every instance ends.
    backstop_chunks: int | None = None
    # Set by :meth:`paced`: the hazard per arrival at the point. The arrival is then drawn
    # from an exponential lifetime counted in arrivals (rounded up to the next one) instead
    # of uniformly from ``arrivals``, so the interruption rate per unit of work is the
    # market's rate per hour of work.
    hazard_per_arrival: float | None = None

    def __post_init__(self) -> None:
        unknown = set(self.points) - set(WORK_POINTS)
        if not self.points or unknown:
            raise ValueError(f"work points {sorted(unknown)} are not among {WORK_POINTS}")
        low, high = self.arrivals
        if not 1 <= low <= high:
            raise ValueError(f"arrivals {self.arrivals} must satisfy 1 <= low <= high")
        if not 0.0 <= self.notice_fraction <= 1.0:
            raise ValueError(f"notice_fraction {self.notice_fraction!r} must be in 0..1")

    @classmethod
    def paced(cls, rate_per_hour: float, work_hours_per_chunk: float) -> WorkSchedule:
        """A storm paced by chunks: ``rate_per_hour`` per hour of work, a chunk being
        ``work_hours_per_chunk`` of an instance's time on AWS.

        The n-th computed chunk of an instance is where its lifetime (exponential, in
        chunks) runs out; the notice comes there and the worker reacts as to any notice.
        """
        if not (rate_per_hour > 0 and work_hours_per_chunk > 0):
            raise ValueError("a paced storm needs a positive rate and chunk duration")
        return cls(
            points=("chunk-computed",),
            notice_fraction=1.0,
            hazard_per_arrival=rate_per_hour * work_hours_per_chunk,
        )

    def draw(self, rng: random.Random) -> tuple[str, int, bool]:
        """(point, arrival, by_notice) for a new instance."""
        point = rng.choice(self.points)
        if self.hazard_per_arrival is None:
            arrival = rng.randint(*self.arrivals)
        else:
            lifetime = rng.expovariate(self.hazard_per_arrival)  # in chunks of work
            arrival = max(1, math.ceil(lifetime))
        return point, arrival, rng.random() < self.notice_fraction

    def faultpoint_spec(self, point: str, arrival: int, *, hold: float, marker: Path) -> str:
        """``SPOTCUBE_FAULTPOINT`` for a worker (see ``payload.store.faultpoint``)."""
        spec = f"{point}:{hold:g}:{marker}:{arrival}"
        if self.backstop_chunks is not None and point != "chunk-computed":
            spec += f",chunk-computed:{hold:g}:{marker}:{self.backstop_chunks}"
        return spec


@dataclass(frozen=True)
class WorkerSpec:
    """How to start the worker of an instance."""

    outputs: StackOutputs
    root: Path  # per-instance workdirs and logs go under here
    extra_args: Sequence[str] = ()
    python: str = sys.executable
    # A baked image's root filesystem: the worker runs inside it (spotcube.local.inimage),
    # sharing only its instance folder with this machine, instead of on the host.
    rootfs: Path | None = None

    def command(self, workdir: Path) -> list[str]:
        o = self.outputs
        python = self.python if self.rootfs is None else inimage.IMAGE_PYTHON
        cmd = [python, "-m", "payload", "worker"]
        cmd += ["--queue-url", o.job_queue_url, "--products-bucket", o.products_bucket]
        cmd += ["--region", o.region, "--workdir", str(workdir)]
        if o.dead_letter_queue_url:
            cmd += ["--dlq-url", o.dead_letter_queue_url]
        if o.endpoint_url:
            cmd += ["--endpoint-url", o.endpoint_url]
        cmd += list(self.extra_args)
        if self.rootfs is not None:
            return inimage.launcher_command(self.rootfs, workdir.parent, cmd)
        return cmd


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
    notice_at: float  # fleet time of the spot notice (inf: never, or not yet known)
    # clock="cpu": the notice comes when the process tree has used this many CPU seconds
    notice_cpu: float = math.inf
    noticed_at: float | None = None
    kill_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None  # reclaimed | exited | stopped
    exit_code: int | None = None
    # WorkSchedule only: the marker the worker writes at its chosen point, and what to do.
    work_marker: Path | None = None
    work_point: str | None = None
    kill_at_point: bool = False
    reached: str = ""  # "point:arrival" the worker wrote when it got there
    release_at: float | None = None  # when to let a worker held at its point go on

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
    schedule: WorkSchedule | None = None  # None: lifetimes from ``model`` on ``clock``
    # Without a schedule, what ``model``'s lifetimes count: "wall" seconds, or "cpu" seconds
    # of each instance's worker and the programs it runs (command jobs: paced by work).
    clock: str = "wall"
    worker_env: Mapping[str, str] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    _rng: random.Random = field(init=False)
    _t0: float = field(init=False, default=0.0)
    _pending_launches: list[float] = field(init=False, default_factory=list)
    _draining: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"fleet size {self.size} must be at least 1")
        if self.clock not in ("wall", "cpu"):
            raise ValueError(f"fleet clock {self.clock!r} is not 'wall' or 'cpu'")
        if self.clock == "cpu" and not cpuclock.available():
            raise ValueError("a CPU-paced fleet reads /proc: Linux only (use clock='wall')")
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
        env.update(self.worker_env)
        marker, point, kill_at_point, notice_after = None, None, False, math.inf
        notice_cpu = math.inf
        if self.schedule is None and self.clock == "cpu":
            # the same draw, read as CPU seconds: a machine at full speed and one core of
            # work per instance sees the wall-clock storm; a loaded one, the same work's
            notice_cpu = self.model.draw_notice_after(self._rng)
        elif self.schedule is None:
            notice_after = self.model.draw_notice_after(self._rng)
        else:
            point, arrival, by_notice = self.schedule.draw(self._rng)
            kill_at_point = not by_notice
            # in the instance's folder: a worker inside an image shares only that one
            marker = workdir / "reached"
            marker.unlink(missing_ok=True)
            # Held at the point either way: for a kill until the SIGKILL; for a notice until
            # the worker has seen it (``tick``), so it reacts at the drawn work and not some
            # chunks later on a fast machine.
            hold = HOLD_FOR_KILL_SECONDS
            env[FAULTPOINT_ENV] = self.schedule.faultpoint_spec(
                point, arrival, hold=hold, marker=marker
            )
        process = subprocess.Popen(
            self.spec.command(workdir / "work"),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=die_with_parent,
            # Ctrl-C in the terminal reaches the demo alone; it stops the workers itself
            # (SIGTERM: they hand their jobs back) while the local cloud is still up.
            start_new_session=True,
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
            notice_at=now + notice_after,
            notice_cpu=notice_cpu,
            work_marker=marker,
            work_point=point,
            kill_at_point=kill_at_point,
        )
        self.instances.append(instance)
        self.timeline.add(now, "launch", instance_id, f"{self.instance_type} {zone}")
        return instance

    def tick(self) -> None:
        """Advance the fleet: deliver notices, reclaim at deadlines, launch replacements."""
        now = self.now()
        for inst in self.running:
            code = inst.process.poll()
            if inst.work_marker is not None and inst.noticed_at is None and code is None:
                reached = inst.work_marker.read_text() if inst.work_marker.exists() else ""
                if reached:  # empty while the worker is still writing it: next tick
                    inst.reached = reached
                    if inst.kill_at_point:
                        # Held inside the point (faultpoint sleeps): the kill lands there.
                        self.timeline.add(now, "kill", inst.instance_id, f"at {inst.reached}")
                        self._end(inst, "reclaimed", now, record=False)
                        continue
                    inst.notice_at = now
            self._release_if_noticed(inst, now)
            if (
                inst.noticed_at is None
                and code is None
                and math.isfinite(inst.notice_cpu)
                and cpuclock.tree_cpu_seconds(inst.process.pid, programs_only=True)
                >= inst.notice_cpu
            ):
                inst.notice_at = now
            if inst.noticed_at is None and now >= inst.notice_at and code is None:
                inst.imds.schedule_interruption(self.model.notice_real, action="terminate")
                inst.noticed_at = now
                inst.kill_at = now + self.model.notice_real
                detail = f"at {inst.reached}" if inst.reached else ""
                self.timeline.add(now, "notice", inst.instance_id, detail)
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

    def _release_if_noticed(self, inst: Instance, now: float) -> None:
        """Let a worker held at its work point go on once it has been served its notice."""
        marker = inst.work_marker
        if marker is None or inst.noticed_at is None or inst.kill_at_point:
            return
        if inst.release_at is None:
            served = getattr(inst.imds, "notice_served", None)
            if served is None or served.is_set():
                inst.release_at = now + NOTICE_SEEN_SLACK
        if inst.release_at is not None and now >= inst.release_at:
            marker.unlink(missing_ok=True)

    def seconds_to_next_event(self) -> float:
        """Wall-clock seconds until the next notice, reclaim or launch (inf: none planned).

        The demo sleeps no longer than this, so a SIGKILL lands on its deadline and not a
        polling interval later.
        """
        now = self.now()
        times = list(self._pending_launches)
        for inst in self.running:
            times.append(inst.kill_at if inst.kill_at is not None else inst.notice_at)
            if inst.work_marker is not None and (
                inst.noticed_at is None or inst.work_marker.exists()
            ):
                # a work point may be reached, or a held worker be released, any time
                times.append(now + WORK_POLL_SECONDS)
            if inst.noticed_at is None and math.isfinite(inst.notice_cpu):
                times.append(now + CPU_POLL_SECONDS)  # its CPU clock runs out some time
        return max(0.0, min(times, default=math.inf) - now)

    def _end(self, inst: Instance, reason: str, now: float, *, record: bool = True) -> None:
        if inst.process.poll() is None:
            inst.process.send_signal(signal.SIGKILL)
        inst.exit_code = inst.process.wait()
        inst.ended_at = now
        inst.end_reason = reason
        inst.log.close()
        inst.imds.stop()
        # An instance that ends takes its disk with it; its log (beside it) stays. Without
        # this, every reclaimed instance's scratch piled up in the demo's folder.
        shutil.rmtree(self.spec.root / inst.instance_id, ignore_errors=True)
        if inst.work_marker is not None:
            inst.work_marker.unlink(missing_ok=True)
        kind = {"reclaimed": "kill", "exited": "exit", "stopped": "stop"}[reason]
        if record:
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

    def sigkilled(self) -> int:
        """Reclaimed instances whose worker was still running when SIGKILL came."""
        return sum(
            1
            for i in self.instances
            if i.end_reason == "reclaimed" and i.exit_code == -signal.SIGKILL
        )
