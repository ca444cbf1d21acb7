"""Release the brake: re-arm the budget brake for the rest of the month, then restore the fleet.

Why a command and not ``pulumi up``: the brake (and ``spotcube down``) change the group outside
Pulumi, so ``pulumi up`` sees no difference and restores nothing. And why re-arm: AWS Budgets
notifies once per budget period; a notification that has fired stays in ``ALARM`` until the
period ends (Budgets API reference, ``Notification.NotificationState``), so after a mid-month
release the 100 % brake would not fire again this month.

How it re-arms: it deletes the fired 100 % notification and creates it again, the same
threshold and the same subscribers. The budget then holds exactly the notifications Pulumi
declares (infra/budget.py), so ``pulumi refresh`` and ``pulumi up`` find nothing to change and
cannot undo the re-arm. (Until issue 20, ``resume --allow-usd`` added an absolute notification
of its own, which Pulumi does not declare: a later ``pulumi up --refresh`` deleted it and the
brake was off for the rest of the month. Such leftovers are removed here.) A new notification
over a spend already past it would fire at once, so ``resume`` refuses while the month's spend
has reached the budget: raise ``budget.monthlyUsd`` first, which the burn-rate alarm, in
``ALARM`` while the priced spend exceeds the budget, needs as well.

The order matters: the brake is armed before the group may grow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from contract.brake import BRAKE_TAG, BRAKE_TAG_VALUE
from infra.config import StackConfig
from spotcube.account.session import Aws, error_code
from spotcube.account.stackparts import brake_function_arn, brake_topics, burn_alarms
from spotcube.errors import RefusedError
from spotcube.stack import StackOutputs

BRAKE_PERCENT = 100.0  # infra/budget.py BRAKE_THRESHOLD: the notification that brakes


def is_rearm(notification: dict[str, Any]) -> bool:
    """A notification an earlier ``resume --allow-usd`` made (Pulumi's are all percentages)."""
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
    # the fired 100 % notification as described, to delete and create again; None: armed
    rearm: dict[str, Any] | None
    rearm_subscribers: tuple[dict[str, str], ...] = ()
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


def _notification_key(notification: dict[str, Any]) -> dict[str, Any]:
    """What names a notification in the Budgets API, to create it again (unfired)."""
    return {
        k: notification[k]
        for k in ("NotificationType", "ComparisonOperator", "Threshold", "ThresholdType")
    }


def _as_described(notification: dict[str, Any]) -> dict[str, Any]:
    """The notification as DescribeNotificationsForBudget returned it, state included (a
    member of the API's ``Notification``), to delete exactly that one."""
    return {**_notification_key(notification), **_state_of(notification)}


def _state_of(notification: dict[str, Any]) -> dict[str, Any]:
    state = notification.get("NotificationState")
    return {} if state is None else {"NotificationState": state}


def plan_resume(
    aws: Aws,
    outputs: StackOutputs,
    config: StackConfig,
    *,
    account_id: str,
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
    if not brakes:
        raise RefusedError(
            f"budget {outputs.budget_name} has no 100% actual-spend notification, so nothing "
            "would brake at the budget: run `pulumi up` (it creates it), then resume"
        )
    state = str(brakes[0].get("NotificationState", "OK"))
    if actual >= limit:
        raise RefusedError(
            f"actual spend ${actual:.2f} has reached the ${limit:.2f} budget: a brake re-armed "
            "now would fire at once, and the burn-rate alarm stays in ALARM. Raise "
            f"spotcube:budget.monthlyUsd above {actual:.2f} and run `pulumi up`, then resume"
        )
    rearm: dict[str, Any] | None = None
    subscribers: tuple[dict[str, str], ...] = ()
    if state == "ALARM":
        rearm = _as_described(brakes[0])
        # The subscribers infra/budget.py declares for it: the brake's topic and the emails.
        subscribers = (
            {"SubscriptionType": "SNS", "Address": topics[0]},
            *({"SubscriptionType": "EMAIL", "Address": e} for e in config.budget.emails),
        )
    return ResumePlan(
        asg=outputs.asg_name,
        sizes=sizes,
        target_max=config.fleet.max_size,
        budget=outputs.budget_name,
        limit_usd=limit,
        actual_usd=actual,
        brake_state=state,
        rearm=rearm,
        rearm_subscribers=subscribers,
        stale_rearms=tuple(n for n in notes if is_rearm(n)),
        alarms_to_reset=tuple(ringing),
    )


def describe(plan: ResumePlan) -> list[str]:
    """The plan as the lines ``resume`` prints (also for --dry-run)."""
    lines = [
        f"budget {plan.budget}: ${plan.actual_usd:.2f} of ${plan.limit_usd:.2f} spent this "
        f"month; its 100% brake notification is {plan.brake_state}"
    ]
    for stale in plan.stale_rearms:
        lines.append(
            f"remove the notification at ${float(stale['Threshold']):.2f} an earlier resume "
            "added (Pulumi does not declare it; the 100% one brakes)"
        )
    if plan.rearm is not None:
        lines.append(
            f"re-arm: create the 100% notification again, same subscribers; the brake fires "
            f"when actual spend exceeds ${plan.limit_usd:.2f} this month"
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


def apply_resume(aws: Aws, plan: ResumePlan, *, account_id: str) -> None:
    """Re-arm first, then let the group grow."""
    budgets = aws.client("budgets", region="us-east-1")
    for stale in plan.stale_rearms:
        budgets.delete_notification(
            AccountId=account_id, BudgetName=plan.budget, Notification=_as_described(stale)
        )
    if plan.rearm is not None:
        # Deleted and created again: a new notification starts unfired. If the create fails,
        # the budget lacks the 100 % notification; `resume` then refuses until `pulumi up`
        # creates it again, and the group stays at zero meanwhile.
        budgets.delete_notification(
            AccountId=account_id, BudgetName=plan.budget, Notification=plan.rearm
        )
        budgets.create_notification(
            AccountId=account_id,
            BudgetName=plan.budget,
            Notification=_notification_key(plan.rearm),
            Subscribers=list(plan.rearm_subscribers),
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
