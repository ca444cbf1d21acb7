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

from spotcube.cli import main
from tests.operator.deployed import ACCOUNT, Deployed, client, deploy
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


def test_spent_month_is_refused_without_an_allowance(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """$230 of $200 spent, the 100 % notification in ALARM: resuming would run unbraked."""
    stack = deploy(env, actual_usd=230.0, brake_state="ALARM")
    braked(env, stack)
    status = main(["resume", *files(tmp_path, stack)])
    err = capsys.readouterr().err
    assert status == 3
    assert "--allow-usd" in err
    assert "$230.00" in err
    assert err.count("\n") == 1
    assert sizes(env, stack) == (0, 0, 0)
    assert rearms(env, stack) == []


def test_allowance_rearms_then_restores_and_replaces_its_own_notification(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = deploy(env, actual_usd=230.0, brake_state="ALARM")
    braked(env, stack)
    args = files(tmp_path, stack)
    assert main(["resume", *args, "--allow-usd", "50"]) == 0
    out = capsys.readouterr().out
    assert "exceeds $280.00" in out
    assert "max 10" in out
    assert sizes(env, stack) == (0, 10, 0)
    [first] = rearms(env, stack)
    assert first["NotificationType"] == "ACTUAL"
    assert float(first["Threshold"]) == 280.0
    assert first["ComparisonOperator"] == "GREATER_THAN"
    # A second release replaces the first re-arm instead of piling up (10 per budget).
    braked(env, stack)
    assert main(["resume", *args, "--allow-usd", "20"]) == 0
    assert [float(n["Threshold"]) for n in rearms(env, stack)] == [250.0]
    # Pulumi's four percentage notifications are untouched.
    notes = client("budgets", env).describe_notifications_for_budget(
        AccountId=ACCOUNT, BudgetName=stack.names.budget
    )["Notifications"]
    assert sum(n.get("ThresholdType") == "PERCENTAGE" for n in notes) == 4


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


def test_raised_limit_rearms_at_the_new_limit(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 100 % notification fired at $200, the limit is now $400 and $230 spent."""
    stack = deploy(env, actual_usd=230.0, limit_usd=400.0, brake_state="ALARM")
    braked(env, stack)
    assert main(["resume", *files(tmp_path, stack)]) == 0
    assert [float(n["Threshold"]) for n in rearms(env, stack)] == [400.0]


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


@pytest.mark.parametrize("amount", ["nan", "inf", "-5", "0"])
def test_allowance_must_be_a_positive_amount(
    env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], amount: str
) -> None:
    """A NaN or infinite threshold would reach AWS Budgets; refuse it before any change."""
    stack = deploy(env, actual_usd=230.0, brake_state="ALARM")
    braked(env, stack)
    status = main(["resume", *files(tmp_path, stack), "--allow-usd", amount])
    err = capsys.readouterr().err
    assert status == 2
    assert "--allow-usd" in err
    assert err.count("\n") == 1
    assert sizes(env, stack) == (0, 0, 0)
    assert rearms(env, stack) == []


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
