"""spotcube's instance table against EC2's own description of its instance types.

moto ships ``ec2/resources/instance_types.json.gz``, the ``DescribeInstanceTypes`` answers
recorded from AWS (moto's scripts/ec2_get_instance_type_offerings.py fetches them with
boto3). Every type :func:`contract.instances.shape` accepts must be one EC2 makes, with the
vCPUs and memory EC2 states: a fleet of a type AWS does not make fails at launch, and a
wrong shape lets a job onto an instance it does not fit.
"""

from __future__ import annotations

import gzip
import json
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from contract.instances import FAMILY_GIB_PER_VCPU, SIZE_VCPUS, shape


@pytest.fixture(scope="module")
def described() -> dict[str, Any]:
    spec = find_spec("moto.ec2")
    assert spec is not None
    assert spec.origin is not None
    data = Path(spec.origin).parent / "resources" / "instance_types.json.gz"
    return dict(json.loads(gzip.decompress(data.read_bytes())))


def test_every_accepted_type_is_one_ec2_makes_with_its_shape(described: dict[str, Any]) -> None:
    accepted = [
        f"{family}.{size}"
        for family in FAMILY_GIB_PER_VCPU
        for size in SIZE_VCPUS
        if shape(f"{family}.{size}") is not None
    ]
    assert len(accepted) > 100
    wrong = {}
    for name in accepted:
        if name not in described:
            wrong[name] = "not made"
            continue
        info = described[name]
        theirs = (info["VCpuInfo"]["DefaultVCpus"], info["MemoryInfo"]["SizeInMiB"] / 1024)
        if shape(name) != theirs or "x86_64" not in info["ProcessorInfo"]["SupportedArchitectures"]:
            wrong[name] = f"spotcube {shape(name)}, EC2 {theirs}"
    assert not wrong, wrong


def test_sizes_aws_does_not_make_are_refused() -> None:
    assert shape("c5.8xlarge") is None
    assert shape("c5n.16xlarge") is None
    assert shape("c5a.8xlarge") == (32, 64)
