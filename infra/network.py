"""Network: a VPC with one public subnet per availability zone and no NAT charges.

Instances get public IPv4 addresses and reach AWS APIs through the internet gateway (no NAT
gateway, which bills per hour and per GB); S3 traffic goes through a free gateway endpoint.
The security group has no inbound rules at all and allows only HTTPS out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from contract.names import StackNames
from infra.config import StackSetupError
from infra.tags import cost_tags

VPC_CIDR = "10.42.0.0/16"
SUBNET_PREFIX = 20  # 4,091 addresses per AZ: far more than any fleet here needs


@dataclass(frozen=True)
class NetworkArgs:
    names: StackNames
    region: str
    availability_zones: tuple[str, ...]


def zones_for_fleet(
    zones: Sequence[str],
    offered_types: Sequence[str],
    offered_in: Sequence[str],
    fleet_types: Sequence[str],
    region: str,
) -> tuple[str, ...]:
    """The zones of ``zones`` where at least one of ``fleet_types`` is offered.

    ``offered_types`` and ``offered_in`` are the parallel lists ``instanceTypes`` and
    ``locations`` of the provider's ``aws.ec2.get_instance_type_offerings`` with
    ``location_type="availability-zone"`` (the provider's documentation: "the indexes of
    Instance Type Offering instance types, locations and location types correspond").

    A zone needs one fleet type, not all of them: the group launches whichever of its types
    has capacity in a zone, and a type a zone lacks is simply not one of that zone's pools.
    A zone with none of them (us-east-1e for most current types) would only hold failed
    launches; its subnet is left out.
    """
    wanted = set(fleet_types)
    serving = {zone for kind, zone in zip(offered_types, offered_in, strict=True) if kind in wanted}
    chosen = tuple(zone for zone in zones if zone in serving)
    if not chosen:
        raise StackSetupError(
            f"spotcube:fleet.instanceTypes: none of {', '.join(fleet_types)} is offered in any "
            f"availability zone of {region} ({', '.join(zones) or 'no zones'}); choose types "
            "the region offers (`aws ec2 describe-instance-type-offerings --location-type "
            f"availability-zone --region {region}`), or another region"
        )
    return chosen


def subnet_cidrs(count: int) -> list[str]:
    """The first ``count`` /20 blocks of the VPC range, one per availability zone."""
    blocks = ipaddress.ip_network(VPC_CIDR).subnets(new_prefix=SUBNET_PREFIX)
    return [str(next(blocks)) for _ in range(count)]


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("spotcube:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        names = args.names
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=VPC_CIDR,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=cost_tags(names, Name=names.prefix),
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=cost_tags(names), opts=child
        )
        routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            tags=cost_tags(names),
            opts=child,
        )
        self.subnet_ids = []
        for zone, cidr in zip(
            args.availability_zones, subnet_cidrs(len(args.availability_zones)), strict=True
        ):
            subnet = aws.ec2.Subnet(
                f"{name}-{zone}",
                vpc_id=vpc.id,
                availability_zone=zone,
                cidr_block=cidr,
                map_public_ip_on_launch=True,
                tags=cost_tags(names, Name=f"{names.prefix}-{zone}"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-{zone}-public", subnet_id=subnet.id, route_table_id=routes.id, opts=child
            )
            self.subnet_ids.append(subnet.id)
        # Gateway endpoints are free and keep S3 traffic off the internet gateway path.
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[routes.id],
            tags=cost_tags(names),
            opts=child,
        )
        group = aws.ec2.SecurityGroup(
            f"{name}-workers",
            vpc_id=vpc.id,
            description="spotcube workers: no inbound, HTTPS out only",
            ingress=[],
            egress=[
                {
                    "description": "HTTPS to AWS APIs and package mirrors",
                    "protocol": "tcp",
                    "from_port": 443,
                    "to_port": 443,
                    "cidr_blocks": ["0.0.0.0/0"],
                }
            ],
            tags=cost_tags(names),
            opts=child,
        )
        self.vpc_id = vpc.id
        self.security_group_id = group.id
        self.register_outputs(
            {"vpc_id": vpc.id, "subnet_ids": self.subnet_ids, "security_group_id": group.id}
        )
