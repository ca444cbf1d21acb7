"""Key-leak guards: quarantine exposed keys, confine launches, watch the account's spot vCPUs.

Instances never carry long-lived keys (they use the instance profile, see infra/fleet.py).
For keys that humans and CI hold, three layers:

- AWS Health reports keys found in public repositories as ``AWS_RISK_CREDENTIALS_EXPOSED``,
  only in us-east-1; a rule there invokes the quarantine Lambda (infra/lambdas/quarantine.py).
- A managed launch-guard policy, attached by the group to its humans and CI, denies launching
  instances outside the stack's region, of other types, or without this owner's tags, and
  closes the side doors (EC2 Fleet and spot requests, starting or resizing stopped
  instances, new launch-template versions, raising the group's MaxSize, capacity purchases,
  removing the guard, creating an unguarded identity): a stolen key of a guarded user cannot
  start a crypto-mining fleet.
- An alarm on the account's running vCPUs of every class (spot and on-demand, standard and
  accelerated) in the stack's region catches what the other two miss.

Who carries the launch guard: every human and CI identity *except the one that runs
``pulumi up``*. EC2 Auto Scaling checks the caller's ``ec2:RunInstances`` when it creates or
updates a group from a launch template ("Control Amazon EC2 launch template usage in Auto
Scaling groups", EC2 Auto Scaling User Guide), and the template carries no instance type (the
group's overrides do), so the guard's instance-type rule would deny the deployer; the deployer
also has to create template versions, which the guard forbids. The deploying identity is used
for ``pulumi up`` only and is not assumable by guarded users (docs/infra.md, "Launch guard").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from contract.costfacts import OWNER_TAG
from contract.health import EXPOSED_KEYS_EVENT_TYPE, HEALTH_REGION
from contract.names import PROJECT, StackNames
from infra.config import VCPU_ALARM_MINUTES
from infra.iam import BRAKE_TAG, braked_group_statement, lambda_notify_and_log_statements
from infra.lambdafn import stack_lambda
from infra.lambdas.quarantine import DEFAULT_POLICY_ARN
from infra.tags import cost_tags

LAUNCH_ACTIONS = ["ec2:RunInstances"]
# Launch paths no guarded user needs: the fleet launches through its Auto Scaling group,
# whose service-linked role this policy does not restrict. EC2 Fleet (maintain/request) and
# Spot Fleet launch through their own service-linked roles, so conditions on the caller's
# RunInstances never see those launches; starting a stopped instance or changing its type
# bypasses RunInstances altogether.
SIDE_DOOR_ACTIONS = [
    "ec2:CreateFleet",
    "ec2:ModifyFleet",
    "ec2:RequestSpotFleet",
    "ec2:ModifySpotFleetRequest",
    "ec2:RequestSpotInstances",
    "ec2:StartInstances",
    "ec2:ModifyInstanceAttribute",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateLaunchTemplateVersion",
    "ec2:ModifyLaunchTemplate",
    "autoscaling:CreateAutoScalingGroup",
    "autoscaling:CreateLaunchConfiguration",
    "autoscaling:AttachInstances",
]
# Auto Scaling writes that raise capacity past the group's maximum, change what it launches,
# launch for the caller, or hide instances from the meter and the brake. Each is in the
# Service Authorization Reference, "Actions, resources, and condition keys for Amazon EC2 Auto
# Scaling" (tests/infra/test_program.py cites each line's reason; parliament checks names).
CAPACITY_ACTIONS = [
    "autoscaling:PutScheduledUpdateGroupAction",  # MaxSize at a time, recurring
    "autoscaling:BatchPutScheduledUpdateGroupAction",
    "autoscaling:StartInstanceRefresh",  # DesiredConfiguration: another template or types
    "autoscaling:RollbackInstanceRefresh",  # back to an earlier template
    "autoscaling:PutScalingPolicy",  # predictive IncreaseMaxCapacity raises MaxSize
    "autoscaling:PutWarmPool",  # running or stopped instances beside the group
    "autoscaling:LaunchInstances",  # launches into the group for the caller
    "autoscaling:PutLifecycleHook",  # a long hook keeps braked instances billing
    "autoscaling:SuspendProcesses",  # suspending Terminate makes the brake's desired=0 moot
    "autoscaling:DisableMetricsCollection",  # the meter reads GroupTotalInstances
    "autoscaling:DetachInstances",  # a detached instance runs on, outside group and meter
    "autoscaling:EnterStandby",  # standby instances bill but are not GroupTotalInstances
    "ec2:ImportInstance",  # VM import launches an instance
    "ec2:RunScheduledInstances",
]
BRAKE_TAG_ACTIONS = ["autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags"]
# Commitments bill whether or not anything runs.
COMMITMENT_ACTIONS = [
    "ec2:PurchaseReservedInstancesOffering",
    "ec2:PurchaseHostReservation",
    "ec2:AllocateHosts",
    "ec2:CreateCapacityReservation",
    "ec2:CreateCapacityReservationFleet",
    "ec2:PurchaseCapacityBlock",
    "ec2:PurchaseScheduledInstances",
    "ec2:AcceptReservedInstancesExchangeQuote",
    "savingsplans:CreateSavingsPlan",
]
# Ways a guarded key could make an identity that carries no guard.
IDENTITY_ACTIONS = [
    "iam:CreateUser",
    "iam:CreateRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:RemoveUserFromGroup",
]
GUARD_ACTIONS = [
    "iam:CreatePolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
]
DETACH_ACTIONS = ["iam:DetachUserPolicy", "iam:DetachGroupPolicy", "iam:DetachRolePolicy"]
# The account's running vCPUs of every EC2 class (Standard, F, G, Inf, P, X, DL, Trn...; spot
# and on-demand), summed by one Metrics Insights query: a metric-math alarm may reference at
# most 10 metrics (CloudWatch User Guide, alarm limits), fewer than the classes AWS/Usage
# publishes (Service Quotas' UsageMetric of each "Running On-Demand ..." and "All ... Spot
# Instance Requests" quota). Each class's ResourceCount is one observation per minute, so the
# SUM over a one-minute bucket is the account's total.
VCPU_QUERY = (
    'SELECT SUM(ResourceCount) FROM SCHEMA("AWS/Usage", Class, Resource, Service, Type) '
    "WHERE Service = 'EC2' AND Resource = 'vCPU' AND Type = 'Resource'"
)
VCPU_PERIOD = 60


@dataclass(frozen=True)
class KeyLeakGuardArgs:
    names: StackNames
    region: str
    instance_types: tuple[str, ...]
    max_size: int
    # vCPUs the account may run in the region before the alarm fires (guards.accountVcpus).
    account_vcpus: int
    alerts_topic_arn: pulumi.Input[str]


def health_event_pattern() -> str:
    return json.dumps(
        {
            "source": ["aws.health"],
            "detail-type": ["AWS Health Event"],
            "detail": {"service": ["RISK"], "eventTypeCode": [EXPOSED_KEYS_EVENT_TYPE]},
        }
    )


def launch_guard_name(names: StackNames) -> str:
    return f"{names.prefix}-launch-guard"


def launch_guard_policy(
    region: str,
    instance_types: tuple[str, ...],
    names: StackNames,
    *,
    account_id: str,
    max_size: int,
) -> str:
    """Deny launches outside the region, of other types, or not tagged for this owner, and
    every side door around that (see the module docstring)."""
    instance_arn = "arn:aws:ec2:*:*:instance/*"
    guard_arn = f"arn:aws:iam::{account_id}:policy/{launch_guard_name(names)}"
    statements = [
        {
            "Sid": "DenyLaunchOutsideStackRegion",
            "Effect": "Deny",
            "Action": LAUNCH_ACTIONS,
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:RequestedRegion": [region]}},
        },
        {
            "Sid": "DenyOtherInstanceTypes",
            "Effect": "Deny",
            "Action": LAUNCH_ACTIONS,
            "Resource": instance_arn,
            "Condition": {"StringNotEquals": {"ec2:InstanceType": sorted(instance_types)}},
        },
        {
            "Sid": "DenyLaunchWithoutProjectTag",
            "Effect": "Deny",
            "Action": LAUNCH_ACTIONS,
            "Resource": instance_arn,
            "Condition": {"StringNotEquals": {"aws:RequestTag/Project": PROJECT}},
        },
        {
            # The value, not just the key: the budget counts Owner=<owner> only, so an
            # instance tagged for someone else would run outside it.
            "Sid": "DenyLaunchForAnotherOwner",
            "Effect": "Deny",
            "Action": LAUNCH_ACTIONS,
            "Resource": instance_arn,
            "Condition": {"StringNotEquals": {f"aws:RequestTag/{OWNER_TAG}": names.owner}},
        },
        {
            "Sid": "DenyLaunchSideDoors",
            "Effect": "Deny",
            "Action": SIDE_DOOR_ACTIONS,
            "Resource": "*",
        },
        {
            # `spotcube down` sets MaxSize 0 and a release restores it; more is a new fleet.
            "Sid": "DenyGrowingTheGroup",
            "Effect": "Deny",
            "Action": ["autoscaling:UpdateAutoScalingGroup"],
            "Resource": "*",
            "Condition": {"NumericGreaterThan": {"autoscaling:MaxSize": str(max_size)}},
        },
        {
            "Sid": "DenyOtherTypesInTheGroup",
            "Effect": "Deny",
            "Action": ["autoscaling:UpdateAutoScalingGroup"],
            "Resource": "*",
            "Condition": {
                "ForAnyValue:StringNotEquals": {"autoscaling:InstanceTypes": sorted(instance_types)}
            },
        },
        {
            "Sid": "DenyGroupCapacityDoors",
            "Effect": "Deny",
            "Action": CAPACITY_ACTIONS,
            "Resource": "*",
        },
        braked_group_statement(),
        {
            "Sid": "DenyTouchingTheBrakeTag",
            "Effect": "Deny",
            "Action": BRAKE_TAG_ACTIONS,
            "Resource": "*",
            "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": [BRAKE_TAG]}},
        },
        {"Sid": "DenyCommitments", "Effect": "Deny", "Action": COMMITMENT_ACTIONS, "Resource": "*"},
        {
            "Sid": "DenyUnguardedIdentities",
            "Effect": "Deny",
            "Action": IDENTITY_ACTIONS,
            "Resource": "*",
        },
        {
            "Sid": "DenyKeysForOtherUsers",
            "Effect": "Deny",
            "Action": ["iam:CreateAccessKey"],
            # A user's own ARN, with or without an IAM path.
            "NotResource": [
                f"arn:aws:iam::{account_id}:user/${{aws:username}}",
                f"arn:aws:iam::{account_id}:user/*/${{aws:username}}",
            ],
        },
        {
            "Sid": "DenyDetachingTheGuard",
            "Effect": "Deny",
            "Action": DETACH_ACTIONS,
            "Resource": "*",
            "Condition": {"ArnEquals": {"iam:PolicyARN": [guard_arn]}},
        },
        {
            "Sid": "DenyChangingTheGuard",
            "Effect": "Deny",
            "Action": GUARD_ACTIONS,
            "Resource": [guard_arn],
        },
    ]
    # Compact: IAM counts a managed policy's characters against a 6,144 limit.
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


def vcpu_alarm_queries() -> list[Any]:
    """The alarm's one query: running vCPUs of every EC2 class in the region."""
    return [
        {
            "id": "vcpus",
            "label": "running vCPUs, every EC2 class",
            "expression": VCPU_QUERY,
            "period": VCPU_PERIOD,
            "return_data": True,
        }
    ]


def quarantine_policy(account_id: str, alerts_topic_arn: str, function_name: str) -> str:
    user_arn = f"arn:aws:iam::{account_id}:user/*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "FindAndDeactivateKeys",
                    "Effect": "Allow",
                    "Action": [
                        "iam:GetAccessKeyLastUsed",
                        "iam:ListAccessKeys",
                        "iam:UpdateAccessKey",
                        "iam:ListAttachedUserPolicies",
                    ],
                    "Resource": [user_arn],
                },
                {
                    # Only the quarantine policy: this role must not be a way to grant admin.
                    "Sid": "AttachQuarantineOnly",
                    "Effect": "Allow",
                    "Action": ["iam:AttachUserPolicy"],
                    "Resource": [user_arn],
                    "Condition": {"ArnEquals": {"iam:PolicyARN": DEFAULT_POLICY_ARN}},
                },
                *lambda_notify_and_log_statements(
                    region=HEALTH_REGION,
                    account_id=account_id,
                    function_name=function_name,
                    alerts_topic_arn=alerts_topic_arn,
                ),
            ],
        }
    )


class KeyLeakGuard(pulumi.ComponentResource):
    quarantine_function_arn: pulumi.Output[str]
    launch_guard_policy_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: KeyLeakGuardArgs,
        account_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("spotcube:infra:KeyLeakGuard", name, None, opts)
        function = self._quarantine(name, args, account_id)
        guard = self._launch_guard(name, args, account_id)
        self._account_vcpu_alarm(name, args)
        self.quarantine_function_arn = function.arn
        self.launch_guard_policy_arn = guard.arn
        self.register_outputs({"quarantine": function.arn, "launch_guard_policy": guard.arn})

    def _quarantine(
        self, name: str, args: KeyLeakGuardArgs, account_id: pulumi.Input[str]
    ) -> aws.lambda_.Function:
        """The quarantine Lambda, run by AWS Health's exposed-keys event (in the Health
        region, where those events are delivered)."""
        child = pulumi.ResourceOptions(parent=self)
        function_name = args.names.quarantine_function
        function = stack_lambda(
            f"{name}-quarantine",
            parent=self,
            function_name=function_name,
            description="spotcube: deactivate and quarantine exposed access keys",
            module="quarantine",
            policy=pulumi.Output.all(account_id, args.alerts_topic_arn).apply(
                lambda v: quarantine_policy(v[0], v[1], function_name)
            ),
            environment={
                "ALERTS_TOPIC_ARN": args.alerts_topic_arn,
                "QUARANTINE_POLICY_ARN": DEFAULT_POLICY_ARN,
            },
            tags=cost_tags(args.names),
            region=HEALTH_REGION,
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-exposed-keys",
            region=HEALTH_REGION,
            description="AWS Health: an access key of this account was found in public",
            event_pattern=health_event_pattern(),
            tags=cost_tags(args.names),
            opts=child,
        )
        aws.lambda_.Permission(
            f"{name}-quarantine-events",
            region=HEALTH_REGION,
            action="lambda:InvokeFunction",
            function=function.name,
            principal="events.amazonaws.com",
            source_arn=rule.arn,
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-exposed-keys",
            region=HEALTH_REGION,
            rule=rule.name,
            arn=function.arn,
            opts=child,
        )
        return function

    def _launch_guard(
        self, name: str, args: KeyLeakGuardArgs, account_id: pulumi.Input[str]
    ) -> aws.iam.Policy:
        """The managed policy to attach to humans and CI (:func:`launch_guard_policy`)."""
        names = args.names
        return aws.iam.Policy(
            f"{name}-launch-guard",
            name=launch_guard_name(names),
            description=(
                f"Attach to humans and CI, not to the identity that runs pulumi up: no "
                f"instance launches outside {args.region}, of other types, or not tagged "
                f"Owner={names.owner}, and no side doors"
            ),
            policy=pulumi.Output.from_input(account_id).apply(
                lambda account: launch_guard_policy(
                    args.region,
                    args.instance_types,
                    names,
                    account_id=account,
                    max_size=args.max_size,
                )
            ),
            tags=cost_tags(names),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _account_vcpu_alarm(self, name: str, args: KeyLeakGuardArgs) -> None:
        """AWS/Usage publishes the account's running vCPUs per class; more than the account
        is meant to run (this fleet, or every stack's with guards.accountVcpus) means
        someone else is launching."""
        aws.cloudwatch.MetricAlarm(
            f"{name}-account-vcpus",
            alarm_description=(
                f"running vCPUs of every EC2 class in {args.region} exceed the "
                f"{args.account_vcpus} expected (spotcube:guards.accountVcpus)"
            ),
            metric_queries=vcpu_alarm_queries(),
            evaluation_periods=VCPU_ALARM_MINUTES,
            datapoints_to_alarm=VCPU_ALARM_MINUTES,
            threshold=args.account_vcpus,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[args.alerts_topic_arn],
            tags=cost_tags(args.names),
            opts=pulumi.ResourceOptions(parent=self),
        )
