"""``command`` jobs: a step-file program synced to S3, interrupted, resumed elsewhere."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from contract.layout import ObsLayout
from payload.outcomes import Outcome
from payload.records import JobMessage
from spotcube.local.imds import ImdsEmulator
from tests.work.conftest import RUN, Plane, wait_for

# A pipeline in the style of FHD/SSINS: each step writes its output atomically (tmp +
# rename) and is skipped when that output exists; the last step writes the product.
PROGRAM = r"""
import os, pathlib, sys, time
steps, seconds, ran_dir = int(sys.argv[1]), float(sys.argv[2]), pathlib.Path(sys.argv[3])
os.makedirs("steps", exist_ok=True)
for i in range(steps):
    out = pathlib.Path(f"steps/{i:03d}.txt")
    if out.exists():
        continue
    time.sleep(seconds)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(f"step {i} " + "x" * i + "\n")
    os.replace(tmp, out)
    (ran_dir / f"{i:03d}").touch()
os.makedirs("products", exist_ok=True)
text = "".join(pathlib.Path(f"steps/{i:03d}.txt").read_text() for i in range(steps))
pathlib.Path("products/result.txt").write_text(text)
"""


def submit_command(plane: Plane, obs_id: str, steps: int, seconds: float, ran: Path) -> None:
    script = plane.tmp / "pipeline.py"
    script.write_text(PROGRAM)
    ran.mkdir(exist_ok=True)
    params = {"argv": [sys.executable, str(script), str(steps), str(seconds), str(ran)]}
    message = JobMessage.create(
        run_id=RUN, obs_id=obs_id, input="local:pipeline", kind="command", params=params
    )
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())


def expected_result(steps: int) -> bytes:
    return "".join(f"step {i} " + "x" * i + "\n" for i in range(steps)).encode()


def test_command_runs_to_done(plane: Plane) -> None:
    submit_command(plane, "cmd-a", 3, 0.05, plane.tmp / "ran")
    worker = plane.start_worker("--max-jobs", "1")
    assert worker.wait(timeout=60) == 0, plane.log_of()
    layout = ObsLayout(RUN, "cmd-a")
    assert plane.product(layout, "result.txt") == expected_result(3)
    assert json.loads(plane.get(layout.done) or b"{}")["products"]["result.txt"]["size"] > 0
    index = json.loads(plane.get(f"{layout.prefix}checkpoint/workdir-index.json") or b"{}")
    assert "steps/002.txt" in index["files"]
    assert not any(name.endswith(".tmp") for name in index["files"])


def test_command_interrupted_resumes_from_synced_steps(plane: Plane, imds: ImdsEmulator) -> None:
    steps = 12
    ran = plane.tmp / "ran"
    submit_command(plane, "cmd-b", steps, 0.3, ran)
    victim = plane.start_worker(imds=imds, name="victim")
    wait_for(lambda: len(list(ran.iterdir())) >= 5, 30, "five steps")
    imds.schedule_interruption(in_seconds=10)
    assert victim.wait(timeout=30) == Outcome.PREEMPTED.exit_code, plane.log_of("victim")
    done_by_victim = {p.name for p in ran.iterdir()}
    layout = ObsLayout(RUN, "cmd-b")
    index = json.loads(plane.get(f"{layout.prefix}checkpoint/workdir-index.json") or b"{}")
    synced = {name for name in index["files"] if name.startswith("steps/")}
    assert len(synced) >= 3  # settled step files went to S3 before the hand-back
    for name, entry in index["files"].items():
        body = plane.get(layout.workdir_prefix + name) or b""
        assert len(body) == entry["size"], name
    manifest = plane.manifest("cmd-b")
    assert manifest is not None
    assert manifest["attempts"][0]["reason"] == "preempted"
    for path in ran.iterdir():
        path.unlink()
    time.sleep(0.1)
    rescuer = plane.start_worker("--max-jobs", "1", name="rescuer")
    assert rescuer.wait(timeout=60) == 0, plane.log_of("rescuer")
    assert plane.product(layout, "result.txt") == expected_result(steps)
    redone = {p.name for p in ran.iterdir()}
    # Synced steps were not run again; at most the steps not yet settled were redone.
    assert not (redone & {Path(name).stem for name in synced})
    assert len(redone & done_by_victim) <= 3


def test_command_bad_argv_is_invalid(plane: Plane) -> None:
    message = JobMessage.create(
        run_id=RUN, obs_id="cmd-bad", input="local:x", kind="command", params={"argv": "ls"}
    )
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())
    worker = plane.start_worker("--max-jobs", "1")
    assert worker.wait(timeout=60) == 0, plane.log_of()
    failed = json.loads(plane.get(ObsLayout(RUN, "cmd-bad").failed) or b"{}")
    assert "argv" in failed["message"]
    assert plane.queue_depth(plane.dlq_url) == 1


def _submit_exit(plane: Plane, obs_id: str, code: int) -> None:
    """A program that exits ``code``, leaving one line in ``<tmp>/<obs_id>.runs`` per run."""
    runs = plane.tmp / f"{obs_id}.runs"
    script = f"open({str(runs)!r}, 'a').write('ran\\n'); import sys; sys.exit({code})"
    params = {"argv": [sys.executable, "-c", script]}
    message = JobMessage.create(
        run_id=RUN, obs_id=obs_id, input="local:exit", kind="command", params=params
    )
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())


def test_transient_failures_are_retried_then_failed_for_good(plane: Plane) -> None:
    _submit_exit(plane, "cmd-flaky", 3)
    worker = plane.start_worker("--max-transient", "2", "--retry-base", "0.1")
    assert worker.wait(timeout=60) == 0, plane.log_of()
    layout = ObsLayout(RUN, "cmd-flaky")
    failed = json.loads(plane.get(layout.failed) or b"{}")
    assert failed["error_class"] == "TransientError"
    assert [a["reason"] for a in failed["attempts"]] == ["transient", "transient"]
    assert plane.queue_depth(plane.dlq_url) == 1
    assert plane.queue_depth() == 0
    # The program itself ran twice, not more (its own count, not the worker's words).
    assert (plane.tmp / "cmd-flaky.runs").read_text().splitlines() == ["ran", "ran"]


def test_invalid_exit_code_fails_at_once(plane: Plane) -> None:
    _submit_exit(plane, "cmd-bad-input", 65)
    worker = plane.start_worker("--max-jobs", "1")
    assert worker.wait(timeout=60) == 0, plane.log_of()
    failed = json.loads(plane.get(ObsLayout(RUN, "cmd-bad-input").failed) or b"{}")
    assert failed["error_class"] == "InvalidInputError"
    assert [a["reason"] for a in failed["attempts"]] == ["invalid"]
    assert plane.queue_depth(plane.dlq_url) == 1
