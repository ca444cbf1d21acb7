"""IAM policy statements shared by the stack's Lambda roles."""

from __future__ import annotations

from typing import Any

from contract.brake import BRAKE_TAG, BRAKE_TAG_VALUE


def lambda_notify_and_log_statements(
    *, region: str, account_id: str, function_name: str, alerts_topic_arn: str
) -> list[dict[str, Any]]:
    """What every spotcube Lambda needs besides its own job: publish to the alerts topic and
    write its own log group (nothing else, so a compromised function can do little)."""
    return [
        {
            "Sid": "Notify",
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": [alerts_topic_arn],
        },
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [
                f"arn:aws:logs:{region}:{account_id}:log-group:/aws/lambda/{function_name}:*"
            ],
        },
    ]


# The brake tags the group (contract/brake.py); while the tag is on, nothing a guarded key or
# a worker does brings capacity or scale-in protection back (ADR 0002).
BRAKED_GROUP_ACTIONS = [
    "autoscaling:UpdateAutoScalingGroup",
    "autoscaling:SetDesiredCapacity",
    "autoscaling:ExecutePolicy",
    "autoscaling:SetInstanceProtection",
    "autoscaling:ExitStandby",
    "autoscaling:ResumeProcesses",
    "autoscaling:RecordLifecycleActionHeartbeat",
]


def braked_group_statement(actions: list[str] | None = None) -> dict[str, Any]:
    """Deny ``actions`` on a group the brake has tagged (aws:ResourceTag on autoScalingGroup)."""
    return {
        "Sid": "DenyReleasingTheBrake",
        "Effect": "Deny",
        "Action": BRAKED_GROUP_ACTIONS if actions is None else actions,
        "Resource": "*",
        "Condition": {"StringEquals": {f"aws:ResourceTag/{BRAKE_TAG}": BRAKE_TAG_VALUE}},
    }
