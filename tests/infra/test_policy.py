"""The CrossGuard rules pass on every recorded program and catch crafted violations."""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from infra.config import StackConfig
from infra.policy.rules import RESOURCE_RULES, STACK_RULES, Limits, violations
from tests.infra.program import Program

Built = tuple[StackConfig, Program]
Mutation = Callable[[dict[str, Any]], None]


def recorded(program: Program) -> list[tuple[str, dict[str, Any]]]:
    return [(r.type, r.inputs) for r in program.aws]


def test_pack_passes_on_every_program(built: Built) -> None:
    _, program = built
    assert violations(recorded(program)) == []


def set_path(path: str, value: Any) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = props
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value

    return mutate


def delete_key(key: str) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        del props[key]

    return mutate


def append_ingress(props: dict[str, Any]) -> None:
    props["ingress"] = [
        {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}
    ]


def public_policy(props: dict[str, Any]) -> None:
    props["policy"] = json.dumps(
        {
            "Statement": [
                {"Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}
            ]
        }
    )


def drop_propagation(props: dict[str, Any]) -> None:
    for tag in props["tags"]:
        tag["propagateAtLaunch"] = False


def drop_volume_tags(props: dict[str, Any]) -> None:
    props["tagSpecifications"] = [
        s for s in props["tagSpecifications"] if s["resourceType"] != "volume"
    ]


def glacier_expiry_too_soon(props: dict[str, Any]) -> None:
    rule = next(r for r in props["rules"] if r.get("transitions"))
    rule["expiration"] = {"days": 90}


def small_objects_to_archive(props: dict[str, Any]) -> None:
    rule = next(r for r in props["rules"] if r.get("transitions"))
    rule["filter"] = {"prefix": "runs/"}
    props["transitionDefaultMinimumObjectSize"] = "varies_by_storage_class"


def two_types(props: dict[str, Any]) -> None:
    overrides = props["mixedInstancesPolicy"]["launchTemplate"]["overrides"]
    del overrides[2:]


CASES: list[tuple[str, str, str, Mutation]] = [
    (
        "imdsv1-allowed",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "imdsv2-required",
        set_path("metadataOptions.httpTokens", "optional"),
    ),
    (
        "hop-limit-2",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "imdsv2-required",
        set_path("metadataOptions.httpPutResponseHopLimit", 2),
    ),
    ("untagged-queue", "aws:sqs/queue:Queue", "cost-tags-required", delete_key("tags")),
    (
        "unencrypted-queue",
        "aws:sqs/queue:Queue",
        "encrypted-queues",
        set_path("sqsManagedSseEnabled", False),
    ),
    (
        "untagged-volumes",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "cost-tags-required",
        drop_volume_tags,
    ),
    (
        "asg-tags-not-propagated",
        "aws:autoscaling/group:Group",
        "cost-tags-required",
        drop_propagation,
    ),
    (
        "glacier-deleted-early",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "safe-lifecycle-rules",
        glacier_expiry_too_soon,
    ),
    (
        "small-objects-archived",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "safe-lifecycle-rules",
        small_objects_to_archive,
    ),
    (
        "public-access-block-off",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "no-public-buckets",
        set_path("restrictPublicBuckets", False),
    ),
    ("public-acl", "aws:s3/bucket:Bucket", "no-public-buckets", set_path("acl", "public-read")),
    ("public-policy", "aws:s3/bucketPolicy:BucketPolicy", "no-public-buckets", public_policy),
    (
        "ssh-to-world",
        "aws:ec2/securityGroup:SecurityGroup",
        "no-world-open-ingress",
        append_ingress,
    ),
    (
        "iops-above-baseline",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "gp3-baseline-only",
        set_path("blockDeviceMappings.0.ebs.iops", 16000),
    ),
    (
        "throughput-above-baseline",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "gp3-baseline-only",
        set_path("blockDeviceMappings.0.ebs.throughput", 1000),
    ),
    (
        "io2-volume",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "gp3-baseline-only",
        set_path("blockDeviceMappings.0.ebs.volumeType", "io2"),
    ),
    (
        "unencrypted-volume",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "gp3-baseline-only",
        set_path("blockDeviceMappings.0.ebs.encrypted", "false"),
    ),
    (
        "lowest-price",
        "aws:autoscaling/group:Group",
        "spot-allocation-strategy",
        set_path(
            "mixedInstancesPolicy.instancesDistribution.spotAllocationStrategy", "lowest-price"
        ),
    ),
    (
        "on-demand-above-base",
        "aws:autoscaling/group:Group",
        "spot-allocation-strategy",
        set_path(
            "mixedInstancesPolicy.instancesDistribution.onDemandPercentageAboveBaseCapacity", 50
        ),
    ),
    ("two-types", "aws:autoscaling/group:Group", "spot-allocation-strategy", two_types),
    (
        "no-mixed-policy",
        "aws:autoscaling/group:Group",
        "spot-allocation-strategy",
        delete_key("mixedInstancesPolicy"),
    ),
]


@pytest.mark.parametrize(
    ("type_", "rule", "mutate"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_crafted_violation_is_caught(
    programs: dict[str, Built], type_: str, rule: str, mutate: Mutation
) -> None:
    _, program = programs["full"]
    resources = copy.deepcopy(recorded(program))
    target = next(props for t, props in resources if t == type_)
    mutate(target)
    found = violations(resources)
    assert found, "no violation reported"
    assert {name for name, _ in found} == {rule}, found


def test_bucket_without_protection_is_caught(programs: dict[str, Built]) -> None:
    _, program = programs["minimal"]
    resources = [
        (t, p)
        for t, p in recorded(program)
        if t != "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    ]
    found = violations(resources)
    assert {name for name, _ in found} == {"buckets-private-encrypted-tls"}
    assert len(found) == 2  # raw and products


def test_allowed_iops_can_be_raised_on_purpose(programs: dict[str, Built]) -> None:
    _, program = programs["minimal"]
    resources = copy.deepcopy(recorded(program))
    template = next(p for t, p in resources if t == "aws:ec2/launchTemplate:LaunchTemplate")
    template["blockDeviceMappings"][0]["ebs"]["iops"] = 6000
    assert violations(resources, Limits(max_iops=6000)) == []
    assert violations(resources) != []


def test_pack_wraps_every_rule_as_mandatory(programs: dict[str, Built]) -> None:
    pack = importlib.import_module("infra.policy.__main__")
    _, program = programs["minimal"]
    reports: list[str] = []
    for rule in RESOURCE_RULES:
        policy = pack._resource_policy(rule)
        assert policy.name == rule.name
        assert policy.enforcement_level.value == "mandatory"
        for type_, props in recorded(program):
            args = SimpleNamespace(resource_type=type_, props=props, get_config=lambda: {})
            policy.validate(args, lambda message, urn: reports.append(message))
    for stack_rule in STACK_RULES:
        policy = pack._stack_policy(stack_rule)
        resources = [SimpleNamespace(resource_type=t, props=p) for t, p in recorded(program)]
        args = SimpleNamespace(resources=resources, get_config=lambda: {})
        policy.validate(args, lambda message, urn: reports.append(message))
    assert reports == []
    bad = SimpleNamespace(
        resource_type="aws:ec2/securityGroup:SecurityGroup",
        props={"ingress": [{"cidrBlocks": ["0.0.0.0/0"], "fromPort": 22, "toPort": 22}]},
        get_config=lambda: {},
    )
    ingress = next(r for r in RESOURCE_RULES if r.name == "no-world-open-ingress")
    pack._resource_policy(ingress).validate(bad, lambda message, urn: reports.append(message))
    assert len(reports) == 1
    assert "whole internet" in reports[0]
