"""Alerts: the stack's SNS topic, subscribed by the user's emails.

The topic is not KMS-encrypted on purpose: AWS Budgets and CloudWatch alarms cannot publish
to a topic encrypted with the AWS-managed SNS key, and a customer key costs $1/month for
messages that carry no data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from contract.names import StackNames
from infra.tags import cost_tags


@dataclass(frozen=True)
class AlertsArgs:
    names: StackNames
    emails: tuple[str, ...]
    topic_name: str


def publishers_policy(topic_arn: str, account_id: str) -> str:
    """Let Budgets and CloudWatch (of this account only) publish to the topic."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AwsServicesPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": ["budgets.amazonaws.com", "cloudwatch.amazonaws.com"]},
                    "Action": "SNS:Publish",
                    "Resource": topic_arn,
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                }
            ],
        }
    )


class AlertTopic(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: AlertsArgs,
        account_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("spotcube:infra:AlertTopic", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topic = aws.sns.Topic(
            f"{name}-topic", name=args.topic_name, tags=cost_tags(args.names), opts=child
        )
        # Kept: AWS Budgets can subscribe the topic only once this lets it publish, so the
        # budget depends on it (a first deploy would otherwise race).
        self.policy = aws.sns.TopicPolicy(
            f"{name}-publishers",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, account_id).apply(
                lambda v: publishers_policy(v[0], v[1])
            ),
            opts=child,
        )
        for i, email in enumerate(args.emails):
            aws.sns.TopicSubscription(
                f"{name}-email-{i}", topic=topic.arn, protocol="email", endpoint=email, opts=child
            )
        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": topic.arn})
