"""``spotcube report`` and :mod:`spotcube.runreport` against manifests in the local cloud."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from contract.layout import ObsLayout
from contract.names import LOCAL_NAMES
from payload.records import Attempt, ChunkRecord, Manifest
from spotcube.cli import main
from spotcube.estimates import poisson_interval
from spotcube.local.motoserver import local_client
from spotcube.runreport import summarise_run

T0 = datetime(2026, 3, 1, tzinfo=UTC)
BUCKET = LOCAL_NAMES.products_bucket


def stamp(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def attempt(start: float, end: float | None, reason: str | None, **kw: Any) -> Attempt:
    return Attempt(
        instance_id=f"i-{start:g}",
        start=stamp(start),
        end=None if end is None else stamp(end),
        reason=reason,
        **kw,
    )


def put_manifest(
    s3: Any, run_id: str, obs_id: str, attempts: list[Attempt], chunks: int = 0
) -> None:
    manifest = Manifest(run_id=run_id, obs_id=obs_id, kind="image", params_hash="0" * 64)
    manifest.attempts = attempts
    layout = ObsLayout(run_id, obs_id)
    for i in range(chunks):
        key = layout.chunk(f"{i:04d}", "npz")
        manifest.chunks[f"{i:04d}"] = ChunkRecord(key=key, size=1, sha256="0" * 64, seconds=600.0)
    s3.put_object(Bucket=BUCKET, Key=layout.manifest, Body=manifest.to_json())
    if attempts and attempts[-1].reason == "done":
        # the worker writes DONE right after it ends its attempt as done
        s3.put_object(Bucket=BUCKET, Key=layout.done, Body=b"{}")


@pytest.fixture
def s3(cloud: str) -> Any:
    client = local_client("s3", cloud)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def small_run(s3: Any) -> str:
    """Three observations: one clean, one preempted twice, one still running."""
    run = "run-a"
    put_manifest(s3, run, "obs1", [attempt(0, 2, "done", instance_type="m5.4xlarge")], chunks=12)
    put_manifest(
        s3,
        run,
        "obs2",
        [
            attempt(
                0,
                1,
                "preempted",
                instance_type="m5.4xlarge",
                availability_zone="us-east-1a",
                lost_seconds=300.0,
            ),
            attempt(1.1, 1.6, "preempted", instance_type="c5.4xlarge", lost_seconds=120.0),
            attempt(1.7, 3.0, "done", instance_type="c5.4xlarge"),
        ],
        chunks=12,
    )
    put_manifest(s3, run, "obs3", [attempt(0, 0.4, "transient"), attempt(0.5, None, None)])
    # not a manifest of this run's layout: ignored
    s3.put_object(
        Bucket=BUCKET, Key=f"runs/{run}/obs/obs1/products/checkpoint/manifest.json", Body=b"{}"
    )
    put_manifest(s3, "run-b", "obs1", [attempt(0, 5, "preempted")])
    return run


def test_summarise_run_counts_hours_cost_and_hazard(s3: Any, small_run: str) -> None:
    report = summarise_run(s3, BUCKET, small_run)
    assert (report.observations, report.observations_done) == (3, 2)
    assert (report.attempts, report.open_attempts, report.terminations) == (6, 1, 2)
    assert report.outcomes == {"done": 2, "preempted": 2, "transient": 1}
    assert report.instance_hours == pytest.approx(2 + 1 + 0.5 + 1.3 + 0.4)
    assert report.lost_hours == pytest.approx(420 / 3600)
    assert report.chunk_hours == pytest.approx(24 * 600 / 3600)
    assert report.turnaround_hours == pytest.approx(3.0)
    assert report.hazard_per_hour == pytest.approx(2 / 5.2)
    low, high = report.hazard_interval or (0, 0)
    assert low < 2 / 5.2 < high
    m5, c5 = report.by_type["m5.4xlarge"], report.by_type["c5.4xlarge"]
    assert (m5.hours, m5.terminations, m5.price_per_hour) == (pytest.approx(3.0), 1, 0.432)
    assert c5.hours == pytest.approx(1.8)
    assert c5.price_source.startswith("ASSUMED")
    assert report.unpriced_hours == pytest.approx(0.4)  # the "unknown" type of obs3
    assert c5.price_per_hour is not None
    assert report.estimated_cost == pytest.approx(3.0 * 0.432 + 1.8 * c5.price_per_hour)


def test_speedup_rescales_durations_and_hazard(s3: Any, small_run: str) -> None:
    plain = summarise_run(s3, BUCKET, small_run)
    fast = summarise_run(s3, BUCKET, small_run, speedup=60.0)
    assert fast.instance_hours == pytest.approx(60 * plain.instance_hours)
    assert fast.estimated_cost == pytest.approx(60 * plain.estimated_cost)
    assert plain.hazard_per_hour is not None
    assert fast.hazard_per_hour == pytest.approx(plain.hazard_per_hour / 60)


def test_missing_run_is_a_lookup_error(s3: Any) -> None:
    with pytest.raises(LookupError, match="not found"):
        summarise_run(s3, BUCKET, "nope")


def test_hazard_estimate_recovers_a_known_hazard(s3: Any) -> None:
    """Attempts drawn from a known hazard: the MLE and its interval find it again."""
    rng = np.random.default_rng(7)
    hazard, work = 0.25, 3.0  # per hour; hours of work per observation, checkpointed at once
    terminations, exposure = 0, 0.0
    for obs in range(150):
        attempts, left, clock = [], work, 0.0
        while left > 0:
            life = rng.exponential(1 / hazard)
            ran = min(life, left)
            reason = "preempted" if life < left else "done"
            attempts.append(attempt(clock, clock + ran, reason, instance_type="m5.4xlarge"))
            terminations += reason == "preempted"
            exposure += ran
            left -= ran
            clock += ran + 0.05
        put_manifest(s3, "synthetic", f"obs{obs}", attempts)
    report = summarise_run(s3, BUCKET, "synthetic")
    assert report.terminations == terminations
    assert report.exposure_hours == pytest.approx(exposure, rel=1e-6)
    low, high = report.hazard_interval or (0, 0)
    assert low < hazard < high
    assert report.hazard_per_hour == pytest.approx(hazard, rel=4 / math.sqrt(terminations))


def test_poisson_interval_matches_tables() -> None:
    assert poisson_interval(0) == pytest.approx((0.0, 3.689), abs=1e-3)
    assert poisson_interval(10) == pytest.approx((4.795, 18.390), abs=1e-3)


def test_report_cli_text_and_json(
    cloud: str, small_run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", small_run, "--endpoint", cloud]) == 0
    out = capsys.readouterr().out
    assert "2/3 observations done" in out
    assert "termination hazard (MLE): 0.3846/h" in out
    assert f"spotcube plan --rate from:{small_run}" in out
    assert main(["report", small_run, "--endpoint", cloud, "--json", "--speedup", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["speedup"] == 2
    assert doc["instance_hours"] == pytest.approx(10.4)


def test_report_cli_errors(cloud: str, s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "missing", "--endpoint", cloud]) == 2
    assert "run 'missing' not found" in capsys.readouterr().err
    assert main(["report", "missing", "--endpoint", cloud, "--speedup", "0"]) == 2
    assert "--speedup" in capsys.readouterr().err


def test_plan_reuses_the_hazard_of_a_run(
    cloud: str, small_run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["plan", "--jobs", "10", "--runtime", "3h", "--runs", "50", "--json"]
    assert main([*argv, "--rate", f"from:{small_run}", "--endpoint", cloud]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["inputs"]["hazard_per_hour"]["rates"] == [pytest.approx(2 / 5.2)]
    assert f"rate from run {small_run}" in captured.err
    assert main([*argv, "--rate", "from:missing", "--endpoint", cloud]) == 2
    assert "--rate from:missing" in capsys.readouterr().err


def test_a_killed_attempt_lasts_until_its_last_commit(s3: Any) -> None:
    """Killed without a word at 1.5 h (last manifest commit), picked up again at 4 h after
    the queue's backlog: 1.5 h of instance time and one termination, not 4 h."""
    killed = attempt(0, None, None, instance_type="m5.4xlarge", last_seen=stamp(1.5))
    put_manifest(s3, "run-k", "obs1", [killed, attempt(4, 5, "done", instance_type="m5.4xlarge")])
    report = summarise_run(s3, BUCKET, "run-k")
    assert report.outcomes == {"killed": 1, "done": 1}
    assert report.terminations == 1
    assert report.instance_hours == pytest.approx(1.5 + 1.0)
    assert report.hazard_per_hour == pytest.approx(1 / 2.5)
    assert report.estimated_cost == pytest.approx(2.5 * 0.432)


def test_report_on_a_run_without_manifests_says_nothing_yet(
    cloud: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Submitted, no job started: a correct command on a young run, not a usage error."""
    from payload.records import ObservationRef
    from spotcube.local.cloud import provision
    from spotcube.submit import submit_run

    outputs = provision(cloud)
    obs = [ObservationRef(f"o{i}", f"s3://{outputs.raw_bucket}/x") for i in range(2)]
    run_id = submit_run(outputs, obs, kind="selftest")[0]
    assert main(["report", run_id, "--endpoint", cloud]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines() == [
        f"run {run_id}: nothing yet; no job has written a checkpoint manifest "
        "(2 observation(s) submitted). Try again once workers run"
    ]
