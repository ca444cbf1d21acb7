"""``spotcube status`` reads state, attempts and interruptions from S3 and the DLQ depth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.layout import ObsLayout
from payload.records import (
    Attempt,
    ChunkRecord,
    InputIdentity,
    JobMessage,
    Manifest,
    ObservationRef,
)
from spotcube.cli import main
from spotcube.local.cloud import provision
from spotcube.stack import StackOutputs
from spotcube.status import run_status
from spotcube.submit import submit_run

RUN = "run-status-test"
OBS = ("a-running", "b-done", "c-failed", "d-queued")


def _manifest(outputs: StackOutputs, obs_id: str, attempts: list[Attempt], chunks: int) -> None:
    message = JobMessage.create(run_id=RUN, obs_id=obs_id, input="s3://raw/x", kind="image")
    manifest = Manifest.new(message, InputIdentity(uri=message.input))
    for i in range(chunks):
        key = ObsLayout(RUN, obs_id).chunk(f"{i:02d}", "h5")
        manifest.chunks[f"{i:02d}"] = ChunkRecord(key=key, size=10, sha256="0" * 64)
    manifest.attempts = attempts
    outputs.client("s3").put_object(
        Bucket=outputs.products_bucket,
        Key=ObsLayout(RUN, obs_id).manifest,
        Body=manifest.to_json(),
    )


@pytest.fixture
def run(cloud: str) -> StackOutputs:
    """A run with one observation in each state, written the way the worker writes them."""
    outputs = provision(cloud)
    submit_run(
        outputs,
        [ObservationRef(o, f"s3://{outputs.raw_bucket}/{o}.uvh5") for o in OBS],
        kind="image",
        run_id=RUN,
    )
    t = "2026-11-21T10:00:00.000000Z"
    _manifest(
        outputs,
        "a-running",
        [
            Attempt("i-1", t, end=t, reason="preempted", chunks_done=2, lost_seconds=1.5),
            Attempt("i-2", t),  # SIGKILLed: never ended
            Attempt("i-3", t),
        ],
        chunks=3,
    )
    _manifest(
        outputs,
        "b-done",
        [Attempt("i-1", t, end=t, reason="done", chunks_done=4)],
        chunks=4,
    )
    s3 = outputs.client("s3")
    s3.put_object(Bucket=outputs.products_bucket, Key=ObsLayout(RUN, "b-done").done, Body=b"")
    failed = {
        "error_class": "InvalidInputError",
        "message": "input is not uvh5 [bad]",
        "attempts": 1,
    }
    s3.put_object(
        Bucket=outputs.products_bucket,
        Key=ObsLayout(RUN, "c-failed").failed,
        Body=json.dumps(failed).encode(),
    )
    sqs = outputs.client("sqs")
    sqs.send_message(QueueUrl=outputs.dead_letter_queue_url, MessageBody="{}")
    return outputs


def test_states_attempts_and_interruptions(run: StackOutputs) -> None:
    status = run_status(run, RUN)
    by_id = {o.obs_id: o for o in status.observations}
    assert [o.obs_id for o in status.observations] == list(OBS)
    assert {k: o.state for k, o in by_id.items()} == {
        "a-running": "running",
        "b-done": "done",
        "c-failed": "failed",
        "d-queued": "queued",
    }
    running = by_id["a-running"]
    assert (running.attempts, running.interruptions, running.chunks_done) == (3, 2, 3)
    assert running.instance_id == "i-3"
    assert running.lost_seconds == pytest.approx(1.5)
    assert (by_id["b-done"].chunks_done, by_id["b-done"].chunks_total) == (4, 4)
    assert by_id["c-failed"].error == "InvalidInputError: input is not uvh5 [bad]"
    assert status.dead_letter is not None
    assert status.dead_letter.visible == 1
    assert status.queue.visible == len(OBS)  # submit_run queued one job per observation
    assert not status.finished


def test_json_output_and_exit_status(run: StackOutputs, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.endpoint_url is not None
    # a failed observation makes status exit 1 so scripts notice
    assert main(["status", "--endpoint", run.endpoint_url, RUN, "--json"]) == 4
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"] == {"queued": 1, "running": 1, "done": 1, "failed": 1}
    assert doc["dead_letter"]["visible"] == 1


def test_table_shows_every_observation_and_the_dlq(
    run: StackOutputs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run.endpoint_url is not None
    monkeypatch.setenv("COLUMNS", "200")  # rich folds long cells in a narrow terminal
    main(["status", "--endpoint", run.endpoint_url])  # newest run by default
    out = capsys.readouterr().out
    for obs_id in OBS:
        assert obs_id in out
    assert "dead-letter queue: 1 message(s)" in out
    assert "InvalidInputError: input is not uvh5 [bad]" in out  # brackets are not markup


def test_list_runs(run: StackOutputs, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.endpoint_url is not None
    assert main(["status", "--endpoint", run.endpoint_url, "--list"]) == 0
    assert capsys.readouterr().out.split() == [RUN]


def test_watch_returns_when_all_observations_are_final(
    cloud: str, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = provision(cloud)
    submit_run(outputs, [ObservationRef("only", "s3://raw/only.uvh5")], kind="image", run_id="w")
    outputs.client("s3").put_object(
        Bucket=outputs.products_bucket, Key=ObsLayout("w", "only").done, Body=b""
    )
    assert main(["status", "--endpoint", cloud, "w", "--watch", "0.1"]) == 0
    assert "1 done" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["nope"], "run nope not found"),
        (["--watch", "0"], "--watch 0.0: the interval must be positive"),
        (["--watch", "1", "--json"], "--watch and --json do not mix"),
    ],
    ids=["unknown-run", "watch-interval", "watch-json"],
)
def test_bad_status_options(
    cloud: str, argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    provision(cloud)
    assert main(["status", "--endpoint", cloud, *argv]) == 2
    assert error in capsys.readouterr().err


def test_status_without_runs_says_so(cloud: str, capsys: pytest.CaptureFixture[str]) -> None:
    provision(cloud)
    assert main(["status", "--endpoint", cloud]) == 3
    assert "no runs in products bucket spotcube-local-demo-products" in capsys.readouterr().err


def test_outputs_file_selects_the_stack(
    run: StackOutputs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(run.to_json())
    assert main(["status", "--outputs", str(path), RUN, "--json"]) == 4
    assert json.loads(capsys.readouterr().out)["run_id"] == RUN


def test_status_and_report_count_the_same_interruptions(run: StackOutputs) -> None:
    """The issue's case: a SIGKILLed attempt (no end, a later attempt exists) is an
    interruption for ``status`` and a termination, with its instance time, for ``report``."""
    from spotcube.runreport import summarise_run

    status = run_status(run, RUN)
    report = summarise_run(run.client("s3"), run.products_bucket, RUN)
    assert sum(o.interruptions for o in status.observations) == report.terminations == 2
    assert report.outcomes == {"preempted": 1, "killed": 1, "done": 1}
    assert report.open_attempts == 1  # i-3, still running
    assert sum(o.attempts for o in status.observations) == report.attempts == 4
