"""Read-only checks of an account before ``pulumi up`` (``spotcube preflight``).

Each check answers one question a first deploy would otherwise answer with a failure or a
bill: can the fleet's types launch in every zone, do the vCPU quotas hold the fleet, is the
image baked in this region, will the budget see the stack's costs, are the bucket names free,
does the budget fit AWS Budgets' limits, and which other spotcube stacks share the account.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from contract.costfacts import COST_TAG_KEYS, PROJECT_TAG
from contract.health import HEALTH_REGION
from contract.instances import shape
from contract.names import PROJECT, VARIANT_TAG, image_config_hint
from infra.config import MAX_BUDGET_EMAILS, StackConfig
from spotcube.account.results import CheckResult, Status, failed, passed, skipped, warned
from spotcube.account.session import Aws, error_code, error_message, first_call, run_checks

# Service Quotas codes of EC2's vCPU-based quotas for the Standard families (A, C, D, H, I,
# M, R, T, Z), which hold every family infra/config.py accepts.
SPOT_STANDARD_VCPU_QUOTA = "L-34B43A08"  # All Standard ... Spot Instance Requests
ON_DEMAND_STANDARD_VCPU_QUOTA = "L-1216C47A"  # Running On-Demand Standard ... instances
# AWS Budgets: "A budget can have up to ten notifications" (Budgets API reference,
# Notification); the 10 emails per notification are infra.config.MAX_BUDGET_EMAILS.
BUDGET_MAX_NOTIFICATIONS = 10
COST_EXPLORER_REGION = "us-east-1"  # Cost Explorer's only endpoint


@dataclass(frozen=True)
class Account:
    account_id: str
    caller_arn: str


def caller(aws: Aws) -> Account:
    identity = aws.client("sts").get_caller_identity()
    return Account(account_id=identity["Account"], caller_arn=identity["Arn"])


def check_region(aws: Aws, config: StackConfig) -> CheckResult:
    name = "region"
    regions = aws.client("ec2").describe_regions(AllRegions=True)["Regions"]
    found = {r["RegionName"]: r.get("OptInStatus", "") for r in regions}
    if config.region not in found:
        return failed(
            name,
            f"{config.region} is not an EC2 region of this partition",
            "set spotcube:region to a region from `aws ec2 describe-regions`",
        )
    if found[config.region] == "not-opted-in":
        return failed(
            name,
            f"{config.region} is an opt-in region this account has not enabled",
            f"enable it (`aws account enable-region --region-name {config.region}`) or choose "
            "another spotcube:region",
        )
    return passed(name, f"{config.region} is enabled for this account")


def check_instance_types(aws: Aws, config: StackConfig) -> CheckResult:
    """Every configured type is offered somewhere, and every zone offers at least one type."""
    name = "instance types offered"
    ec2 = aws.client("ec2")
    zones = sorted(
        z["ZoneName"]
        for z in ec2.describe_availability_zones(
            Filters=[
                {"Name": "state", "Values": ["available"]},
                {"Name": "opt-in-status", "Values": ["opt-in-not-required"]},
            ]
        )["AvailabilityZones"]
    )
    offered: dict[str, set[str]] = defaultdict(set)
    paginator = ec2.get_paginator("describe_instance_type_offerings")
    for page in paginator.paginate(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": list(config.fleet.instance_types)}],
    ):
        for offer in page["InstanceTypeOfferings"]:
            offered[offer["InstanceType"]].add(offer["Location"])
    types = config.fleet.instance_types
    nowhere = [t for t in types if not offered.get(t)]
    bare_zones = [z for z in zones if not any(z in offered.get(t, ()) for t in types)]
    partial = {t: sorted(set(zones) - offered[t]) for t in types if offered.get(t)}
    partial = {t: missing for t, missing in partial.items() if missing}
    if nowhere:
        return failed(
            name,
            f"{', '.join(nowhere)} not offered in any zone of {config.region}",
            "replace them in spotcube:fleet.instanceTypes with types of the same shape "
            "offered in the region (`aws ec2 describe-instance-type-offerings "
            f"--location-type availability-zone --region {config.region}`)",
        )
    if bare_zones:
        # The stack makes no subnet there (infra.network.zones_for_fleet): the fleet has
        # fewer zones, so fewer spot capacity pools, to draw from.
        return warned(
            name,
            f"no configured type is offered in {', '.join(bare_zones)}: the stack makes no "
            f"subnet there and the fleet runs in the other {len(zones) - len(bare_zones)} zones",
            "add a type of the same shape offered there for more spot capacity pools, or leave it",
        )
    detail = f"{len(types)} types in {len(zones)} zones of {config.region}"
    if partial:
        gaps = "; ".join(f"{t} not in {', '.join(z)}" for t, z in sorted(partial.items()))
        return passed(name, f"{detail} ({gaps}: the other types serve those zones)")
    return passed(name, f"{detail}, each type in every zone")


def _quota_value(aws: Aws, code: str) -> float:
    """The applied quota value, or AWS's default when none was applied."""
    quotas = aws.client("service-quotas")
    try:
        quota = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]
    except ClientError as exc:
        if error_code(exc) != "NoSuchResourceException":
            raise
        quota = quotas.get_aws_default_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]
    return float(quota["Value"])


def fleet_vcpus(config: StackConfig) -> tuple[int, int]:
    """(spot, on-demand) vCPUs of the fleet at its maximum size."""
    fleet = config.fleet
    on_demand = fleet.on_demand_base * fleet.shape.vcpus
    spot = (fleet.max_size - fleet.on_demand_base) * fleet.shape.vcpus
    return spot, on_demand


def check_vcpu_quotas(
    aws: Aws, config: StackConfig, other_stacks_vcpus: int = 0
) -> list[CheckResult]:
    """Spot and on-demand Standard vCPU quotas against the fleet at its maximum size."""
    spot, on_demand = fleet_vcpus(config)
    results: list[CheckResult] = []
    for label, code, need in (
        ("spot vCPU quota", SPOT_STANDARD_VCPU_QUOTA, spot),
        ("on-demand vCPU quota", ON_DEMAND_STANDARD_VCPU_QUOTA, on_demand),
    ):
        if need == 0:
            results.append(passed(label, "the fleet needs none (fleet.onDemandBase is 0)"))
            continue
        value = _quota_value(aws, code)
        shared = (
            f" plus {other_stacks_vcpus} of other spotcube stacks" if other_stacks_vcpus else ""
        )
        wanted = need + other_stacks_vcpus
        increase = (
            f"request {wanted} vCPUs: `aws service-quotas request-service-quota-increase "
            f"--service-code ec2 --quota-code {code} --desired-value {wanted} "
            f"--region {config.region}` (new accounts start low; approval can take a day)"
        )
        per_instance = config.fleet.shape.vcpus
        if value < per_instance:
            results.append(
                failed(
                    label,
                    f"quota {value:g} vCPUs in {config.region} is below one "
                    f"{per_instance}-vCPU instance: the fleet cannot launch at all",
                    increase,
                )
            )
        elif value < wanted:
            results.append(
                failed(
                    label,
                    f"quota {value:g} vCPUs in {config.region}; the fleet at maxSize needs "
                    f"{need}{shared}: at most {int(value // per_instance)} instances run",
                    increase + f", or lower fleet.maxSize to {int(value // per_instance)}",
                )
            )
        else:
            results.append(
                passed(label, f"quota {value:g} vCPUs >= {need}{shared} at fleet.maxSize")
            )
    return results


def check_ami(aws: Aws, config: StackConfig, root: Path | None) -> CheckResult:
    """The AMI `pulumi up` will use exists here and carries this checkout's content hash."""
    from spotcube.bake.aws import CONTENT_HASH_TAG, find_ami
    from spotcube.bake.contenthash import content_hash

    name = "image in region"
    if root is None:
        return skipped(name, "not run from a spotcube clone: no content hash to look for")
    digest = content_hash(root)
    ec2 = aws.client("ec2")
    bake = f"`spotcube bake --target aws --region {config.region}`"
    if config.ami != "latest":
        images = ec2.describe_images(
            Filters=[{"Name": "image-id", "Values": [config.ami]}], Owners=["self"]
        )["Images"]
        if not images:
            return failed(
                name,
                f"spotcube:ami {config.ami} is not an AMI of this account in {config.region}",
                f"bake one with {bake}, or set spotcube:ami latest",
            )
        tags = {t["Key"]: t["Value"] for t in images[0].get("Tags", [])}
        if images[0].get("State") != "available":
            return failed(
                name,
                f"{config.ami} is {images[0].get('State')}",
                f"wait for it, or bake again with {bake}",
            )
        if tags.get(CONTENT_HASH_TAG) != digest.hexdigest:
            return warned(
                name,
                f"{config.ami} was baked from other sources than this checkout "
                f"(hash {tags.get(CONTENT_HASH_TAG, 'none')[:12]}, here {digest.short})",
                f"{bake} and set spotcube:ami to the new id, or keep it on purpose",
            )
        return passed(name, f"{config.ami} has this checkout's content hash {digest.short}")
    # `ami: latest` is the newest available AMI of the account tagged Project=spotcube
    # (infra/stack.py), which need not be the one baked from this checkout.
    # Same filters as infra/stack.py ami_id: the variant too, or preflight passes where
    # `pulumi up` then stops (issue 20).
    tagged = ec2.describe_images(
        Owners=["self"],
        Filters=[
            {"Name": f"tag:{PROJECT_TAG}", "Values": [PROJECT]},
            {"Name": f"tag:{VARIANT_TAG}", "Values": [config.variant]},
            {"Name": "state", "Values": ["available"]},
        ],
    )["Images"]
    if not tagged:
        return failed(
            name,
            f"no available AMI of this account in {config.region} is tagged "
            f"Project={PROJECT} and {VARIANT_TAG}={config.variant}: `pulumi up` with "
            "ami: latest would stop",
            f"{bake}{image_config_hint(config.variant)} (10-20 minutes, a few cents)",
        )
    newest = max(tagged, key=lambda i: i.get("CreationDate", ""))
    tags = {t["Key"]: t["Value"] for t in newest.get("Tags", [])}
    if tags.get(CONTENT_HASH_TAG) == digest.hexdigest:
        return passed(name, f"{newest['ImageId']} (newest) has content hash {digest.short}")
    current = find_ami(ec2, digest.hexdigest)
    return warned(
        name,
        f"ami: latest is {newest['ImageId']}, baked from other sources (hash "
        f"{tags.get(CONTENT_HASH_TAG, 'none')[:12]}); this checkout is {digest.short}",
        f"set spotcube:ami {current.image_id} (this checkout's image)"
        if current
        else f"{bake}, or keep the older image on purpose",
    )


def organization_of(aws: Aws, account: Account) -> str | None:
    """The management account if this account is a member of an organization, else None."""
    try:
        # Organizations has one endpoint, in us-east-1, whatever the stack's region.
        org = aws.client("organizations", region="us-east-1").describe_organization()[
            "Organization"
        ]
    except ClientError as exc:
        if error_code(exc) == "AWSOrganizationsNotInUseException":
            return None
        if error_code(exc) in ("AccessDeniedException", "AccessDenied"):
            return None  # cannot tell; Cost Explorer's answer below still shows a member
        raise
    master = str(org.get("MasterAccountId", ""))
    return None if master == account.account_id else master


def check_cost_tags(aws: Aws, account: Account, *, deployed: bool = False) -> CheckResult:
    """Whether the budget can see the stack's costs: tag activation and Organizations.

    The budget filters on ``user:Owner``; until that key is an active cost allocation tag
    it counts nothing, and only the burn-rate alarm can brake.
    """
    name = "cost allocation tags"
    member_of = organization_of(aws, account)
    ce = aws.client("ce", region=COST_EXPLORER_REGION)
    keys = ", ".join(COST_TAG_KEYS)
    member_fix = (
        f"ask the administrator of the management account ({member_of}) to activate {keys} "
        "(Billing > Cost allocation tags); until then the budget sees no costs and only the "
        "burn-rate alarm brakes"
    )
    try:
        listed = ce.list_cost_allocation_tags(TagKeys=list(COST_TAG_KEYS), Type="UserDefined")
    except ClientError as exc:
        # A member account may not even list them: "Linked account doesn't have access to
        # cost allocation tags" (AccessDeniedException).
        if error_code(exc) != "AccessDeniedException":
            raise
        return failed(
            name,
            f"this account cannot manage cost allocation tags ({error_message(exc)})",
            member_fix
            if member_of
            else "allow ce:ListCostAllocationTags, or ask the payer "
            "account's administrator to activate " + keys,
        )
    found = {t["TagKey"]: t["Status"] for t in listed["CostAllocationTags"]}
    inactive = [k for k in COST_TAG_KEYS if found.get(k) != "Active"]
    if not inactive:
        return passed(name, f"{keys} are active: the budget sees the stack's costs")
    state = ", ".join(f"{k} {found.get(k, 'not yet seen by billing')}" for k in inactive)
    if member_of is not None:
        return failed(
            name,
            f"{state}; this account is a member of an organization, where only the "
            "management account activates cost allocation tags",
            member_fix,
        )
    activate = (
        "`aws ce update-cost-allocation-tags-status --cost-allocation-tags-status "
        + " ".join(f"TagKey={k},Status=Active" for k in inactive)
        + "`"
    )
    unseen = any(k not in found for k in inactive)
    when = (
        "billing lists a key up to 24 hours after a resource first carries it; then "
        if unseen
        else ""
    )
    detail = (
        f"{state}: until active the budget counts none of the stack's costs (activation is "
        "not retroactive)"
    )
    if deployed:
        return failed(name, detail, f"{when}run {activate}")
    return warned(name, detail, f"after `pulumi up`, {when}run {activate}")


def bucket_names(config: StackConfig, account: Account) -> list[str]:
    """The bucket names `pulumi up` will create in this account (they carry its id)."""
    names = config.names_in(account.account_id)
    buckets = [names.products_bucket]
    if config.data.raw_bucket is None:
        buckets.append(names.raw_bucket)
    return buckets


def check_buckets(aws: Aws, config: StackConfig, account: Account) -> list[CheckResult]:
    """Bucket names are global: one another account holds would fail the deploy."""
    s3 = aws.client("s3")
    own = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    results: list[CheckResult] = []
    for bucket in bucket_names(config, account):
        label = f"bucket {bucket}"
        if len(bucket) > 63:
            results.append(
                failed(
                    label,
                    f"{len(bucket)} characters; S3 allows 63",
                    "shorten spotcube:owner or the stack name",
                )
            )
            continue
        if bucket in own:
            results.append(
                warned(
                    label,
                    "exists in this account already (an earlier deploy, or another stack "
                    "of the same owner and name)",
                    "keep it if it is this stack's; otherwise choose another stack name",
                )
            )
            continue
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                results.append(passed(label, "the name is free"))
                continue
            if code not in ("403", "AccessDenied", "301", "PermanentRedirect"):
                raise
        results.append(
            failed(
                label,
                "the name belongs to another AWS account (bucket names are global)",
                "choose another spotcube:owner or stack name (names are "
                f"{PROJECT}-<owner>-<stack>-...)",
            )
        )
    return results


def check_budget(aws: Aws, config: StackConfig, account: Account) -> CheckResult:
    """AWS Budgets' limits on subscribers, and a budget of the same name."""
    name = "budget"
    emails = len(config.budget.emails)
    if emails > MAX_BUDGET_EMAILS:
        return failed(
            name,
            f"{emails} alert emails; AWS Budgets allows {MAX_BUDGET_EMAILS} per notification",
            f"keep at most {MAX_BUDGET_EMAILS} in spotcube:budget.emails, or use one list address",
        )
    budgets = aws.client("budgets", region="us-east-1")
    existing: list[dict[str, Any]] = []
    paginator = budgets.get_paginator("describe_budgets")
    for page in paginator.paginate(AccountId=account.account_id):
        existing.extend(page.get("Budgets", []))
    mine = [b for b in existing if b["BudgetName"] == config.names.budget]
    detail = f"{emails} email(s); {len(existing)} budget(s) in the account"
    if mine:
        limit = mine[0].get("BudgetLimit", {})
        return warned(
            name,
            f"{detail}; {config.names.budget} exists already (limit "
            f"{limit.get('Amount', '?')} {limit.get('Unit', '')})",
            "fine if this stack made it; otherwise choose another stack name (budget names "
            "are unique per account)",
        )
    return passed(name, f"{detail}; {config.names.budget} is free")


def other_stacks(aws: Aws, config: StackConfig) -> tuple[CheckResult, int]:
    """Other spotcube stacks in the region, and the vCPUs their fleets may hold."""
    name = "other spotcube stacks"
    groups: list[dict[str, Any]] = []
    paginator = aws.client("autoscaling").get_paginator("describe_auto_scaling_groups")
    for page in paginator.paginate(Filters=[{"Name": f"tag:{PROJECT_TAG}", "Values": [PROJECT]}]):
        groups.extend(page["AutoScalingGroups"])
    others = [g for g in groups if g["AutoScalingGroupName"] != config.names.asg]
    if not others:
        return passed(name, f"none in {config.region}"), 0
    vcpus = 0
    described: list[str] = []
    for group in others:
        types = _group_types(group)
        known = next((s for s in map(shape, types) if s is not None), None)
        per = known[0] if known else 0  # vCPUs
        vcpus += per * int(group.get("MaxSize", 0))
        described.append(f"{group['AutoScalingGroupName']} (max {group.get('MaxSize')})")
    own = config.fleet.max_size * config.fleet.shape.vcpus
    together = own + vcpus
    detail = (
        f"{len(others)} in {config.region}: {', '.join(described)}; they share the vCPU "
        f"quotas, and {own + vcpus} vCPUs may run together"
    )
    if config.guards.account_vcpus >= together:
        return passed(
            name, f"{detail} (guards.accountVcpus is {config.guards.account_vcpus})"
        ), vcpus
    return (
        warned(
            name,
            f"{detail}: the account-wide vCPU alarm (guards.accountVcpus "
            f"{config.guards.account_vcpus}) would ring for their instances",
            f"set `pulumi config set --path spotcube:guards.accountVcpus {together}`, and "
            "agree on sizes with their owners (the quota check includes their maxima)",
        ),
        vcpus,
    )


def _group_types(group: dict[str, Any]) -> list[str]:
    policy = group.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {})
    return [o["InstanceType"] for o in policy.get("Overrides", []) if "InstanceType" in o]


# What the stack creates in us-east-1 whatever its region: AWS Health delivers
# AWS_RISK_CREDENTIALS_EXPOSED there only, so the EventBridge rule and the quarantine Lambda
# live there (infra/guards.py). One read of each service there, with the same credentials,
# meets an Organization's region-deny SCP (aws:RequestedRegion) the way the create would.
US_EAST_1_READS = (
    ("events", "list_rules", {"Limit": 1}),
    ("lambda", "list_functions", {"MaxItems": 1}),
)


def check_us_east_1(aws: Aws) -> CheckResult:
    """The key-leak guard's us-east-1 parts are not refused by a region restriction."""
    name = f"{HEALTH_REGION} for the key-leak guard"
    for service, call, kwargs in US_EAST_1_READS:
        try:
            getattr(aws.client(service, region=HEALTH_REGION), call)(**kwargs)
        except ClientError as exc:
            if not error_code(exc).startswith("AccessDenied"):
                raise
            return failed(
                name,
                f"{service}:{call} in {HEALTH_REGION} is denied ({error_message(exc)}): "
                "`pulumi up` cannot create the AWS Health rule and the quarantine Lambda there",
                "ask your Organization's administrator to exempt events:*, lambda:* and "
                f"logs:* in {HEALTH_REGION} from the region restriction for this account (AWS "
                f"Health reports exposed keys in {HEALTH_REGION} only)",
            )
    return passed(name, f"EventBridge and Lambda answer in {HEALTH_REGION}")


def run_preflight(aws: Aws, config: StackConfig, root: Path | None) -> list[CheckResult]:
    """Every preflight check, in the order a reader fixes them."""
    account = first_call(aws, lambda: caller(aws))  # ends the command if unusable
    results = [
        passed("credentials", f"account {account.account_id} as {account.caller_arn}"),
        # Valid but dangerous values the parser found; `pulumi up` prints them too.
        *(
            warned("config", warning, "change it in the stack config unless it is meant")
            for warning in config.warnings
        ),
    ]
    shared_vcpus = 0

    def stacks() -> CheckResult:
        nonlocal shared_vcpus
        result, shared_vcpus = other_stacks(aws, config)
        return result

    checks: list[tuple[str, Callable[[], CheckResult | list[CheckResult]]]] = [
        ("region", lambda: check_region(aws, config)),
        (f"{HEALTH_REGION} for the key-leak guard", lambda: check_us_east_1(aws)),
        ("instance types offered", lambda: check_instance_types(aws, config)),
        ("other spotcube stacks", stacks),
        ("vCPU quotas", lambda: check_vcpu_quotas(aws, config, shared_vcpus)),
        ("image in region", lambda: check_ami(aws, config, root)),
        ("cost allocation tags", lambda: check_cost_tags(aws, account)),
        ("buckets", lambda: check_buckets(aws, config, account)),
        ("budget", lambda: check_budget(aws, config, account)),
    ]
    checked = run_checks(aws, checks)
    if checked[0].status is Status.FAIL:
        # Every other answer is about a region the deploy cannot use.
        checked = checked[:1] + [skipped(r.name, "region unusable") for r in checked[1:]]
    return results + checked
