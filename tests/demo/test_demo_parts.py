"""The demo's parts that need no worker: rates, interruption draws, options, verification."""

from __future__ import annotations

import hashlib
import json
import random
import statistics
from pathlib import Path

import pytest

from contract.layout import ObsLayout
from payload.records import DoneRecord, ProductEntry
from spotcube.cli import main
from spotcube.commands.demo import parse_rate
from spotcube.compare import download_and_verify, product_digest
from spotcube.errors import SpotcubeError
from spotcube.local.cloud import provision
from spotcube.local.fleet import InterruptionModel
from spotcube.local.timeline import Timeline, plot_timeline
from spotcube.spotsim import hazard_from_percent


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("9%/h", hazard_from_percent(9)),  # a probability per hour, as `spotcube plan` reads it
        ("0.09/h", 0.09),  # a hazard
        ("12.5 % / h", hazard_from_percent(12.5)),
        ("0%/h", 0.0),
    ],
)
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["fast", "-9%/h", "9%/day", "", "100%/h"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(SpotcubeError, match="--interrupt-rate"):
        parse_rate(text)


def test_interruption_draws_are_seeded_and_exponential() -> None:
    model = InterruptionModel(rate_per_hour=0.09, speedup=600.0, seed=4)
    first = [model.draw_notice_after(random.Random(4)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng = random.Random(11)
    draws = [model.draw_notice_after(rng) for _ in range(20_000)]
    mean = 3600.0 / (0.09 * 600.0)  # 66.7 wall-clock seconds
    # the mean of 20 000 exponential draws is within 3 % of its expectation (> 4 sigma)
    assert statistics.fmean(draws) == pytest.approx(mean, rel=0.03)
    assert statistics.median(draws) == pytest.approx(mean * 0.6931, rel=0.04)


def test_no_rate_never_interrupts() -> None:
    assert InterruptionModel(rate_per_hour=0.0).draw_notice_after(random.Random(0)) == float("inf")


@pytest.mark.parametrize(
    ("rate", "speedup", "error"),
    [
        (-0.1, 1.0, "interruption rate"),
        (float("nan"), 1.0, "interruption rate"),
        (0.1, 0.0, "speedup"),
    ],
)
def test_bad_interruption_model(rate: float, speedup: float, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        InterruptionModel(rate_per_hour=rate, speedup=speedup)


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--workers", "0"], "--workers 0: must be at least 1"),
        (["--observations", "0"], "--observations 0: must be at least 1"),
        (["--reference-workers", "0"], "--reference-workers 0: must be at least 1"),
        (["--speedup", "0"], "--speedup 0: must be positive"),
        (["--timeout", "-1"], "--timeout -1: must be positive"),
        (["--spot-price", "-1"], "--spot-price -1: must not be negative"),
        (["--interrupt-rate", "often"], "--interrupt-rate 'often' is not a rate"),
        (["--input", "no-such.uvh5"], "--input no-such.uvh5: no such file"),
        (["--params", "[]"], "--params must be a JSON object"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_bad_demo_options_name_the_option(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["demo", "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spotcube demo: ")
    assert error in err
    assert not (tmp_path / "out").exists()  # nothing started


def test_out_must_be_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["demo", "--out", str(target)]) == 2
    assert f"--out {target} exists and is not a folder" in capsys.readouterr().err


def test_provenance_is_compared_without_instance_and_run_fields() -> None:
    a = {"instance_id": "i-1", "run_id": "r", "software": {"payload": "0.1.0"}, "n": 1}
    b = {"instance_id": "i-2", "run_id": "r-ref", "software": {"payload": "0.1.0"}, "n": 1}
    dump = lambda d: json.dumps(d).encode()  # noqa: E731
    assert product_digest("provenance.json", dump(a)) == product_digest("provenance.json", dump(b))
    assert product_digest("provenance.json", dump(a)) != product_digest(
        "provenance.json", dump(a | {"n": 2})
    )
    # any other product is compared byte for byte, JSON or not
    assert product_digest("x.json", dump(a)) != product_digest("x.json", dump(b))


def test_verification_catches_a_product_that_differs(cloud: str, tmp_path: Path) -> None:
    outputs = provision(cloud)
    s3 = outputs.client("s3")

    def put(run: str, obs: str, name: str, body: bytes) -> None:
        # Products are found through DONE, which names their keys (docs/work-plane.md).
        layout = ObsLayout(run, obs)
        key = layout.attempt_product("1-a", name)
        s3.put_object(Bucket=outputs.products_bucket, Key=key, Body=body)
        entry = ProductEntry(key=key, size=len(body), sha256=hashlib.sha256(body).hexdigest())
        done = DoneRecord(run, obs, "h", {name: entry}, "i-1", "t")
        s3.put_object(Bucket=outputs.products_bucket, Key=layout.done, Body=done.to_json())

    for run in ("run", "ref"):
        put(run, "same", "image.fits", b"pixels")
        put(run, "differs", "image.fits", b"pixels" if run == "run" else b"pixelz")
    put("ref", "missing", "image.fits", b"pixels")
    result = download_and_verify(outputs, "run", "ref", ["same", "differs", "missing"], tmp_path)
    assert result["same"]["image.fits"]["identical"] is True
    assert result["differs"]["image.fits"]["identical"] is False
    assert result["missing"]["image.fits"] == {
        "identical": False,
        "missing": "only in the reference run",
    }
    assert (tmp_path / "same" / "image.fits").read_bytes() == b"pixels"


def test_timeline_figure_is_written(tmp_path: Path) -> None:
    timeline = Timeline()
    timeline.add(0.0, "launch", "i-1")
    timeline.add(0.5, "launch", "i-2")
    timeline.add(1.0, "chunk", "i-1", "obs-a/0")
    timeline.add(2.0, "notice", "i-1")
    timeline.add(8.0, "kill", "i-1", "exit code -9")
    timeline.add(9.0, "launch", "i-3")
    timeline.add(9.5, "chunk", "i-3", "obs-a/1")
    timeline.add(12.0, "stop", "i-2")
    timeline.add(12.0, "stop", "i-3")
    path = plot_timeline(timeline, tmp_path / "t.png", title="test", speedup=600.0)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert timeline.instance_ids() == ["i-1", "i-2", "i-3"]
    with pytest.raises(ValueError, match="timeline event kind"):
        timeline.add(1.0, "explode", "i-1")


def test_a_job_lost_to_the_dead_letter_queue_stops_the_wait(cloud: str, tmp_path: Path) -> None:
    from rich.console import Console

    from payload.records import ObservationRef
    from spotcube.demo import DemoOptions, run_fleet
    from spotcube.local.fleet import Fleet, WorkerSpec
    from spotcube.submit import submit_run

    outputs = provision(cloud)
    observations = [ObservationRef("lost", f"s3://{outputs.raw_bucket}/lost.bin")]
    submit_run(outputs, observations, kind="selftest", run_id="stall")
    sqs = outputs.client("sqs")
    # what SQS does after maxReceiveCount receives: the job moves to the dead-letter queue
    (message,) = sqs.receive_message(QueueUrl=outputs.job_queue_url)["Messages"]
    sqs.send_message(QueueUrl=outputs.dead_letter_queue_url, MessageBody=message["Body"])
    sqs.delete_message(QueueUrl=outputs.job_queue_url, ReceiptHandle=message["ReceiptHandle"])
    fleet = Fleet(
        spec=WorkerSpec(outputs=outputs, root=tmp_path, extra_args=["--poll-wait", "1"]),
        size=1,
        model=InterruptionModel(rate_per_hour=0.0),
    )
    options = DemoOptions(out=tmp_path, timeout=60.0, poll=0.5)
    result = run_fleet(outputs, "stall", observations, fleet, options, Console(), "test")
    assert result.stalled  # it ended because the job reached the DLQ, not at the timeout
    assert not result.timed_out
    assert result.status.dead_letter is not None
    assert result.status.dead_letter.visible == 1
    assert fleet.running == []  # the fleet was scaled to zero on the way out


def test_an_instance_whose_worker_exits_is_replaced(cloud: str, tmp_path: Path) -> None:
    from rich.console import Console

    from payload.records import ObservationRef
    from spotcube.demo import DemoOptions, run_fleet
    from spotcube.local.fleet import Fleet, WorkerSpec
    from spotcube.submit import submit_run

    outputs = provision(cloud)
    key = "inputs/any.bin"
    outputs.client("s3").put_object(Bucket=outputs.raw_bucket, Key=key, Body=b"bytes")
    observations = [ObservationRef(f"o{i}", f"s3://{outputs.raw_bucket}/{key}") for i in range(2)]
    params = {"chunks": 2, "chunk_seconds": 0.1, "chunk_bytes": 100}
    submit_run(outputs, observations, kind="selftest", params=params, run_id="exits")
    # --max-jobs 1: each worker quits after one job, as a crashed service would
    args = ["--poll-wait", "1", "--max-jobs", "1", "--checkpoint-interval", "1"]
    fleet = Fleet(
        spec=WorkerSpec(outputs=outputs, root=tmp_path, extra_args=args),
        size=1,
        model=InterruptionModel(rate_per_hour=0.0, speedup=600.0, min_replacement_real=0.5),
    )
    options = DemoOptions(out=tmp_path, timeout=90.0, poll=0.5)
    result = run_fleet(outputs, "exits", observations, fleet, options, Console(), "test")
    assert result.status.count("done") == 2
    exits = result.fleet.timeline.of_kind("exit")
    assert exits
    assert exits[0].detail == "exit code 0"
    assert len(result.fleet.instances) >= 2  # the first worker's instance was replaced
    assert result.fleet.interruptions() == 0
