"""The brake: scale the fleet to zero when the budget or the burn-rate alarm fires.

Triggered through an SNS topic by AWS Budgets (100% actual or forecast) and by a CloudWatch
alarm on the fleet's instance-hours. Queued jobs stay queued: the queue is not touched, and
instances terminate through the group's lifecycle hook, which gives workers time to
checkpoint and hand their job back. Running it again changes nothing (idempotent).

Environment: ``ASG_NAME``, ``ALERTS_TOPIC_ARN`` (optional).
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

_BATCH = 50  # SetInstanceProtection accepts at most 50 instance ids per call


def reasons(event: dict[str, Any]) -> list[str]:
    """Why the brake was called, one line per SNS record; alarms leaving ALARM are skipped."""
    found: list[str] = []
    for record in event.get("Records", []):
        sns = record.get("Sns", {})
        message = sns.get("Message", "")
        try:
            doc = json.loads(message)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "AlarmName" in doc:
            if doc.get("NewStateValue") != "ALARM":
                continue
            found.append(f"alarm {doc['AlarmName']}: {doc.get('NewStateReason', '')}".strip())
        else:
            subject = sns.get("Subject") or "budget notification"
            found.append(str(subject))
    if not event.get("Records"):
        found.append("invoked directly")
    return found


def apply_brake(asg_name: str, autoscaling: Any) -> dict[str, Any]:
    """Set min, max and desired capacity to zero and lift scale-in protection."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])
    if not groups["AutoScalingGroups"]:
        raise LookupError(f"Auto Scaling group {asg_name} does not exist")
    group = groups["AutoScalingGroups"][0]
    changed = False
    if (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) != (0, 0, 0):
        autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=asg_name, MinSize=0, MaxSize=0, DesiredCapacity=0
        )
        changed = True
    # Workers protect themselves from scale-in while they work; a protected instance would
    # survive desired=0 and keep billing, so the brake lifts the protection. The lifecycle
    # hook still gives each worker its grace period to checkpoint.
    protected = [
        i["InstanceId"] for i in group.get("Instances", []) if i.get("ProtectedFromScaleIn")
    ]
    for start in range(0, len(protected), _BATCH):
        autoscaling.set_instance_protection(
            AutoScalingGroupName=asg_name,
            InstanceIds=protected[start : start + _BATCH],
            ProtectedFromScaleIn=False,
        )
        changed = True
    return {
        "asg": asg_name,
        "changed": changed,
        "previous": {
            "min": group["MinSize"],
            "max": group["MaxSize"],
            "desired": group["DesiredCapacity"],
        },
        "unprotected": protected,
    }


def _region_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else None


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    why = reasons(event)
    if not why:
        return {"changed": False, "skipped": "no alarm or budget notification in the event"}
    asg_name = os.environ["ASG_NAME"]
    result = apply_brake(asg_name, boto3.client("autoscaling"))
    result["reasons"] = why
    topic = os.environ.get("ALERTS_TOPIC_ARN")
    if topic and result["changed"]:
        sns = boto3.client("sns", region_name=_region_of(topic))
        previous = result["previous"]
        sns.publish(
            TopicArn=topic,
            Subject=f"spotcube brake: {asg_name} scaled to zero",
            Message=(
                f"The spotcube brake scaled {asg_name} to zero (was min {previous['min']}, "
                f"max {previous['max']}, desired {previous['desired']}).\n"
                f"Why: {'; '.join(why)}\n"
                "Queued jobs stay queued. Workers checkpoint before their instances end.\n"
                "To resume, check the bill, then run `pulumi up` (it restores the max size)."
            ),
        )
    print(json.dumps(result))  # one structured line in CloudWatch Logs
    return result
