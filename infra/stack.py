"""Build one user's stack from a parsed :class:`~infra.config.StackConfig`.

``__main__.py`` reads the config and calls :func:`build`; the tests call :func:`build` under
``pulumi.runtime.set_mocks``. Every AWS resource is created through the one explicit provider
made here, whose default tags put Owner/Project/Stack on everything it can reach.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from contract.costfacts import PROJECT_TAG
from contract.names import PROJECT, VARIANT_TAG, image_config_hint
from infra.alerts import AlertsArgs, AlertTopic
from infra.budget import CostGuard, CostGuardArgs
from infra.config import StackConfig, StackSetupError
from infra.fleet import FleetArgs, SpotFleet
from infra.guards import KeyLeakGuard, KeyLeakGuardArgs
from infra.network import Network, NetworkArgs, zones_for_fleet
from infra.queue import JobQueue, JobQueueArgs
from infra.storage import Storage, StorageArgs

EXTRA_OUTPUT_KEYS = ("launch_guard_policy_arn",)


def availability_zones(config: StackConfig, provider: aws.Provider) -> tuple[str, ...]:
    """Zones of the region that offer at least one fleet type (see ``zones_for_fleet``).

    Local and Wavelength zones are left out (opt-in only).
    """
    zones = aws.get_availability_zones(
        state="available",
        filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
        opts=pulumi.InvokeOptions(provider=provider),
    )
    types = list(config.fleet.instance_types)
    offerings = aws.ec2.get_instance_type_offerings(
        location_type="availability-zone",
        filters=[{"name": "instance-type", "values": types}],
        opts=pulumi.InvokeOptions(provider=provider),
    )
    return zones_for_fleet(
        sorted(zones.names),
        list(offerings.instance_types or []),
        list(offerings.locations or []),
        types,
        config.region,
    )


def ami_id(config: StackConfig, provider: aws.Provider) -> str:
    """The configured AMI, or the newest available AMI of this account tagged for spotcube.

    ``get_ami`` would fail with the provider's bare "Your query returned no results"; the
    id list is empty instead, and the error says which region and how to bake one.
    """
    if config.ami != "latest":
        return config.ami
    found = aws.ec2.get_ami_ids(
        owners=["self"],
        filters=[
            {"name": f"tag:{PROJECT_TAG}", "values": [PROJECT]},
            # Every bake tags its variant (`default` for the plain payload image), so a stack
            # never runs another variant's image by accident.
            {"name": f"tag:{VARIANT_TAG}", "values": [config.variant]},
            {"name": "state", "values": ["available"]},
        ],
        sort_ascending=False,  # newest first
        opts=pulumi.InvokeOptions(provider=provider),
    )
    if not found.ids:
        raise StackSetupError(
            f"spotcube:ami: 'latest' found no available AMI tagged Project={PROJECT} and "
            f"{VARIANT_TAG}={config.variant} in {config.region} owned by this account; run "
            f"`spotcube bake --region {config.region}{image_config_hint(config.variant)}` "
            "first, or set spotcube:ami to an AMI id"
        )
    return str(found.ids[0])


def account_id(provider: aws.Provider) -> str:
    """The 12-digit account ``pulumi up`` deploys to (bucket names carry it)."""
    identity = aws.get_caller_identity(opts=pulumi.InvokeOptions(provider=provider))
    return str(identity.account_id)


def build(config: StackConfig) -> dict[str, Any]:
    """Declare every resource of the stack; return its outputs.

    The keys are ``contract.names.OUTPUT_KEYS`` (what the operator CLI reads) plus
    ``EXTRA_OUTPUT_KEYS``.
    """
    provider = aws.Provider(
        "aws",
        region=config.region,
        default_tags={"tags": config.names.cost_tags},
    )
    with_provider = pulumi.ResourceOptions(providers=[provider])
    account = account_id(provider)
    names = config.names_in(account)

    alerts = AlertTopic(
        "alerts",
        AlertsArgs(names=names, emails=config.budget.emails, topic_name=names.alerts_topic),
        account_id=account,
        opts=with_provider,
    )
    network = Network(
        "network",
        NetworkArgs(
            names=names,
            region=config.region,
            availability_zones=availability_zones(config, provider),
        ),
        opts=with_provider,
    )
    storage = Storage("storage", StorageArgs(names=names, data=config.data), opts=with_provider)
    queue = JobQueue(
        "queue",
        JobQueueArgs(names=names, queue=config.queue, alerts_topic_arn=alerts.topic_arn),
        opts=with_provider,
    )
    image = ami_id(config, provider)
    fleet = SpotFleet(
        "fleet",
        FleetArgs(
            names=names,
            region=config.region,
            fleet=config.fleet,
            ami_id=image,
            subnet_ids=network.subnet_ids,
            security_group_id=network.security_group_id,
            raw_bucket_arn=storage.raw_bucket_arn,
            raw_prefix=storage.raw_prefix,
            products_bucket_arn=storage.products_bucket_arn,
            products_bucket=storage.products_bucket,
            job_queue_arn=queue.arn,
            job_queue_url=queue.url,
            job_queue_name=queue.name,
            dead_letter_queue_arn=queue.dlq_arn,
            dead_letter_queue_url=queue.dlq_url,
            account_id=account,
        ),
        opts=with_provider,
    )
    cost = CostGuard(
        "cost",
        CostGuardArgs(
            names=names,
            region=config.region,
            budget=config.budget,
            alerts_topic_arn=alerts.topic_arn,
            account_id=account,
            on_demand_base=config.fleet.on_demand_base,
            instance_types=config.fleet.instance_types,
            alerts_topic_policy=alerts.policy,
        ),
        # The brake acts on the group by name: it must exist before the brake can fire.
        opts=pulumi.ResourceOptions(providers=[provider], depends_on=[fleet]),
    )
    guards = KeyLeakGuard(
        "guards",
        KeyLeakGuardArgs(
            names=names,
            region=config.region,
            instance_types=config.fleet.instance_types,
            max_size=config.fleet.max_size,
            account_vcpus=config.guards.account_vcpus,
            alerts_topic_arn=alerts.topic_arn,
        ),
        account_id=account,
        opts=with_provider,
    )
    outputs: dict[str, Any] = {
        "region": config.region,
        "raw_bucket": storage.raw_bucket,
        "raw_prefix": storage.raw_prefix,
        "products_bucket": storage.products_bucket,
        "job_queue_url": queue.url,
        "dead_letter_queue_url": queue.dlq_url,
        "asg_name": fleet.asg_name,
        "ami_id": image,
        "budget_name": cost.budget_name,
        "alerts_topic_arn": alerts.topic_arn,
        "launch_guard_policy_arn": guards.launch_guard_policy_arn,
    }
    return outputs
