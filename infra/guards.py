"""Key-leak guards: quarantine exposed keys, confine launches, watch the account's spot vCPUs.

Instances never carry long-lived keys (they use the instance profile, see infra/fleet.py).
For keys that humans and CI hold, three layers:

- AWS Health reports keys found in public repositories as ``AWS_RISK_CREDENTIALS_EXPOSED``,
  only in us-east-1; a rule there invokes the quarantine Lambda (infra/lambdas/quarantine.py).
- A managed launch-guard policy, attached by the group to its humans and CI, denies launching
  instances outside the stack's region, of other types, or without spotcube tags: a stolen
  key of a guarded user cannot start a crypto-mining fleet in another region.
- An alarm on the account's running spot vCPUs catches what the other two miss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.fleet import assume_role_policy
from infra.iam import lambda_notify_and_log_statements
from infra.lambdas import LAMBDA_DIR
from infra.lambdas.quarantine import DEFAULT_POLICY_ARN, EVENT_TYPE
from infra.naming import PROJECT, StackNames
from infra.tags import cost_tags

HEALTH_REGION = "us-east-1"  # where AWS Health delivers account-wide risk events
LAMBDA_RUNTIME = "python3.12"
LOG_RETENTION_DAYS = 30
LAUNCH_ACTIONS = ["ec2:RunInstances"]
# Legacy spot APIs no human here needs: the fleet launches through its Auto Scaling group,
# whose service-linked role this policy does not restrict.
DENIED_ACTIONS = ["ec2:RequestSpotInstances", "ec2:RequestSpotFleet"]


@dataclass(frozen=True)
class KeyLeakGuardArgs:
    names: StackNames
    region: str
    instance_types: tuple[str, ...]
    max_spot_vcpus: int
    alerts_topic_arn: pulumi.Input[str]


def health_event_pattern() -> str:
    return json.dumps(
        {
            "source": ["aws.health"],
            "detail-type": ["AWS Health Event"],
            "detail": {"service": ["RISK"], "eventTypeCode": [EVENT_TYPE]},
        }
    )


def launch_guard_policy(region: str, instance_types: tuple[str, ...], names: StackNames) -> str:
    """Deny instance launches outside the region, of other types, or without spotcube tags."""
    instance_arn = "arn:aws:ec2:*:*:instance/*"
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
            "Sid": "DenyLaunchWithoutOwnerTag",
            "Effect": "Deny",
            "Action": LAUNCH_ACTIONS,
            "Resource": instance_arn,
            "Condition": {"Null": {"aws:RequestTag/Owner": "true"}},
        },
        {
            "Sid": "DenyLegacySpotRequests",
            "Effect": "Deny",
            "Action": DENIED_ACTIONS,
            "Resource": "*",
        },
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


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
        child = pulumi.ResourceOptions(parent=self)
        names = args.names
        function_name = f"{names.prefix}-quarantine"
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-quarantine-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=LOG_RETENTION_DAYS,
            region=HEALTH_REGION,
            tags=cost_tags(names),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-quarantine",
            assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
            description="spotcube: deactivate and quarantine exposed access keys",
            tags=cost_tags(names),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-quarantine",
            role=role.id,
            policy=pulumi.Output.all(account_id, args.alerts_topic_arn).apply(
                lambda v: quarantine_policy(v[0], v[1], function_name)
            ),
            opts=child,
        )
        function = aws.lambda_.Function(
            f"{name}-quarantine",
            name=function_name,
            region=HEALTH_REGION,
            role=role.arn,
            runtime=LAMBDA_RUNTIME,
            handler="quarantine.handler",
            code=pulumi.AssetArchive(
                {"quarantine.py": pulumi.FileAsset(str(LAMBDA_DIR / "quarantine.py"))}
            ),
            timeout=60,
            memory_size=128,
            environment={
                "variables": {
                    "ALERTS_TOPIC_ARN": args.alerts_topic_arn,
                    "QUARANTINE_POLICY_ARN": DEFAULT_POLICY_ARN,
                }
            },
            tags=cost_tags(names),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group]),
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-exposed-keys",
            region=HEALTH_REGION,
            description="AWS Health: an access key of this account was found in public",
            event_pattern=health_event_pattern(),
            tags=cost_tags(names),
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
        guard = aws.iam.Policy(
            f"{name}-launch-guard",
            name=f"{names.prefix}-launch-guard",
            description=(
                "Attach to humans and CI: no instance launches outside "
                f"{args.region}, of other types, or without spotcube tags"
            ),
            policy=launch_guard_policy(args.region, args.instance_types, names),
            tags=cost_tags(names),
            opts=child,
        )
        # AWS/Usage publishes the account's vCPUs of running spot instances; more than this
        # stack's fleet can hold means someone else is launching.
        aws.cloudwatch.MetricAlarm(
            f"{name}-spot-vcpus",
            alarm_description=(
                f"running spot vCPUs exceed the {args.max_spot_vcpus} this stack's fleet can use"
            ),
            namespace="AWS/Usage",
            metric_name="ResourceCount",
            dimensions={
                "Service": "EC2",
                "Type": "Resource",
                "Resource": "vCPU",
                "Class": "Standard/Spot",
            },
            statistic="Maximum",
            period=300,
            evaluation_periods=1,
            threshold=args.max_spot_vcpus,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[args.alerts_topic_arn],
            tags=cost_tags(names),
            opts=child,
        )
        self.quarantine_function_arn = function.arn
        self.launch_guard_policy_arn = guard.arn
        self.register_outputs({"quarantine": function.arn, "launch_guard_policy": guard.arn})
