"""CrossGuard rules as plain functions over (resource type, camelCase props).

Constructing a ``PolicyPack`` starts a gRPC server and blocks, so the rules live here where
tests import them and feed them the resources recorded under Pulumi mocks; ``__main__.py``
wraps each in a mandatory ``ResourceValidationPolicy`` / ``StackValidationPolicy``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contract.costfacts import COST_TAG_KEYS, GP3_BASELINE_IOPS, GP3_BASELINE_THROUGHPUT_MBPS
from infra.lifecycle import (
    MIN_ARCHIVE_OBJECT_BYTES,
    TRANSITION_DEFAULT_MINIMUM_OBJECT_SIZE,
    LifecycleIntent,
    Transition,
    check_intent,
)

SPOT_STRATEGY = "price-capacity-optimized"
MIN_SPOT_TYPES = 3
LAUNCH_TAGGED = ("instance", "volume", "network-interface")
PUBLIC_ACLS = ("public-read", "public-read-write", "authenticated-read")
WORLD = ("0.0.0.0/0", "::/0")

# Resource types that cost money (or hold data) and must carry the cost tags themselves.
COST_TYPES = frozenset(
    {
        "aws:ec2/vpc:Vpc",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/internetGateway:InternetGateway",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/launchTemplate:LaunchTemplate",
        "aws:ec2/instance:Instance",
        "aws:ebs/volume:Volume",
        "aws:s3/bucket:Bucket",
        "aws:sqs/queue:Queue",
        "aws:sns/topic:Topic",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:cloudwatch/eventRule:EventRule",
        "aws:lambda/function:Function",
        "aws:budgets/budget:Budget",
        "aws:iam/role:Role",
        "aws:iam/policy:Policy",
        "aws:iam/instanceProfile:InstanceProfile",
    }
)

Props = Mapping[str, Any]


@dataclass(frozen=True)
class Limits:
    """What the pack allows beyond the defaults (the pack's config)."""

    max_iops: int = GP3_BASELINE_IOPS
    max_throughput: int = GP3_BASELINE_THROUGHPUT_MBPS


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    check: Callable[[str, Props, Limits], list[str]]


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    check: Callable[[Sequence[tuple[str, Props]], Limits], list[str]]


def _list(value: Any) -> list[Any]:
    """``value`` as a list if it is one. Under the real analyzer lists arrive as
    ``pulumi_policy.proxy._ListProxy``, a ``Sequence`` that is not a ``list``."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return []


def imdsv2(type_: str, props: Props, limits: Limits) -> list[str]:
    if type_ not in ("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"):
        return []
    options = props.get("metadataOptions") or {}
    problems = []
    if options.get("httpTokens") != "required":
        problems.append("IMDSv2 is not required (metadataOptions.httpTokens must be 'required')")
    if int(options.get("httpPutResponseHopLimit") or 1) > 1:
        problems.append("IMDS hop limit above 1 lets containers reach instance credentials")
    return problems


def _missing_tags(tags: Any) -> list[str]:
    present = tags if isinstance(tags, Mapping) else {}
    return [key for key in COST_TAG_KEYS if not present.get(key)]


def required_tags(type_: str, props: Props, limits: Limits) -> list[str]:
    problems = []
    if type_ in COST_TYPES:
        missing = _missing_tags(props.get("tags") or props.get("tagsAll"))
        if missing:
            problems.append(f"missing cost tags {', '.join(missing)}")
    if type_ == "aws:ec2/launchTemplate:LaunchTemplate":
        specs = {
            s.get("resourceType"): s.get("tags") for s in _list(props.get("tagSpecifications"))
        }
        for kind in LAUNCH_TAGGED:
            missing = _missing_tags(specs.get(kind))
            if missing:
                problems.append(
                    f"launched {kind}s lack tags {', '.join(missing)}: default tags do not reach "
                    "them, add tag_specifications"
                )
        if "spot-instances-request" in specs:
            problems.append(
                "tags for spot-instances-request make EC2 reject every on-demand launch of "
                "this template (onDemandBase > 0); spot requests are not billed, drop them"
            )
    if type_ == "aws:autoscaling/group:Group":
        propagated = {
            t.get("key"): t.get("value")
            for t in _list(props.get("tags"))
            if t.get("propagateAtLaunch")
        }
        missing = _missing_tags(propagated)
        if missing:
            problems.append(
                f"group tags {', '.join(missing)} are not propagated at launch to its instances"
            )
    return problems


def _size_floor(filter_: Any, default_size: str | None) -> int:
    """Smallest object size a rule can transition (from its filter and the config default)."""
    filters = [filter_ or {}]
    if isinstance(filter_, Mapping) and filter_.get("and"):
        filters.append(filter_["and"])
    explicit = [
        int(f["objectSizeGreaterThan"]) + 1
        for f in filters
        if isinstance(f, Mapping) and f.get("objectSizeGreaterThan") is not None
    ]
    if explicit:
        return max(explicit)
    # Without a filter, AWS's default (all_storage_classes_128K) holds back objects < 128 KB.
    if default_size in (None, "", TRANSITION_DEFAULT_MINIMUM_OBJECT_SIZE):
        return MIN_ARCHIVE_OBJECT_BYTES
    return 0


def safe_lifecycle(type_: str, props: Props, limits: Limits) -> list[str]:
    if type_ != "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration":
        return []
    problems = []
    default_size = props.get("transitionDefaultMinimumObjectSize")
    for rule in _list(props.get("rules")):
        if rule.get("status", "Enabled") != "Enabled":
            continue
        transitions = tuple(
            Transition(days=int(t.get("days") or 0), storage_class=str(t.get("storageClass")))
            for t in _list(rule.get("transitions"))
        )
        expiration = rule.get("expiration") or {}
        expire = expiration.get("days") if isinstance(expiration, Mapping) else None
        intent = LifecycleIntent(
            transitions=transitions,
            expire_days=int(expire) if expire else None,
            min_transition_bytes=_size_floor(rule.get("filter"), default_size),
        )
        problems += [f"rule {rule.get('id')}: {p}" for p in check_intent(intent)]
        if _list(rule.get("noncurrentVersionTransitions")):
            problems.append(
                f"rule {rule.get('id')}: noncurrent-version transitions are not checked for "
                "early deletion; remove them"
            )
    return problems


def _public_statements(policy: Any) -> list[str]:
    try:
        doc = json.loads(policy) if isinstance(policy, str) else policy
    except ValueError:
        return ["bucket policy is not JSON"]
    found = []
    for statement in _list((doc or {}).get("Statement")):
        principal = statement.get("Principal")
        open_principal = principal == "*" or (
            isinstance(principal, Mapping) and "*" in _list_or_str(principal.get("AWS"))
        )
        if statement.get("Effect") == "Allow" and open_principal and not statement.get("Condition"):
            found.append(f"statement {statement.get('Sid', '?')} allows anyone")
    return found


def _list_or_str(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else _list(value)


def no_public_buckets(type_: str, props: Props, limits: Limits) -> list[str]:
    if type_ == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock":
        flags = (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
        off = [flag for flag in flags if props.get(flag) is not True]
        return [f"public access block leaves {', '.join(off)} off"] if off else []
    if type_ in ("aws:s3/bucket:Bucket", "aws:s3/bucketAcl:BucketAcl") and (
        props.get("acl") in PUBLIC_ACLS
    ):
        return [f"ACL {props['acl']} makes the bucket public"]
    if type_ == "aws:s3/bucketPolicy:BucketPolicy":
        return _public_statements(props.get("policy"))
    return []


def no_world_ingress(type_: str, props: Props, limits: Limits) -> list[str]:
    rules: list[Mapping[str, Any]] = []
    if type_ == "aws:ec2/securityGroup:SecurityGroup":
        rules = _list(props.get("ingress"))
    elif type_ == "aws:ec2/securityGroupRule:SecurityGroupRule" and props.get("type") == "ingress":
        rules = [props]
    elif type_ == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        rules = [{"cidrBlocks": [props.get("cidrIpv4")], "ipv6CidrBlocks": [props.get("cidrIpv6")]}]
    problems = []
    for rule in rules:
        cidrs = _list(rule.get("cidrBlocks")) + _list(rule.get("ipv6CidrBlocks"))
        if any(c in WORLD for c in cidrs):
            problems.append(
                f"ingress from the whole internet (ports {rule.get('fromPort', '?')}-"
                f"{rule.get('toPort', '?')}); workers need no inbound traffic"
            )
    return problems


def _volume_problems(where: str, ebs: Mapping[str, Any], limits: Limits) -> list[str]:
    problems = []
    kind = ebs.get("volumeType") or ebs.get("type")
    if kind in ("io1", "io2"):
        problems.append(f"{where}: provisioned-IOPS {kind} volumes bill every IOPS; use gp3")
    if kind == "gp3":
        if int(ebs.get("iops") or 0) > limits.max_iops:
            problems.append(
                f"{where}: {ebs['iops']} IOPS exceeds the {limits.max_iops} allowed "
                f"(gp3 includes {GP3_BASELINE_IOPS}; more is billed)"
            )
        if int(ebs.get("throughput") or 0) > limits.max_throughput:
            problems.append(
                f"{where}: {ebs['throughput']} MB/s exceeds the {limits.max_throughput} "
                f"allowed (gp3 includes {GP3_BASELINE_THROUGHPUT_MBPS}; more is billed)"
            )
    if str(ebs.get("encrypted", "")).lower() != "true":
        problems.append(f"{where}: volume is not encrypted")
    return problems


def gp3_baseline(type_: str, props: Props, limits: Limits) -> list[str]:
    if type_ == "aws:ec2/launchTemplate:LaunchTemplate":
        problems = []
        for mapping in _list(props.get("blockDeviceMappings")):
            ebs = mapping.get("ebs") or {}
            problems += _volume_problems(str(mapping.get("deviceName")), ebs, limits)
        return problems
    if type_ == "aws:ebs/volume:Volume":
        return _volume_problems("volume", props, limits)
    return []


def spot_allocation(type_: str, props: Props, limits: Limits) -> list[str]:
    if type_ != "aws:autoscaling/group:Group":
        return []
    policy = props.get("mixedInstancesPolicy")
    if not policy:
        return ["no mixed instances policy: the group would launch on-demand of one type"]
    problems = []
    distribution = policy.get("instancesDistribution") or {}
    strategy = distribution.get("spotAllocationStrategy")
    if strategy != SPOT_STRATEGY:
        problems.append(
            f"spot allocation strategy {strategy or 'lowest-price (default)'}; set {SPOT_STRATEGY}"
        )
    if int(distribution.get("onDemandPercentageAboveBaseCapacity") or 0) != 0:
        problems.append("on-demand above the base capacity must be 0%")
    template = policy.get("launchTemplate") or {}
    version = (template.get("launchTemplateSpecification") or {}).get("version")
    if version in ("$Latest", "$Default", None, ""):
        problems.append(
            f"launch template version {version or 'unset'}: pin a version number, or anyone "
            "who can add a template version changes what the group launches"
        )
    overrides = _list(template.get("overrides"))
    types = {o.get("instanceType") for o in overrides if o.get("instanceType")}
    if len(types) < MIN_SPOT_TYPES:
        problems.append(f"{len(types)} instance types; diversify over at least {MIN_SPOT_TYPES}")
    return problems


def encrypted_queues(type_: str, props: Props, limits: Limits) -> list[str]:
    if type_ != "aws:sqs/queue:Queue":
        return []
    if props.get("sqsManagedSseEnabled") or props.get("kmsMasterKeyId"):
        return []
    return ["queue is not encrypted (set sqs_managed_sse_enabled)"]


# CloudWatch limits PutMetricAlarm enforces at deploy time (CloudWatch User Guide, alarm
# limits; PutMetricAlarm, Period): a metric-math alarm references at most 10 metrics, and
# period x evaluation periods is at most 7 days, or 1 day for periods under an hour.
MAX_ALARM_METRICS = 10
MAX_ALARM_RANGE_SECONDS = 7 * 86400
MAX_SHORT_PERIOD_RANGE_SECONDS = 86400


def alarm_limits(type_: str, props: Props, limits: Limits) -> list[str]:
    if type_ != "aws:cloudwatch/metricAlarm:MetricAlarm":
        return []
    problems = []
    queries = _list(props.get("metricQueries"))
    metrics = [q for q in queries if isinstance(q, Mapping) and q.get("metric")]
    if len(metrics) > MAX_ALARM_METRICS:
        problems.append(
            f"{len(metrics)} metrics in one metric-math alarm; CloudWatch allows "
            f"{MAX_ALARM_METRICS} (use a Metrics Insights query)"
        )
    periods = [int(props.get("period") or 0)] + [
        int((q.get("metric") or {}).get("period") or q.get("period") or 0)
        for q in queries
        if isinstance(q, Mapping)
    ]
    period = max(periods)
    evaluations = int(props.get("evaluationPeriods") or 1)
    limit = MAX_ALARM_RANGE_SECONDS if period >= 3600 else MAX_SHORT_PERIOD_RANGE_SECONDS
    if period * evaluations > limit:
        problems.append(
            f"period {period} s x {evaluations} evaluation periods exceeds CloudWatch's "
            f"{limit} s evaluation range"
        )
    return problems


def buckets_have_protection(resources: Sequence[tuple[str, Props]], limits: Limits) -> list[str]:
    """Every bucket the stack creates has a public access block, encryption and TLS policy."""
    companions = {
        "public access block": "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "default encryption": (
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        ),
        "bucket policy": "aws:s3/bucketPolicy:BucketPolicy",
    }
    problems = []
    for type_, props in resources:
        if type_ != "aws:s3/bucket:Bucket":
            continue
        name = props.get("bucket")
        for what, companion in companions.items():
            if not any(t == companion and p.get("bucket") == name for t, p in resources):
                problems.append(f"bucket {name} has no {what}")
    return problems


RESOURCE_RULES = (
    ResourceRule("imdsv2-required", "Instances require IMDSv2 with hop limit 1.", imdsv2),
    ResourceRule(
        "cost-tags-required",
        "Everything that costs money carries Owner/Project/Stack, including launched resources.",
        required_tags,
    ),
    ResourceRule(
        "safe-lifecycle-rules",
        "No lifecycle rule can charge early-deletion or small-object fees.",
        safe_lifecycle,
    ),
    ResourceRule("no-public-buckets", "Buckets are never public.", no_public_buckets),
    ResourceRule(
        "no-world-open-ingress", "No security group opens a port to the world.", no_world_ingress
    ),
    ResourceRule(
        "gp3-baseline-only",
        "Volumes are encrypted gp3 at the free IOPS/throughput baseline unless allowed.",
        gp3_baseline,
    ),
    ResourceRule("encrypted-queues", "Job messages are encrypted at rest.", encrypted_queues),
    ResourceRule(
        "alarm-within-cloudwatch-limits",
        "Alarms stay within the limits PutMetricAlarm enforces (10 metrics, evaluation range).",
        alarm_limits,
    ),
    ResourceRule(
        "spot-allocation-strategy",
        "Auto Scaling groups use price-capacity-optimized spot over several types.",
        spot_allocation,
    ),
)
STACK_RULES = (
    StackRule(
        "buckets-private-encrypted-tls",
        "Every bucket has a public access block, default encryption and a bucket policy.",
        buckets_have_protection,
    ),
)


def violations(
    resources: Sequence[tuple[str, Props]], limits: Limits | None = None
) -> list[tuple[str, str]]:
    """Every (rule name, message) the pack would report for ``resources``."""
    limits = limits or Limits()
    found = [
        (rule.name, message)
        for type_, props in resources
        for rule in RESOURCE_RULES
        for message in rule.check(type_, props, limits)
    ]
    found += [
        (rule.name, message) for rule in STACK_RULES for message in rule.check(resources, limits)
    ]
    return found
