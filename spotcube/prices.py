"""Instance prices for ``spotcube plan`` and ``spotcube report``: embedded table or AWS.

The embedded table is what spotcube knows without an AWS account. On-demand figures are AWS
list prices for Linux, shared tenancy, us-east-1, which have been unchanged since these types
launched and were checked as of 2024; they are approximate for any other region. Spot prices
move hourly and differ by zone; the only one embedded is the m5.4xlarge figure published with
the MWA experience (about $0.432/h). For the other types the spot price is *unknown* and is
estimated with the same spot/on-demand ratio (0.432/0.768 = 56 %), and every output says so.
With credentials, ``--aws-prices`` asks AWS instead (``ec2.describe_spot_price_history`` and
``pricing.get_products``); every price can also be given on the command line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from contract import instances
from spotcube.didyoumean import did_you_mean

PUBLISHED_SPOT_RATIO = (
    instances.PUBLISHED_SPOT_USD_PER_HOUR["m5.4xlarge"]
    / instances.ON_DEMAND_USD_PER_HOUR["m5.4xlarge"]
)


@dataclass(frozen=True)
class InstanceInfo:
    """vCPUs, memory and on-demand list price (USD/h) of one instance type."""

    vcpus: int
    memory_gib: float
    on_demand: float
    spot: float | None = None  # None: not known to spotcube


def _embedded() -> dict[str, InstanceInfo]:
    table: dict[str, InstanceInfo] = {}
    for name, on_demand in instances.ON_DEMAND_USD_PER_HOUR.items():
        known = instances.shape(name)
        if known is None:  # a priced type must have a shape: a table edit went wrong
            raise AssertionError(f"{name} is priced in contract.instances but has no shape")
        vcpus, memory = known
        spot = instances.PUBLISHED_SPOT_USD_PER_HOUR.get(name)
        table[name] = InstanceInfo(vcpus, memory, on_demand, spot=spot)
    return table


# The fleet diversifies over 16-vCPU types of similar shape (DESIGN.md, "Fleet").
EMBEDDED: dict[str, InstanceInfo] = _embedded()


@dataclass(frozen=True)
class PriceQuote:
    """The prices a plan or report uses, with where each came from."""

    instance_type: str
    on_demand: float
    spot: float
    on_demand_source: str
    spot_source: str
    vcpus: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_type": self.instance_type,
            "on_demand_per_hour": self.on_demand,
            "spot_per_hour": self.spot,
            "on_demand_source": self.on_demand_source,
            "spot_source": self.spot_source,
            "vcpus": self.vcpus,
        }


def quote(
    instance_type: str,
    *,
    on_demand: float | None = None,
    spot: float | None = None,
    aws: Any | None = None,
) -> PriceQuote:
    """Prices for ``instance_type``: overrides first, then AWS (if given), then the table.

    Parameters
    ----------
    instance_type : str
        EC2 instance type, e.g. ``m5.4xlarge``.
    on_demand, spot : float, optional
        Prices given by the user (USD per hour); they win over everything else.
    aws : AwsPrices, optional
        Live lookups; used for whatever the user did not give.

    Raises
    ------
    ValueError
        If the on-demand price is neither given, nor found on AWS, nor in the table.
    """
    info = EMBEDDED.get(instance_type)
    table = f"embedded table ({instances.PRICE_TABLE_DATE})"
    od_source = "--on-demand-price"
    if on_demand is None and aws is not None:
        on_demand = aws.on_demand(instance_type)
        od_source = f"AWS price list ({aws.region})"
    if on_demand is None and info is not None:
        on_demand, od_source = info.on_demand, table
    if on_demand is None:
        known = ", ".join(sorted(EMBEDDED))
        raise ValueError(
            f"no price known for instance type {instance_type!r}"
            f"{did_you_mean(instance_type, EMBEDDED)}: give --on-demand-price and "
            f"--spot-price, or --aws-prices with credentials (embedded: {known})"
        )
    spot_source = "--spot-price"
    if spot is None and aws is not None:
        spot = aws.spot(instance_type)
        spot_source = f"AWS spot price history ({aws.region}, mean over zones, last day)"
    if spot is None and info is not None and info.spot is not None:
        spot, spot_source = info.spot, table + ", published figure"
    if spot is None:
        spot = round(on_demand * PUBLISHED_SPOT_RATIO, 4)
        spot_source = (
            "ASSUMED: spot price unknown, taken as 56% of on-demand (the published "
            "m5.4xlarge ratio); give --spot-price"
        )
    return PriceQuote(
        instance_type=instance_type,
        on_demand=float(on_demand),
        spot=float(spot),
        on_demand_source=od_source,
        spot_source=spot_source,
        vcpus=info.vcpus if info else None,
    )


class AwsPrices:
    """Live prices from AWS for one region, through boto3 clients given by the caller.

    ``ec2`` answers spot price history in any region; the Price List API (``pricing``) only
    has endpoints in a few regions (us-east-1 among them) but covers all.
    """

    def __init__(self, ec2: Any, pricing: Any | None, region: str) -> None:
        self.ec2, self.pricing, self.region = ec2, pricing, region

    def spot(self, instance_type: str, *, now: datetime | None = None) -> float | None:
        """Mean of the latest Linux spot price in each zone over the last day (None if none)."""
        now = now or datetime.now(UTC)
        latest: dict[str, tuple[datetime, float]] = {}
        pages = self.ec2.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=[instance_type],
            ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
            StartTime=now - timedelta(days=1),
            EndTime=now,
        )
        for page in pages:
            for entry in page.get("SpotPriceHistory", []):
                zone, stamp = entry["AvailabilityZone"], entry["Timestamp"]
                if zone not in latest or stamp > latest[zone][0]:
                    latest[zone] = (stamp, float(entry["SpotPrice"]))
        if not latest:
            return None
        return sum(price for _, price in latest.values()) / len(latest)

    def on_demand(self, instance_type: str) -> float | None:
        """Linux, shared-tenancy on-demand price from the Price List API (None if not found)."""
        if self.pricing is None:
            return None
        response = self.pricing.get_products(
            ServiceCode="AmazonEC2",
            Filters=[
                {"Type": "TERM_MATCH", "Field": field, "Value": value}
                for field, value in (
                    ("instanceType", instance_type),
                    ("regionCode", self.region),
                    ("operatingSystem", "Linux"),
                    ("tenancy", "Shared"),
                    ("preInstalledSw", "NA"),
                    ("capacitystatus", "Used"),
                )
            ],
            MaxResults=10,
        )
        return on_demand_from_price_list(response.get("PriceList", []))


def on_demand_from_price_list(documents: list[str]) -> float | None:
    """The hourly USD on-demand price in Price List API product documents (JSON strings)."""
    for text in documents:
        doc = json.loads(text)
        for term in doc.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                if dimension.get("unit") == "Hrs":
                    usd = float(dimension.get("pricePerUnit", {}).get("USD", "nan"))
                    if usd > 0:
                        return usd
    return None
