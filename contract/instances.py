"""EC2 instance types spotcube knows: their shape (vCPUs, memory) and their list prices.

The one table of them, with one shape function and one price table. ``infra.config`` checks
a fleet's types against the shapes (every job must fit every instance of the fleet) and prices
the fleet for the brake from the same table ``spotcube plan`` prices single types from, so the
two cannot drift apart again (they once priced m5a.4xlarge at $0.768/h and $0.688/h). A type
whose family and size are here has a shape; only some have a price (the rest are priced from
AWS with ``--aws-prices`` or given on the command line). Pure data: no Pulumi, no boto3.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Instance families the baked x86_64 AMI runs on, with memory (GiB) per vCPU. A "shape" is
# vCPUs + memory: the fleet mixes types of one shape so every job fits every instance.
FAMILY_GIB_PER_VCPU: dict[str, int] = {
    **dict.fromkeys(("m5", "m5a", "m5n", "m6i", "m6a", "m7i", "m7a"), 4),
    **dict.fromkeys(("c5", "c5a", "c5n", "c6i", "c6a", "c7i", "c7a"), 2),
    **dict.fromkeys(("r5", "r5a", "r5n", "r6i", "r6a", "r7i", "r7a"), 8),
}
SIZE_VCPUS: dict[str, int] = {
    "large": 2,
    "xlarge": 4,
    "2xlarge": 8,
    "4xlarge": 16,
    "8xlarge": 32,
    "12xlarge": 48,
    "16xlarge": 64,
}
# Sizes the table's grid names but AWS does not make (c5 and c5n have 9xlarge and 18xlarge
# instead, shapes no other family here shares).
SIZES_NOT_MADE: dict[str, frozenset[str]] = {
    "c5": frozenset({"8xlarge", "16xlarge"}),
    "c5n": frozenset({"8xlarge", "12xlarge", "16xlarge"}),
}
# c5n has less memory than 2 GiB/vCPU but is the same class of machine; close enough is not
# enough for a shape check, so it gets its real figure.
EXCEPTIONS_GIB_PER_VCPU: dict[str, float] = {"c5n": 2.625}

_INSTANCE_TYPE = re.compile(r"^([a-z0-9]+)\.([a-z0-9]+)$")


def shape(instance_type: str) -> tuple[int, float] | None:
    """``(vCPUs, memory GiB)`` of a type whose family and size are known, else ``None``."""
    match = _INSTANCE_TYPE.match(instance_type)
    if not match or match[1] not in FAMILY_GIB_PER_VCPU or match[2] not in SIZE_VCPUS:
        return None
    if match[2] in SIZES_NOT_MADE.get(match[1], frozenset()):
        return None
    vcpus = SIZE_VCPUS[match[2]]
    per_vcpu = EXCEPTIONS_GIB_PER_VCPU.get(match[1], FAMILY_GIB_PER_VCPU[match[1]])
    return vcpus, vcpus * per_vcpu


# The price table's source, printed by `spotcube plan` and `spotcube report` beside every
# figure taken from it.
PRICE_TABLE_DATE = "2024"
PRICE_TABLE_SOURCE = (
    "AWS EC2 on-demand list prices, Linux, us-east-1 (unchanged since launch; checked 2024); "
    "spot m5.4xlarge $0.432/h as published for the MWA runs"
)
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

# A fleet mixes types of one shape, so the stack prices a shape, not a type: at the list price
# per vCPU-hour of the 6th-generation Intel type of its memory per vCPU (c6i, m6i, r6i: the
# families a fleet is usually built around). Spot never bills more than on-demand, so
# instance-hours times this bound what a fleet costs (the brake's margin, ADR 0002).
SHAPE_PRICE_REFERENCE: dict[int, str] = {2: "c6i.4xlarge", 4: "m6i.4xlarge", 8: "r6i.4xlarge"}
ON_DEMAND_USD_PER_VCPU_HOUR: dict[int, float] = {
    gib: ON_DEMAND_USD_PER_HOUR[name] / SIZE_VCPUS[name.partition(".")[2]]
    for gib, name in SHAPE_PRICE_REFERENCE.items()
}


def shape_on_demand_usd_per_hour(vcpus: int, memory_gib: float) -> float:
    """Typical on-demand USD per hour of one instance of a shape (us-east-1).

    The memory class nearest the shape's GiB per vCPU (the first on a tie) sets the rate.
    """
    per_vcpu = round(memory_gib / vcpus) if vcpus else 4
    nearest = min(ON_DEMAND_USD_PER_VCPU_HOUR, key=lambda gib: abs(gib - per_vcpu))
    return vcpus * ON_DEMAND_USD_PER_VCPU_HOUR[nearest]


def fleet_on_demand_usd_per_hour(
    instance_types: Iterable[str], vcpus: int, memory_gib: float
) -> float:
    """The most one instance of a fleet of ``instance_types`` (all of one shape) bills per hour.

    A fleet may run any of its types, on-demand (its base) or on spot, which never bills more
    than the type's on-demand price; so the bound is the dearest type's list price, and the
    shape's rate for a type the table does not list. (Pricing the shape alone under-priced
    the default fleet's m7i.4xlarge, $0.8064/h, at m6i's $0.768/h: a brake 5 % late.)
    """
    band = shape_on_demand_usd_per_hour(vcpus, memory_gib)
    return max([band, *(ON_DEMAND_USD_PER_HOUR.get(name, band) for name in instance_types)])
