"""Run the Pulumi program under ``pulumi.runtime.set_mocks`` and record what it declares.

The Pulumi CLI and the AWS provider plugin cannot run here: the mocks stand in for the
engine, invent the outputs AWS would compute (ARNs, URLs, ids) so dependent JSON is real, and
record every resource with its inputs (camelCase, as the engine and policy packs see them).
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import moto
import pulumi

from infra.config import StackConfig
from infra.stack import build

ACCOUNT = "123456789012"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
# A zone us-east-1 lists as available although it offers none of the current-generation
# types the example fleets use (launches there fail with "Your requested instance type (...)
# is not supported in your requested Availability Zone (us-east-1e)").
BARE_ZONE = "us-east-1e"
ZONE_IDS = {"us-east-1a": "use1-az1", "us-east-1b": "use1-az2", "us-east-1c": "use1-az4"}
ZONE_IDS[BARE_ZONE] = "use1-az3"
LATEST_AMI = "ami-0fedcba9876543210"
Offered = Callable[[str, str], bool]


@functools.cache
def _recorded_us_east_1() -> frozenset[tuple[str, str]]:
    """(instance type, zone) pairs AWS offers in us-east-1, as moto ships them.

    moto's ``ec2/resources/instance_type_offerings/availability-zone/us-east-1.json.gz`` is
    DescribeInstanceTypeOfferings output recorded from AWS (``InstanceType``, ``Location``):
    us-east-1e offers 68 older types there and none of the example fleets'.
    """
    path = Path(moto.__file__).parent / "ec2/resources/instance_type_offerings"
    with gzip.open(path / "availability-zone/us-east-1.json.gz") as handle:
        return frozenset((o["InstanceType"], o["Location"]) for o in json.load(handle))


def offered_in_us_east_1(instance_type: str, zone: str) -> bool:
    """Whether AWS offers ``instance_type`` in ``zone`` (recorded; see above)."""
    return (instance_type, zone) in _recorded_us_east_1()


def instance_type_offerings(args: dict[str, Any], region: str, offered: Offered) -> dict[str, Any]:
    """What ``aws.ec2.get_instance_type_offerings`` returns for ``args``.

    EC2's DescribeInstanceTypeOfferings answers one ``InstanceTypeOffering`` (InstanceType,
    LocationType, Location) per type and location that pass the filters (EC2 API Reference,
    DescribeInstanceTypeOfferings); the provider flattens them into the parallel lists
    ``instanceTypes``, ``locations`` and ``locationTypes`` ("the indexes ... correspond",
    terraform-provider-aws docs, data source aws_ec2_instance_type_offerings), with the
    region as ``id``.
    """
    location_type = args.get("locationType") or "region"
    filters = {f["name"]: list(f["values"]) for f in args.get("filters") or []}
    types = filters.get("instance-type", [])
    zones = sorted(ZONE_IDS)
    rows = (
        [(t, z) for t in types for z in zones if offered(t, z)]
        if location_type == "availability-zone"
        else [(t, region) for t in types if any(offered(t, z) for z in zones)]
    )
    return {
        "id": region,
        "filters": args.get("filters") or [],
        "locationType": location_type,
        "instanceTypes": [t for t, _ in rows],
        "locations": [location for _, location in rows],
        "locationTypes": [location_type] * len(rows),
        "region": region,
    }


@dataclass(frozen=True)
class Recorded:
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    provider: str | None
    custom: bool


@dataclass
class Program:
    resources: list[Recorded]
    outputs: dict[str, Any]
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Explicit ``depends_on`` of each resource, by logical name (the mocks do not see them).
    depends_on: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def of_type(self, type_: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name_part: str = "") -> Recorded:
        found = [r for r in self.of_type(type_) if name_part in r.name]
        assert len(found) == 1, f"{len(found)} {type_} named *{name_part}*"
        return found[0]

    @property
    def aws(self) -> list[Recorded]:
        return [r for r in self.resources if r.type.startswith("aws:")]


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(
        self,
        region: str,
        *,
        amis: tuple[str, ...] = (LATEST_AMI,),
        offered: Offered = offered_in_us_east_1,
    ) -> None:
        self.region = region
        self.amis = amis
        self.offered = offered
        self.resources: list[Recorded] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        outputs = dict(inputs)
        region = inputs.get("region") or self.region
        name = inputs.get("name") or args.name
        resource_id = f"{args.name}-id"
        service = args.typ.split(":")[1].split("/")[0] if ":" in args.typ else "x"
        if args.typ == "aws:s3/bucket:Bucket":
            resource_id = inputs.get("bucket", args.name)
            outputs["arn"] = f"arn:aws:s3:::{resource_id}"
            outputs["bucket"] = resource_id
        elif args.typ == "aws:sqs/queue:Queue":
            resource_id = f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{name}"
            outputs["url"] = resource_id
            outputs["arn"] = f"arn:aws:sqs:{region}:{ACCOUNT}:{name}"
        elif args.typ == "aws:sns/topic:Topic":
            resource_id = f"arn:aws:sns:{region}:{ACCOUNT}:{name}"
            outputs["arn"] = resource_id
        elif args.typ == "aws:autoscaling/group:Group":
            resource_id = name
            outputs["arn"] = (
                f"arn:aws:autoscaling:{region}:{ACCOUNT}:autoScalingGroup:uuid:"
                f"autoScalingGroupName/{name}"
            )
        elif args.typ == "aws:cloudwatch/logGroup:LogGroup":
            # The service prefix of a log group ARN is "logs", not the provider module's name.
            outputs["arn"] = f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{name}"
        elif args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            outputs["latestVersion"] = 1  # a new template's first version
            outputs.setdefault("arn", f"arn:aws:ec2:{region}:{ACCOUNT}:launch-template/lt-1")
        elif args.typ == "aws:budgets/budget:Budget":
            resource_id = f"{ACCOUNT}:{name}"
        else:
            outputs.setdefault("arn", f"arn:aws:{service}:{region}:{ACCOUNT}:{args.name}")
        outputs.setdefault("name", name)
        self.resources.append(
            Recorded(
                type=args.typ,
                name=args.name,
                inputs=inputs,
                outputs=outputs,
                provider=args.provider,
                custom=bool(args.custom),
            )
        )
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/test",
                "userId": "AIDATEST",
                "id": ACCOUNT,
            }
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            # As us-east-1 lists them: the bare zone is "available" like the others.
            return {"names": sorted(ZONE_IDS), "zoneIds": [ZONE_IDS[z] for z in sorted(ZONE_IDS)]}
        if args.token == "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings":
            return instance_type_offerings(dict(args.args), self.region, self.offered)
        if args.token == "aws:ec2/getAmiIds:getAmiIds":
            return {"id": self.region, "ids": list(self.amis)}
        return {}


def run_program(
    config: StackConfig,
    *,
    amis: tuple[str, ...] = (LATEST_AMI,),
    offered: Offered = offered_in_us_east_1,
) -> Program:
    """Build ``config``'s stack under mocks; return the recorded resources and outputs.

    ``amis``: what ``get_ami_ids`` finds in the region (none: a region never baked).
    ``offered``: which (instance type, zone) pairs the region offers.
    """
    mocks = RecordingMocks(config.region, amis=amis, offered=offered)
    pulumi.runtime.set_mocks(mocks, project="spotcube", stack=config.stack, preview=False)
    resolved: dict[str, Any] = {}
    depends_on: dict[str, tuple[str, ...]] = {}

    def record_dependencies(
        args: pulumi.ResourceTransformationArgs,
    ) -> pulumi.ResourceTransformationResult | None:
        explicit = args.opts.depends_on if args.opts else None
        if isinstance(explicit, pulumi.Resource):
            explicit = [explicit]
        depends_on[args.name] = tuple(r._name for r in explicit or [])
        return None

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        pulumi.runtime.register_stack_transformation(record_dependencies)
        outputs = build(config)
        keys = list(outputs)
        return pulumi.Output.all(*(outputs[k] for k in keys)).apply(
            lambda values: resolved.update(zip(keys, values, strict=True))
        )

    program()
    return Program(
        resources=mocks.resources, outputs=resolved, calls=mocks.calls, depends_on=depends_on
    )
