"""The quarantine Lambda against moto's IAM server.

moto ships AWS's managed policies (AWSCompromisedKeyQuarantineV3 among them) but loads them
only when ``MOTO_IAM_LOAD_MANAGED_POLICIES=true`` as its IAM backend starts, so the module
fixture sets it and resets the server: the policy attached is moto's copy of the real one, not
a stand-in created by the test. The tests share that state and name their users afresh.
"""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from infra.lambdas import quarantine
from spotcube.local.motoserver import local_client
from tests.infra.lambda_env import published, topic_with_inbox

V3 = "arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV3"
# Built, not written out, so secret scanners do not flag a key-shaped literal.
UNKNOWN_KEY = "AKIA" + "Q" * 16


def health_event(*keys: str, code: str = quarantine.EVENT_TYPE) -> dict[str, Any]:
    return {
        "source": "aws.health",
        "detail-type": "AWS Health Event",
        "detail": {
            "service": "RISK",
            "eventTypeCode": code,
            "eventTypeCategory": "issue",
            "affectedEntities": [{"entityValue": key} for key in keys],
        },
    }


@pytest.fixture(scope="module")
def iam_cloud(moto_endpoint: str) -> Iterator[str]:
    """The moto server reset once with AWS's managed policies loaded (slow: ~3 s)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        reset = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=60).close()
        # moto rebuilds the IAM backend lazily, on the first IAM request: keep the setting on.
        yield moto_endpoint


@pytest.fixture
def account(iam_cloud: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Two IAM users with one key each and an alerts topic, named afresh for each test."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", iam_cloud)
    iam = local_client("iam", iam_cloud)
    suffix = uuid.uuid4().hex[:8]
    users = {"ci-bot": f"ci-bot-{suffix}", "alice": f"alice-{suffix}"}
    keys = {}
    for role, user in users.items():
        iam.create_user(UserName=user)
        keys[role] = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    topic, inbox = topic_with_inbox(iam_cloud, f"alerts-{suffix}")
    monkeypatch.setenv("ALERTS_TOPIC_ARN", topic)
    return {"iam": iam, "keys": keys, "users": users, "inbox": inbox}


def key_status(iam: Any, user: str) -> str:
    status: str = iam.list_access_keys(UserName=user)["AccessKeyMetadata"][0]["Status"]
    return status


def attached(iam: Any, user: str) -> set[str]:
    return {
        p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    }


def test_moto_serves_the_real_managed_policy(account: dict[str, Any]) -> None:
    policy = account["iam"].get_policy(PolicyArn=V3)["Policy"]
    assert policy["PolicyName"] == "AWSCompromisedKeyQuarantineV3"


def test_exposed_key_is_deactivated_and_quarantined(
    iam_cloud: str, account: dict[str, Any]
) -> None:
    iam, keys, users = account["iam"], account["keys"], account["users"]
    result = quarantine.handler(health_event(keys["ci-bot"]))
    assert result["changed"] is True
    assert result["keys"] == [
        {
            "key": keys["ci-bot"],
            "user": users["ci-bot"],
            "changes": ["deactivated", "quarantine policy attached"],
        }
    ]
    assert key_status(iam, users["ci-bot"]) == "Inactive"
    assert attached(iam, users["ci-bot"]) == {V3}
    # Only the exposed key's user is touched.
    assert key_status(iam, users["alice"]) == "Active"
    assert attached(iam, users["alice"]) == set()
    (notice,) = published(iam_cloud, account["inbox"])
    assert keys["ci-bot"] in notice["Message"]
    assert "quarantined" in notice["Subject"]


def test_quarantine_is_idempotent(iam_cloud: str, account: dict[str, Any]) -> None:
    event = health_event(account["keys"]["ci-bot"])
    quarantine.handler(event)
    published(iam_cloud, account["inbox"])
    again = quarantine.handler(event)
    assert again["changed"] is False
    assert again["keys"][0]["changes"] == []
    assert published(iam_cloud, account["inbox"]) == []
    assert attached(account["iam"], account["users"]["ci-bot"]) == {V3}


def test_other_health_events_are_ignored(iam_cloud: str, account: dict[str, Any]) -> None:
    result = quarantine.handler(
        health_event(account["keys"]["ci-bot"], code="AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED")
    )
    assert result == {"changed": False, "keys": []}
    assert key_status(account["iam"], account["users"]["ci-bot"]) == "Active"


def test_unknown_key_is_reported_not_raised(iam_cloud: str, account: dict[str, Any]) -> None:
    result = quarantine.handler(health_event(UNKNOWN_KEY))
    assert "no IAM user" in result["keys"][0]["error"]
    (notice,) = published(iam_cloud, account["inbox"])
    assert UNKNOWN_KEY in notice["Message"]
