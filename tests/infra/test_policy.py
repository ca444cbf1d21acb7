"""The CrossGuard pack as the real analyzer runs it, on every recorded program and on crafted
violations.

``pulumi_policy``'s analyzer hands a rule the resource's properties after a protobuf round trip
(``json_format.MessageToDict``: every number a float), ``deserialize_properties`` and
``unknown_checking_proxy``, which wraps lists in ``_ListProxy`` (a ``Sequence``, not a ``list``)
and dicts in ``_DictProxy`` (pulumi_policy/policy.py, ``_PolicyAnalyzerServicer.Analyze``;
pulumi_policy/proxy.py). These tests build the same objects with the installed pulumi_policy
and call the pack's own ``ResourceValidationPolicy``/``StackValidationPolicy`` with the real
``ResourceValidationArgs``/``StackValidationArgs``, so a rule that only understands ``list``
sees nothing here exactly as it would under ``pulumi preview --policy-pack``.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

from infra.config import StackConfig
from infra.policy.rules import RESOURCE_RULES, STACK_RULES, violations
from tests.infra.program import Program

Built = tuple[StackConfig, Program]
Mutation = Callable[[dict[str, Any]], None]
Resource = tuple[str, dict[str, Any], str]  # type, plain props, logical name

PACK = importlib.import_module("infra.policy.__main__")


def recorded(program: Program) -> list[Resource]:
    """Each AWS resource's inputs as JSON data (assets become their path)."""
    return [
        (r.type, json.loads(json.dumps(r.inputs, default=lambda o: str(o))), r.name)
        for r in program.aws
    ]


def as_analyzed(props: dict[str, Any]) -> Mapping[str, Any]:
    """``props`` as the analyzer passes them to a policy: protobuf Struct, back to dict,
    deserialized, then wrapped in pulumi_policy's unknown-checking proxy."""
    struct = struct_pb2.Struct()
    struct.update(props)
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:dev::spotcube::{type_}::{name}"


def pack_violations(
    resources: list[Resource], config: Mapping[str, Any] | None = None
) -> list[tuple[str, str]]:
    """Every (policy, message) the pack reports, called the way the analyzer calls it."""
    found: list[tuple[str, str]] = []
    for rule in RESOURCE_RULES:
        policy = PACK._resource_policy(rule)
        assert policy.enforcement_level.value == "mandatory"
        for type_, props, name in resources:
            args = ResourceValidationArgs(
                type_, as_analyzed(props), urn(type_, name), name, None, None, config or {}
            )
            policy.validate(args, lambda message, _urn, n=rule.name: found.append((n, message)))
    analyzed = [
        PolicyResource(t, as_analyzed(p), urn(t, n), n, None, None, None, [], {})  # type: ignore[arg-type]
        for t, p, n in resources
    ]
    for stack_rule in STACK_RULES:
        policy = PACK._stack_policy(stack_rule)
        args = StackValidationArgs(analyzed, config or {})
        policy.validate(args, lambda message, _urn, n=stack_rule.name: found.append((n, message)))
    return found


def test_analyzer_hands_rules_sequences_that_are_not_lists(programs: dict[str, Built]) -> None:
    """The premise of the file: under the real proxy a list property is not a ``list``."""
    _, program = programs["minimal"]
    template = next(p for t, p, _ in recorded(program) if t.endswith("LaunchTemplate"))
    specs = as_analyzed(template)["tagSpecifications"]
    assert not isinstance(specs, list)
    assert len(specs) == 3


def test_pack_passes_on_every_program(built: Built) -> None:
    _, program = built
    assert pack_violations(recorded(program)) == []
    # The plain-data entry point agrees.
    assert violations([(t, p) for t, p, _ in recorded(program)]) == []


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


def tag_spot_requests(props: dict[str, Any]) -> None:
    props["tagSpecifications"].append(
        {"resourceType": "spot-instances-request", "tags": dict(props["tags"])}
    )


def unsupported_transition(props: dict[str, Any]) -> None:
    rule = next(r for r in props["rules"] if r.get("transitions"))
    # Intelligent-Tiering -> Standard-IA: not in the S3 User Guide's supported transitions.
    rule["transitions"] = [
        {"days": 30, "storageClass": "INTELLIGENT_TIERING"},
        {"days": 90, "storageClass": "STANDARD_IA"},
    ]


def latest_template_version(props: dict[str, Any]) -> None:
    spec = props["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]
    spec["version"] = "$Latest"


def sixteen_metrics(props: dict[str, Any]) -> None:
    """The first version of the all-class vCPU alarm: 16 classes, one metric each."""
    metric = {"namespace": "AWS/Usage", "metricName": "ResourceCount", "period": 300}
    props.pop("metricQueries", None)
    props["metricQueries"] = [
        {"id": f"m{i}", "metric": dict(metric), "returnData": False} for i in range(16)
    ] + [{"id": "e", "expression": "SUM(METRICS())", "returnData": True}]


CASES: list[tuple[str, str, str, Mutation]] = [
    (
        "too-many-alarm-metrics",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "alarm-within-cloudwatch-limits",
        sixteen_metrics,
    ),
    (
        "alarm-range-too-long",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "alarm-within-cloudwatch-limits",
        set_path("evaluationPeriods", 10_000),
    ),
    (
        "spot-request-tags",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "cost-tags-required",
        tag_spot_requests,
    ),
    (
        "unsupported-transition",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "safe-lifecycle-rules",
        unsupported_transition,
    ),
    (
        "latest-template-version",
        "aws:autoscaling/group:Group",
        "spot-allocation-strategy",
        latest_template_version,
    ),
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
    target = next(props for t, props, _ in resources if t == type_)
    mutate(target)
    found = pack_violations(resources)
    assert found, "no violation reported"
    assert {name for name, _ in found} == {rule}, found


def test_bucket_without_protection_is_caught(programs: dict[str, Built]) -> None:
    _, program = programs["minimal"]
    resources = [
        r
        for r in recorded(program)
        if r[0] != "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    ]
    found = pack_violations(resources)
    assert {name for name, _ in found} == {"buckets-private-encrypted-tls"}
    assert len(found) == 2  # raw and products


def test_allowed_iops_can_be_raised_on_purpose(programs: dict[str, Built]) -> None:
    _, program = programs["minimal"]
    resources = copy.deepcopy(recorded(program))
    template = next(p for t, p, _ in resources if t == "aws:ec2/launchTemplate:LaunchTemplate")
    template["blockDeviceMappings"][0]["ebs"]["iops"] = 6000
    assert pack_violations(resources, {"max_iops": 6000}) == []
    assert pack_violations(resources) != []
