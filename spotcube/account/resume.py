"""Release the brake: re-arm the budget brake for the rest of the month, then restore the fleet.

Why a command and not ``pulumi up``: the brake (and ``spotcube down``) change the group outside
Pulumi, so ``pulumi up`` sees no difference and restores nothing. And why re-arm: AWS Budgets
notifies once per budget period; a notification that has fired stays in ``ALARM`` until the
period ends (Budgets API reference, ``Notification.NotificationState``), so after a mid-month
release the 100 % brake would not fire again this month. ``resume`` adds one notification of
its own, an absolute amount above the spend so far, whose only new subscriber is the brake
topic (and the alert emails). Its notifications are the ``ACTUAL``/``ABSOLUTE_VALUE`` ones;
Pulumi declares only ``PERCENTAGE`` notifications, so each ``resume`` replaces its previous one
and never touches Pulumi's.

The order matters: the brake is armed before the group may grow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from infra.config import MAX_BUDGET_EMAILS, StackConfig
from infra.iam import BRAKE_TAG, BRAKE_TAG_VALUE
from spotcube.account.preflight import BUDGET_MAX_NOTIFICATIONS
from spotcube.account.session import Aws, error_code
from spotcube.account.stackparts import brake_function_arn, brake_topics, burn_alarms
from spotcube.errors import RefusedError, UsageError
from spotcube.stack import StackOutputs

BRAKE_PERCENT = 100.0  # infra/budget.py BRAKE_THRESHOLD: the notification that brakes


def is_rearm(notification: dict[str, Any]) -> bool:
    """A notification ``resume`` made (Pulumi's are all percentages)."""
    return (
        notification.get("NotificationType") == "ACTUAL"
        and notification.get("ThresholdType") == "ABSOLUTE_VALUE"
        and notification.get("ComparisonOperator") == "GREATER_THAN"
    )


def is_brake(notification: dict[str, Any]) -> bool:
    return (
        notification.get("NotificationType") == "ACTUAL"
        and notification.get("ThresholdType", "PERCENTAGE") == "PERCENTAGE"
        and float(notification.get("Threshold", 0)) == BRAKE_PERCENT
    )


@dataclass(frozen=True)
class ResumePlan:
    asg: str
    sizes: tuple[int, int, int]  # min, max, desired now
    target_max: int
    budget: str
    limit_usd: float
    actual_usd: float
    brake_state: str  # the 100 % notification: OK, ALARM, or missing
    brake_topic: str
    rearm_at_usd: float | None  # the new notification's amount; None: none needed
    stale_rearms: tuple[dict[str, Any], ...] = ()
    alarms_to_reset: tuple[str, ...] = ()


def _budget(aws: Aws, account_id: str, name: str) -> dict[str, Any]:
    return dict(
        aws.client("budgets", region="us-east-1").describe_budget(
            AccountId=account_id, BudgetName=name
        )["Budget"]
    )


def _notifications(aws: Aws, account_id: str, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    paginator = aws.client("budgets", region="us-east-1").get_paginator(
        "describe_notifications_for_budget"
    )
    for page in paginator.paginate(AccountId=account_id, BudgetName=name):
        found.extend(page.get("Notifications", []))
    return found


def plan_resume(
    aws: Aws,
    outputs: StackOutputs,
    config: StackConfig,
    *,
    account_id: str,
    allow_usd: float | None,
    force: bool = False,
) -> ResumePlan:
    """What ``resume`` would do; raise :class:`RefusedError` when resuming now is unsafe."""
    if not outputs.asg_name or not outputs.budget_name:
        raise RefusedError(
            "the stack outputs lack asg_name or budget_name; run `pulumi up` with this "
            "checkout first"
        )
    groups = aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[outputs.asg_name]
    )["AutoScalingGroups"]
    if not groups:
        raise RefusedError(f"Auto Scaling group {outputs.asg_name} does not exist in {aws.region}")
    group = groups[0]
    sizes = (int(group["MinSize"]), int(group["MaxSize"]), int(group["DesiredCapacity"]))

    topics = brake_topics(aws, brake_function_arn(aws, outputs))
    if len(topics) != 1:
        raise RefusedError(
            f"expected one SNS topic subscribed to the brake Lambda, found {len(topics)}; "
            "run `spotcube check` to see the brake's wiring"
        )

    ringing = [a["AlarmName"] for a in burn_alarms(aws, outputs) if a["StateValue"] == "ALARM"]
    if ringing and not force:
        raise RefusedError(
            f"the burn-rate alarm {', '.join(ringing)} is still in ALARM: its window still "
            "holds the burst that pulled the brake. An alarm acts only when it enters ALARM, "
            "so resuming now would leave the fast brake disarmed; wait until it is OK "
            "(`aws cloudwatch describe-alarms --state-value ALARM`), or pass --force to reset "
            "it to OK (it fires again at once if the rate is still too high)"
        )

    budget = _budget(aws, account_id, outputs.budget_name)
    limit = float(budget["BudgetLimit"]["Amount"])
    actual = float(budget.get("CalculatedSpend", {}).get("ActualSpend", {}).get("Amount", 0.0))
    notes = _notifications(aws, account_id, outputs.budget_name)
    brakes = [n for n in notes if is_brake(n)]
    state = brakes[0].get("NotificationState", "OK") if brakes else "missing"
    stale = tuple(n for n in notes if is_rearm(n))
    period_spent = state == "ALARM" or actual >= limit
    rearm: float | None = None
    if allow_usd is not None:
        if not math.isfinite(allow_usd) or allow_usd <= 0:
            raise UsageError(f"--allow-usd {allow_usd:g}: give a positive amount of USD")
        rearm = round(actual + allow_usd, 2)
    elif period_spent:
        if actual < limit:
            rearm = limit  # the limit was raised after the brake: brake at the new limit
        else:
            raise RefusedError(
                f"actual spend ${actual:.2f} has reached the ${limit:.2f} budget, and its brake "
                "notification has fired for this month (Budgets notify once per period). Pass "
                "--allow-usd N to allow N more dollars this month (the brake fires again at "
                f"${actual:.2f} + N), or raise spotcube:budget.monthlyUsd and `pulumi up` first"
            )
    if rearm is not None and len(notes) - len(stale) + 1 > BUDGET_MAX_NOTIFICATIONS:
        raise RefusedError(
            f"budget {outputs.budget_name} has {len(notes)} notifications; AWS Budgets allows "
            f"{BUDGET_MAX_NOTIFICATIONS}: remove one that spotcube did not make"
        )
    return ResumePlan(
        asg=outputs.asg_name,
        sizes=sizes,
        target_max=config.fleet.max_size,
        budget=outputs.budget_name,
        limit_usd=limit,
        actual_usd=actual,
        brake_state=str(state),
        brake_topic=topics[0],
        rearm_at_usd=rearm,
        stale_rearms=stale if rearm is not None else (),
        alarms_to_reset=tuple(ringing),
    )


def describe(plan: ResumePlan) -> list[str]:
    """The plan as the lines ``resume`` prints (also for --dry-run)."""
    lines = [
        f"budget {plan.budget}: ${plan.actual_usd:.2f} of ${plan.limit_usd:.2f} spent this "
        f"month; its 100% brake notification is {plan.brake_state}"
    ]
    for stale in plan.stale_rearms:
        lines.append(f"remove the earlier re-arm notification at ${float(stale['Threshold']):.2f}")
    if plan.rearm_at_usd is not None:
        lines.append(
            f"re-arm: the brake fires when actual spend exceeds ${plan.rearm_at_usd:.2f} "
            "this month (a new notification to the brake topic and the alert emails)"
        )
    else:
        lines.append("the budget brake is armed: nothing to re-arm")
    for alarm in plan.alarms_to_reset:
        lines.append(f"reset alarm {alarm} to OK (it fires again if the rate is still high)")
    low, high, desired = plan.sizes
    lines.append(
        f"group {plan.asg}: min {low} max {high} desired {desired} -> min 0 max "
        f"{plan.target_max} (the queue's backlog sets the desired capacity)"
    )
    return lines


def apply_resume(aws: Aws, plan: ResumePlan, *, account_id: str, emails: tuple[str, ...]) -> None:
    """Re-arm first, then let the group grow."""
    budgets = aws.client("budgets", region="us-east-1")
    for stale in plan.stale_rearms:
        budgets.delete_notification(
            AccountId=account_id,
            BudgetName=plan.budget,
            Notification={
                k: stale[k]
                for k in ("NotificationType", "ComparisonOperator", "Threshold", "ThresholdType")
            },
        )
    if plan.rearm_at_usd is not None:
        subscribers = [{"SubscriptionType": "SNS", "Address": plan.brake_topic}]
        subscribers += [
            {"SubscriptionType": "EMAIL", "Address": e} for e in emails[:MAX_BUDGET_EMAILS]
        ]
        budgets.create_notification(
            AccountId=account_id,
            BudgetName=plan.budget,
            Notification={
                "NotificationType": "ACTUAL",
                "ComparisonOperator": "GREATER_THAN",
                "Threshold": plan.rearm_at_usd,
                "ThresholdType": "ABSOLUTE_VALUE",
            },
            Subscribers=subscribers,
        )
    cloudwatch = aws.client("cloudwatch")
    for alarm in plan.alarms_to_reset:
        cloudwatch.set_alarm_state(
            AlarmName=alarm,
            StateValue="OK",
            StateReason="spotcube resume: re-armed after the operator released the brake",
        )
    autoscaling = aws.client("autoscaling")
    # Last before the group grows: while the tag is on, guarded keys and workers are denied
    # capacity and protection (infra/iam.py); removing it is the release. After `spotcube
    # down` there is no tag, and a guarded user may resume.
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[plan.asg])
    held = any(
        t.get("Key") == BRAKE_TAG for g in groups["AutoScalingGroups"] for t in g.get("Tags", [])
    )
    if held:
        try:
            autoscaling.delete_tags(
                Tags=[
                    {
                        "ResourceId": plan.asg,
                        "ResourceType": "auto-scaling-group",
                        "Key": BRAKE_TAG,
                        "Value": BRAKE_TAG_VALUE,
                    }
                ]
            )
        except ClientError as exc:
            if not error_code(exc).startswith("AccessDenied"):
                raise
            raise RefusedError(
                f"the brake holds {plan.asg} ({BRAKE_TAG}={BRAKE_TAG_VALUE}) and this identity "
                "may not release it (the launch guard); the budget is re-armed. Run "
                "`spotcube resume --profile <the profile that runs pulumi up>`"
            ) from None
    autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=plan.asg, MinSize=0, MaxSize=plan.target_max
    )
