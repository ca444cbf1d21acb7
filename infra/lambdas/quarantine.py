"""Quarantine an access key that AWS Health reports as exposed (AWS_RISK_CREDENTIALS_EXPOSED).

For each exposed key: deactivate it, attach AWS's compromised-key quarantine policy to its
user (which denies launching instances and most other actions), and notify the stack's
topic. Running it again for the same event changes nothing (idempotent).

Environment: ``ALERTS_TOPIC_ARN`` (optional), ``QUARANTINE_POLICY_ARN`` (default: AWS's
managed ``AWSCompromisedKeyQuarantineV3``).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import boto3
from botocore.exceptions import ClientError

# The zip ships the contract package beside this file (infra/lambdafn.py).
from contract.health import EXPOSED_KEYS_EVENT_TYPE as EVENT_TYPE

DEFAULT_POLICY_ARN = "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"
_KEY_ID = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{12,124}$")


def exposed_keys(event: dict[str, Any]) -> list[str]:
    """Access key ids named by a Health event of the exposed-credentials type."""
    detail = event.get("detail", {})
    if detail.get("eventTypeCode") != EVENT_TYPE:
        return []
    keys = [str(e.get("entityValue", "")) for e in detail.get("affectedEntities", [])]
    return sorted({k for k in keys if _KEY_ID.match(k)})


def quarantine_key(key_id: str, iam: Any, policy_arn: str) -> dict[str, Any]:
    """Deactivate ``key_id`` and attach the quarantine policy to its user."""
    try:
        user = iam.get_access_key_last_used(AccessKeyId=key_id).get("UserName")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchEntity", "AccessDenied"):
            raise
        user = None
    if not user:
        return {"key": key_id, "error": "no IAM user owns this key (root or another account)"}
    changes: list[str] = []
    keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    status = next((k["Status"] for k in keys if k["AccessKeyId"] == key_id), None)
    if status != "Inactive":
        iam.update_access_key(UserName=user, AccessKeyId=key_id, Status="Inactive")
        changes.append("deactivated")
    attached = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    if policy_arn not in {p["PolicyArn"] for p in attached}:
        iam.attach_user_policy(UserName=user, PolicyArn=policy_arn)
        changes.append("quarantine policy attached")
    return {"key": key_id, "user": user, "changes": changes}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    policy_arn = os.environ.get("QUARANTINE_POLICY_ARN") or DEFAULT_POLICY_ARN
    iam = boto3.client("iam")
    results = [quarantine_key(key, iam, policy_arn) for key in exposed_keys(event)]
    changed = any(r.get("changes") for r in results)
    topic = os.environ.get("ALERTS_TOPIC_ARN")
    if topic and (changed or any("error" in r for r in results)):
        region = topic.split(":")[3] if topic.count(":") >= 5 else None
        lines = [
            f"{r['key']} (user {r.get('user', '?')}): "
            f"{', '.join(r.get('changes', [])) or r.get('error', 'already quarantined')}"
            for r in results
        ]
        boto3.client("sns", region_name=region).publish(
            TopicArn=topic,
            Subject="spotcube: exposed AWS access key quarantined",
            Message=(
                "AWS Health reported exposed access keys; spotcube acted:\n"
                + "\n".join(lines)
                + "\nNext: delete the key, rotate any secret it could read, check running "
                "instances in every region, then detach the quarantine policy."
            ),
        )
    summary = {"changed": changed, "keys": results}
    print(json.dumps(summary))
    return summary
