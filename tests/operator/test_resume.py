"""``spotcube resume`` against moto's server: re-arm the budget brake, then restore the group.

AWS Budgets facts encoded here (Budgets API reference, data type ``Notification``): a
notification that passed its threshold is in ``NotificationState`` ``ALARM``; "A budget can
have up to ten notifications"; "A notification can have one SNS subscriber and up to 10 email
subscribers". A notification fires once per budget period (DESIGN.md's Budgets facts; issue 11
item 16), so a brake notification in ALARM cannot brake again this month.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spotcube.account.stackconfig import from_file
from spotcube.cli import main
from tests.operator.deployed import ACCOUNT, Deployed, client, deploy
from tests.operator.replay import replay
from tests.operator.test_preflight import write_config


def files(tmp_path: Path, stack: Deployed) -> list[str]:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(stack.outputs.to_json())
    return ["--outputs", str(outputs), "--config", str(write_config(tmp_path))]


def braked(endpoint: str, stack: Deployed) -> None:
    """What the brake leaves behind: min, max and desired at zero."""
    client("autoscaling", endpoint).update_auto_scaling_group(
        AutoScalingGroupName=stack.names.asg, MinSize=0, MaxSize=0, DesiredCapacity=0
    )


def sizes(endpoint: str, stack: Deployed) -> tuple[int, int, int]:
    group = client("autoscaling", endpoint).describe_auto_scaling_groups(
        AutoScalingGroupNames=[stack.names.asg]
    )["AutoScalingGroups"][0]
    return group["MinSize"], group["MaxSize"], group["DesiredCapacity"]


def rearms(endpoint: str, stack: Deployed) -> list[dict[str, Any]]:
    notes = client("budgets", endpoint).describe_notifications_for_budget(
        AccountId=ACCOUNT, BudgetName=stack.names.budget
    )["Notifications"]
    return [n for n in notes if n.get("ThresholdType") == "ABSOLUTE_VALUE"]


@pytest.fixture
def env(cloud: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", cloud)
    return cloud


def notifications(endpoint: str, stack: Deployed) -> dict[tuple[Any, ...], str]:
    """The budget's notifications as the Budgets API names them, and whether each has fired:
    what ``pulumi refresh`` reads back (moto does not answer for subscribers; the one test
    that needs them reads the requests)."""
    found = {}
    for n in client("budgets", endpoint).describe_notifications_for_budget(
        AccountId=ACCOUNT, BudgetName=stack.names.budget
    )["Notifications"]:
        key = tuple(
            (k, n[k])
            for k in ("NotificationType", "ComparisonOperator", "Threshold", "ThresholdType")
        )
        assert key not in found, f"two notifications {key}"
        found[key] = n.get("NotificationState", "OK")
    return found


BRAKE_KEY = (
    ("NotificationType", "ACTUAL"),
    ("ComparisonOperator", "GREATER_THAN"),
    ("Threshold", 100.0),
    ("ThresholdType", "PERCENTAGE"),
)


def add_legacy_rearm(endpoint: str, stack: Deployed, usd: float) -> None:
    """What `spotcube resume --allow-usd` added before issue 20 (and Pulumi does not declare)."""
    client("budgets", endpoint).create_notification(
        AccountId=ACCOUNT,
        BudgetName=stack.names.budget,
        Notification={
            "NotificationType": "ACTUAL",
            "ComparisonOperator": "GREATER_THAN",
            "Threshold": usd,
            "ThresholdType": "ABSOLUTE_VALUE",
        },
        Subscribers=[{"SubscriptionType": "SNS", "Address": stack.brake_topic}],
    )


def test_spent_month_is_refused_until_the_budget_is_raised(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """$230 of $200 spent: a re-armed brake would fire at once (and the burn-rate alarm,
    whose threshold is the budget, stays in ALARM), so the one way on is a higher budget."""
    stack = deploy(env, actual_usd=230.0, brake_state="ALARM")
    braked(env, stack)
    before = notifications(env, stack)
    status = main(["resume", *files(tmp_path, stack)])
    err = capsys.readouterr().err
    assert status == 3
    assert "budget.monthlyUsd above 230.00" in err
    assert "$230.00" in err
    assert err.count("\n") == 1
    assert sizes(env, stack) == (0, 0, 0)
    assert notifications(env, stack) == before


def test_rearm_is_the_notification_pulumi_declares(
    env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 100 % notification fired at $200; the limit is now $400 and $230 spent. Resume
    creates the same notification again, unfired, with the subscribers the Pulumi program
    declares for it: `pulumi up --refresh` then has nothing to change (it deleted the absolute
    notification the old `--allow-usd` added, disarming the brake for the month)."""
    from tests.infra.program import run_program

    stack = deploy(env, actual_usd=230.0, limit_usd=400.0, brake_state="ALARM")
    deployed = set(notifications(env, stack))
    braked(env, stack)
    args = files(tmp_path, stack)
    # moto does not answer DescribeSubscribersForNotification: the request shows them.
    with replay(fallback=env) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BUDGETS", server.endpoint)
        assert main(["resume", *args]) == 0
    assert "exceeds $400.00" in capsys.readouterr().out
    after = notifications(env, stack)
    assert set(after) == deployed
    assert after[BRAKE_KEY] == "OK"
    assert sizes(env, stack) == (0, 10, 0)

    [created] = [f for op, f in server.requests if op.endswith("CreateNotification")]
    [deleted] = [f for op, f in server.requests if op.endswith("DeleteNotification")]
    assert deleted["Notification"] == {**created["Notification"], "NotificationState": "ALARM"}
    sns = [s["Address"] for s in created["Subscribers"] if s["SubscriptionType"] == "SNS"]
    emails = [s["Address"] for s in created["Subscribers"] if s["SubscriptionType"] == "EMAIL"]
    assert sns == [stack.brake_topic]

    # What the program declares for the notification it re-created (under Pulumi's mocks).
    # An AMI id: the mocks then need no image lookup (as test_check's program test does).
    (tmp_path / "program").mkdir()
    config = from_file(write_config(tmp_path / "program", {"ami": "ami-0123456789abcdef0"}))
    [budget] = run_program(config).of_type("aws:budgets/budget:Budget")
    [declared] = [
        n
        for n in budget.inputs["notifications"]
        if {
            "NotificationType": n["notificationType"],
            "ComparisonOperator": n["comparisonOperator"],
            "Threshold": float(n["threshold"]),
            "ThresholdType": n["thresholdType"],
        }
        == created["Notification"]
    ]
    assert emails == list(declared["subscriberEmailAddresses"])
    assert len(declared["subscriberSnsTopicArns"]) == 1


def test_a_legacy_rearm_is_removed(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = deploy(env, actual_usd=20.0)
    deployed = notifications(env, stack)
    add_legacy_rearm(env, stack, 280.0)
    braked(env, stack)
    assert main(["resume", *files(tmp_path, stack)]) == 0
    assert "earlier resume added" in capsys.readouterr().out
    assert rearms(env, stack) == []
    assert notifications(env, stack) == deployed


@pytest.mark.parametrize("legacy", [False, True], ids=["", "legacy-rearm"])
@pytest.mark.parametrize("fired", [False, True], ids=["armed", "fired"])
@pytest.mark.parametrize(
    ("actual", "limit"), [(20.0, 200.0), (230.0, 200.0), (230.0, 400.0), (200.0, 200.0)]
)
def test_resume_either_refuses_untouched_or_leaves_the_declared_brake_armed(
    env: str, tmp_path: Path, actual: float, limit: float, fired: bool, legacy: bool
) -> None:
    """The invariant over budget states, whatever resume decides: refused, nothing changed;
    released, the budget's notifications are exactly the deployed (Pulumi-declared) ones, the
    brake unfired; and only then the group's maximum is restored."""
    state = "ALARM" if fired or actual > limit else "OK"
    stack = deploy(env, actual_usd=actual, limit_usd=limit, brake_state=state)
    deployed = set(notifications(env, stack))
    if legacy:
        add_legacy_rearm(env, stack, actual + 50.0)
    braked(env, stack)
    before = notifications(env, stack)
    status = main(["resume", *files(tmp_path, stack)])
    if status == 0:
        after = notifications(env, stack)
        assert set(after) == deployed
        assert after[BRAKE_KEY] == "OK"
        assert sizes(env, stack) == (0, 10, 0)
    else:
        assert status == 3
        assert notifications(env, stack) == before
        assert sizes(env, stack) == (0, 0, 0)
    assert (status == 0) == (actual < limit)


def test_armed_budget_only_restores_the_group(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`spotcube down` or the burn-rate alarm stopped the fleet; the budget brake is armed."""
    stack = deploy(env, actual_usd=20.0)
    braked(env, stack)
    args = files(tmp_path, stack)
    assert main(["resume", *args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nothing to re-arm" in out
    assert "dry run: nothing changed" in out
    assert sizes(env, stack) == (0, 0, 0)
    assert main(["resume", *args]) == 0
    assert sizes(env, stack) == (0, 10, 0)
    assert rearms(env, stack) == []


def test_resume_releases_the_brakes_hold(env: str, tmp_path: Path) -> None:
    """The brake Lambda tags the group spotcube:brake=on (what the launch guard's and the
    worker role's denies test); resume removes it, then restores the group."""
    from infra.iam import BRAKE_TAG
    from infra.lambdas.brake import apply_brake

    stack = deploy(env, actual_usd=20.0)
    autoscaling = client("autoscaling", env)
    apply_brake(stack.names.asg, autoscaling, hold=True)

    def tags() -> dict[str, str]:
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[stack.names.asg])
        return {t["Key"]: t["Value"] for t in group["AutoScalingGroups"][0].get("Tags", [])}

    assert tags()[BRAKE_TAG] == "on"
    assert main(["resume", *files(tmp_path, stack)]) == 0
    assert BRAKE_TAG not in tags()
    assert sizes(env, stack) == (0, 10, 0)


def test_ringing_burn_alarm_refuses_unless_forced(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CloudWatch alarm acts on entering ALARM; one still in ALARM would not brake again."""
    stack = deploy(env, actual_usd=20.0)
    braked(env, stack)
    cloudwatch = client("cloudwatch", env)
    cloudwatch.set_alarm_state(AlarmName=stack.alarm, StateValue="ALARM", StateReason="test")
    args = files(tmp_path, stack)
    assert main(["resume", *args]) == 3
    assert "still in ALARM" in capsys.readouterr().err
    assert sizes(env, stack) == (0, 0, 0)
    assert main(["resume", *args, "--force"]) == 0
    alarm = cloudwatch.describe_alarms(AlarmNames=[stack.alarm])["MetricAlarms"][0]
    assert alarm["StateValue"] == "OK"
    assert sizes(env, stack) == (0, 10, 0)


def test_missing_group_is_refused_in_one_line(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = deploy(env)
    client("autoscaling", env).delete_auto_scaling_group(
        AutoScalingGroupName=stack.names.asg, ForceDelete=True
    )
    status = main(["resume", *files(tmp_path, stack)])
    err = capsys.readouterr().err
    assert status == 3
    assert stack.names.asg in err
    assert err.count("\n") == 1


def test_outputs_json_round_trip(env: str, tmp_path: Path) -> None:
    stack = deploy(env)
    doc = json.loads(stack.outputs.to_json())
    assert doc["launch_guard_policy_arn"].endswith("-launch-guard")


def test_missing_brake_notification_is_refused(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No 100 % notification (deleted by hand, or a re-arm cut short): nothing would brake at
    the budget, so the group stays at zero until `pulumi up` creates it again."""
    stack = deploy(env, actual_usd=20.0)
    client("budgets", env).delete_notification(
        AccountId=ACCOUNT,
        BudgetName=stack.names.budget,
        Notification={
            "NotificationType": "ACTUAL",
            "ComparisonOperator": "GREATER_THAN",
            "Threshold": 100.0,
            "ThresholdType": "PERCENTAGE",
            "NotificationState": "OK",  # moto matches the state too
        },
    )
    assert BRAKE_KEY not in notifications(env, stack)
    braked(env, stack)
    assert main(["resume", *files(tmp_path, stack)]) == 3
    err = capsys.readouterr().err
    assert "no 100% actual-spend notification" in err
    assert "`pulumi up`" in err
    assert sizes(env, stack) == (0, 0, 0)


def test_unreachable_endpoint_changes_nothing(
    env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit status 5 (UNREACHABLE) and one line naming the endpoint; moto's state untouched."""
    stack = deploy(env)
    braked(env, stack)
    args = files(tmp_path, stack)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    status = main(["resume", *args])
    err = capsys.readouterr().err
    assert status == 5
    assert "http://127.0.0.1:9" in err
    assert err.count("\n") == 1
    assert sizes(env, stack) == (0, 0, 0)
