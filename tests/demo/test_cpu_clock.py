"""A ``--job`` storm paced by work: lifetimes in CPU seconds of the instance's process tree.

Command jobs compute no chunks for a work schedule to count, so the demo draws their
lifetimes in CPU seconds (``spotcube.local.cpuclock``). Property: the same seed reclaims an
instance after the same work whether it runs at full speed or is slowed four times (SIGSTOP
for 3/4 of the time, as a loaded machine would starve it); a wall-clock storm fails this,
reclaiming the slowed instance after a quarter of the work. The CPU figures are checked
against what the processes themselves report (``time.process_time``, the kernel's
accounting through another interface). Time limits only bound a hang.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from spotcube.local import cpuclock
from spotcube.local.fleet import Fleet, InterruptionModel, WorkerSpec
from spotcube.stack import StackOutputs

pytestmark = pytest.mark.skipif(not cpuclock.available(), reason="reads /proc (Linux)")

# A stand-in for a command job's programs: a parent that starts a child, both burning CPU in
# fixed units of work; the parent writes how many units the two have done.
BURNER = r"""
import multiprocessing as mp, sys, time
def burn(units):
    while True:
        sum(range(20000))
        with units.get_lock():
            units.value += 1
if __name__ == "__main__":
    units = mp.Value("q", 0)
    child = mp.get_context("fork").Process(target=burn, args=(units,), daemon=True)
    child.start()
    out = sys.argv[1]
    while True:
        for _ in range(20):
            sum(range(20000))
            with units.get_lock():
                units.value += 1
        with open(out + ".tmp", "w") as f:
            f.write(str(units.value))
        import os; os.replace(out + ".tmp", out)
"""

REPORT = r"""
import multiprocessing as mp, os, sys, time
def burn(seconds, out):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    open(out + ".tmp", "w").write(repr(time.process_time()))
    os.replace(out + ".tmp", out)
if __name__ == "__main__":
    child = mp.get_context("fork").Process(target=burn, args=(0.6, sys.argv[1] + ".child"))
    child.start()
    burn(0.4, sys.argv[1] + ".parent")
    child.join()  # reaped: its CPU now counts in the parent's cutime
    open(sys.argv[1] + ".ready", "w").write("")
    time.sleep(30)
"""


def test_tree_cpu_is_what_the_processes_used(tmp_path: Path) -> None:
    out = tmp_path / "cpu"
    process = subprocess.Popen([sys.executable, "-c", REPORT, str(out)])
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "cpu.ready").exists():
            assert time.monotonic() < deadline, "the probe processes did not finish"
            time.sleep(0.05)
        reported = float((tmp_path / "cpu.parent").read_text()) + float(
            (tmp_path / "cpu.child").read_text()
        )
        measured = cpuclock.tree_cpu_seconds(process.pid)
    finally:
        process.kill()
        process.wait()
    assert reported >= 1.0
    # /proc counts in clock ticks (10 ms); the interpreters' start-up adds a little
    assert reported - 0.05 <= measured <= reported + 0.6


# A stand-in for a worker (its command line ends "-m payload worker") that burns CPU itself,
# runs one program to its end (reaped) and leaves a second one running.
WORKER = r"""
import multiprocessing as mp, os, sys, time
def burn(seconds, out):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    open(out + ".tmp", "w").write(repr(time.process_time()))
    os.replace(out + ".tmp", out)  # whole, or not there yet
    if out.endswith("live"):
        time.sleep(30)
if __name__ == "__main__":
    base = sys.argv[1]
    burn(0.5, base + ".worker")
    ended = mp.get_context("fork").Process(target=burn, args=(0.6, base + ".ended"))
    ended.start()
    ended.join()
    mp.get_context("fork").Process(target=burn, args=(0.4, base + ".live")).start()
    time.sleep(30)
"""


def test_programs_only_leaves_out_the_worker(tmp_path: Path) -> None:
    """A worker's start costs CPU that stands for no work; its programs' CPU is the clock."""
    base = tmp_path / "cpu"
    process = subprocess.Popen([sys.executable, "-c", WORKER, str(base), "-m", "payload", "worker"])
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "cpu.live").exists():
            assert time.monotonic() < deadline, "the probe processes did not finish"
            time.sleep(0.05)
        programs = float((tmp_path / "cpu.ended").read_text()) + float(
            (tmp_path / "cpu.live").read_text()
        )
        worker = float((tmp_path / "cpu.worker").read_text())
        measured = cpuclock.tree_cpu_seconds(process.pid, programs_only=True)
        everything = cpuclock.tree_cpu_seconds(process.pid)
    finally:
        process.kill()
        process.wait()
    assert programs - 0.05 <= measured <= programs + 0.3
    assert everything >= measured + worker - 0.05


@dataclass(frozen=True)
class BurnerSpec(WorkerSpec):
    """Instances whose "worker" is the burner above."""

    def command(self, workdir: Path) -> list[str]:
        workdir.mkdir(parents=True, exist_ok=True)
        return [sys.executable, "-c", BURNER, str(workdir / "units")]


def units_at_notice(tmp: Path, clock: str, *, slowed: bool) -> tuple[int, float, float]:
    """(units done when the notice came, the drawn lifetime, its fleet time)."""
    outputs = StackOutputs(
        region="us-east-1", raw_bucket="r", products_bucket="p", job_queue_url="q",
        dead_letter_queue_url="",
    )  # fmt: skip
    fleet = Fleet(
        spec=BurnerSpec(outputs=outputs, root=tmp / f"{clock}-{slowed}"),
        size=1,
        model=MODEL,
        clock=clock,
    )
    with fleet:
        [inst] = fleet.instances
        units = tmp / f"{clock}-{slowed}" / inst.instance_id / "work" / "units"
        deadline = time.monotonic() + 300
        while inst.noticed_at is None:
            assert time.monotonic() < deadline, "no notice after 300 s"
            if slowed:  # starved 3/4 of the time, as by other work on a loaded machine
                os.killpg(inst.process.pid, signal.SIGSTOP)
                time.sleep(0.15)
                os.killpg(inst.process.pid, signal.SIGCONT)
            time.sleep(0.05)
            fleet.tick()
        os.killpg(inst.process.pid, signal.SIGSTOP)
        done = int(units.read_text()) if units.exists() else 0
        drawn = inst.notice_cpu if clock == "cpu" else inst.notice_at - inst.launched_at
        return done, drawn, inst.noticed_at


def _seed_with_lifetime(low: float, high: float) -> int:
    """A seed whose first instance's drawn lifetime lies in [low, high] (as Fleet draws it)."""
    for seed in range(1000):
        rng = random.Random(seed)
        rng.getrandbits(68)  # the instance id comes first
        model = InterruptionModel(rate_per_hour=0.5, speedup=600.0, seed=seed)
        if low <= model.draw_notice_after(rng) <= high:
            return seed
    raise AssertionError("no seed")


MODEL = InterruptionModel(
    rate_per_hour=0.5, speedup=600.0, seed=_seed_with_lifetime(1.0, 1.5), min_notice_real=1.0
)


@pytest.fixture(scope="module")
def full_speed(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, float, float]:
    """The CPU-paced instance at full speed: both tests below compare with this one run."""
    return units_at_notice(tmp_path_factory.mktemp("full-speed"), "cpu", slowed=False)


def test_a_cpu_paced_storm_reclaims_after_the_same_work(
    tmp_path: Path, full_speed: tuple[int, float, float]
) -> None:
    fast, drawn, _ = full_speed
    slow, drawn_again, _ = units_at_notice(tmp_path, "cpu", slowed=True)
    assert drawn == drawn_again  # the same seed, the same lifetime
    assert 1.0 <= drawn <= 1.5
    assert fast > 0
    # About the same work (the clock is read every 0.2 s; the burner reports every 20 units),
    # and far from the wall clock's quarter (next test). Not within 15 %: the clock counts
    # the instance's whole process tree, whose worker process spends CPU per wall second
    # (polling, heartbeats, waking after each SIGCONT), and a slowed run takes four times
    # the wall time, so its burner gets less of the same lifetime: 0.67, 0.73, 0.79 in 3 of 5 runs
    # on a 2-core machine (2026-12-07), 0.85-1.0 in the others. The full-speed run is one
    # sample too, under whatever else the machine runs: a clean-clone CI read 1.17 (2,984
    # units slowed, 2,551 at full speed; session 9), so the upper bound is as loose as the lower.
    assert 0.6 <= slow / fast <= 1.4, (fast, slow)


def test_a_wall_clock_storm_reclaims_a_slowed_instance_early(
    tmp_path: Path, full_speed: tuple[int, float, float]
) -> None:
    """The counter-example the CPU clock exists for, and a check that the slowing bites."""
    fast, _, _ = full_speed
    slow, _, _ = units_at_notice(tmp_path, "wall", slowed=True)
    assert slow < 0.6 * fast, (fast, slow)
