"""A deployed spotcube stack's guard parts, made on moto's server the way infra/ declares them.

What the brake, the alarms, the guard and the Health rule look like after ``pulumi up``: the
physical names of contract/names.py, the launch-guard document and the Health event pattern of
infra/guards.py, the brake Lambda's own code. Pulumi cannot run here, so the resources are
made with boto3; everything ``spotcube check`` and ``resume`` read is real moto state.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import boto3

from contract.localcloud import LOCAL_CREDENTIALS
from contract.names import StackNames
from infra.budget import METER_PERIOD_SECONDS
from infra.guards import health_event_pattern, launch_guard_policy
from infra.lambdas import LAMBDA_DIR, meter
from spotcube.stack import StackOutputs

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
TYPES = ("m6i.4xlarge", "m6a.4xlarge", "m5.4xlarge", "m5a.4xlarge", "m7i.4xlarge")
EMAILS = ("alice@example.org",)


def client(service: str, endpoint: str, region: str = REGION) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=region, **LOCAL_CREDENTIALS)


def guard_document(names: StackNames, max_size: int) -> str:
    """infra/guards.py's launch guard for this stack."""
    return launch_guard_policy(REGION, TYPES, names, account_id=ACCOUNT, max_size=max_size)


def _zip(path_name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(LAMBDA_DIR / path_name, path_name)
    return buffer.getvalue()


@dataclass(frozen=True)
class Deployed:
    outputs: StackOutputs
    names: StackNames
    brake_topic: str
    alarm: str
    max_size: int


def deploy(
    endpoint: str,
    *,
    owner: str = "alice",
    stack: str = "sandbox",
    max_size: int = 10,
    brake_threshold_usd: float | None = None,
    actual_usd: float = 0.0,
    limit_usd: float = 200.0,
    brake_state: str = "OK",
    group_metrics: bool = True,
) -> Deployed:
    names = StackNames(owner=owner, stack=stack)
    iam = client("iam", endpoint)
    role = iam.create_role(
        RoleName=f"{names.prefix}-lambda",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]

    ec2 = client("ec2", endpoint)
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{names.prefix}-lt", LaunchTemplateData={"ImageId": "ami-12c6146b"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling = client("autoscaling", endpoint)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=names.asg,
        MinSize=0,
        MaxSize=max_size,
        DesiredCapacity=0,
        AvailabilityZones=["us-east-1a", "us-east-1b"],
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": template},
                "Overrides": [{"InstanceType": t} for t in TYPES],
            }
        },
        Tags=[
            {"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in names.cost_tags.items()
        ],
    )
    if group_metrics:
        autoscaling.enable_metrics_collection(
            AutoScalingGroupName=names.asg,
            Granularity="1Minute",
            Metrics=["GroupInServiceInstances", "GroupDesiredCapacity", "GroupTotalInstances"],
        )

    lam = client("lambda", endpoint)
    brake = lam.create_function(
        FunctionName=f"{names.asg}-brake",
        Runtime="python3.12",
        Role=role,
        Handler="brake.handler",
        Code={"ZipFile": _zip("brake.py")},
        Environment={"Variables": {"ASG_NAME": names.asg}},
    )["FunctionArn"]
    sns = client("sns", endpoint)
    topic = sns.create_topic(Name=f"{names.prefix}-brake")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=brake)
    lam.add_permission(
        FunctionName=f"{names.asg}-brake",
        StatementId="brake-sns",
        Action="lambda:InvokeFunction",
        Principal="sns.amazonaws.com",
        SourceArn=topic,
    )
    alarm = "cost-burn-rate-3f1c2aa"  # Pulumi's auto-name: physical name + random suffix
    client("cloudwatch", endpoint).put_metric_alarm(
        AlarmName=alarm,
        Namespace=meter.NAMESPACE,
        MetricName=meter.METRIC,
        Dimensions=[{"Name": "AutoScalingGroupName", "Value": names.asg}],
        Statistic="Maximum",
        Period=METER_PERIOD_SECONDS,
        EvaluationPeriods=1,
        Threshold=limit_usd if brake_threshold_usd is None else brake_threshold_usd,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
        AlarmActions=[topic],
    )

    def note(kind: str, percent: float, state: str = "OK") -> dict[str, Any]:
        return {
            "Notification": {
                "NotificationType": kind,
                "ComparisonOperator": "GREATER_THAN",
                "Threshold": percent,
                "ThresholdType": "PERCENTAGE",
                "NotificationState": state,
            },
            "Subscribers": [
                {"SubscriptionType": "SNS", "Address": topic},
                *({"SubscriptionType": "EMAIL", "Address": e} for e in EMAILS),
            ],
        }

    spent = "ALARM" if brake_state == "ALARM" else "OK"
    client("budgets", endpoint).create_budget(
        AccountId=ACCOUNT,
        Budget={
            "BudgetName": names.budget,
            "BudgetLimit": {"Amount": f"{limit_usd:.2f}", "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
            "CalculatedSpend": {"ActualSpend": {"Amount": f"{actual_usd:.2f}", "Unit": "USD"}},
        },
        NotificationsWithSubscribers=[
            note("ACTUAL", 50.0, spent),
            note("ACTUAL", 80.0, spent),
            note("ACTUAL", 100.0, brake_state),
            note("FORECASTED", 100.0, spent),
        ],
    )

    guard = iam.create_policy(
        PolicyName=f"{names.prefix}-launch-guard",
        PolicyDocument=guard_document(names, max_size),
    )["Policy"]["Arn"]

    lam_east = client("lambda", endpoint, "us-east-1")
    quarantine = lam_east.create_function(
        FunctionName=f"{names.prefix}-quarantine",
        Runtime="python3.12",
        Role=role,
        Handler="quarantine.handler",
        Code={"ZipFile": _zip("quarantine.py")},
    )["FunctionArn"]
    events = client("events", endpoint, "us-east-1")
    rule = events.put_rule(Name="guards-exposed-keys-9d2b1e0", EventPattern=health_event_pattern())
    events.put_targets(
        Rule="guards-exposed-keys-9d2b1e0", Targets=[{"Id": "quarantine", "Arn": quarantine}]
    )
    lam_east.add_permission(
        FunctionName=f"{names.prefix}-quarantine",
        StatementId="quarantine-events",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=rule["RuleArn"],
    )
    client("logs", endpoint).create_log_group(logGroupName=f"/spotcube/{names.prefix}/workers")

    outputs = StackOutputs(
        region=REGION,
        raw_bucket=names.raw_bucket,
        products_bucket=names.products_bucket,
        job_queue_url=f"{endpoint}/{ACCOUNT}/{names.job_queue}",
        dead_letter_queue_url=f"{endpoint}/{ACCOUNT}/{names.dead_letter_queue}",
        asg_name=names.asg,
        budget_name=names.budget,
        launch_guard_policy_arn=guard,
    )
    return Deployed(outputs, names, topic, alarm, max_size)
