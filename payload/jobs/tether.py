"""Tether a command job's program to the worker: when the worker dies, the program dies too.

    python -I -S tether.py WORKER_PID PROGRAM [ARG...]

The worker starts this script as the leader of a new session; the script runs the program
as its child in that session and waits. On Linux a SIGKILLed worker (the local fleet's
reclamation, the OOM killer, a crash) leaves a session of its own running: without the
tether the program would keep writing into a working directory nobody syncs, and on the
local cloud keep a CPU busy next to the attempt that resumed the job.

Why a tether process and not ``preexec_fn=prctl(PR_SET_PDEATHSIG)`` in the worker:

* ``PR_SET_PDEATHSIG`` kills only the process that set it, not the program's children (make's
  recipe shells, DP3, WSClean); someone has to be alive to kill the rest of the session.
* ``preexec_fn`` runs Python between ``fork`` and ``exec`` in a worker that has threads (spot
  watcher, checkpointer, visibility heartbeat); CPython documents it as unsafe there (a lock
  another thread held at the fork stays held in the child forever).

So the tether asks for ``SIGUSR1`` when its parent dies (``prctl`` via ctypes, in its own
single-threaded process) and answers it by SIGKILLing every process of its session, itself
last. A signal on parent death is Linux-only; elsewhere the tether still runs the program,
without that guarantee. The death signal is tied to the parent *thread*: the worker starts
the tether from the thread that supervises the program until it exits, so it fires only when
the worker itself is gone.

Everything else is passed through: the program gets the tether's environment, working
directory and standard streams; SIGTERM from the worker (sent to the whole process group)
reaches the program directly while the tether ignores it and waits; the tether exits with
the program's status (killed by signal N: the tether kills itself with N, so the worker's
``Popen.returncode`` reads ``-N`` as if it had run the program itself). Processes the program
left behind in the session when it exited are SIGKILLed, so nothing outlives the attempt.
Standard library only, and run with ``-I -S``: it starts in a few milliseconds and no
``PYTHON*`` variable of the program's environment changes how it runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_DIED = signal.SIGUSR1
USAGE_EXIT = 64  # EX_USAGE: the worker called us wrongly


def session_members(session: int) -> list[int]:
    """PIDs of every process in ``session`` (Linux ``/proc``), this one excluded."""
    members: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return members
    for name in entries:
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                # Field 6 is the session; the command name may hold spaces and parentheses.
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == session:
                members.append(int(name))
        except (OSError, IndexError, ValueError):
            continue  # ended while we looked
    return members


def kill_session() -> None:
    """SIGKILL the rest of this session: the program and anything it started."""
    for pid in session_members(os.getsid(0)):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


_PARENT: list[int] = []  # the worker's pid, once tie_to_parent has run


def _parent_died(_signum: int, _frame: object) -> None:
    # The program may send SIGUSR1 to its process group (some tools report progress that
    # way); only a changed parent means the worker is gone (it is reparented before the
    # death signal is sent).
    if _PARENT and os.getppid() == _PARENT[0]:
        return
    kill_session()
    os._exit(128 + signal.SIGKILL)


def _ignore(_signum: int, _frame: object) -> None:
    """A Python handler, not SIG_IGN: an ignored signal would stay ignored in the program."""


def tie_to_parent(parent: int) -> None:
    """Ask for PARENT_DIED when ``parent`` dies; act at once if it already has."""
    _PARENT.append(parent)
    signal.signal(PARENT_DIED, _parent_died)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(PARENT_DIED), 0, 0, 0) != 0:
            err = ctypes.get_errno()
            print(f"tether: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}", file=sys.stderr)
    # The parent may have died between our fork and the prctl: then no signal will come.
    if os.getppid() != parent:
        _parent_died(PARENT_DIED, None)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or not argv[1].isdigit():
        print("usage: tether.py WORKER_PID PROGRAM [ARG...]", file=sys.stderr)
        return USAGE_EXIT
    tie_to_parent(int(argv[1]))
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _ignore)
    try:
        program = subprocess.Popen(argv[2:])
    except OSError as exc:
        # 127, the shell's "command not found": the worker reports the program's name.
        print(f"tether: cannot start {argv[2]!r}: {exc}", file=sys.stderr)
        return 127
    status = program.wait()
    kill_session()  # what the program left running would write into a finished attempt
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
