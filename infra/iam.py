"""IAM policy statements shared by the stack's Lambda roles."""

from __future__ import annotations

from typing import Any


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
