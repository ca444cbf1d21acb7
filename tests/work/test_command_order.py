"""A ``command`` job's working directory reaches S3 in the order the program wrote it.

A multi-step pipeline marks a finished step with a stamp written after the step's outputs
(examples/mwa-pipeline). If the stamp reached the synced index before the outputs, an
attempt resumed after a reclamation would skip the step and miss its outputs. These tests run
the real worker against the local cloud (moto's S3 over HTTP) and stop it at named points of
its sync (``payload.store.faultpoint``), so what they see does not depend on the machine's
speed: scans and uploads are counted, not timed.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from contract.layout import ObsLayout
from payload.records import JobMessage
from tests.work.conftest import RUN, Plane, wait_for

# The output is written (and closed) before the stamp, but its name sorts after the stamp's:
# an upload in name order would publish the stamp first.
STEP = r"""
import os, pathlib, sys, time
if not pathlib.Path("a-step.done").exists():
    pathlib.Path("z-output.dat").write_bytes(os.urandom(200_000))
    time.sleep(0.05)  # past a coarse-timestamp kernel's tick: the stamp is strictly newer
    pathlib.Path("a-step.done").write_text("z-output.dat\n")
    pathlib.Path(sys.argv[1], f"step-ran-{os.environ['SPOTCUBE_ATTEMPT']}").touch()
os.makedirs("products", exist_ok=True)
pathlib.Path("products/out.dat").write_bytes(pathlib.Path("z-output.dat").read_bytes())
"""


def _index(plane: Plane, obs_id: str) -> dict[str, object]:
    raw = plane.get(f"{ObsLayout(RUN, obs_id).prefix}checkpoint/workdir-index.json")
    return {} if raw is None else dict(json.loads(raw)["files"])


def _arrivals(marker: Path) -> int:
    """The arrival count a faultpoint wrote (``name:n``); 0 before or while it writes."""
    try:
        return int(marker.read_text().split(":")[1])
    except (OSError, IndexError, ValueError):
        return 0


def _submit(plane: Plane, obs_id: str, script: Path, *args: str) -> None:
    params = {"argv": [sys.executable, str(script), *args]}
    message = JobMessage.create(
        run_id=RUN, obs_id=obs_id, input="local:none", kind="command", params=params
    )
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())


def test_kill_between_uploads_publishes_no_stamp(plane: Plane) -> None:
    """SIGKILL after the first upload of the final sync: output first in S3, index untouched.

    The rescuer restores nothing of the interrupted sync, runs the step again and finishes.
    """
    script = plane.tmp / "step.py"
    script.write_text(STEP)
    ran = plane.tmp / "ran"
    ran.mkdir()
    _submit(plane, "obs-order", script, str(ran))
    marker = plane.tmp / "upload-marker"
    victim = plane.start_worker(
        name="victim", env={"SPOTCUBE_FAULTPOINT": f"workdir-upload:600:{marker}:1"}
    )
    wait_for(marker.exists, 60, "the first upload of the working directory")
    prefix = ObsLayout(RUN, "obs-order").workdir_prefix
    uploaded = {key.removeprefix(prefix) for key in plane.list_keys(prefix)}
    assert uploaded == {"z-output.dat"}, uploaded  # oldest first, not a-step.done
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    assert "a-step.done" not in _index(plane, "obs-order")
    rescuer = plane.start_worker("--max-jobs", "1", name="rescuer")
    assert rescuer.wait(timeout=60) == 0, plane.log_of("rescuer")
    assert sorted(p.name for p in ran.iterdir()) == ["step-ran-1", "step-ran-2"]
    product = plane.product(ObsLayout(RUN, "obs-order"), "out.dat") or b""
    assert len(product) == 200_000
    index = _index(plane, "obs-order")
    assert {"a-step.done", "z-output.dat"} <= set(index)


# The output stays open for writing while the stamp is written and closed (as when the
# next step opens it read-write); `early.dat`, written before both, must still be synced.
HELD = r"""
import pathlib, sys, time
go = pathlib.Path(sys.argv[1], "go")
pathlib.Path("early.dat").write_text("written first\n")
time.sleep(0.05)
output = open("output.dat", "w")
output.write("part one\n")
output.flush()
time.sleep(0.05)  # past a coarse-timestamp kernel's tick
pathlib.Path("step.done").write_text("output.dat\n")
pathlib.Path(sys.argv[1], "stamped").touch()
while not go.exists():
    time.sleep(0.05)
output.write("part two\n")
output.close()
"""


def test_stamp_waits_for_an_output_still_open(plane: Plane) -> None:
    """The stamp is settled, its output is not: the stamp stays out of the index until it is."""
    script = plane.tmp / "held.py"
    script.write_text(HELD)
    signals = plane.tmp / "signals"
    signals.mkdir()
    _submit(plane, "obs-held", script, str(signals))
    scans = plane.tmp / "scan-marker"
    worker = plane.start_worker(
        "--max-jobs", "1", env={"SPOTCUBE_FAULTPOINT": f"workdir-scan:0:{scans}"}
    )
    wait_for((signals / "stamped").exists, 60, "the stamp")
    wait_for(lambda: _arrivals(scans) > 0, 60, "a scan")
    first = _arrivals(scans)
    # Two scans see a file settle; the sync runs in the scan that finds it ready and due
    # (the checkpoint interval is 0.3 s, a scan every 0.15 s or more): by the fourth scan
    # after the stamp, a stamp that could be synced has been.
    wait_for(lambda: _arrivals(scans) >= first + 4, 60, "four scans")
    wait_for(lambda: "early.dat" in _index(plane, "obs-held"), 60, "early.dat in the index")
    index = _index(plane, "obs-held")
    assert "step.done" not in index, index
    assert "output.dat" not in index
    (signals / "go").touch()
    assert worker.wait(timeout=60) == 0, plane.log_of()
    index = _index(plane, "obs-held")
    assert {"early.dat", "output.dat", "step.done"} <= set(index)
    body = plane.get(ObsLayout(RUN, "obs-held").workdir_prefix + "output.dat")
    assert body == b"part one\npart two\n"
    # The worker said why the later files waited, naming the file that held them.
    assert "output.dat" in [e["file"] for e in plane.events(event="workdir.held")]


# The next step reads the previous step's output and keeps it open (as DP3 does its msin).
READER = r"""
import pathlib, sys, time
pathlib.Path("flagged.dat").write_text("flags\n")
reading = open("flagged.dat")
pathlib.Path("flag.done").write_text("flagged.dat\n")
go = pathlib.Path(sys.argv[1], "go")
while not go.exists():
    time.sleep(0.05)
reading.close()
"""


def test_output_open_for_reading_is_synced_with_its_stamp(plane: Plane) -> None:
    """A file open read-only cannot change through that descriptor: it settles (proc(5),
    ``/proc/PID/fdinfo/FD`` ``flags``, access mode O_RDONLY), and the stamp after it follows."""
    script = plane.tmp / "reader.py"
    script.write_text(READER)
    signals = plane.tmp / "signals"
    signals.mkdir()
    _submit(plane, "obs-reader", script, str(signals))
    worker = plane.start_worker("--max-jobs", "1")
    try:
        wait_for(
            lambda: {"flagged.dat", "flag.done"} <= set(_index(plane, "obs-reader")),
            60,
            "the output and its stamp in the index while the output is open for reading",
        )
    finally:
        (signals / "go").touch()
    assert worker.wait(timeout=60) == 0, plane.log_of()
