"""Cost guard: a monthly budget on the owner's tag, and a brake that scales the fleet to zero.

AWS Budgets refresh a few times a day, so they are the backstop; the faster trigger is a
CloudWatch alarm on the fleet's month-to-date spend at most, which a scheduled meter Lambda
(infra/lambdas/meter.py) publishes every few minutes (ADR 0002). Both publish to a brake
topic whose only subscriber is the brake Lambda (infra/lambdas/brake.py); the human-facing
alerts topic hears about it from the Lambda and from the budget's own notifications.

The budget filters on the ``Owner`` cost allocation tag, which must be active in the payer
account. Activating it is deliberately not part of ``pulumi up``: on a fresh account the key
is unknown to billing for up to a day and the create fails ("empty result",
hashicorp/terraform-provider-aws#29068, #31442), and an Organizations member account cannot
activate tags at all. ``spotcube preflight`` reports the tag's status and the command that
activates it (docs/infra.md, "Budget gaps").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from contract.costfacts import OWNER_TAG
from contract.names import StackNames
from infra.alerts import AlertsArgs, AlertTopic
from infra.config import BudgetConfig
from infra.fleet import asg_arn_pattern
from infra.iam import lambda_notify_and_log_statements
from infra.lambdafn import stack_lambda
from infra.lambdas import meter
from infra.tags import cost_tags

ACTUAL_THRESHOLDS = (50, 80, 100)
FORECAST_THRESHOLD = 100
BRAKE_THRESHOLD = 100  # actual spend at 100% brakes; a forecast only warns
METER_PERIOD_SECONDS = meter.METER_MINUTES * 60


@dataclass(frozen=True)
class CostGuardArgs:
    names: StackNames
    region: str
    budget: BudgetConfig
    alerts_topic_arn: pulumi.Input[str]
    account_id: pulumi.Input[str]
    on_demand_base: int = 0
    # The fleet's instance types: the meter prices spot minutes at their Spot prices.
    instance_types: tuple[str, ...] = ()
    # The alerts topic's policy (lets AWS Budgets publish): the budget waits for it.
    alerts_topic_policy: pulumi.Resource | None = None


def budget_notifications(
    alerts_topic_arn: pulumi.Input[str],
    brake_topic_arn: pulumi.Input[str],
    emails: tuple[str, ...],
) -> list[aws.budgets.BudgetNotificationArgs]:
    """50/80/100% actual and 100% forecast; the 100% actual one goes to the brake."""
    notes: list[aws.budgets.BudgetNotificationArgs] = []
    for percent in ACTUAL_THRESHOLDS:
        topic = brake_topic_arn if percent == BRAKE_THRESHOLD else alerts_topic_arn
        notes.append(
            aws.budgets.BudgetNotificationArgs(
                comparison_operator="GREATER_THAN",
                notification_type="ACTUAL",
                threshold=percent,
                threshold_type="PERCENTAGE",
                subscriber_email_addresses=list(emails),
                subscriber_sns_topic_arns=[topic],
            )
        )
    notes.append(
        aws.budgets.BudgetNotificationArgs(
            comparison_operator="GREATER_THAN",
            notification_type="FORECASTED",
            threshold=FORECAST_THRESHOLD,
            threshold_type="PERCENTAGE",
            subscriber_email_addresses=list(emails),
            subscriber_sns_topic_arns=[alerts_topic_arn],
        )
    )
    return notes


def brake_policy(
    *, region: str, account_id: str, asg_name: str, function_name: str, alerts_topic_arn: str
) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ScaleOwnGroupToZero",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:CreateOrUpdateTags",
                        "autoscaling:UpdateAutoScalingGroup",
                        "autoscaling:SetInstanceProtection",
                    ],
                    "Resource": [asg_arn_pattern(region, account_id, asg_name)],
                },
                {
                    # Describe calls support no resource-level permissions.
                    "Sid": "DescribeGroups",
                    "Effect": "Allow",
                    "Action": ["autoscaling:DescribeAutoScalingGroups"],
                    "Resource": ["*"],
                },
                *lambda_notify_and_log_statements(
                    region=region,
                    account_id=account_id,
                    function_name=function_name,
                    alerts_topic_arn=alerts_topic_arn,
                ),
            ],
        }
    )


def meter_policy(*, region: str, account_id: str, function_name: str, alerts_topic_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    # Neither call supports resource-level permissions; PutMetricData is
                    # narrowed to the stack's namespace by condition key.
                    "Sid": "ReadGroupMetrics",
                    "Effect": "Allow",
                    "Action": ["cloudwatch:GetMetricData"],
                    "Resource": ["*"],
                },
                {
                    # The Spot prices the meter bills spot minutes at (no resource level).
                    "Sid": "ReadSpotPrices",
                    "Effect": "Allow",
                    "Action": ["ec2:DescribeSpotPriceHistory"],
                    "Resource": ["*"],
                },
                {
                    "Sid": "PublishSpend",
                    "Effect": "Allow",
                    "Action": ["cloudwatch:PutMetricData"],
                    "Resource": ["*"],
                    "Condition": {"StringEquals": {"cloudwatch:namespace": meter.NAMESPACE}},
                },
                *lambda_notify_and_log_statements(
                    region=region,
                    account_id=account_id,
                    function_name=function_name,
                    alerts_topic_arn=alerts_topic_arn,
                ),
            ],
        }
    )


def _meter(
    name: str, args: CostGuardArgs, child: pulumi.ResourceOptions, parent: pulumi.Resource
) -> aws.lambda_.Function:
    """The scheduled Lambda that publishes the month-to-date spend the alarm reads."""
    names = args.names
    function_name = names.meter_function
    budget = args.budget
    function = stack_lambda(
        f"{name}-meter",
        parent=parent,
        function_name=function_name,
        description="spotcube meter: publish the fleet's month-to-date spend",
        module="meter",
        policy=pulumi.Output.all(args.account_id, args.alerts_topic_arn).apply(
            lambda v: meter_policy(
                region=args.region,
                account_id=v[0],
                function_name=function_name,
                alerts_topic_arn=v[1],
            )
        ),
        environment={
            "ASG_NAME": names.asg,
            "ON_DEMAND_USD": f"{budget.on_demand_usd:.6f}",
            "SPOT_BOUND_USD": f"{budget.spot_bound_usd:.6f}",
            "ON_DEMAND_BASE": str(args.on_demand_base),
            "INSTANCE_TYPES": ",".join(args.instance_types),
        },
        tags=cost_tags(names),
    )
    rule = aws.cloudwatch.EventRule(
        f"{name}-meter",
        description="spotcube meter: the fleet's month-to-date spend for the brake's alarm",
        schedule_expression=f"rate({meter.METER_MINUTES} minutes)",
        tags=cost_tags(names),
        opts=child,
    )
    permission = aws.lambda_.Permission(
        f"{name}-meter-events",
        action="lambda:InvokeFunction",
        function=function.name,
        principal="events.amazonaws.com",
        source_arn=rule.arn,
        opts=child,
    )
    aws.cloudwatch.EventTarget(
        f"{name}-meter",
        rule=rule.name,
        arn=function.arn,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[permission]),
    )
    return function


class CostGuard(pulumi.ComponentResource):
    budget_name: pulumi.Output[str]
    brake_function_arn: pulumi.Output[str]
    brake_topic_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: CostGuardArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("spotcube:infra:CostGuard", name, None, opts)
        brake_topic = AlertTopic(
            f"{name}-brake",
            AlertsArgs(names=args.names, emails=(), topic_name=args.names.brake_topic),
            account_id=args.account_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        budget = self._budget(name, args, brake_topic)
        function = self._brake(name, args, brake_topic)
        self._burn_rate_alarm(name, args, brake_topic)
        self.budget_name = budget.name
        self.brake_function_arn = function.arn
        self.brake_topic_arn = brake_topic.topic_arn
        self.register_outputs({"budget_name": budget.name, "brake": function.arn})

    def _budget(
        self, name: str, args: CostGuardArgs, brake_topic: AlertTopic
    ) -> aws.budgets.Budget:
        """The monthly cost budget of the stack's owner tag; its notifications call the
        brake topic (at 100 %) and the alerts topic and emails (:func:`budget_notifications`)."""
        names = args.names
        return aws.budgets.Budget(
            f"{name}-budget",
            name=names.budget,
            budget_type="COST",
            limit_amount=f"{args.budget.monthly_usd:.2f}",
            limit_unit="USD",
            time_unit="MONTHLY",
            cost_filters=[{"name": "TagKeyValue", "values": [f"user:{OWNER_TAG}${names.owner}"]}],
            notifications=budget_notifications(
                args.alerts_topic_arn, brake_topic.topic_arn, args.budget.emails
            ),
            tags=cost_tags(names),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[
                    brake_topic.policy,
                    *([args.alerts_topic_policy] if args.alerts_topic_policy else []),
                ],
            ),
        )

    def _brake(
        self, name: str, args: CostGuardArgs, brake_topic: AlertTopic
    ) -> aws.lambda_.Function:
        """The brake Lambda (scales the fleet to zero), subscribed to the brake topic."""
        names = args.names
        child = pulumi.ResourceOptions(parent=self)
        function_name = names.brake_function
        function = stack_lambda(
            f"{name}-brake",
            parent=self,
            function_name=function_name,
            description="spotcube brake: scale the stack's fleet to zero",
            module="brake",
            policy=pulumi.Output.all(args.account_id, args.alerts_topic_arn).apply(
                lambda v: brake_policy(
                    region=args.region,
                    account_id=v[0],
                    asg_name=names.asg,
                    function_name=function_name,
                    alerts_topic_arn=v[1],
                )
            ),
            environment={"ASG_NAME": names.asg, "ALERTS_TOPIC_ARN": args.alerts_topic_arn},
            tags=cost_tags(names),
        )
        aws.lambda_.Permission(
            f"{name}-brake-sns",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="sns.amazonaws.com",
            source_arn=brake_topic.topic_arn,
            opts=child,
        )
        aws.sns.TopicSubscription(
            f"{name}-brake",
            topic=brake_topic.topic_arn,
            protocol="lambda",
            endpoint=function.arn,
            opts=child,
        )
        return function

    def _burn_rate_alarm(self, name: str, args: CostGuardArgs, brake_topic: AlertTopic) -> None:
        """The fast trigger: the meter publishes the fleet's month-to-date spend at most; the
        alarm brakes when it exceeds the budget (one home for both: infra/lambdas/meter.py)."""
        names = args.names
        meter_fn = _meter(name, args, pulumi.ResourceOptions(parent=self), self)
        threshold = args.budget.brake_threshold_usd
        aws.cloudwatch.MetricAlarm(
            f"{name}-burn-rate",
            alarm_description=(
                f"the fleet's month-to-date spend, priced at most, exceeds ${threshold:,.2f} "
                "(the monthly budget): the brake scales it to zero"
            ),
            namespace=meter.NAMESPACE,
            metric_name=meter.METRIC,
            dimensions={"AutoScalingGroupName": names.asg},
            statistic="Maximum",
            period=METER_PERIOD_SECONDS,
            evaluation_periods=1,
            threshold=threshold,
            comparison_operator="GreaterThanThreshold",
            # No datapoint means no meter run; the meter's own errors alarm on its log.
            treat_missing_data="missing",
            alarm_actions=[brake_topic.topic_arn, args.alerts_topic_arn],
            tags=cost_tags(names),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[meter_fn]),
        )
