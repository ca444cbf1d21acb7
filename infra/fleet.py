"""Fleet: a spot Auto Scaling group that scales with the job queue's backlog.

Instances run with an instance profile only (no long-lived keys), IMDSv2 with hop limit 1, an
encrypted gp3 root volume at the free 3,000 IOPS / 125 MB/s baseline, and tags on everything a
launch creates. See docs/adr/0001-capacity-rebalancing.md for the capacity-rebalance choice.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from contract.costfacts import GP3_BASELINE_IOPS, GP3_BASELINE_THROUGHPUT_MBPS
from contract.layout import RUNS
from contract.names import StackNames
from contract.settings import env_name
from infra.config import FleetConfig
from infra.iam import braked_group_statement
from infra.tags import asg_tags, cost_tags, launch_tag_specifications

ROOT_DEVICE = "/dev/xvda"  # Debian 12 AMIs' root device name
LIFECYCLE_HOOK = "checkpoint-before-termination"
LOG_RETENTION_DAYS = 30  # never-expiring log groups are a slow, silent bill
# One job occupies one instance, so the target is one outstanding job per instance.
JOBS_PER_INSTANCE = 1.0


@dataclass(frozen=True)
class FleetArgs:
    names: StackNames
    region: str
    fleet: FleetConfig
    ami_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    security_group_id: pulumi.Input[str]
    raw_bucket_arn: pulumi.Input[str]
    raw_prefix: str
    products_bucket_arn: pulumi.Input[str]
    products_bucket: pulumi.Input[str]
    job_queue_arn: pulumi.Input[str]
    job_queue_url: pulumi.Input[str]
    job_queue_name: pulumi.Input[str]
    dead_letter_queue_arn: pulumi.Input[str]
    dead_letter_queue_url: pulumi.Input[str]
    account_id: pulumi.Input[str]


def asg_arn_pattern(region: str, account_id: str, asg_name: str) -> str:
    """ARN matching the group whatever its generated UUID."""
    return (
        f"arn:aws:autoscaling:{region}:{account_id}:autoScalingGroup:*:"
        f"autoScalingGroupName/{asg_name}"
    )


def worker_policy(
    *,
    region: str,
    account_id: str,
    asg_name: str,
    raw_bucket_arn: str,
    raw_prefix: str,
    products_bucket_arn: str,
    job_queue_arn: str,
    dead_letter_queue_arn: str,
    log_group_arn: str,
) -> str:
    """Least privilege for a worker (the worker contract in the issue)."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadRawData",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{raw_bucket_arn}/{raw_prefix}*"],
        },
        {
            "Sid": "ListRawData",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [raw_bucket_arn],
            "Condition": {"StringLike": {"s3:prefix": [f"{raw_prefix}*"]}},
        },
        {
            "Sid": "WriteOwnProducts",
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:PutObjectTagging",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": [f"{products_bucket_arn}/{RUNS}*"],
        },
        {
            "Sid": "ListOwnProducts",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [products_bucket_arn],
            "Condition": {"StringLike": {"s3:prefix": [f"{RUNS}*"]}},
        },
        {
            "Sid": "ConsumeJobs",
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                "sqs:SendMessage",
            ],
            "Resource": [job_queue_arn],
        },
        {
            "Sid": "ReportInvalidJobs",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": [dead_letter_queue_arn],
        },
        {
            "Sid": "OwnLifecycle",
            "Effect": "Allow",
            "Action": [
                "autoscaling:SetInstanceProtection",
                "autoscaling:CompleteLifecycleAction",
                "autoscaling:RecordLifecycleActionHeartbeat",
            ],
            "Resource": [asg_arn_pattern(region, account_id, asg_name)],
        },
        # Once braked, a worker between jobs must not protect itself again (it would survive
        # desired=0 while jobs keep coming), nor stretch its lifecycle hook past the grace.
        braked_group_statement(
            ["autoscaling:SetInstanceProtection", "autoscaling:RecordLifecycleActionHeartbeat"]
        ),
        {
            "Sid": "WriteLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [f"{log_group_arn}:*"],
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def worker_user_data(settings: dict[str, str]) -> str:
    """Cloud-init that writes the stack's names for the worker unit (base64, as EC2 wants).

    The one writer of /etc/spotcube/worker.env (the image holds only worker.env.example):
    readable by root and the worker's group (the unit's ``Group=spotcube``), no one else.
    cloud-init writes it in cloud-init.service, which runs before network-online.target, the
    unit's ``After=``.
    """
    env = "".join(f"{key}={value}\n" for key, value in sorted(settings.items()))
    script = (
        "#cloud-config\nwrite_files:\n  - path: /etc/spotcube/worker.env\n"
        "    owner: 'root:spotcube'\n    permissions: '0640'\n    encoding: b64\n"
        f"    content: {base64.b64encode(env.encode()).decode()}\n"
    )
    return base64.b64encode(script.encode()).decode()


def assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
    )


class SpotFleet(pulumi.ComponentResource):
    asg_name: pulumi.Output[str]
    asg_arn: pulumi.Output[str]
    launch_template_id: pulumi.Output[str]
    role_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: FleetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("spotcube:infra:SpotFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role, profile = self._worker_identity(name, args, child)
        template = self._launch_template(name, args, profile, child)
        group, hook = self._group(name, args, template)
        self._scaling(name, args, group, pulumi.ResourceOptions(parent=self, depends_on=[hook]))
        self.asg_name = group.name
        self.asg_arn = group.arn
        self.launch_template_id = template.id
        self.role_name = role.name
        self.register_outputs(
            {"asg_name": group.name, "launch_template_id": template.id, "role": role.name}
        )

    def _worker_identity(
        self, name: str, args: FleetArgs, child: pulumi.ResourceOptions
    ) -> tuple[aws.iam.Role, aws.iam.InstanceProfile]:
        """What a worker may do: its log group, role, policy and instance profile."""
        names = args.names
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=names.worker_log_group,
            retention_in_days=LOG_RETENTION_DAYS,
            tags=cost_tags(names),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-worker",
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            description="spotcube worker instances: raw read, own products, own queue",
            tags=cost_tags(names),
            opts=child,
        )
        policy_json = pulumi.Output.all(
            args.account_id,
            args.raw_bucket_arn,
            args.products_bucket_arn,
            args.job_queue_arn,
            args.dead_letter_queue_arn,
            log_group.arn,
        ).apply(
            lambda v: worker_policy(
                region=args.region,
                account_id=v[0],
                asg_name=names.asg,
                raw_bucket_arn=v[1],
                raw_prefix=args.raw_prefix,
                products_bucket_arn=v[2],
                job_queue_arn=v[3],
                dead_letter_queue_arn=v[4],
                log_group_arn=v[5],
            )
        )
        aws.iam.RolePolicy(f"{name}-worker", role=role.id, policy=policy_json, opts=child)
        profile = aws.iam.InstanceProfile(
            f"{name}-worker", role=role.name, tags=cost_tags(names), opts=child
        )
        return role, profile

    def _launch_template(
        self,
        name: str,
        args: FleetArgs,
        profile: aws.iam.InstanceProfile,
        child: pulumi.ResourceOptions,
    ) -> aws.ec2.LaunchTemplate:
        """What an instance is: image, profile, the worker's settings, IMDS and disk."""
        names, fleet = args.names, args.fleet
        user_data = pulumi.Output.all(
            args.job_queue_url, args.dead_letter_queue_url, args.products_bucket
        ).apply(
            lambda v: worker_user_data(
                {
                    # The worker's settings by their variables (contract.settings.env_name).
                    "AWS_DEFAULT_REGION": args.region,
                    env_name("region"): args.region,
                    env_name("queue_url"): v[0],
                    env_name("dlq_url"): v[1],
                    env_name("products_bucket"): v[2],
                    env_name("asg_name"): names.asg,
                    env_name("lifecycle_hook"): LIFECYCLE_HOOK,
                    # the interval the stack's hazard calls for (spotcube:fleet.*, config.py)
                    env_name("checkpoint_interval"): str(float(fleet.checkpoint_interval_seconds)),
                }
            )
        )
        return aws.ec2.LaunchTemplate(
            f"{name}-template",
            name_prefix=f"{names.prefix}-",
            image_id=args.ami_id,
            iam_instance_profile={"arn": profile.arn},
            vpc_security_group_ids=[args.security_group_id],
            user_data=user_data,
            update_default_version=True,
            # Hop limit 1 keeps containers on the instance from reaching its credentials.
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
                instance_metadata_tags="enabled",
            ),
            # Pin IOPS and throughput at what gp3 includes for free: anything above bills.
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=ROOT_DEVICE,
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_type="gp3",
                        volume_size=fleet.root_volume_gib,
                        iops=GP3_BASELINE_IOPS,
                        throughput=GP3_BASELINE_THROUGHPUT_MBPS,
                        encrypted="true",
                        delete_on_termination="true",
                    ),
                )
            ],
            tag_specifications=launch_tag_specifications(names),
            tags=cost_tags(names),
            opts=child,
        )

    def _group(
        self, name: str, args: FleetArgs, template: aws.ec2.LaunchTemplate
    ) -> tuple[aws.autoscaling.Group, aws.autoscaling.LifecycleHook]:
        """How many and which: the spot group and its termination hook."""
        names, fleet = args.names, args.fleet
        child = pulumi.ResourceOptions(parent=self)
        asg = aws.autoscaling
        distribution = asg.GroupMixedInstancesPolicyInstancesDistributionArgs(
            on_demand_base_capacity=fleet.on_demand_base,
            on_demand_percentage_above_base_capacity=0,
            # The ASG default is lowest-price, which picks the pools most likely interrupted.
            spot_allocation_strategy="price-capacity-optimized",
            # "" means no cap: pay the spot price, which never exceeds on-demand.
            spot_max_price="" if fleet.max_spot_price is None else f"{fleet.max_spot_price:.4f}",
        )
        group = aws.autoscaling.Group(
            f"{name}-group",
            name=names.asg,
            min_size=0,
            max_size=fleet.max_size,
            vpc_zone_identifiers=args.subnet_ids,
            capacity_rebalance=fleet.capacity_rebalance,
            mixed_instances_policy=asg.GroupMixedInstancesPolicyArgs(
                instances_distribution=distribution,
                launch_template=asg.GroupMixedInstancesPolicyLaunchTemplateArgs(
                    # A pinned version, not $Latest: with $Latest anyone allowed to add a
                    # template version (another type, another AMI) changes what the group
                    # launches, through Auto Scaling's own role, past the launch guard.
                    launch_template_specification=asg.GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                        launch_template_id=template.id,
                        version=template.latest_version.apply(str),
                    ),
                    overrides=[
                        asg.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(instance_type=t)
                        for t in fleet.instance_types
                    ],
                ),
            ),
            # Group metrics are free; the scaling policies and the brake's alarm read them.
            enabled_metrics=[
                asg.Metric.GROUP_IN_SERVICE_INSTANCES,
                asg.Metric.GROUP_DESIRED_CAPACITY,
                asg.Metric.GROUP_TOTAL_INSTANCES,
            ],
            metrics_granularity="1Minute",
            tags=asg_tags(names),
            # Scaling policies and the brake own the desired capacity, not `pulumi up`.
            # The brake and `spotcube down` own min and max too: a `pulumi up --refresh` must
            # not release the brake without re-arming the budget (ADR 0002).
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["desiredCapacity", "minSize", "maxSize"]
            ),
        )
        # A resource of its own, not the group's initial_lifecycle_hooks: those apply only
        # when the group is created, so a later checkpointGraceSeconds would be ignored
        # (pulumi-aws Group docs, initialLifecycleHooks). The group starts at zero instances
        # and the scaling policies wait for the hook, so no instance launches without it.
        hook = aws.autoscaling.LifecycleHook(
            f"{name}-checkpoint",
            name=LIFECYCLE_HOOK,
            autoscaling_group_name=group.name,
            lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING",
            heartbeat_timeout=fleet.checkpoint_grace_seconds,
            default_result="CONTINUE",
            opts=child,
        )
        return group, hook

    def _scaling(
        self,
        name: str,
        args: FleetArgs,
        group: aws.autoscaling.Group,
        child: pulumi.ResourceOptions,
    ) -> None:
        """Backlog tracking for a running fleet, and the step that starts one from zero."""
        # Backlog per instance: jobs waiting or running, divided by the instances serving them.
        aws.autoscaling.Policy(
            f"{name}-backlog",
            autoscaling_group_name=group.name,
            policy_type="TargetTrackingScaling",
            target_tracking_configuration={
                "target_value": JOBS_PER_INSTANCE,
                "customized_metric_specification": {"metrics": _backlog_metrics(args)},
            },
            opts=child,
        )
        self._start_from_zero(name, args, group, child)

    def _start_from_zero(
        self,
        name: str,
        args: FleetArgs,
        group: aws.autoscaling.Group,
        child: pulumi.ResourceOptions,
    ) -> None:
        """Target tracking multiplies the current capacity, so it cannot leave zero on its
        own: one instance is started when jobs wait and none serve them."""
        start = aws.autoscaling.Policy(
            f"{name}-start",
            autoscaling_group_name=group.name,
            policy_type="StepScaling",
            adjustment_type="ChangeInCapacity",
            step_adjustments=[{"metric_interval_lower_bound": "0", "scaling_adjustment": 1}],
            opts=child,
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-start",
            alarm_description="jobs are waiting and no instance is in service",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            evaluation_periods=1,
            metric_queries=[
                {
                    "id": "visible",
                    "metric": {
                        "namespace": "AWS/SQS",
                        "metric_name": "ApproximateNumberOfMessagesVisible",
                        "dimensions": {"QueueName": args.job_queue_name},
                        "period": 60,
                        "stat": "Sum",
                    },
                },
                {
                    "id": "inservice",
                    "metric": {
                        "namespace": "AWS/AutoScaling",
                        "metric_name": "GroupInServiceInstances",
                        "dimensions": {"AutoScalingGroupName": args.names.asg},
                        "period": 60,
                        "stat": "Average",
                    },
                },
                {
                    "id": "idle_with_work",
                    "expression": "IF(visible > 0 AND inservice == 0, 1, 0)",
                    "return_data": True,
                },
            ],
            treat_missing_data="notBreaching",
            alarm_actions=[start.arn],
            tags=cost_tags(args.names),
            opts=child,
        )


def _series(
    metric_id: str, namespace: str, name: str, key: str, value: pulumi.Input[str], how: str
) -> Any:
    """One metric of a target-tracking metric math expression (not returned itself)."""
    return {
        "id": metric_id,
        "return_data": False,
        "metric_stat": {
            "metric": {
                "namespace": namespace,
                "metric_name": name,
                "dimensions": [{"name": key, "value": value}],
            },
            "stat": how,
        },
    }


def _backlog_metrics(args: FleetArgs) -> list[Any]:
    """Jobs waiting or running per in-service instance, as target tracking's metric math."""
    queue = args.job_queue_name
    return [
        _series(
            "visible", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue, "Sum"
        ),
        _series(
            "inflight",
            "AWS/SQS",
            "ApproximateNumberOfMessagesNotVisible",
            "QueueName",
            queue,
            "Sum",
        ),
        _series(
            "inservice",
            "AWS/AutoScaling",
            "GroupInServiceInstances",
            "AutoScalingGroupName",
            args.names.asg,
            "Average",
        ),
        {
            "id": "backlog",
            "label": "jobs per in-service instance",
            "expression": "(visible + inflight) / IF(inservice > 0, inservice, 1)",
            "return_data": True,
        },
    ]
