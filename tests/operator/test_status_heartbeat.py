"""``spotcube status`` says when a running attempt's instance last reported.

Invariant: for the attempt that is running, the status shows the time of its last manifest
commit (``last_seen``; its start before the first commit) and the age of that report at the
time of the status; nothing for an observation that is not running. A SIGKILLed instance
writes nothing more, so its age only grows: that is how a user sees it stopped reporting.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from contract.layout import ObsLayout
from payload.records import Attempt, InputIdentity, JobMessage, Manifest, ObservationRef
from spotcube.local.cloud import provision
from spotcube.runstate import read_run
from spotcube.stack import StackOutputs
from spotcube.status import RunStatus
from spotcube.submit import submit_run
from tests.clirunner import run_cli

RUN = "run-heartbeat-test"
START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # as payload.records.utc_now writes them


def write_manifest(outputs: StackOutputs, obs_id: str, attempts: list[Attempt]) -> None:
    message = JobMessage.create(run_id=RUN, obs_id=obs_id, input="s3://raw/x", kind="image")
    manifest = Manifest.new(message, InputIdentity(uri=message.input))
    manifest.attempts = attempts
    outputs.client("s3").put_object(
        Bucket=outputs.products_bucket,
        Key=ObsLayout(RUN, obs_id).manifest,
        Body=manifest.to_json(),
    )


@pytest.fixture
def outputs(cloud: str) -> StackOutputs:
    outputs = provision(cloud)
    observations = ["reporting", "silent", "queued"]
    submit_run(
        outputs,
        [ObservationRef(o, f"s3://{outputs.raw_bucket}/{o}.uvh5") for o in observations],
        kind="image",
        run_id=RUN,
    )
    last_seen = stamp(START + timedelta(minutes=50))
    write_manifest(outputs, "reporting", [Attempt("i-1", stamp(START), last_seen=last_seen)])
    write_manifest(outputs, "silent", [Attempt("i-2", stamp(START))])  # no commit yet
    return outputs


@pytest.mark.parametrize("later", [timedelta(0), timedelta(seconds=7), timedelta(hours=30)])
def test_the_age_is_the_time_since_the_last_report(outputs: StackOutputs, later: timedelta) -> None:
    run = read_run(outputs.client("s3"), outputs.products_bucket, RUN)
    now = START + timedelta(minutes=50) + later
    by_id = {o.obs_id: o for o in RunStatus.of(run, now=now).observations}
    reporting, silent, queued = by_id["reporting"], by_id["silent"], by_id["queued"]
    assert reporting.last_report == stamp(START + timedelta(minutes=50))
    assert reporting.last_report_age_seconds == later.total_seconds()
    assert silent.last_report == stamp(START)  # its start is all it ever said
    assert silent.last_report_age_seconds == (later + timedelta(minutes=50)).total_seconds()
    assert (queued.last_report, queued.last_report_age_seconds) == (None, None)


def test_status_prints_the_age_of_the_last_report(
    outputs: StackOutputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert outputs.endpoint_url
    monkeypatch.setenv("COLUMNS", "250")  # one table row per line
    table = run_cli(["status", RUN, "--endpoint", outputs.endpoint_url])
    assert table.status == 0, table.stderr
    assert "i-1 (last report" in table.stdout
    assert "i-2 (last report" in table.stdout
    doc = json.loads(run_cli(["status", RUN, "--json", "--endpoint", outputs.endpoint_url]).stdout)
    ages = {o["obs_id"]: o["last_report_age_seconds"] for o in doc["observations"]}
    since = (datetime.now(UTC) - START).total_seconds()  # a lower bound: time only grows
    assert ages["silent"] >= since - 1
    assert ages["reporting"] >= since - 50 * 60 - 1
    assert ages["queued"] is None
