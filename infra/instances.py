"""EC2 instance types spotcube knows: their shape (vCPUs, memory).

The one table of them. It lives in infra because ``infra.config`` checks a fleet's types
against the shapes (every job must fit every instance of the fleet) and infra imports nothing
from the operator CLI above it; :mod:`spotcube.instances` adds the list prices ``spotcube
plan`` uses. A type whose family and size are here has a shape. Pure data: no Pulumi, no boto3.
"""

from __future__ import annotations

import re

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
