"""CPU seconds a process and everything it started have used: the work clock of a command job.

A ``--job`` demo runs the user's own programs (AOFlagger, DP3, WSClean), which compute no
chunks the storm could count (``spotcube.local.fleet.WorkSchedule``). Their work is the CPU
time of the instance's process tree: on a machine that other work slows down, CPU seconds
accrue more slowly than wall seconds, exactly as the work does, so an instance whose lifetime
is drawn in CPU seconds is reclaimed after the same work on a fast and on a loaded machine.

Linux only (``/proc``): ``utime + stime`` of every live process of the tree, plus ``cutime +
cstime``, what its children that have ended and were waited for had used (proc(5)).
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available() -> bool:
    """True where ``/proc/<pid>/stat`` can be read (Linux)."""
    return (PROC / str(os.getpid()) / "stat").is_file()


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU ticks of the process and its waited-for children), None if gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name, field 2, is in parentheses and may hold spaces or ')': split after
    # the last ')'. Fields from there: state(3) ppid(4) ... utime(14) stime(15) cutime(16)
    # cstime(17), so index i here is field i + 3.
    fields = text[text.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    ticks = float(fields[11]) + float(fields[12]) + float(fields[13]) + float(fields[14])
    return ppid, ticks


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used by ``root`` and its live descendants (and the children they reaped).

    A child that ended counts once its parent has waited for it (in the parent's ``cutime``);
    until then, for the moment between its exit and the wait, it counts as nothing.
    """
    children: dict[int, list[int]] = {}
    ticks: dict[int, float] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        found = _stat(int(entry.name))
        if found is None:
            continue
        ppid, used = found
        children.setdefault(ppid, []).append(int(entry.name))
        ticks[int(entry.name)] = used
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += ticks.get(pid, 0.0)
        stack.extend(children.get(pid, ()))
    return total / _TICKS
