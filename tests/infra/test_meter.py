"""The meter Lambda against moto's CloudWatch: what it publishes is the month's samples priced
at most, read back from the metric the alarm watches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.lambdas import meter
from spotcube.local.motoserver import local_client

ASG = "spotcube-alice-dev-fleet"


def test_meter_publishes_the_month_priced_at_most(
    cloud: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", cloud)
    monkeypatch.setenv("ASG_NAME", ASG)
    monkeypatch.setenv("ON_DEMAND_USD", "0.768")
    monkeypatch.setenv("SPOT_BOUND_USD", "0.3")
    monkeypatch.setenv("ON_DEMAND_BASE", "1")
    cloudwatch = local_client("cloudwatch", cloud)
    now = datetime.now(UTC)
    start = meter.month_start(now)
    if now - start < timedelta(minutes=10):
        pytest.skip("the first minutes of a month leave no room for last month's sample")
    dims = [{"Name": "AutoScalingGroupName", "Value": ASG}]
    # Three 1-minute samples of 4 instances this month, one of 50 last month (not counted).
    samples = [(now - timedelta(minutes=m), 4.0) for m in (2, 3, 4)]
    samples.append((start - timedelta(minutes=5), 50.0))
    cloudwatch.put_metric_data(
        Namespace="AWS/AutoScaling",
        MetricData=[
            {"MetricName": meter.SOURCE_METRIC, "Dimensions": dims, "Timestamp": t, "Value": v}
            for t, v in samples
        ],
    )
    report = meter.handler({}, cloudwatch=cloudwatch)
    # 12 instance-minutes this month. An hour's Sum cannot say which were the base's, so up
    # to 60 x base of them are priced on-demand: all 12 here (an upper bound; 3 were), 0.1536
    # USD, rounded down to the cent. Last month's 50 are not counted.
    assert report["month_to_date_usd"] == 0.15
    published = cloudwatch.get_metric_statistics(
        Namespace=meter.NAMESPACE,
        MetricName=meter.METRIC,
        Dimensions=dims,
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=10),
        Period=600,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [d["Maximum"] for d in published] == [pytest.approx(report["month_to_date_usd"])]
