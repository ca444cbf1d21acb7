"""Subnets only in availability zones that offer the fleet's instance types (issue 11).

The region lists every zone as ``available`` whether or not it offers a given type: us-east-1
has a zone (us-east-1e) where current-generation launches fail with "Your requested instance
type (...) is not supported in your requested Availability Zone". A subnet there only
collects failed launches, which the group retries.

The program asks the provider's ``aws.ec2.get_instance_type_offerings`` invoke
(``location_type="availability-zone"``, an ``instance-type`` filter; pulumi-aws API docs,
"aws.ec2.getInstanceTypeOfferings": its results ``instanceTypes``, ``locations`` and
``locationTypes`` are parallel lists, "the indexes ... correspond" in the underlying
terraform-provider-aws data source's docs). The mocks answer it in the shape of EC2's
DescribeInstanceTypeOfferings (one InstanceType/LocationType/Location offering per type and
zone that pass the filter), flattened as the provider does, from the us-east-1 offerings
moto ships as recorded from AWS (tests/infra/program.py): us-east-1e offers none of the
example fleets' types there.

One type per zone is enough: "Amazon EC2 Auto Scaling can launch another instance type if
there is insufficient instance capacity in your chosen Availability Zones" (EC2 Auto Scaling
User Guide, "Setup overview for creating a mixed instances group"), so a zone that offers
some of the fleet's types is a zone the group can use; requiring all of them would give up
capacity pools, the opposite of the guide's advice to span zones.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import StackConfig, StackSetupError, parse_config
from infra.network import zones_for_fleet
from tests.infra.configs import MINIMAL
from tests.infra.program import BARE_ZONE, ZONES, Program, run_program

OFFERINGS = "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings"
Built = tuple[StackConfig, Program]


def subnet_zones(program: Program) -> list[str]:
    return sorted(r.inputs["availabilityZone"] for r in program.of_type("aws:ec2/subnet:Subnet"))


def test_no_subnet_in_a_zone_that_offers_none_of_the_fleet_types(built: Built) -> None:
    _, program = built
    assert subnet_zones(program) == sorted(ZONES)
    assert BARE_ZONE not in subnet_zones(program)
    group = program.one("aws:autoscaling/group:Group")
    assert len(group.inputs["vpcZoneIdentifiers"]) == len(ZONES)


def test_offerings_are_asked_per_zone_for_exactly_the_fleet_types(built: Built) -> None:
    config, program = built
    asked = [args for token, args in program.calls if token == OFFERINGS]
    assert len(asked) == 1
    assert asked[0]["locationType"] == "availability-zone"
    assert asked[0]["filters"] == [
        {"name": "instance-type", "values": list(config.fleet.instance_types)}
    ]


def minimal() -> StackConfig:
    return parse_config(dict(MINIMAL), stack="dev")


def test_a_zone_offering_some_fleet_types_keeps_its_subnet() -> None:
    config = minimal()
    first, *others = config.fleet.instance_types

    def offered(instance_type: str, zone: str) -> bool:
        # The bare zone offers only the first type, us-east-1a only the others.
        if zone == BARE_ZONE:
            return instance_type == first
        return zone in ZONES and (zone != "us-east-1a" or instance_type in others)

    assert subnet_zones(run_program(config, offered=offered)) == sorted([*ZONES, BARE_ZONE])


def test_no_zone_offering_any_fleet_type_is_one_line_naming_types_and_region() -> None:
    config = minimal()
    with pytest.raises(StackSetupError) as caught:
        run_program(config, offered=lambda instance_type, zone: False)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("spotcube:fleet.instanceTypes:")
    assert all(t in message for t in config.fleet.instance_types)
    assert f"--region {config.region}" in message


@pytest.mark.parametrize(
    ("offerings", "expected"),
    [
        # (type, zone) rows as the provider's parallel lists give them
        ([("c5.xlarge", "b"), ("m5.xlarge", "a")], ("a", "b")),
        ([("c5.xlarge", "a"), ("c5.xlarge", "c")], ("a", "c")),
        ([("t3.micro", "b"), ("c5.xlarge", "c")], ("c",)),  # t3 is not a fleet type
    ],
    ids=["each-zone-its-own-type", "one-type-two-zones", "other-types-ignored"],
)
def test_zones_keep_the_region_order(
    offerings: list[tuple[str, str]], expected: tuple[str, ...]
) -> None:
    types: Any = [t for t, _ in offerings]
    zones: Any = [z for _, z in offerings]
    chosen = zones_for_fleet(("a", "b", "c"), types, zones, ["c5.xlarge", "m5.xlarge"], "r")
    assert chosen == expected
