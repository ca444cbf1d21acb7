"""``spotcube submit`` against the local cloud: uploads, run record, one message per job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.layout import run_record_key
from payload.records import JobMessage, params_hash
from spotcube.cli import main
from spotcube.local.cloud import provision
from spotcube.local.motoserver import local_client
from spotcube.submit import obs_id_for


def _receive_all(endpoint: str, url: str) -> list[JobMessage]:
    sqs = local_client("sqs", endpoint)
    messages: list[JobMessage] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return messages
        messages += [JobMessage.from_json(m["Body"]) for m in got]


@pytest.fixture
def stack(cloud: str) -> str:
    provision(cloud)
    return cloud


@pytest.fixture
def two_files(tmp_path: Path) -> list[Path]:
    files = [tmp_path / "obs-a.uvh5", tmp_path / "obs-b.uvh5"]
    for i, path in enumerate(files):
        path.write_bytes(bytes([i]) * 1000)
    return files


def test_provision_creates_the_stack_resources_with_a_redrive_policy(cloud: str) -> None:
    outputs = provision(cloud, max_receive_count=3)
    buckets = {b["Name"] for b in local_client("s3", cloud).list_buckets()["Buckets"]}
    assert buckets == {outputs.raw_bucket, outputs.products_bucket}
    sqs = local_client("sqs", cloud)
    attrs = sqs.get_queue_attributes(QueueUrl=outputs.job_queue_url, AttributeNames=["All"])
    redrive = json.loads(attrs["Attributes"]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":spotcube-local-demo-jobs-dlq")
    assert int(redrive["maxReceiveCount"]) == 3
    assert provision(cloud, max_receive_count=3) == outputs  # idempotent


def test_submit_uploads_records_and_queues_one_job_per_file(
    stack: str, two_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["submit", "--endpoint", stack, *map(str, two_files), "--run-id", "r1"]
    assert main([*argv, "--param", "image_size=64", "--param", "weighting=natural"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "r1"
    outputs_queue = f"{stack}/123456789012/spotcube-local-demo-jobs"
    messages = sorted(_receive_all(stack, outputs_queue), key=lambda m: m.obs_id)
    assert [m.obs_id for m in messages] == ["obs-a", "obs-b"]
    params = {"image_size": 64, "weighting": "natural"}
    assert all(m.kind == "image" and m.params == params for m in messages)
    assert messages[0].params_hash == params_hash("image", params)
    s3 = local_client("s3", stack)
    for message, path in zip(messages, two_files, strict=True):
        bucket, _, key = message.input[len("s3://") :].partition("/")
        assert bucket == "spotcube-local-demo-raw"
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == path.read_bytes()
    record = json.loads(
        s3.get_object(Bucket="spotcube-local-demo-products", Key=run_record_key("r1"))[
            "Body"
        ].read()
    )
    assert [o["obs_id"] for o in record["observations"]] == ["obs-a", "obs-b"]


def test_a_run_id_is_used_once(
    stack: str, two_files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["submit", "--endpoint", stack, str(two_files[0]), "--run-id", "r1"]
    assert main(argv) == 0
    # The same submit again confirms the run and sends nothing; other content is refused.
    assert main(argv) == 0
    assert "run r1 was already submitted; nothing sent" in capsys.readouterr().out
    assert len(_receive_all(stack, f"{stack}/123456789012/spotcube-local-demo-jobs")) == 1
    assert main([*argv, "--param", "image_size=64"]) == 3
    assert "run r1 already exists with other params" in capsys.readouterr().err
    assert main(["submit", "--endpoint", stack, str(two_files[1]), "--run-id", "r1"]) == 3
    assert "run r1 already exists with other obs_ids" in capsys.readouterr().err


def test_selftest_submits_n_jobs_on_one_uploaded_input(stack: str) -> None:
    assert main(["submit", "--endpoint", stack, "--selftest", "4", "--run-id", "st"]) == 0
    messages = _receive_all(stack, f"{stack}/123456789012/spotcube-local-demo-jobs")
    assert len(messages) == 4
    assert {m.kind for m in messages} == {"selftest"}
    assert len({m.input for m in messages}) == 1


def test_s3_uris_are_used_in_place(stack: str) -> None:
    uri = "s3://group-archive/mwa/1061316296.uvfits"
    s3 = local_client("s3", stack)
    s3.create_bucket(Bucket="group-archive")
    s3.put_object(Bucket="group-archive", Key="mwa/1061316296.uvfits", Body=b"data")
    assert main(["submit", "--endpoint", stack, uri, "--run-id", "arch"]) == 0
    (message,) = _receive_all(stack, f"{stack}/123456789012/spotcube-local-demo-jobs")
    assert (message.input, message.obs_id) == (uri, "1061316296")


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (["missing.uvh5"], "input missing.uvh5: no such file"),
        (["--params", "{not json"], "--params is not JSON"),
        (["--params", "[1, 2]"], "--params must be a JSON object"),
        (["--params", "@nowhere.json"], "cannot read --params file nowhere.json"),
        (["--param", "novalue"], "--param 'novalue' is not KEY=VALUE"),
        (["--selftest", "2", "x.uvh5"], "--selftest takes no INPUT"),
        ([], "no inputs given"),
        (["--run-id", "bad/id", "s3://b/k"], "--run-id 'bad/id' is not a valid id"),
        (["s3://b/a.uvh5", "s3://c/a.uvh5"], "both give observation id 'a'"),
    ],
    ids=[
        "missing-file",
        "params-json",
        "params-object",
        "params-file",
        "param-pair",
        "selftest-inputs",
        "no-inputs",
        "bad-run-id",
        "duplicate-obs",
    ],
)
def test_bad_submit_options_name_the_option(
    stack: str, extra: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["submit", "--endpoint", stack, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spotcube submit: ")
    assert error in err


@pytest.mark.parametrize(
    ("name", "obs_id"),
    [
        ("1061316296.uvfits", "1061316296"),
        ("s3://b/x/zen.2459122.49827.sum.uvh5", "zen.2459122.49827.sum"),
        ("obs with spaces.ms.tar.gz", "obs-with-spaces"),
        ("L123456_SB000.MS/", "L123456_SB000"),
    ],
)
def test_obs_id_for_file_names(name: str, obs_id: str) -> None:
    assert obs_id_for(name) == obs_id
