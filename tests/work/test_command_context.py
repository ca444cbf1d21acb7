"""What a ``command`` job's program gets from the worker: its context, a tether, a shipped log.

Every test runs the real worker process (``python -m payload worker``) against the local
cloud, as tests/work/test_command.py does.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from contract.layout import ObsLayout
from payload.errors import InvalidInputError
from payload.jobs.command import CommandParams
from payload.records import JobMessage
from spotcube.cli import main
from spotcube.stack import StackOutputs
from tests.work.conftest import PRODUCTS, RAW, RUN, Plane, wait_for

# Records what the program sees, then fails its first attempt (exit 3, transient) so the
# second attempt's context can be compared with the first's.
SEE_CONTEXT = r"""
import hashlib, json, os, pathlib, sys
seen = {k: v for k, v in os.environ.items() if k.startswith("SPOTCUBE_")}
seen["cwd"] = os.getcwd()
seen["input_sha256"] = hashlib.sha256(pathlib.Path(seen["SPOTCUBE_INPUT"]).read_bytes()).hexdigest()
seen["scratch_is_dir"] = os.path.isdir(seen["SPOTCUBE_SCRATCH"])
attempt = seen["SPOTCUBE_ATTEMPT"]
pathlib.Path(sys.argv[1], f"attempt-{attempt}.json").write_text(json.dumps(seen))
if attempt == "1":
    sys.exit(3)
os.makedirs("products", exist_ok=True)
pathlib.Path("products/seen.json").write_text(json.dumps(seen))
"""


def test_program_sees_its_context(plane: Plane) -> None:
    script = plane.tmp / "see.py"
    script.write_text(SEE_CONTEXT)
    seen_dir = plane.tmp / "seen"
    seen_dir.mkdir()
    data = os.urandom(3000)
    uri = plane.put_input("obs-ctx.uvh5", data)
    params = {"argv": [sys.executable, str(script), str(seen_dir)]}
    message = JobMessage.create(
        run_id=RUN, obs_id="obs-ctx", input=uri, kind="command", params=params
    )
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())
    # The worker's own settings come from SPOTCUBE_* too: the program must not see them.
    worker = plane.start_worker(
        "--max-jobs", "2", "--retry-base", "0.1", env={"SPOTCUBE_LOG_JSON": "1"}
    )
    assert worker.wait(timeout=90) == 0, plane.log_of()
    first = json.loads((seen_dir / "attempt-1.json").read_text())
    second = json.loads((seen_dir / "attempt-2.json").read_text())
    for seen, attempt in ((first, "1"), (second, "2")):
        assert seen["SPOTCUBE_ATTEMPT"] == attempt
        assert seen["SPOTCUBE_RUN_ID"] == RUN
        assert seen["SPOTCUBE_OBS_ID"] == "obs-ctx"
        assert seen["SPOTCUBE_INPUT_URI"] == uri
        # The input, downloaded and verified by the worker, under its own name.
        assert seen["input_sha256"] == hashlib.sha256(data).hexdigest()
        assert Path(seen["SPOTCUBE_INPUT"]).name == "obs-ctx.uvh5"
        assert seen["SPOTCUBE_WORKDIR"] == seen["cwd"]
        assert seen["scratch_is_dir"]
        assert not Path(seen["SPOTCUBE_SCRATCH"]).is_relative_to(seen["SPOTCUBE_WORKDIR"])
        assert seen["SPOTCUBE_INSTANCE_ID"]
        assert "SPOTCUBE_LOG_JSON" not in seen
        assert "SPOTCUBE_PRODUCTS_BUCKET" not in seen
    assert json.loads(plane.product(ObsLayout(RUN, "obs-ctx"), "seen.json") or b"{}") == second


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"SPOTCUBE_INPUT": "/data/x.ms"}, "SPOTCUBE_INPUT"),
        ({"OK": "1", "SPOTCUBE_RUN_ID": "r"}, "SPOTCUBE_RUN_ID"),
    ],
    ids=["input", "run-id"],
)
def test_params_env_cannot_override_the_context(env: dict[str, str], match: str) -> None:
    with pytest.raises(InvalidInputError, match=f"env sets {match}: SPOTCUBE_\\* variables"):
        CommandParams.parse({"argv": ["true"], "env": env})


def test_fetch_input_must_be_a_boolean() -> None:
    with pytest.raises(InvalidInputError, match="fetch_input must be true or false"):
        CommandParams.parse({"argv": ["true"], "fetch_input": "no"})


# A program with a child in its own process group (as a shell with job control makes one),
# both sleeping long: the shapes a SIGKILLed worker used to leave running.
SLEEPERS = r"""
import os, pathlib, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], process_group=0)
pathlib.Path(sys.argv[1]).write_text(f"{os.getpid()} {child.pid}")
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped (PID 1 here may not reap at once)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_hard_killed_worker_leaves_no_program_running(plane: Plane) -> None:
    """The local fleet's reclamation SIGKILLs the worker; the program's session must die too.

    prctl(2): PR_SET_PDEATHSIG delivers the signal when the parent thread terminates; the
    tether (payload/jobs/tether.py) turns it into SIGKILL for every process of its session.
    """
    script = plane.tmp / "sleepers.py"
    script.write_text(SLEEPERS)
    pids_file = plane.tmp / "pids"
    params = {"argv": [sys.executable, str(script), str(pids_file)]}
    message = JobMessage.create(
        run_id=RUN, obs_id="obs-orphan", input="local:none", kind="command", params=params
    )
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())
    worker = plane.start_worker()
    wait_for(lambda: pids_file.exists() and " " in pids_file.read_text(), 60, "the program")
    pids = [int(p) for p in pids_file.read_text().split()]
    assert all(_alive(pid) for pid in pids)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    try:
        wait_for(lambda: not any(_alive(pid) for pid in pids), 60, "the program to die")
    finally:
        for pid in pids:  # a failing run must not leave them behind either
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# Prints without flushing (PYTHONUNBUFFERED is the worker's default for programs), then
# works for a long time without writing a single file into the working directory.
CHATTY = r"""
import pathlib, sys, time
print("program says: flagging 1102865728")
print("program warns: 12 tiles flagged", file=sys.stderr)
pathlib.Path(sys.argv[1]).touch()
time.sleep(600)
"""


def test_program_output_is_in_the_log_after_a_hard_kill(
    plane: Plane, capsys: pytest.CaptureFixture[str]
) -> None:
    """``spotcube logs RUN OBS --attempt 1`` shows what the program printed before the kill.

    The program settles no file, so no workdir sync ships the log: the worker ships it on
    the checkpoint interval anyway. The kill is a SIGKILL (no notice, nothing shipped on
    the way out): what is in S3 is what was shipped while the program ran.
    """
    script = plane.tmp / "chatty.py"
    script.write_text(CHATTY)
    printed = plane.tmp / "printed"
    params = {"argv": [sys.executable, str(script), str(printed)]}
    message = JobMessage.create(
        run_id=RUN, obs_id="obs-log", input="local:none", kind="command", params=params
    )
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())
    worker = plane.start_worker()
    wait_for(printed.exists, 60, "the program to print")
    key = ObsLayout(RUN, "obs-log").log(1)
    wait_for(
        lambda: b"12 tiles flagged" in (plane.get(key) or b""), 60, "the program's output in S3"
    )
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    outputs = StackOutputs(
        region="us-east-1",
        raw_bucket=RAW,
        products_bucket=PRODUCTS,
        job_queue_url=plane.queue_url,
        dead_letter_queue_url=plane.dlq_url,
        endpoint_url=plane.endpoint,
    )
    path = plane.tmp / "outputs.json"
    path.write_text(outputs.to_json())
    assert main(["logs", RUN, "obs-log", "--attempt", "1", "--outputs", str(path)]) == 0
    out = capsys.readouterr().out
    assert "program says: flagging 1102865728" in out
    assert "program warns: 12 tiles flagged" in out
    assert out.index("running ") < out.index("program says")  # the worker's lines around it


# Some tools report progress on SIGUSR1 (dd does); the tether's parent-death signal is
# SIGUSR1 too, so a program signalling its own process group must not end itself.
USR1_TO_GROUP = r"""
import os, pathlib, signal
signal.signal(signal.SIGUSR1, lambda *_: None)
os.killpg(0, signal.SIGUSR1)
os.makedirs("products", exist_ok=True)
pathlib.Path("products/alive.txt").write_text("still here\n")
"""


def test_sigusr1_to_the_group_is_not_mistaken_for_the_worker_dying(plane: Plane) -> None:
    script = plane.tmp / "usr1.py"
    script.write_text(USR1_TO_GROUP)
    params = {"argv": [sys.executable, str(script)]}
    message = JobMessage.create(
        run_id=RUN, obs_id="obs-usr1", input="local:none", kind="command", params=params
    )
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())
    worker = plane.start_worker("--max-jobs", "1")
    assert worker.wait(timeout=60) == 0, plane.log_of()
    assert plane.product(ObsLayout(RUN, "obs-usr1"), "alive.txt") == b"still here\n"
