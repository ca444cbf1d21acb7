"""`spotcube submit --job`: the job file the demo runs, queued on a stack by the same function.

Against the local cloud (moto over HTTP, `--endpoint`): what `submit --job` queues for each
input equals what the demo's path (``for_local_cloud`` + ``params_for``) makes of the same
file, for job files whose params put ``{input}`` and ``{job_dir}`` anywhere (hypothesis);
a bad call is one line and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payload.records import JobMessage
from spotcube.jobdef import JobDefinition, for_local_cloud
from spotcube.local.cloud import provision
from spotcube.local.motoserver import local_client
from spotcube.stack import local_outputs
from tests.clirunner import run_cli

WORDS = st.sampled_from(["{input}", "{job_dir}", "{x}", "awk '{print $1}'", "make", "-f", "a b"])
TEXT = st.lists(WORDS, min_size=1, max_size=4).map("/".join)


def _queued(endpoint: str, url: str) -> list[JobMessage]:
    sqs = local_client("sqs", endpoint)
    got: list[JobMessage] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        got += [JobMessage.from_json(m["Body"]) for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return got


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=st.lists(TEXT, min_size=1, max_size=4), env_value=TEXT)
def test_submit_job_queues_what_the_demo_would(
    cloud: str, tmp_path: Path, argv: list[str], env_value: str
) -> None:
    outputs = provision(cloud)
    job_file = tmp_path / "pipe" / "job.json"
    job_file.parent.mkdir(exist_ok=True)
    params = {"argv": ["make", *argv], "env": {"MY_SETTING": env_value}}
    job_file.write_text(json.dumps({"schema": 1, "kind": "command", "params": params}))
    data = tmp_path / "obs.dat"
    data.write_bytes(b"an observation")
    result = run_cli(["submit", "--endpoint", cloud, "--job", str(job_file), "--input", str(data)])
    assert result.status == 0, result.stderr
    (message,) = _queued(cloud, outputs.job_queue_url)
    demo = for_local_cloud(JobDefinition.load(job_file), local_outputs(cloud))
    assert message.params == demo.params_for(message.input)
    assert message.kind == "command"


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--kind", "command"], "--job takes kind and params from"),
        (["--param", "a=1"], "drop --param"),
        ([], "--job needs --input"),
    ],
    ids=["kind", "param", "no-input"],
)
def test_a_wrong_submit_job_is_one_line_and_exit_2(
    cloud: str, tmp_path: Path, extra: list[str], says: str
) -> None:
    provision(cloud)
    job = Path(__file__).resolve().parents[2] / "examples" / "mwa-pipeline" / "job.json"
    result = run_cli(["submit", "--endpoint", cloud, "--job", str(job), *extra])
    assert result.status == 2
    assert len(result.stderr_lines) == 1
    assert says in result.stderr


def test_an_unreadable_job_file_is_named(cloud: str, tmp_path: Path) -> None:
    provision(cloud)
    data = tmp_path / "obs.dat"
    data.write_bytes(b"x")
    missing = tmp_path / "nope.json"
    result = run_cli(["submit", "--endpoint", cloud, "--job", str(missing), "--input", str(data)])
    assert result.status == 2
    assert result.stderr_lines == [
        f"spotcube submit: --job {missing}: cannot be read (No such file or directory)"
    ]
