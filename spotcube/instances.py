"""EC2 instance types spotcube prices: the shapes (from :mod:`infra.instances`) and list prices.

A type whose family and size are in :mod:`infra.instances` has a shape; only some have a
price here (the rest are priced from AWS with ``--aws-prices`` or given on the command line).
"""

from __future__ import annotations

from infra.instances import (
    EXCEPTIONS_GIB_PER_VCPU,
    FAMILY_GIB_PER_VCPU,
    SIZE_VCPUS,
    SIZES_NOT_MADE,
    shape,
)

__all__ = [
    "EXCEPTIONS_GIB_PER_VCPU",
    "FAMILY_GIB_PER_VCPU",
    "ON_DEMAND_USD_PER_HOUR",
    "PUBLISHED_SPOT_USD_PER_HOUR",
    "SIZES_NOT_MADE",
    "SIZE_VCPUS",
    "shape",
]

# AWS EC2 on-demand list prices, USD per hour, Linux, shared tenancy, us-east-1 (unchanged
# since each type launched; checked 2024). Approximate for other regions.
ON_DEMAND_USD_PER_HOUR: dict[str, float] = {
    "m5.4xlarge": 0.768,
    "m5a.4xlarge": 0.688,
    "m6i.4xlarge": 0.768,
    "m6a.4xlarge": 0.6912,
    "m7i.4xlarge": 0.8064,
    "c5.4xlarge": 0.68,
    "c6i.4xlarge": 0.68,
    "r5.4xlarge": 1.008,
    "r6i.4xlarge": 1.008,
}
# The one spot price spotcube embeds: m5.4xlarge as published with the MWA experience.
PUBLISHED_SPOT_USD_PER_HOUR: dict[str, float] = {"m5.4xlarge": 0.432}
