"""One run, made by real workers through the local cloud, seen by every operator view.

The run holds every way an attempt can end: done, preempted after a spot notice, SIGKILLed
without a word (then finished by another worker), transient twice (then failed for good) and
invalid. The expected attempt history below is what this test did to the workers, not what
the code under test computes; ``spotcube status``, ``report``, ``logs``, ``down`` and the
demo's report must all tell that same story, and agree with each other on the counts.
"""

from __future__ import annotations

import json
import signal
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from contract.layout import ObsLayout
from payload.outcomes import Outcome
from payload.records import JobMessage
from spotcube.cli import main
from spotcube.demo import DemoOptions
from spotcube.demoreport import HazardEstimate, attempt_facts, manifest_hazard
from spotcube.down import down, unsynced_observations
from spotcube.runstate import list_keys, read_run
from spotcube.stack import StackOutputs
from tests.work.conftest import PRODUCTS, RAW, RUN, Plane, wait_for

# What the test does to each observation, attempt by attempt.
EXPECTED = {
    "kill": ["killed", "done"],
    "pre": ["preempted", "done"],
    "ok": ["done"],
    "flaky": ["transient", "transient"],
    "bad": ["invalid"],
}
FINAL = {"kill": "done", "pre": "done", "ok": "done", "flaky": "failed", "bad": "failed"}
INTERRUPTED = {"killed", "preempted"}
pytestmark = pytest.mark.slow

ATTEMPT_PARAMS = {"chunks": 6, "chunk_seconds": 0.3, "chunk_bytes": 2048}


def _hours(start: str, end: str) -> float:
    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).total_seconds() / 3600


@pytest.fixture
def run(plane: Plane, imds: Any, tmp_path: Path) -> tuple[StackOutputs, Path]:
    """Drive real workers through every attempt ending; return the stack and an outputs file."""
    # 1. killed without a notice, then finished by another worker
    plane.submit("kill", ATTEMPT_PARAMS)
    victim = plane.start_worker("--max-jobs", "1", name="victim")
    wait_for(lambda: len((plane.manifest("kill") or {}).get("chunks", {})) >= 2, 60, "two chunks")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    killed_manifest = plane.manifest("kill")
    rescuer = plane.start_worker("--max-jobs", "1", name="rescuer")
    assert rescuer.wait(timeout=90) == 0, plane.log_of("rescuer")
    # 2. preempted after a notice (the job goes back to the queue at once)
    plane.submit("pre", ATTEMPT_PARAMS)
    noticed = plane.start_worker("--max-jobs", "1", imds=imds, name="noticed")
    wait_for(lambda: plane.manifest("pre") is not None, 60, "the attempt at pre")
    imds.schedule_interruption(in_seconds=20, notice_after=0.3)
    assert noticed.wait(timeout=60) == Outcome.PREEMPTED.exit_code, plane.log_of("noticed")
    # 3. the rest: pre resumed, a clean job, a program that keeps failing, bad parameters
    plane.submit("ok", {"chunks": 2, "chunk_seconds": 0.05, "chunk_bytes": 512})
    plane.submit("bad", {"chunks": 0})
    flaky = JobMessage.create(
        run_id=RUN,
        obs_id="flaky",
        input="local:exit3",
        kind="command",
        params={"argv": [sys.executable, "-c", "raise SystemExit(3)"]},
    )
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=flaky.to_json())
    drain = plane.start_worker("--max-transient", "2", "--idle-exit", "4", name="drain")
    assert drain.wait(timeout=120) == 0, plane.log_of("drain")
    outputs = StackOutputs(
        region="us-east-1",
        raw_bucket=RAW,
        products_bucket=PRODUCTS,
        job_queue_url=plane.queue_url,
        dead_letter_queue_url=plane.dlq_url,
        endpoint_url=plane.endpoint,
    )
    path = tmp_path / "outputs.json"
    path.write_text(outputs.to_json())
    (tmp_path / "killed-manifest.json").write_text(json.dumps(killed_manifest))
    return outputs, path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().out


def test_every_view_tells_the_same_story_and_keeps_the_logs(
    run: tuple[StackOutputs, Path], plane: Plane, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs, outputs_file = run
    stack = ["--outputs", str(outputs_file)]
    manifests = {obs: plane.manifest(obs) or {} for obs in EXPECTED}
    # The manifests themselves hold what the workers recorded (the killed attempt: no end).
    for obs, states in EXPECTED.items():
        assert len(manifests[obs]["attempts"]) == len(states), (obs, manifests[obs])
    assert manifests["kill"]["attempts"][0]["end"] is None

    # spotcube status
    status, out = _cli(capsys, "status", RUN, "--json", *stack)
    doc = json.loads(out)
    by_obs = {o["obs_id"]: o for o in doc["observations"]}
    assert {o: by_obs[o]["state"] for o in EXPECTED} == FINAL
    for obs, states in EXPECTED.items():
        assert by_obs[obs]["attempts"] == len(states), obs
        assert by_obs[obs]["attempt_states"] == states, obs
        assert by_obs[obs]["interruptions"] == sum(s in INTERRUPTED for s in states), obs
    assert status != 0  # two observations failed: scripts must notice
    assert "TransientError" in by_obs["flaky"]["error"]
    assert "InvalidInputError" in by_obs["bad"]["error"]

    # spotcube report: every attempt, killed ones in the cost and in the hazard
    status, out = _cli(capsys, "report", RUN, "--json", "--spot-price", "1.0", *stack)
    assert status == 0
    report = json.loads(out)
    every = [s for states in EXPECTED.values() for s in states]
    assert report["outcomes"] == dict(Counter(every))
    assert report["attempts"] == len(every)
    assert report["open_attempts"] == 0
    assert report["terminations"] == sum(s in INTERRUPTED for s in every)
    assert report["observations_done"] == sum(s == "done" for s in FINAL.values())
    # The killed attempt's time runs to its last manifest commit: it lived at least that long,
    # and died within a chunk of it (the victim was killed right after its second chunk).
    hours = 0.0
    for manifest in manifests.values():
        for a in manifest["attempts"]:
            hours += _hours(a["start"], a["end"] or a["last_seen"])
    killed = manifests["kill"]["attempts"][0]
    assert killed["last_seen"] < manifests["kill"]["attempts"][1]["start"]
    assert report["instance_hours"] == pytest.approx(hours, rel=1e-6)
    assert report["exposure_hours"] == pytest.approx(hours, rel=1e-6)
    assert report["hazard_per_hour"] == pytest.approx(report["terminations"] / hours, rel=1e-6)

    # spotcube logs (the listing): one line per attempt, the same classification
    status, out = _cli(capsys, "logs", RUN, *stack)
    assert status == 0
    for obs, states in EXPECTED.items():
        for number, state in enumerate(states, 1):
            assert f"{obs} attempt {number}: {state} on " in out, (obs, number, out)

    # spotcube down: nothing half done, so nothing to refuse
    keys = list_keys(outputs.client("s3"), PRODUCTS, "")
    assert unsynced_observations(keys) == []
    assert down(outputs, force=False, dry_run=True).unsynced == []

    # the demo's report
    state = read_run(outputs.client("s3"), PRODUCTS, RUN)
    facts = attempt_facts(state)
    assert {obs: [a.state for a in facts[obs]] for obs in EXPECTED} == EXPECTED
    options = DemoOptions(out=outputs_file.parent, spot_price=1.0)
    hazard = manifest_hazard(state, options)
    assert isinstance(hazard, HazardEstimate)
    assert hazard.terminations == report["terminations"]
    assert hazard.hazard_per_hour == pytest.approx(
        report["hazard_per_hour"] / options.speedup, rel=1e-6
    )

    # the killed attempt's log (one test, not two: the run takes real workers ~20 s to make)
    _check_the_killed_attempts_log(run, plane, capsys)


def _check_the_killed_attempts_log(
    run: tuple[StackOutputs, Path], plane: Plane, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL leaves no chance to upload anything: what is in S3 was shipped before.

    The worker ships after each chunk it hands to the checkpointer, before it starts the
    next chunk; so if the manifest (as it stood right after the kill) lists chunks 0..k,
    the log holds the "computed" line of every chunk before k.
    """
    _, outputs_file = run
    stack = ["--outputs", str(outputs_file)]
    killed = json.loads((outputs_file.parent / "killed-manifest.json").read_text())
    listed = sorted(int(c) for c in killed["chunks"])
    assert len(listed) >= 2
    log_key = ObsLayout(RUN, "kill").log(1)
    assert killed["attempts"][0]["log"] == log_key
    shipped = (plane.get(log_key) or b"").decode()
    assert "attempt 1 at run1/kill" in shipped
    for chunk in range(max(listed)):
        assert f"chunk {chunk} computed" in shipped, (chunk, shipped)
    # spotcube logs prints it; --follow on a finished observation prints its latest attempt
    # to the end and returns by itself.
    assert _cli(capsys, "logs", RUN, "kill", "--attempt", "1", *stack) == (0, shipped)
    status, out = _cli(capsys, "logs", RUN, "kill", "--follow", "--interval", "0.05", *stack)
    assert status == 0
    assert out.startswith("--- kill attempt 2 on ")
    assert "attempt ended: done" in out
    assert main(["logs", RUN, "kill", "--attempt", "9", *stack]) == 2
    assert "--attempt 9: kill has 2 attempt(s) so far" in capsys.readouterr().err
