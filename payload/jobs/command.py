"""``command`` jobs: run any program (an IDL/FHD or SSINS pipeline) resumably on spot.

The program runs in a working directory restored from S3 at start. While it runs, files
that are *closed and unchanged since the previous scan* are synced to S3 with their SHA-256,
on the checkpoint interval and on a rebalance recommendation. At a termination notice the
program is frozen (SIGSTOP) and every file it is not writing is synced, however recently it
was closed. A file still open for writing, or still changing, is never uploaded
half-written. An index listing every synced file is written after the files it lists are
durable (the manifest contract, applied to a directory). The program's own step files make
it resumable: restored, it skips the steps whose outputs are there.

Parameters (``message.params``)
-------------------------------
argv : list of str
    The program and its arguments (required).
env : dict, optional
    Extra environment variables (not ``SPOTCUBE_*``: those are the job's context, below).
fetch_input : bool, optional
    Download (and verify, and unpack a folder archive of) an ``s3://`` input before the
    program starts, on every attempt (default true). False for a program that reads the
    input itself: then only ``SPOTCUBE_INPUT_URI`` is set.
products : list of str, optional
    Glob patterns, relative to the working directory, of the products (default
    ``["products/*"]``), uploaded when the program exits 0.
invalid_exit_codes : list of int, optional
    Exit codes that mean bad input: the job fails for good (default ``[65]``). Any other
    non-zero exit is transient.

The program's environment is the worker's, without the worker's own ``SPOTCUBE_*``
settings, plus ``params.env``, plus the job's context (:func:`program_environment`):
``SPOTCUBE_INPUT``, ``SPOTCUBE_INPUT_URI``, ``SPOTCUBE_RUN_ID``, ``SPOTCUBE_OBS_ID``,
``SPOTCUBE_ATTEMPT``, ``SPOTCUBE_WORKDIR``, ``SPOTCUBE_SCRATCH``, ``SPOTCUBE_INSTANCE_ID``.
It runs tethered to the worker (:mod:`payload.jobs.tether`): a worker killed outright takes
the program's whole session with it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from contract.settings import ENV_PREFIX
from payload.errors import InvalidInputError, PreemptedError, TransientError
from payload.jobs.base import CommandRun
from payload.outcomes import Outcome
from payload.records import WorkdirFile, WorkdirIndex
from payload.store import ObjectStore, faultpoint, file_digests

log = logging.getLogger(__name__)

_MAX_FILES = 100_000  # a working directory with more files than this is a mistake
_STOP_SECONDS = 10.0
# The job's context in the program's environment: the worker's own prefix, so that the worker's
# settings are left out (inside the program SPOTCUBE_* means this job).
CONTEXT_PREFIX = ENV_PREFIX
TETHER = Path(__file__).with_name("tether.py")


@dataclass(frozen=True)
class CommandParams:
    """Validated parameters of a command job."""

    argv: list[str]
    env: dict[str, str]
    products: list[str]
    invalid_exit_codes: frozenset[int]
    fetch_input: bool = True

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> CommandParams:
        argv = params.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise InvalidInputError(
                "command job parameter argv must be a non-empty list of strings"
            )
        env = params.get("env", {})
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise InvalidInputError("command job parameter env must map strings to strings")
        reserved = sorted(k for k in env if k.startswith(CONTEXT_PREFIX))
        if reserved:
            raise InvalidInputError(
                f"command job parameter env sets {', '.join(reserved)}: {CONTEXT_PREFIX}* "
                "variables are the job's context, set by the worker; rename yours"
            )
        products = params.get("products", ["products/*"])
        if not isinstance(products, list) or not all(isinstance(p, str) for p in products):
            raise InvalidInputError("command job parameter products must be a list of globs")
        codes = params.get("invalid_exit_codes", [65])
        if not isinstance(codes, list) or not all(isinstance(c, int) for c in codes):
            raise InvalidInputError("command job parameter invalid_exit_codes must be integers")
        fetch = params.get("fetch_input", True)
        if not isinstance(fetch, bool):
            raise InvalidInputError("command job parameter fetch_input must be true or false")
        return cls(argv, dict(env), list(products), frozenset(codes), fetch)


FileStat = tuple[int, int]  # size, mtime_ns


# A file open for writing -> when the earliest process holding it so started (Unix time).
Holders = Mapping[Path, float]
# Process start times come from clock ticks since boot; boot time from /proc/uptime (10 ms):
# a file counts as unwritten by its holders only if it is older than their start by this much.
_START_SLACK = 0.05


def files_open_for_writing(session: int) -> dict[Path, float] | None:
    """Files any process of ``session`` holds open for writing, each with the start time of
    the earliest such process (Linux ``/proc``); None elsewhere.

    A file open only for reading (the next step reading the previous step's output) cannot
    change through that descriptor, so it does not keep the file from settling: its size and
    mtime staying the same over two scans is the proof. The start time tells a file written by
    its holder from one only held: casacore opens every ``table.lock`` of a Measurement Set
    read-write, even to read it (DP3 reading the flagged data), and writes nothing there.
    """
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    try:
        booted = time.time() - float((proc / "uptime").read_text().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        booted, ticks = 0.0, 0  # unknown: every holder counts as a writer
    held: dict[Path, float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Field 6 of /proc/PID/stat is the session id, field 22 the start time in clock
            # ticks after boot; the comm field may hold spaces, so split after its closing
            # parenthesis (the next field, 3, is then the first).
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) != session:
                continue
            started = booted + int(fields[19]) / ticks if ticks else float("-inf")
            for fd in (entry / "fd").iterdir():
                if _writable(entry / "fdinfo" / fd.name):
                    path = Path(os.readlink(fd))
                    held[path] = min(held.get(path, float("inf")), started)
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return held


def _closed(
    root: Path, now: Mapping[str, FileStat], held: Holders | AbstractSet[Path] | None
) -> set[str]:
    """The files of ``now`` that no process is writing.

    Not open for writing, or open for writing but not modified since the earliest process
    holding it so started: a write through its descriptor would have moved the mtime past
    that start. ``held`` as a plain set (no start times) counts every holder as a writer.
    """
    if held is None:
        return set(now)
    started = held if isinstance(held, Mapping) else {}
    closed = set()
    for rel, (_size, mtime_ns) in now.items():
        path = (root / rel).resolve()
        if path not in held or mtime_ns / 1e9 < started.get(path, 0.0) - _START_SLACK:
            closed.add(rel)
    return closed


def _writable(fdinfo: Path) -> bool:
    """Whether the descriptor was opened for writing (``flags:`` of proc(5) fdinfo, octal)."""
    try:
        for line in fdinfo.read_text().splitlines():
            if line.startswith("flags:"):
                return int(line.split()[1], 8) & os.O_ACCMODE != os.O_RDONLY
    except (OSError, IndexError, ValueError):
        pass
    return True  # unknown: count it as a writer, the safe side


class WorkdirSync:
    """Restores a working directory from S3 and syncs its settled files back.

    Parameters
    ----------
    store : ObjectStore
        The products bucket.
    prefix : str
        Key prefix of the synced files (``ObsLayout.workdir_prefix``).
    index_key : str
        Key of the index of synced files.
    root : Path
        The local working directory.
    """

    def __init__(self, store: ObjectStore, prefix: str, index_key: str, root: Path) -> None:
        self.store = store
        self.prefix = prefix
        self.index_key = index_key
        self.root = root
        self.index: dict[str, WorkdirFile] = {}  # by path in the directory
        self._previous: dict[str, FileStat] = {}
        self._closed_before: set[str] = set()
        self._reported_barrier: str | None = None
        self.last_sync = time.monotonic()

    def restore(self) -> int:
        """Download every indexed file (verified); return how many."""
        self.root.mkdir(parents=True, exist_ok=True)
        raw = self.store.get_bytes(self.index_key)
        if raw is None:
            return 0
        self.index = WorkdirIndex.from_json(raw, what=f"workdir index {self.index_key}").files
        for rel, entry in list(self.index.items()):
            dest = self.root / rel
            self.store.download_file(self.prefix + rel, dest, sha256=entry.sha256)
            stat = dest.stat()
            self.index[rel] = replace(entry, stat=(stat.st_size, stat.st_mtime_ns))
        return len(self.index)

    def changed(self) -> list[str]:
        """Every file whose size or mtime differs from what was last synced, oldest first."""
        now = self.walk()
        return _oldest_first({rel: stat for rel, stat in now.items() if self._unsynced(rel, stat)})

    def _unsynced(self, rel: str, stat: FileStat) -> bool:
        entry = self.index.get(rel)
        return entry is None or entry.stat != stat

    def walk(self) -> dict[str, FileStat]:
        """``relpath -> (size, mtime_ns)`` of every regular file under the root."""
        found: dict[str, FileStat] = {}
        for count, path in enumerate(sorted(self.root.rglob("*"))):
            if count >= _MAX_FILES:
                raise InvalidInputError(f"{self.root} holds more than {_MAX_FILES} files")
            if path.is_file() and not path.is_symlink():
                stat = path.stat()
                found[path.relative_to(self.root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
        return found

    def scan(self, held: Holders | AbstractSet[Path] | None) -> list[str]:
        """Files to sync now, oldest first: settled, and written before every unsettled file.

        Settled: closed for writing at the previous scan and now, with the same size and mtime.
        A file written *after* a file that has not settled waits for it, whatever it is:
        a pipeline writes a step's completion marker after that step's outputs, so the marker
        can never reach the index before the outputs it vouches for, even while the next step
        holds them open (the order of modification times is the order of writing). A file
        still being written keeps moving its own mtime forward, so it delays only what was
        written after its latest write.
        """
        now = self.walk()
        closed = _closed(self.root, now, held)
        settled = {
            rel
            for rel, stat in now.items()
            if rel in closed and rel in self._closed_before and self._previous.get(rel) == stat
        }
        self._previous, self._closed_before = now, closed
        return self._ready(now, settled)

    def scan_frozen(self, held: Holders | None) -> list[str]:
        """Files to sync from a program that is frozen (SIGSTOP), oldest first.

        Frozen, nothing changes, so the two-scan proof of :meth:`scan` is not needed: every
        file not open for writing holds what the program finished writing, even one closed a
        moment before the notice (a step's stamp written just now). A file open for writing
        is a step's unfinished output; the files written after it wait, as in :meth:`scan`.
        Without ``/proc`` (``held`` None) open files are unknown: :meth:`scan`'s rule applies.
        """
        if held is None:
            return self.scan(None)
        now = self.walk()
        return self._ready(now, _closed(self.root, now, held))

    def _ready(self, now: Mapping[str, FileStat], settled: set[str]) -> list[str]:
        """The unsynced files of ``now`` that are settled and older than every unsettled one."""
        unsynced = {rel: stat for rel, stat in now.items() if self._unsynced(rel, stat)}
        waiting = [rel for rel in unsynced if rel not in settled]
        barrier = min((unsynced[rel][1] for rel in waiting), default=None)
        ready = {
            rel: stat
            for rel, stat in unsynced.items()
            if rel in settled and (barrier is None or stat[1] < barrier)
        }
        if barrier is not None and len(ready) < len(unsynced) - len(waiting):
            oldest = min(waiting, key=lambda rel: unsynced[rel][1])
            if oldest != self._reported_barrier:
                log.info(
                    "files written after %s wait until it settles (it is open for writing or "
                    "changing); a file that stays open long delays the sync of later ones",
                    oldest,
                    extra={"event": "workdir.held", "file": oldest},
                )
                self._reported_barrier = oldest
        return _oldest_first(ready)

    def sync(self, names: Iterable[str], *, interrupt: threading.Event | None = None) -> int:
        """Upload ``names`` in order (verified), then the index; return how many were uploaded.

        A file that changed or vanished since the scan stops the sync there: the files after
        it (written later) wait for the next scan, as :meth:`scan` would have had them wait.
        So does ``interrupt`` (a termination notice): the notice's own sync, of the frozen
        program's files, must not wait behind a periodic one.
        """
        uploaded = 0
        for rel in names:
            if interrupt is not None and interrupt.is_set():
                break
            path = self.root / rel
            try:
                before = path.stat()
                size, sha, _md5 = file_digests(path)
                after = path.stat()
                if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
                    break  # changed while we read it: not settled after all
                stored = self.store.put_file(self.prefix + rel, path)
            except FileNotFoundError:
                # Renamed or deleted since the scan (`mv out.tmp out`, the usual way to write
                # an output atomically): not settled, and no reason to end the attempt.
                break
            if stored.sha256 != sha:
                break
            self.index[rel] = WorkdirFile(size, sha, (after.st_size, after.st_mtime_ns))
            uploaded += 1
            # Fault tests kill the worker between two uploads of one sync.
            faultpoint("workdir-upload")
        # A file the program removed must not come back on the next attempt's restore.
        vanished = [rel for rel in self.index if not (self.root / rel).exists()]
        for rel in vanished:
            del self.index[rel]
        if uploaded or vanished:
            # Written last: a restore sees every file of this sync or none of them.
            index = WorkdirIndex(files=self.index)
            self.store.put_bytes(self.index_key, index.to_json(), content_type="application/json")
        self.last_sync = time.monotonic()
        return uploaded


def _oldest_first(files: Mapping[str, FileStat]) -> list[str]:
    """Names by modification time, then name (the order a sync uploads them)."""
    return sorted(files, key=lambda rel: (files[rel][1], rel))


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the program's session, then SIGKILL after a grace period.

    SIGCONT follows the SIGTERM: a session frozen at a notice (:func:`_freeze`) receives a
    SIGTERM only once it runs again.
    """
    for sig, wait in ((signal.SIGTERM, _STOP_SECONDS), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
            os.killpg(process.pid, signal.SIGCONT)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def _freeze(process: subprocess.Popen[bytes]) -> None:
    """SIGSTOP the program's process group: its files stay as they are while they upload.

    The tether (the group's leader, ``process``) runs on at once: it writes nothing, and a
    stopped tether could not act on the worker's death (its SIGUSR1 would wait for a SIGCONT
    that nobody sends), leaving a frozen session behind a SIGKILLed worker.
    """
    try:
        os.killpg(process.pid, signal.SIGSTOP)
        os.kill(process.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass  # it has just exited: nothing changes any more either


def program_environment(
    run: CommandRun, params: CommandParams, root: Path, scratch: Path, local_input: str | None
) -> dict[str, str]:
    """The program's environment: the worker's, ``params.env``, then the job's context.

    The worker's own settings (``SPOTCUBE_QUEUE_URL``, ``SPOTCUBE_WORKDIR``... from
    /etc/spotcube/worker.env) are left out: inside the program ``SPOTCUBE_*`` means this job.
    ``PYTHONUNBUFFERED=1`` unless ``params.env`` says otherwise: a Python program's output to
    a file is block-buffered, and what it printed before a SIGKILL would never reach the log.
    """
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(CONTEXT_PREFIX)}
    context = {
        **({"INPUT": local_input} if local_input is not None else {}),
        "INPUT_URI": run.message.input,
        "RUN_ID": run.message.run_id,
        "OBS_ID": run.message.obs_id,
        "ATTEMPT": str(run.number),
        "WORKDIR": str(root.resolve()),
        "SCRATCH": str(scratch.resolve()),
        "INSTANCE_ID": run.identity.instance_id,
    }
    return {
        **inherited,
        "PYTHONUNBUFFERED": "1",
        **params.env,
        **{CONTEXT_PREFIX + k: v for k, v in context.items()},
    }


def _local_input(run: CommandRun, params: CommandParams) -> str | None:
    """``SPOTCUBE_INPUT``: the local, verified copy of an ``s3://`` input (None when the
    program fetches it itself); an input that is not in S3 is passed as it is."""
    uri = run.message.input
    if not uri.startswith("s3://"):
        return uri
    return str(run.fetch(uri).resolve()) if params.fetch_input else None


def _startable(argv0: str, env: Mapping[str, str], cwd: Path) -> bool:
    """Whether ``argv0`` names an executable, found the way ``exec`` will find it."""
    if os.sep in argv0:
        path = cwd / argv0
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(argv0, path=env.get("PATH", os.defpath)) is not None


def run_command_job(run: CommandRun) -> Outcome:
    """Run a command job for the worker; raises like a chunked job on every other outcome.

    The program's output goes to the attempt's log (:mod:`payload.logship`), which is shipped
    with every workdir sync and at least every checkpoint interval while the program runs.
    """
    params = CommandParams.parse(run.message.params)
    assert run.logs is not None, "JobAttempt.start() first"
    layout = run.layout
    root = run.dir / "work"
    scratch = run.dir / "scratch"
    sync = WorkdirSync(run.store, layout.workdir_prefix, layout.workdir_index, root)
    restored = sync.restore()
    if restored:
        log.info("restored %d files of the working directory from S3", restored)
    shutil.rmtree(scratch, ignore_errors=True)  # scratch space is per attempt, never synced
    scratch.mkdir(parents=True)
    env = program_environment(run, params, root, scratch, _local_input(run, params))
    if not _startable(params.argv[0], env, root):
        raise InvalidInputError(f"cannot start {params.argv[0]!r}: not an executable on PATH")
    log.info("running %s", " ".join(params.argv))
    run.ship_log()
    program_log = run.logs.path.open("ab")
    try:
        # Through the tether, which dies with this worker and takes the session with it: a
        # preexec_fn calling prctl here would run between fork and exec in a process with
        # threads (unsafe) and would cover the program but not its children.
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(TETHER), str(os.getpid()), *params.argv],
            cwd=root,
            env=env,
            stdout=program_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: signals and open-file checks cover children
        )
    except OSError as exc:
        raise TransientError(f"cannot start the program's tether: {exc}") from None
    try:
        status = _supervise(run, process, sync)
    finally:
        _stop(process)
        program_log.close()
    if status in params.invalid_exit_codes:
        raise InvalidInputError(f"{params.argv[0]} exited {status}: the input is not usable")
    if status != 0:
        raise TransientError(f"{params.argv[0]} exited {status}")
    # The program has exited: every file is closed and final.
    sync.sync(sync.changed())
    products = sorted({p for pattern in params.products for p in root.glob(pattern) if p.is_file()})
    return run.publish(products)


def _supervise(run: CommandRun, process: subprocess.Popen[bytes], sync: WorkdirSync) -> int:
    """Scan and sync until the program exits; on a notice sync what is settled and stop."""
    watcher = run.watcher
    interval = run.settings.checkpoint_interval
    scan_every = min(2.0, max(0.1, interval / 2))
    next_scan = last_ship = time.monotonic()
    # Bounded by the program's own run time or by a termination notice.
    while True:
        status = process.poll()
        if status is not None:
            return status
        now = time.monotonic()
        if watcher.terminating.is_set():
            # Program time since the last sync is at risk: what the next attempt may redo.
            at_risk = now - sync.last_sync
            # Frozen first, then every file it is not writing is final and goes to S3: a
            # step finished a moment before the notice is not redone. (Synced by the
            # periodic rule instead, a file closed since the previous scan waited for a
            # second scan that never came, and the attempt handed back "0 settled files".)
            _freeze(process)
            uploaded = sync.sync(sync.scan_frozen(files_open_for_writing(process.pid)))
            log.warning("notice: synced %d finished files; stopping the program", uploaded)
            _stop(process)
            raise PreemptedError("termination notice during a command job", lost=at_risk)
        if now >= next_scan:
            faultpoint("workdir-scan")  # fault tests count scans, not seconds
            ready = sync.scan(files_open_for_writing(process.pid))
            due = now - sync.last_sync >= interval or watcher.rebalance.is_set()
            if ready and due:
                watcher.rebalance.clear()
                sync.sync(ready, interrupt=watcher.terminating)
            if (ready and due) or now - last_ship >= interval:
                # The program's output, even while no file settles: a hard kill loses at
                # most one interval of it.
                run.ship_log()
                last_ship = now
            next_scan = now + scan_every
        time.sleep(0.05)
