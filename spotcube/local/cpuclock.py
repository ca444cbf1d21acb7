"""CPU seconds a job's programs have used: the work clock of a command job.

A ``--job`` demo runs the user's own programs (AOFlagger, DP3, WSClean), which compute no
chunks the storm could count (``spotcube.local.fleet.WorkSchedule``). Their work is the CPU
time they use: on a machine that other work slows down, CPU seconds accrue more slowly than
wall seconds, exactly as the work does, so an instance whose lifetime is drawn in CPU seconds
is reclaimed after the same work on a fast and on a loaded machine.

What counts is the programs below the worker, not the worker itself: its start (imports,
the image's caches) costs seconds of CPU that stand for nothing on AWS, where an instance
lives hours; counted, they would make a compressed storm reclaim instances before their
first step. The worker (``-m payload worker``) and the launcher of an instance inside an
image (``spotcube.local.inimage``) are therefore left out, but not what their children that
ended had used.

Linux only (``/proc``, proc(5)): ``utime + stime`` of a process, and ``cutime + cstime``,
what its children that have ended and were waited for had used.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available() -> bool:
    """True where ``/proc/<pid>/stat`` can be read (Linux)."""
    return (PROC / str(os.getpid()) / "stat").is_file()


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own CPU ticks, CPU ticks of its waited-for children); None if gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name, field 2, is in parentheses and may hold spaces or ')': split after
    # the last ')'. Fields from there: state(3) ppid(4) ... utime(14) stime(15) cutime(16)
    # cstime(17), so index i here is field i + 3.
    fields = text[text.rindex(")") + 2 :].split()
    return (
        int(fields[1]),
        float(fields[11]) + float(fields[12]),
        float(fields[13]) + float(fields[14]),
    )


# Command lines (NUL-separated in /proc) of the processes that are the instance, not its work.
WORKER = b"\0-m\0payload\0worker"
LAUNCHER = b"spotcube.local.inimage"


def _cmdline(pid: int) -> bytes:
    try:
        return b"\0" + (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def tree_cpu_seconds(root: int, *, programs_only: bool = False) -> float:
    """CPU seconds used by ``root`` and its live descendants (and the children they reaped).

    ``programs_only``: leave out the topmost worker's and an image launcher's own CPU (and
    the launcher's reaped children: that is the worker, once it ended). A child that ended counts
    once its parent has waited for it; until then, for the moment between its exit and the
    wait, it counts as nothing.
    """
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[float, float]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        found = _stat(int(entry.name))
        if found is None:
            continue
        ppid, own, reaped = found
        children.setdefault(ppid, []).append(int(entry.name))
        stats[int(entry.name)] = (own, reaped)
    # (pid, whether the worker is above it): a process forked by the worker keeps its
    # command line, and its CPU is work, so only the topmost worker is left out.
    total, stack = 0.0, [(root, False)]
    while stack:
        pid, below_worker = stack.pop()
        own, reaped = stats.get(pid, (0.0, 0.0))
        is_worker = False
        if programs_only and not below_worker:
            line = _cmdline(pid)
            if LAUNCHER in line:
                own = reaped = 0.0
            elif WORKER in line:
                own, is_worker = 0.0, True
        total += own + reaped
        stack.extend((child, below_worker or is_worker) for child in children.get(pid, ()))
    return total / _TICKS
