"""Tags on everything that costs money, including where provider default tags do not reach.

Provider ``default_tags`` cover resources Pulumi creates, but not instances, volumes and
network interfaces that the Auto Scaling group launches: those get their tags from the launch
template's tag specifications and from ASG tags with propagate-at-launch.
"""

from __future__ import annotations

import pulumi_aws as aws

from contract.names import StackNames

# What the launch template tags at launch. Not "spot-instances-request": a spot request is
# not billed (its instance is), and EC2 rejects every on-demand launch of a template that
# tags one ("You cannot specify tags for Spot instances requests if there are no Spot
# instances requests being created"; aws/karpenter-provider-aws#5850,
# github-aws-runners/terraform-aws-github-runner#4561), which breaks fleet.onDemandBase > 0.
LAUNCH_TAGGED_RESOURCES = ("instance", "volume", "network-interface")


def cost_tags(names: StackNames, **extra: str) -> dict[str, str]:
    """Owner/Project/Stack plus ``extra`` (e.g. a Name)."""
    return {**names.cost_tags, **extra}


def launch_tag_specifications(
    names: StackNames,
) -> list[aws.ec2.LaunchTemplateTagSpecificationArgs]:
    """Launch template ``tag_specifications`` for every resource type a launch creates."""
    tags = cost_tags(names, Name=names.asg)
    return [
        aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=dict(tags))
        for kind in LAUNCH_TAGGED_RESOURCES
    ]


def asg_tags(names: StackNames) -> list[aws.autoscaling.GroupTagArgs]:
    """Auto Scaling group tags, propagated to the instances it launches."""
    tags = cost_tags(names, Name=names.asg)
    return [
        aws.autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=True)
        for k, v in sorted(tags.items())
    ]
