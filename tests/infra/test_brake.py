"""The brake Lambda against moto's server: the group goes to zero, queued jobs stay queued."""

from __future__ import annotations

import json

import pytest

from contract.brake import BRAKE_TAG, BRAKE_TAG_VALUE
from infra.lambdas import brake
from spotcube.local.motoserver import local_client
from tests.infra.lambda_env import published, topic_with_inbox

ASG = "spotcube-alice-dev-fleet"


def budget_event() -> dict[str, object]:
    return {
        "Records": [
            {
                "Sns": {
                    "Subject": "AWS Budgets: spotcube-alice-dev-monthly has exceeded your alert "
                    "threshold",
                    "Message": "AWS Budget Notification: ACTUAL Cost > 100% of 150.00",
                }
            }
        ]
    }


def alarm_event(state: str) -> dict[str, object]:
    message = {
        "AlarmName": "cost-burn-rate",
        "NewStateValue": state,
        "NewStateReason": "Threshold Crossed",
    }
    return {"Records": [{"Sns": {"Subject": "ALARM", "Message": json.dumps(message)}}]}


@pytest.fixture
def fleet(cloud: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A running group of two scale-in-protected instances, a job queue with work, a topic."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", cloud)
    ec2 = local_client("ec2", cloud)
    autoscaling = local_client("autoscaling", cloud)
    template = ec2.create_launch_template(
        LaunchTemplateName="fleet",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "m6i.4xlarge"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=ASG,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
        MinSize=1,
        MaxSize=5,
        DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
        NewInstancesProtectedFromScaleIn=True,
    )
    sqs = local_client("sqs", cloud)
    queue = sqs.create_queue(QueueName="spotcube-alice-dev-jobs")["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"obs_id": f"o{i}"}))
    topic, inbox = topic_with_inbox(cloud, "spotcube-alice-dev-alerts")
    monkeypatch.setenv("ASG_NAME", ASG)
    monkeypatch.setenv("ALERTS_TOPIC_ARN", topic)
    return {"queue": queue, "inbox": inbox}


def group(cloud: str) -> dict[str, object]:
    groups = local_client("autoscaling", cloud).describe_auto_scaling_groups(
        AutoScalingGroupNames=[ASG]
    )
    found: dict[str, object] = groups["AutoScalingGroups"][0]
    return found


def test_budget_notification_scales_the_group_to_zero(cloud: str, fleet: dict[str, str]) -> None:
    before = group(cloud)
    assert len(before["Instances"]) == 2  # type: ignore[arg-type]
    assert all(i["ProtectedFromScaleIn"] for i in before["Instances"])  # type: ignore[attr-defined]

    result = brake.handler(budget_event())

    after = group(cloud)
    assert (after["MinSize"], after["MaxSize"], after["DesiredCapacity"]) == (0, 0, 0)
    assert result["changed"] is True
    assert result["previous"] == {"min": 1, "max": 5, "desired": 2}
    assert len(result["unprotected"]) == 2
    # Protection lifted, so desired=0 can terminate them (through the lifecycle hook on AWS).
    assert not any(i["ProtectedFromScaleIn"] for i in after["Instances"])  # type: ignore[attr-defined]
    attributes = local_client("sqs", cloud).get_queue_attributes(
        QueueUrl=fleet["queue"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "3"  # queued jobs stay queued
    (notice,) = published(cloud, fleet["inbox"])
    assert ASG in notice["Subject"]
    assert "spotcube resume" in notice["Message"]
    # A refresh restores the group but does not re-arm the budget: not a release (issue 20).
    assert "pulumi up --refresh" not in notice["Message"]
    tags = {t["Key"]: t["Value"] for t in after["Tags"]}  # type: ignore[attr-defined]
    assert tags[BRAKE_TAG] == BRAKE_TAG_VALUE  # what the deny statements look for


def test_only_resume_is_offered_as_the_release() -> None:
    """`pulumi up --refresh` restores the group without re-arming the budget's notification
    (AWS Budgets notify once per period): the message offers `spotcube resume` only."""
    hint = brake.RELEASE_HINT
    assert "--refresh" not in hint
    assert "spotcube resume" in hint


def test_dry_run_reports_what_it_would_do_and_changes_nothing(
    cloud: str, fleet: dict[str, str]
) -> None:
    """``{"dry_run": true}`` (what `spotcube check` sends) against moto's Auto Scaling."""
    before = group(cloud)
    report = brake.handler({"dry_run": True})
    assert json.loads(json.dumps(report)) == report  # JSON-able, as a Lambda answer must be
    assert report["dry_run"] is True
    assert report["would_change"] is True
    assert report["problems"] == []
    (planned,) = report["groups"]
    assert planned["asg"] == ASG
    assert planned["current"] == {"min": 1, "max": 5, "desired": 2}
    assert planned["target"] == {"min": 0, "max": 0, "desired": 0}
    assert sorted(planned["unprotect"]) == sorted(i["InstanceId"] for i in before["Instances"])  # type: ignore[attr-defined]
    after = group(cloud)
    assert (after["MinSize"], after["MaxSize"], after["DesiredCapacity"]) == (1, 5, 2)
    assert all(i["ProtectedFromScaleIn"] for i in after["Instances"])  # type: ignore[attr-defined]
    assert published(cloud, fleet["inbox"]) == []


def test_dry_run_after_the_brake_would_change_nothing(cloud: str, fleet: dict[str, str]) -> None:
    brake.handler(budget_event())
    report = brake.handler({"dry_run": True})
    assert report["would_change"] is False
    assert report["groups"][0]["current"] == {"min": 0, "max": 0, "desired": 0}


def test_dry_run_names_a_missing_group(
    cloud: str, fleet: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASG_NAME", "no-such-group")
    report = brake.handler({"dry_run": True})
    assert report["groups"] == []
    assert report["would_change"] is False
    assert any("no-such-group" in p for p in report["problems"])


def test_brake_is_idempotent(cloud: str, fleet: dict[str, str]) -> None:
    brake.handler(alarm_event("ALARM"))
    published(cloud, fleet["inbox"])
    again = brake.handler(budget_event())
    assert again["changed"] is False
    assert published(cloud, fleet["inbox"]) == []  # nothing new to tell
    after = group(cloud)
    assert (after["MinSize"], after["MaxSize"], after["DesiredCapacity"]) == (0, 0, 0)


def test_alarm_returning_to_ok_does_not_brake(cloud: str, fleet: dict[str, str]) -> None:
    result = brake.handler(alarm_event("OK"))
    assert result["changed"] is False
    assert group(cloud)["MaxSize"] == 5


def test_missing_group_is_an_error(
    cloud: str, fleet: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASG_NAME", "no-such-group")
    with pytest.raises(LookupError, match="no-such-group"):
        brake.handler(budget_event())
