"""At a spot notice, every step the program had finished is in S3: no attempt redoes it.

The invariant a pipeline author relies on: a step that completed before the termination
notice (its output and then its stamp written and closed) is restored on the next instance
and skipped there, however short the time between the step's end and the notice. A seeded
storm of notices, each struck the moment a chosen step finishes (tied to the program's
progress, not to the clock), searches for a step that runs twice. The worker scans only every
2 s here (checkpoint interval 60 s, as on a real instance where it is minutes): a rule that
syncs at a notice only files seen settled by an earlier scan loses the steps of the last
seconds, as an MWA attempt that had finished flagging and calibration did ("synced 0 settled
files"; issue 22).

What is checked is the store's state (the synced index lists the step's stamp and output,
byte for byte) and each step's own record of the attempts that ran it, never log wording.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.layout import ObsLayout
from payload.outcomes import Outcome
from payload.records import JobMessage
from spotcube.local.imds import ImdsEmulator
from tests.work.conftest import RUN, Plane, plane, wait_for  # noqa: F401 (fixture)

STEPS = 24
# Each step: work (a seeded sleep), its output written whole (tmp + rename), then its stamp,
# then a record outside the working directory of which attempt ran it.
PROGRAM = r"""
import os, pathlib, sys, time
durations = [float(s) for s in sys.argv[1].split(",")]
ran = pathlib.Path(sys.argv[2])
attempt = os.environ["SPOTCUBE_ATTEMPT"]
os.makedirs("steps", exist_ok=True)
for i, seconds in enumerate(durations):
    stamp = pathlib.Path(f"steps/{i:03d}.done")
    if stamp.exists():
        continue
    time.sleep(seconds)
    out = pathlib.Path(f"steps/{i:03d}.out")
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(os.urandom(1000 + 37 * i))
    os.replace(tmp, out)
    stamp.write_text(f"{out}\n")
    (ran / f"{i:03d}-{attempt}").touch()
os.makedirs("products", exist_ok=True)
pathlib.Path("products/steps.txt").write_text(
    "".join(pathlib.Path(f"steps/{i:03d}.out").read_bytes().hex()[:8] + "\n"
            for i in range(len(durations))))
"""


def _index(state: Plane, obs_id: str) -> dict[str, dict[str, object]]:
    raw = state.get(ObsLayout(RUN, obs_id).workdir_index)
    return {} if raw is None else dict(json.loads(raw)["files"])


def _finished_steps(ran: Path) -> set[int]:
    return {int(p.name.split("-")[0]) for p in ran.iterdir()}


def _runs_of(ran: Path) -> dict[int, list[int]]:
    """step -> the attempts that ran it."""
    runs: dict[int, list[int]] = {}
    for p in ran.iterdir():
        step, attempt = p.name.split("-")
        runs.setdefault(int(step), []).append(int(attempt))
    return runs


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_steps_finished_before_a_notice_never_run_again(
    plane: Plane,  # noqa: F811 (the fixture imported above)
    seed: int,
) -> None:
    rng = random.Random(seed)
    durations = [round(rng.uniform(0.02, 0.25), 3) for _ in range(STEPS)]
    script = plane.tmp / "steps.py"
    script.write_text(PROGRAM)
    ran = plane.tmp / "ran"
    ran.mkdir()
    obs_id = f"storm-{seed}"
    params = {"argv": [sys.executable, str(script), ",".join(map(str, durations)), str(ran)]}
    message = JobMessage.create(
        run_id=RUN, obs_id=obs_id, input="local:steps", kind="command", params=params
    )
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())
    layout = ObsLayout(RUN, obs_id)
    kept: set[int] = set()  # steps that had finished when a notice was struck
    strikes_at: list[tuple[int, set[int]]] = []  # (the attempt struck, steps finished by then)
    strikes = 3
    for attempt in range(1, strikes + 1):
        with ImdsEmulator(instance_id=f"i-0storm{seed}{attempt:010d}") as imds:
            worker = plane.start_worker(
                "--checkpoint-interval", "60", imds=imds, name=f"a{attempt}"
            )
            # Strike when a step a few steps ahead of the synced ones has just finished.
            target = (max(kept) if kept else -1) + rng.randint(1, 4)
            wait_for(lambda t=target: t in _finished_steps(ran), 60, f"step {target}")
            finished = _finished_steps(ran)
            struck = max(a for attempts in _runs_of(ran).values() for a in attempts)
            strikes_at.append((struck, finished))
            imds.schedule_interruption(in_seconds=30)
            assert worker.wait(timeout=60) == Outcome.PREEMPTED.exit_code, plane.log_of(
                f"a{attempt}"
            )
        index = _index(plane, obs_id)
        for step in sorted(finished):
            for name in (f"steps/{step:03d}.done", f"steps/{step:03d}.out"):
                assert name in index, (seed, attempt, step, sorted(index))
                body = plane.get(layout.workdir_prefix + name) or b""
                assert len(body) == index[name]["size"], name
        kept |= finished
    last = plane.start_worker("--max-jobs", "1", name="last")
    assert last.wait(timeout=120) == 0, plane.log_of("last")
    runs = _runs_of(ran)
    assert sorted(runs) == list(range(STEPS))
    for struck, finished in strikes_at:
        redone = {step: runs[step] for step in finished if max(runs[step]) > struck}
        assert not redone, (struck, redone)  # step -> the attempts that ran it
    assert plane.product(layout, "steps.txt") is not None  # through DONE


# Holds `old.lock` read-write without writing it (as casacore holds every table.lock of a
# Measurement Set it only reads) and writes `new.out` through another descriptor.
HOLDER = r"""
import os, pathlib, sys, time
lock = open("old.lock", "r+")
out = open("new.out", "w")
out.write("partial")
out.flush()
pathlib.Path("holding").touch()
time.sleep(60)
"""


def test_file_held_read_write_but_unwritten_counts_as_closed(tmp_path: Path) -> None:
    """Open for writing is not being written: a file older than every process holding it so
    is finished (its holders' writes would have moved its mtime past their start); a file
    written through its descriptor is not."""
    import subprocess

    from payload.jobs.command import _closed, files_open_for_writing

    (tmp_path / "old.lock").write_text("lock state\n")
    past = time.time() - 5
    os.utime(tmp_path / "old.lock", (past, past))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=tmp_path, start_new_session=True)
    try:
        wait_for((tmp_path / "holding").exists, 30, "the holder")
        held = files_open_for_writing(holder.pid)
        assert held is not None
        ours = {p.name for p in held if p.parent == tmp_path.resolve()}  # not pytest's fds
        assert ours == {"old.lock", "new.out"}
        now = {
            name: (p.stat().st_size, p.stat().st_mtime_ns)
            for name in ("old.lock", "new.out")
            for p in [tmp_path / name]
        }
        assert _closed(tmp_path, now, held) == {"old.lock"}
        assert _closed(tmp_path, now, set(held)) == set()  # no start times: both held
    finally:
        holder.kill()
        holder.wait(timeout=10)


@settings(max_examples=200, deadline=None)
@given(
    files=st.lists(
        st.tuples(st.integers(0, 50), st.sampled_from(["closed", "writing", "only-held"])),
        min_size=1,
        max_size=12,
    )
)
def test_at_a_notice_exactly_the_finished_files_before_the_first_unfinished_sync(
    files: list[tuple[int, str]],
) -> None:
    """Frozen program, any mix of files: a file goes to S3 iff it is finished (closed, or held
    read-write but older than its holders) and older than every unfinished one, oldest first.

    The second half is what keeps a stamp from reaching S3 before an output still being
    written; the first, what keeps a step finished a moment ago from being redone.
    """
    import tempfile

    from payload.jobs.command import WorkdirSync

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = 1_000.0  # when the holders of held files started (Unix seconds)
        held: dict[Path, float] = {}
        stats = {}
        for number, (offset, state) in enumerate(files):
            name = f"f{number:02d}"
            (root / name).write_text(name)
            # "only-held": written before its holder started; the others at `offset`.
            second = started - 10 - offset if state == "only-held" else started + offset
            os.utime(root / name, ns=(int(second * 1e9), int(second * 1e9)))
            stats[name] = (int(second * 1e9), state)
            if state != "closed":
                held[(root / name).resolve()] = started
        sync = WorkdirSync(store=None, prefix="p/", index_key="i", root=root)  # type: ignore[arg-type]
        ready = sync.scan_frozen(held)
        unfinished = [mtime for mtime, state in stats.values() if state == "writing"]
        barrier = min(unfinished, default=None)
        expected = sorted(
            (name for name, (mtime, state) in stats.items()
             if state != "writing" and (barrier is None or mtime < barrier)),
            key=lambda name: (stats[name][0], name),
        )  # fmt: skip
        assert ready == expected
