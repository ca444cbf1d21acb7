"""Find a deployed stack's guard parts from its outputs: the brake, its topic, the alarms.

Physical names are the stack's own (:mod:`contract.names`: the brake Lambda, the workers' log
group, the quarantine Lambda), found from the prefix of the fleet's name in the outputs;
everything else is found by what it is wired to, never by Pulumi's generated names.
"""

from __future__ import annotations

from typing import Any

from contract import names
from spotcube.account.session import Aws
from spotcube.stack import StackOutputs


def stack_prefix(outputs: StackOutputs) -> str:
    """``spotcube-<owner>-<stack>``, the prefix of every physical name of the stack."""
    return names.stack_prefix_of_asg(outputs.asg_name)


def brake_function_name(outputs: StackOutputs) -> str:
    return names.brake_function_name(stack_prefix(outputs))


def worker_log_group(outputs: StackOutputs) -> str:
    return names.worker_log_group_name(stack_prefix(outputs))


def quarantine_function_name(outputs: StackOutputs) -> str:
    return names.quarantine_function_name(stack_prefix(outputs))


def brake_function_arn(aws: Aws, outputs: StackOutputs) -> str:
    config = aws.client("lambda").get_function_configuration(
        FunctionName=brake_function_name(outputs)
    )
    return str(config["FunctionArn"])


def brake_topics(aws: Aws, function_arn: str) -> list[str]:
    """Topics whose subscriber is the brake Lambda: the ones that can pull the brake."""
    sns = aws.client("sns")
    topics: list[str] = []
    for page in sns.get_paginator("list_subscriptions").paginate():
        for sub in page["Subscriptions"]:
            if sub.get("Protocol") == "lambda" and sub.get("Endpoint") == function_arn:
                topics.append(sub["TopicArn"])
    return sorted(set(topics))


def burn_alarms(aws: Aws, outputs: StackOutputs) -> list[dict[str, Any]]:
    """CloudWatch alarms on the fleet's in-service instances (the fast brake)."""
    alarms: list[dict[str, Any]] = []
    paginator = aws.client("cloudwatch").get_paginator("describe_alarms")
    for page in paginator.paginate(AlarmTypes=["MetricAlarm"]):
        for alarm in page["MetricAlarms"]:
            dims = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
            if dims.get("AutoScalingGroupName") == outputs.asg_name:
                alarms.append(alarm)
    return alarms
