"""The brake: scale the fleet to zero when the budget or the burn-rate alarm fires.

Triggered through an SNS topic by AWS Budgets (100% actual or forecast) and by a CloudWatch
alarm on the fleet's instance-hours. Queued jobs stay queued: the queue is not touched, and
instances terminate through the group's lifecycle hook, which gives workers time to
checkpoint and hand their job back. Running it again changes nothing (idempotent).

Invoked with ``{"dry_run": true}`` (``spotcube check``) it changes nothing and returns what it
would do: each group, its current sizes, the sizes it would set and the instances whose
scale-in protection it would lift.

Before resizing, the brake tags the group ``spotcube:brake=on``. While the tag is on, the
launch guard (guarded keys) and the worker role deny every call that would bring capacity or
scale-in protection back (infra/iam.py), so a worker between jobs cannot protect itself again
and a stolen key cannot undo the brake. Pulumi ignores the group's sizes, so ``pulumi up``
(with or without ``--refresh``) does not release it either: only ``spotcube resume``, run by
the deploying identity, removes the tag, after re-arming the budget's notification.

Environment: ``ASG_NAME``, ``ALERTS_TOPIC_ARN`` (optional).
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

# The zip ships the contract package beside this file (infra/lambdafn.py).
from contract.brake import BRAKE_TAG, BRAKE_TAG_VALUE

_BATCH = 50  # SetInstanceProtection accepts at most 50 instance ids per call
BRAKED = {"min": 0, "max": 0, "desired": 0}
RELEASE_HINT = (
    "To resume, check the bill, then run `spotcube resume` with the identity that runs "
    "`pulumi up`: it re-arms the budget's brake, removes the spotcube:brake tag and restores "
    "the group. Nothing else releases it: `pulumi up` ignores the group's sizes, and guarded "
    "keys and workers are denied while the tag is on."
)


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


def plan_brake(asg_name: str, autoscaling: Any) -> dict[str, Any]:
    """What braking ``asg_name`` would change, read-only; LookupError if it does not exist."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])
    if not groups["AutoScalingGroups"]:
        raise LookupError(f"Auto Scaling group {asg_name} does not exist")
    group = groups["AutoScalingGroups"][0]
    current = {
        "min": group["MinSize"],
        "max": group["MaxSize"],
        "desired": group["DesiredCapacity"],
    }
    # Workers protect themselves from scale-in while they work; a protected instance would
    # survive desired=0 and keep billing, so the brake lifts the protection. The lifecycle
    # hook still gives each worker its grace period to checkpoint.
    protected = [
        i["InstanceId"] for i in group.get("Instances", []) if i.get("ProtectedFromScaleIn")
    ]
    return {
        "asg": asg_name,
        "current": current,
        "target": dict(BRAKED),
        "resize": current != BRAKED,
        "unprotect": protected,
        "instances": len(group.get("Instances", [])),
    }


def apply_brake(asg_name: str, autoscaling: Any, *, hold: bool = False) -> dict[str, Any]:
    """Set min, max and desired capacity to zero and lift scale-in protection.

    ``hold`` (the brake, not `spotcube down`) first tags the group so that nothing but
    `spotcube resume` with the deploying identity brings it back (module docstring).
    """
    planned = plan_brake(asg_name, autoscaling)
    if hold:
        _tag_braked(asg_name, autoscaling)
    if planned["resize"]:
        autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=asg_name, MinSize=0, MaxSize=0, DesiredCapacity=0
        )
    protected = planned["unprotect"]
    for start in range(0, len(protected), _BATCH):
        autoscaling.set_instance_protection(
            AutoScalingGroupName=asg_name,
            InstanceIds=protected[start : start + _BATCH],
            ProtectedFromScaleIn=False,
        )
    return {
        "asg": asg_name,
        "changed": bool(planned["resize"] or protected),
        "previous": planned["current"],
        "unprotected": protected,
    }


def _tag_braked(asg_name: str, autoscaling: Any) -> None:
    # The tag first: from here on workers cannot re-protect themselves (infra/fleet.py).
    autoscaling.create_or_update_tags(
        Tags=[
            {
                "ResourceId": asg_name,
                "ResourceType": "auto-scaling-group",
                "Key": BRAKE_TAG,
                "Value": BRAKE_TAG_VALUE,
                "PropagateAtLaunch": False,
            }
        ]
    )


def dry_run(asg_name: str, autoscaling: Any) -> dict[str, Any]:
    """The ``{"dry_run": true}`` answer: what the brake would do, JSON-able, nothing changed."""
    try:
        groups = [plan_brake(asg_name, autoscaling)]
        problems: list[str] = []
    except LookupError as exc:
        groups, problems = [], [str(exc)]
    return {
        "dry_run": True,
        "would_change": any(g["resize"] or g["unprotect"] for g in groups),
        "groups": groups,
        "problems": problems,
    }


def _region_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else None


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    if event.get("dry_run") is True:
        report = dry_run(os.environ["ASG_NAME"], boto3.client("autoscaling"))
        print(json.dumps(report))
        return report
    why = reasons(event)
    if not why:
        return {"changed": False, "skipped": "no alarm or budget notification in the event"}
    asg_name = os.environ["ASG_NAME"]
    result = apply_brake(asg_name, boto3.client("autoscaling"), hold=True)
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
                f"{RELEASE_HINT}"
            ),
        )
    print(json.dumps(result))  # one structured line in CloudWatch Logs
    return result
