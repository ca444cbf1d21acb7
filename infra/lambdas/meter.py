"""The spend meter: what the fleet has cost this month at most, published for the brake's alarm.

AWS Budgets see a cost hours after it is incurred (ADR 0002), and a CloudWatch alarm can look
back at most seven days, never "since the first of the month". So a scheduled Lambda (every
``METER_MINUTES``) reads the group's ``GroupTotalInstances`` since 00:00 UTC on the first of the
month (AWS Budgets' monthly period), prices every instance-minute at the most it can cost, and
publishes the total as ``spotcube/FleetMonthToDateUsd``; the alarm fires when that exceeds the
monthly budget. The pricing and the threshold live here only: the stack deploys them
(infra/budget.py) and the month simulator evaluates them (spotcube/brakesim.py).

The most an instance-hour can cost: on-demand for the group's on-demand base, and for spot
the highest Spot price in effect during that hour for any of the group's instance types in any
zone of the region (``ec2:DescribeSpotPriceHistory``, which also returns the last price change
before the start time, i.e. the price in effect at it: EC2 API Reference,
"DescribeSpotPriceHistory"), capped at ``min(on-demand, fleet.maxSpotPrice)`` -- a spot
instance pays the Spot price in effect, never above its maximum price, which defaults to the
on-demand price (EC2 User Guide, "Spot Instance pricing"). An hour with no price history is
priced at that cap. Pricing spot at the market rather than at the cap is what keeps an honest
month whose real bill fits the budget from being braked (tests/spotsim/test_brakesim.py).
``GroupTotalInstances`` counts pending and terminating instances too (they bill), sampled every
minute (EC2 Auto Scaling User Guide, "Amazon CloudWatch metrics for Amazon EC2 Auto Scaling"),
so an hour's ``Sum`` is that hour's instance-minutes. Within an hour at most
``60 x onDemandBase`` of them are on-demand (the base is filled first), which bounds the hour's
cost from above without knowing which minutes they were.

Environment: ``ASG_NAME``, ``ON_DEMAND_USD``, ``SPOT_BOUND_USD``, ``ON_DEMAND_BASE``,
``INSTANCE_TYPES`` (comma-separated).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

NAMESPACE = "spotcube"
METRIC = "FleetMonthToDateUsd"
METER_MINUTES = 10  # the schedule; also the alarm's period (one datapoint per run)
SOURCE_METRIC = "GroupTotalInstances"


def spot_bound_usd(on_demand_usd: float, max_spot_price: float | None) -> float:
    """The most a spot instance-hour of the group is charged."""
    return on_demand_usd if max_spot_price is None else min(on_demand_usd, max_spot_price)


def priced_usd(
    hourly_instance_minutes: Iterable[float],
    *,
    on_demand_usd: float,
    spot_bound_usd: float,
    on_demand_base: int,
    hourly_spot_usd: Sequence[float | None] | None = None,
) -> float:
    """Upper bound of what the instance-minutes of each hour bucket cost, in whole cents.

    ``hourly_spot_usd[i]`` is the highest Spot price in effect in hour ``i``
    (:func:`hourly_spot_prices`); ``None`` (or no list) prices that hour's spot minutes at
    ``spot_bound_usd``, and no hour is priced above it.

    Rounded down to the cent, like the budget's limit: a sum of per-minute prices carries
    float rounding (552.96 comes out as 552.9600000000002) that must not brake a run which
    fits its budget to the cent (tests/spotsim/test_brakesim.py, month boundary).
    """
    total = 0.0
    for hour, minutes in enumerate(hourly_instance_minutes):
        market = None
        if hourly_spot_usd is not None and hour < len(hourly_spot_usd):
            market = hourly_spot_usd[hour]
        spot_usd = spot_bound_usd if market is None else min(market, spot_bound_usd)
        on_demand = min(minutes, 60.0 * on_demand_base)
        total += (on_demand * on_demand_usd + (minutes - on_demand) * spot_usd) / 60.0
    return math.floor(total * 100 + CENT_TOLERANCE) / 100


# A millionth of a cent: far below any price, far above a float sum's rounding error.
CENT_TOLERANCE = 1e-6


def brake_threshold_usd(monthly_usd: float) -> float:
    """The alarm brakes when the month's priced spend exceeds this (GreaterThanThreshold).

    The whole budget: a month whose fleet fits the budget at the price bound never reaches it,
    and the overshoot of one that does not is what the fleet spends while the brake acts
    (:func:`reaction_minutes`), checked against ``BRAKE_MARGIN`` by infra/config.py.
    """
    return monthly_usd


# How long after the priced spend crosses the threshold the fleet can go on billing: the
# metric's publication delay (group metrics arrive within about 2 minutes; 5 allowed), one
# meter period, the alarm's evaluation (every minute), SNS and the Lambda (1), then the
# lifecycle hook's grace and the instance's shutdown (2).
METRIC_DELAY_MINUTES = 5
ALARM_MINUTES = 1
ACTION_MINUTES = 1
SHUTDOWN_MINUTES = 2
# A fleet may stop this much above the budget, as a share of it; config refuses budgets
# too small for the fleet to stop within it.
BRAKE_MARGIN = 0.05
# Capacity rebalancing may exceed the group's maximum by up to 10 % (EC2 Auto Scaling User
# Guide, "Capacity Rebalancing"); a fraction of an instance is a whole one.
REBALANCE_HEADROOM_PERCENT = 10


def most_instances(max_size: int) -> int:
    """The most instances the group can run: its maximum plus rebalancing's headroom."""
    return max_size + -(-max_size * REBALANCE_HEADROOM_PERCENT // 100)


def reaction_minutes(checkpoint_grace_seconds: int) -> float:
    return (
        METRIC_DELAY_MINUTES
        + METER_MINUTES
        + ALARM_MINUTES
        + ACTION_MINUTES
        + checkpoint_grace_seconds / 60.0
        + SHUTDOWN_MINUTES
    )


def max_overshoot_usd(
    *,
    max_size: int,
    on_demand_usd: float,
    spot_bound_usd: float,
    on_demand_base: int,
    checkpoint_grace_seconds: int,
) -> float:
    """The most the fleet spends between crossing the threshold and being gone."""
    instances = most_instances(max_size)
    per_hour = (
        min(on_demand_base, instances) * on_demand_usd
        + max(instances - on_demand_base, 0) * spot_bound_usd
    )
    return per_hour * reaction_minutes(checkpoint_grace_seconds) / 60.0


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _hourly_minutes(cloudwatch: Any, asg_name: str, start: datetime, end: datetime) -> list[float]:
    """Instance-minutes of each hour since ``start``, indexed by hour (0 where no data).

    GetMetricData returns only the periods that have data, newest first: each value is put
    at its own timestamp's hour so it is priced at that hour's Spot price.
    """
    hours = max(1, math.ceil((end - start).total_seconds() / 3600))
    values = [0.0] * hours
    kwargs: dict[str, Any] = {
        "MetricDataQueries": [
            {
                "Id": "minutes",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/AutoScaling",
                        "MetricName": SOURCE_METRIC,
                        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": asg_name}],
                    },
                    "Period": 3600,
                    "Stat": "Sum",
                },
            }
        ],
        "StartTime": start,
        "EndTime": end,
    }
    while True:
        page = cloudwatch.get_metric_data(**kwargs)
        for result in page["MetricDataResults"]:
            pairs = zip(result.get("Timestamps", []), result.get("Values", []), strict=True)
            for when, value in pairs:
                hour = math.floor((when - start).total_seconds() / 3600)
                if 0 <= hour < hours:
                    values[hour] += float(value)
        token = page.get("NextToken")
        if not token:
            return values
        kwargs["NextToken"] = token


def hourly_spot_prices(
    history: Iterable[tuple[str, datetime, float]], start: datetime, hours: int
) -> list[float | None]:
    """The highest Spot price in effect in each of ``hours`` hours from ``start``.

    ``history`` holds (series, timestamp, price) changes, a series being one instance type in
    one zone; a change holds until its series' next one. The price in effect in an hour is
    the last change at or before its start and every change inside it. ``None`` for an hour
    no series covers.
    """
    by_series: dict[str, list[tuple[datetime, float]]] = {}
    for series, when, price in history:
        by_series.setdefault(series, []).append((when, price))
    out: list[float | None] = [None] * hours
    for changes in by_series.values():
        changes.sort()
        for i, (when, price) in enumerate(changes):
            until = changes[i + 1][0] if i + 1 < len(changes) else start + timedelta(hours=hours)
            if until <= when:  # a later change at the same instant supersedes this one
                continue
            first = max(0, math.floor((when - start).total_seconds() / 3600))
            # The hour holding the instant before ``until`` is the last this price is in.
            last = min(hours - 1, math.ceil((until - start).total_seconds() / 3600) - 1)
            for hour in range(first, last + 1):
                current = out[hour]
                out[hour] = price if current is None else max(current, price)
    return out


def _spot_history(
    ec2: Any, instance_types: Sequence[str], start: datetime, end: datetime
) -> list[tuple[str, datetime, float]]:
    history: list[tuple[str, datetime, float]] = []
    kwargs: dict[str, Any] = {
        "InstanceTypes": list(instance_types),
        "ProductDescriptions": ["Linux/UNIX"],
        "StartTime": start,
        "EndTime": end,
    }
    while True:
        page = ec2.describe_spot_price_history(**kwargs)
        for item in page.get("SpotPriceHistory", []):
            series = f"{item['InstanceType']}/{item.get('AvailabilityZone', '')}"
            history.append((series, item["Timestamp"], float(item["SpotPrice"])))
        token = page.get("NextToken")
        if not token:
            return history
        kwargs["NextToken"] = token


def handler(
    event: dict[str, Any], context: Any = None, *, cloudwatch: Any = None, ec2: Any = None
) -> dict[str, Any]:
    import boto3

    cloudwatch = cloudwatch or boto3.client("cloudwatch")
    asg_name = os.environ["ASG_NAME"]
    now = datetime.now(UTC)
    start = month_start(now)
    minutes = _hourly_minutes(cloudwatch, asg_name, start, now)
    types = [t for t in os.environ.get("INSTANCE_TYPES", "").split(",") if t]
    spot = None
    if types:
        history = _spot_history(ec2 or boto3.client("ec2"), types, start, now)
        spot = hourly_spot_prices(history, start, len(minutes))
    usd = priced_usd(
        minutes,
        on_demand_usd=float(os.environ["ON_DEMAND_USD"]),
        spot_bound_usd=float(os.environ["SPOT_BOUND_USD"]),
        on_demand_base=int(os.environ.get("ON_DEMAND_BASE", "0")),
        hourly_spot_usd=spot,
    )
    cloudwatch.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": METRIC,
                "Dimensions": [{"Name": "AutoScalingGroupName", "Value": asg_name}],
                "Timestamp": now,
                "Value": usd,
                "Unit": "None",
            }
        ],
    )
    report = {"asg": asg_name, "month_to_date_usd": round(usd, 4), "hours": len(minutes)}
    print(json.dumps(report))
    return report
