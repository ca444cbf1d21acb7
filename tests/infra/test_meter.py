"""The meter Lambda against moto's CloudWatch: what it publishes is the month's samples priced
at most, read back from the metric the alarm watches."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


START = datetime(2026, 3, 1, tzinfo=UTC)
HOURS = 6


def _in_effect(changes: list[tuple[datetime, float]], at: datetime) -> float | None:
    """The oracle: the price of the last change at or before ``at`` (the series' price then)."""
    before = [(when, price) for when, price in changes if when <= at]
    return max(before, key=lambda c: c[0])[1] if before else None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["m5.4xlarge/a", "m5.4xlarge/b", "m5a.4xlarge/a"]),
            st.integers(-120, HOURS * 60 + 30),  # minutes from START: some before, some after
            st.integers(1, 900),  # price in tenths of a cent
        ),
        max_size=12,
        unique_by=lambda c: (c[0], c[1]),
    )
)
def test_hourly_spot_price_is_the_highest_in_effect_in_each_hour(
    changes: list[tuple[str, int, int]],
) -> None:
    """Against a minute-by-minute oracle: each hour's price is the highest any series had in
    effect at any minute of it (changes here fall on whole minutes, so minutes see them all)."""
    history = [(series, START + timedelta(minutes=m), p / 1000) for series, m, p in changes]
    got = meter.hourly_spot_prices(history, START, HOURS)
    series = {name for name, _, _ in history}
    for hour in range(HOURS):
        seen = []
        for name in series:
            own = [(when, price) for n, when, price in history if n == name]
            for minute in range(60):
                price = _in_effect(own, START + timedelta(hours=hour, minutes=minute))
                if price is not None:
                    seen.append(price)
        assert got[hour] == (max(seen) if seen else None), hour


def test_spot_minutes_are_priced_at_the_market_below_the_cap() -> None:
    """Two hours of 600 spot instance-minutes: one at a market price under the cap, one above
    it (a spot instance never pays above its maximum price), one with no history."""
    usd = meter.priced_usd(
        [600.0, 600.0, 600.0],
        on_demand_usd=0.768,
        spot_bound_usd=0.5,
        on_demand_base=0,
        hourly_spot_usd=[0.3, 0.9, None],
    )
    assert usd == pytest.approx(10 * 0.3 + 10 * 0.5 + 10 * 0.5, abs=0.01)


def test_meter_reads_spot_prices_for_the_fleets_types(
    cloud: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wired end to end against moto: the meter asks EC2 for the fleet's types' Spot price
    history and bills spot minutes at the highest price EC2 returned (moto answers one
    long-standing price per type and zone)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", cloud)
    monkeypatch.setenv("ASG_NAME", ASG + "-spot")
    monkeypatch.setenv("ON_DEMAND_USD", "0.768")
    monkeypatch.setenv("SPOT_BOUND_USD", "0.768")
    monkeypatch.setenv("ON_DEMAND_BASE", "0")
    monkeypatch.setenv("INSTANCE_TYPES", "m5.4xlarge,m5a.4xlarge")
    cloudwatch = local_client("cloudwatch", cloud)
    ec2 = local_client("ec2", cloud)
    now = datetime.now(UTC)
    if now - meter.month_start(now) < timedelta(minutes=10):
        pytest.skip("the first minutes of a month leave no room for the samples")
    dims = [{"Name": "AutoScalingGroupName", "Value": ASG + "-spot"}]
    cloudwatch.put_metric_data(
        Namespace="AWS/AutoScaling",
        MetricData=[
            {
                "MetricName": meter.SOURCE_METRIC,
                "Dimensions": dims,
                "Timestamp": now - timedelta(minutes=m),
                "Value": 500.0,
            }
            for m in (2, 3, 4)
        ],
    )
    listed = ec2.describe_spot_price_history(
        InstanceTypes=["m5.4xlarge", "m5a.4xlarge"], ProductDescriptions=["Linux/UNIX"]
    )["SpotPriceHistory"]
    assert listed, "moto returned no Spot price history"
    market = max(float(item["SpotPrice"]) for item in listed)
    report = meter.handler({}, cloudwatch=cloudwatch, ec2=ec2)
    expected = math.floor(1500 / 60 * min(market, 0.768) * 100 + 1e-6) / 100
    assert report["month_to_date_usd"] == expected
    # At the cap the same minutes would have cost 19.20 USD.
    assert expected < 1500 / 60 * 0.768
