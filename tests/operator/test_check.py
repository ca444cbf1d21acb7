"""``spotcube check`` on a stack deployed to moto's server the way infra/ declares it.

moto serves Auto Scaling, Lambda (not its invocation: that needs Docker), SNS, CloudWatch,
EventBridge, Logs, Budgets and IAM's policies; IAM's policy simulator (not in moto) answers
from recordings under ``recorded/`` in the shape of the IAM API reference's
SimulateCustomPolicy response, through a replay server that hands every other IAM call to
moto. The brake is the real handler module (infra/lambdas/brake.py) called in-process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.lambdas import LAMBDA_DIR, meter
from infra.lambdas import brake as brake_module
from spotcube.account.postdeploy import (
    check_brake_dry_run,
    check_brake_wiring,
    check_budget_brake,
    check_health_rule,
    check_launch_guard,
    check_worker_logs,
    run_selftest,
)
from spotcube.account.preflight import Account
from spotcube.account.results import CheckResult, Status
from spotcube.account.session import Aws
from spotcube.account.stackconfig import from_file
from spotcube.cli import main
from spotcube.local.cloud import provision
from tests.operator.deployed import ACCOUNT, REGION, Deployed, client, deploy, guard_document
from tests.operator.replay import ReplayServer, replay
from tests.operator.test_preflight import write_config

SIMULATIONS = (
    "simulate-createfleet-allowed",
    "simulate-other-region-denied",
    "simulate-other-type-denied",
    "simulate-untagged-denied",
    "simulate-other-owner-denied",
    "simulate-own-launch-allowed",
)
ME = Account(account_id=ACCOUNT, caller_arn=f"arn:aws:iam::{ACCOUNT}:user/alice")


@pytest.fixture
def env(cloud: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", cloud)
    return cloud


@contextmanager
def recorded(monkeypatch: pytest.MonkeyPatch, env: str, *names: str) -> Iterator[ReplayServer]:
    """IAM and Budgets through a replay of ``names``; every other call of theirs to moto."""
    with replay(*names, fallback=env) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_IAM", server.endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BUDGETS", server.endpoint)
        yield server


@pytest.fixture
def iam_replay(env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReplayServer]:
    with recorded(monkeypatch, env, *SIMULATIONS, "budget-subscribers-brake") as server:
        yield server


def config_for(tmp_path: Path, **changes: Any) -> Any:
    return from_file(write_config(tmp_path, dict(changes)))


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def test_launch_guard_simulation(env: str, iam_replay: ReplayServer, tmp_path: Path) -> None:
    """The guard document fetched from IAM is what is simulated, beside an allow-all.

    Decisions follow IAM's evaluation of infra/guards.py's statements (see each recording's
    note): a Deny naming only ec2:RunInstances leaves ec2:CreateFleet to the allow-all, so the
    CreateFleet case fails with a fix (issue 11 item 12); the fleet's own launch passes.
    """
    stack = deploy(env)
    results = by_name(check_launch_guard(Aws(REGION), stack.outputs, config_for(tmp_path), ME))
    assert results["guard: CreateFleet"].status is Status.FAIL
    assert "must deny ec2:CreateFleet" in results["guard: CreateFleet"].fix
    for label in (
        "launch in ap-southeast-2",
        "launch of p4d.24xlarge",
        "untagged launch",
        "launch tagged for another owner",
        "the fleet's own launch",
    ):
        assert results[f"guard: {label}"].status is Status.PASS, label
    sent = [fields for op, fields in iam_replay.requests if op == "SimulateCustomPolicy"]
    assert len(sent) == 6
    simulated = json.loads(sent[0]["PolicyInputList.member.2"])
    assert simulated == json.loads(guard_document(stack.names, stack.max_size))


def test_launch_guard_missing(env: str, iam_replay: ReplayServer, tmp_path: Path) -> None:
    stack = deploy(env)
    iam = client("iam", env)
    iam.delete_policy(PolicyArn=stack.outputs.launch_guard_policy_arn)
    [result] = check_launch_guard(Aws(REGION), stack.outputs, config_for(tmp_path), ME)
    assert result.status is Status.FAIL
    assert "does not exist" in result.detail


def _sizes(env: str, stack: Deployed) -> tuple[int, int, int]:
    group = client("autoscaling", env).describe_auto_scaling_groups(
        AutoScalingGroupNames=[stack.names.asg]
    )["AutoScalingGroups"][0]
    return group["MinSize"], group["MaxSize"], group["DesiredCapacity"]


def _handler_invoker(
    monkeypatch: pytest.MonkeyPatch, stack: Deployed, calls: list[dict[str, Any]]
) -> Any:
    """The brake's handler as Lambda would call it, with the function's environment."""
    monkeypatch.setenv("ASG_NAME", stack.names.asg)

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event)
        return dict(brake_module.handler(event))

    return invoke


def test_brake_without_dry_run_is_not_invoked(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A brake deployed before dry-run support would brake for real: check must not call it."""
    stack = deploy(env)
    client("autoscaling", env).update_auto_scaling_group(
        AutoScalingGroupName=stack.names.asg, DesiredCapacity=2
    )
    calls: list[dict[str, Any]] = []
    old_brake = (
        "def handler(event, context=None):\n    return apply_brake(os.environ['ASG_NAME'])\n"
    )
    result = check_brake_dry_run(
        Aws(REGION),
        stack.outputs,
        invoke=_handler_invoker(monkeypatch, stack, calls),
        deployed_source=lambda: old_brake,
    )
    assert result.status is Status.FAIL
    assert "predates dry-run" in result.detail
    assert calls == []
    assert _sizes(env, stack) == (0, 10, 2)


def test_brake_that_ignores_dry_run_is_caught(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the deployed brake acts anyway, the sizes before and after give it away."""
    stack = deploy(env)
    autoscaling = client("autoscaling", env)

    def careless(event: dict[str, Any]) -> dict[str, Any]:
        return dict(brake_module.apply_brake(stack.names.asg, autoscaling))

    result = check_brake_dry_run(
        Aws(REGION), stack.outputs, invoke=careless, deployed_source=lambda: '"dry_run"'
    )
    assert result.status is Status.FAIL
    assert "the dry run changed" in result.detail


def test_brake_dry_run_through_the_handler(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real handler, asked {"dry_run": true}: it reports and the group stays as it was."""
    source = (LAMBDA_DIR / "brake.py").read_text()
    if '"dry_run"' not in source:
        pytest.skip("infra/lambdas/brake.py has no dry-run mode on this branch yet")
    stack = deploy(env)
    client("autoscaling", env).update_auto_scaling_group(
        AutoScalingGroupName=stack.names.asg, DesiredCapacity=2
    )
    calls: list[dict[str, Any]] = []
    result = check_brake_dry_run(
        Aws(REGION),
        stack.outputs,
        invoke=_handler_invoker(monkeypatch, stack, calls),
        deployed_source=lambda: source,
    )
    assert result.status is Status.PASS, result
    assert "would set min/max/desired 0/10/2 to 0/0/0" in result.detail
    assert calls == [{"dry_run": True}]
    assert _sizes(env, stack) == (0, 10, 2)


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(200.0, Status.PASS), (400.0, Status.FAIL)],
    ids=["the-budget", "stale-budget"],
)
def test_spend_alarm_fires_at_the_configured_budget(
    env: str, tmp_path: Path, threshold: float, expected: Status
) -> None:
    """The month-to-date alarm brakes above the whole budget (ADR 0002); one deployed with
    another budget (here twice the config's $200) lets the fleet overspend unseen."""
    stack = deploy(env, brake_threshold_usd=threshold)
    results = by_name(check_brake_wiring(Aws(REGION), stack.outputs, config_for(tmp_path)))
    assert results["brake topic"].status is Status.PASS
    alarm = results[f"alarm {stack.alarm}"]
    assert alarm.status is expected, alarm
    if expected is Status.FAIL:
        assert "threshold $400.00 is not the budget's $200.00" in alarm.detail


def test_alarm_blind_without_group_metrics(env: str, tmp_path: Path) -> None:
    """Without the group's metrics collection the meter prices nothing and never brakes."""
    stack = deploy(env, group_metrics=False)
    results = by_name(check_brake_wiring(Aws(REGION), stack.outputs, config_for(tmp_path)))
    assert results[f"alarm {stack.alarm}"].status is Status.FAIL
    assert "does not publish GroupTotalInstances" in results[f"alarm {stack.alarm}"].detail


def test_brake_topic_without_permission(env: str, tmp_path: Path) -> None:
    stack = deploy(env)
    client("lambda", env).remove_permission(
        FunctionName=f"{stack.names.asg}-brake", StatementId="brake-sns"
    )
    results = by_name(check_brake_wiring(Aws(REGION), stack.outputs, config_for(tmp_path)))
    assert results["brake topic"].status is Status.FAIL


def test_budget_brake_wiring_and_state(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 100 % notification must publish to the brake's topic (DescribeSubscribersForNotification,
    recorded: moto does not implement it), and one in ALARM will not fire again this month
    (Budgets notify once per period; Budgets API reference, Notification.NotificationState).
    """
    armed = deploy(env)
    with recorded(monkeypatch, env, "budget-subscribers-brake") as server:
        assert check_budget_brake(Aws(REGION), armed.outputs, ME).status is Status.PASS
        [(_, asked)] = [r for r in server.requests if r[0] == "DescribeSubscribersForNotification"]
        assert asked["Notification"]["Threshold"] == 100.0
        assert asked["Notification"]["NotificationType"] == "ACTUAL"
    with recorded(monkeypatch, env, "budget-subscribers-alerts-only"):
        miswired = check_budget_brake(Aws(REGION), armed.outputs, ME)
    assert miswired.status is Status.FAIL
    assert "only send email" in miswired.detail


def test_spent_budget_brake_warns(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = deploy(env, actual_usd=230.0, brake_state="ALARM")
    with recorded(monkeypatch, env, "budget-subscribers-brake"):
        result = check_budget_brake(Aws(REGION), stack.outputs, ME)
    assert result.status is Status.WARN
    assert "budget.monthlyUsd" in result.fix
    assert "spotcube resume" in result.fix


def test_a_notification_pulumi_does_not_declare_warns(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An absolute-amount re-arm left by `resume --allow-usd` (before issue 20): the next
    `pulumi up --refresh` deletes it, so check says so while the brake still looks armed."""
    stack = deploy(env, actual_usd=20.0)
    client("budgets", env).create_notification(
        AccountId=ACCOUNT,
        BudgetName=stack.names.budget,
        Notification={
            "NotificationType": "ACTUAL",
            "ComparisonOperator": "GREATER_THAN",
            "Threshold": 280.0,
            "ThresholdType": "ABSOLUTE_VALUE",
        },
        Subscribers=[{"SubscriptionType": "SNS", "Address": stack.brake_topic}],
    )
    with recorded(monkeypatch, env, "budget-subscribers-brake"):
        result = check_budget_brake(Aws(REGION), stack.outputs, ME)
    assert result.status is Status.WARN
    assert "pulumi up --refresh" in result.detail
    assert "spotcube resume" in result.fix


def test_health_rule_target_and_state(env: str) -> None:
    """infra/guards.py's event pattern in us-east-1, targeting the stack's quarantine Lambda."""
    stack = deploy(env)
    aws = Aws(REGION)
    assert check_health_rule(aws, stack.outputs).status is Status.PASS
    events = client("events", env, "us-east-1")
    events.disable_rule(Name="guards-exposed-keys-9d2b1e0")
    assert "DISABLED" in check_health_rule(aws, stack.outputs).detail
    events.enable_rule(Name="guards-exposed-keys-9d2b1e0")
    events.remove_targets(Rule="guards-exposed-keys-9d2b1e0", Ids=["quarantine"])
    result = check_health_rule(aws, stack.outputs)
    assert result.status is Status.FAIL
    assert "AWS_RISK_CREDENTIALS_EXPOSED" in result.detail


def test_worker_logs_are_read_where_workers_ship_them(env: str) -> None:
    """Workers ship attempt logs to the products bucket (payload/logship.py); the image runs no
    CloudWatch agent, so the check reads S3 (issue 20: it could never pass on CloudWatch)."""
    from contract.layout import ObsLayout

    stack = deploy(env)
    aws = Aws(REGION)
    s3 = client("s3", env)
    bucket = stack.outputs.products_bucket
    s3.create_bucket(Bucket=bucket)
    assert check_worker_logs(aws, stack.outputs).status is Status.SKIP
    before = datetime.now(UTC) - timedelta(minutes=1)
    key = ObsLayout("run-1", "obs-1").log(1)
    s3.put_object(Bucket=bucket, Key=key, Body=b"worker started\n")
    result = check_worker_logs(aws, stack.outputs)
    assert result.status is Status.PASS
    assert key in result.detail
    assert check_worker_logs(aws, stack.outputs, since=before).status is Status.PASS
    later = datetime.now(UTC) + timedelta(minutes=5)
    late = check_worker_logs(aws, stack.outputs, since=later)
    assert late.status is Status.FAIL
    assert "journalctl -u spotcube-worker" in late.fix


def test_selftest_times_out_with_the_likely_causes(env: str) -> None:
    """No worker consumes the queue: after the timeout the check fails and says where to look."""
    outputs = provision(env)
    result = run_selftest(outputs, 2, timeout_seconds=0)
    assert result.status is Status.FAIL
    assert "0 of 2 done" in result.detail
    assert "spotcube resume" in result.fix


def test_check_command_end_to_end(
    env: str,
    iam_replay: ReplayServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The command on the deployed stack: exit status 3 (CreateFleet is not guarded, the
    cost allocation tags are not active), every check named in the JSON. The brake's code
    package is not reachable here (moto's Location is an S3 URL of AWS), so it is not invoked.
    """
    stack = deploy(env)
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # no route to AWS's S3 from here
    with replay("cost-tags-inactive") as ce:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COST_EXPLORER", ce.endpoint)
        outputs = tmp_path / "outputs.json"
        outputs.write_text(stack.outputs.to_json())
        status = main(
            [
                "check",
                "--outputs",
                str(outputs),
                "--config",
                str(write_config(tmp_path)),
                "--json",
            ]
        )
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    checks = {c["name"]: c for c in report["checks"]}
    assert status == 3
    assert checks["brake dry run"]["status"] == "skip"
    assert checks["guard: CreateFleet"]["status"] == "fail"
    assert checks["cost allocation tags"]["status"] == "fail"
    assert checks["exposed-key rule"]["status"] == "pass"
    assert checks["budget brake"]["status"] == "pass"
    assert "guard: CreateFleet" in captured.err


def test_unguarded_principal_is_named_with_the_fix(
    env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--principal: SimulatePrincipalPolicy on a user the guard is not attached to (recorded:
    an administrator, every launch allowed) fails each launch the guard exists to stop."""
    stack = deploy(env)
    alice = f"arn:aws:iam::{ACCOUNT}:user/alice"
    with recorded(monkeypatch, env, "simulate-principal-unguarded") as server:
        results = check_launch_guard(
            Aws(REGION), stack.outputs, config_for(tmp_path), ME, principal=alice
        )
    by = by_name(results)
    assert by["guard: the fleet's own launch"].status is Status.PASS
    denied = [r for r in results if r.name != "guard: the fleet's own launch"]
    assert {r.status for r in denied} == {Status.FAIL}
    assert all(stack.outputs.launch_guard_policy_arn in r.fix for r in denied)
    sources = {f["PolicySourceArn"] for op, f in server.requests if op == "SimulatePrincipalPolicy"}
    assert sources == {alice}


def test_what_check_looks_for_is_what_infra_declares(tmp_path: Path) -> None:
    """The physical names and shapes check and resume find things by, against the program
    infra/ builds (under Pulumi mocks, tests/infra/program.py) from the example config: if
    infra renames the brake, the worker log group or the quarantine Lambda, or changes the
    brake's budget notification or alarm, this fails before a user's `spotcube check` does.
    """
    from spotcube.account.postdeploy import _judge_meter_alarm
    from spotcube.account.resume import is_brake, is_rearm
    from spotcube.account.stackparts import (
        brake_function_name,
        quarantine_function_name,
        worker_log_group,
    )
    from spotcube.stack import StackOutputs
    from tests.infra.program import run_program

    # An AMI id: the mocks then need no image lookup (`ami: latest`), whichever way infra does it.
    config = from_file(write_config(tmp_path, {"ami": "ami-0123456789abcdef0"}))
    program = run_program(config)
    outputs = StackOutputs.from_mapping(
        {k: v for k, v in program.outputs.items() if isinstance(v, str)}, source="mocks"
    )
    functions = {r.inputs.get("name") for r in program.of_type("aws:lambda/function:Function")}
    assert brake_function_name(outputs) in functions
    assert quarantine_function_name(outputs) in functions
    groups = {r.inputs.get("name") for r in program.of_type("aws:cloudwatch/logGroup:LogGroup")}
    assert worker_log_group(outputs) in groups
    [budget] = program.of_type("aws:budgets/budget:Budget")
    notes = budget.inputs["notifications"]
    as_api = [
        {
            "NotificationType": n["notificationType"],
            "ThresholdType": n["thresholdType"],
            "ComparisonOperator": n["comparisonOperator"],
            "Threshold": n["threshold"],
        }
        for n in notes
    ]
    assert sum(map(is_brake, as_api)) == 1
    assert not any(map(is_rearm, as_api))
    burn = [
        r
        for r in program.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if r.inputs.get("dimensions", {}).get("AutoScalingGroupName") == outputs.asg_name
    ]
    assert burn, "no alarm on the fleet's group"
    for alarm in burn:
        shaped = {
            "Namespace": alarm.inputs.get("namespace"),
            "MetricName": alarm.inputs.get("metricName"),
            "Threshold": alarm.inputs.get("threshold"),
        }
        # check judges the declared alarm as the meter's and finds nothing wrong with it.
        assert (shaped["Namespace"], shaped["MetricName"]) == (meter.NAMESPACE, meter.METRIC)
        assert _judge_meter_alarm(shaped, {meter.SOURCE_METRIC}, config) is None, shaped


@pytest.mark.parametrize(
    ("option", "value"), [("--selftest", "0"), ("--selftest-minutes", "nan")], ids=["jobs", "nan"]
)
def test_bad_selftest_options_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"region": REGION, "products_bucket": "b", "job_queue_url": "q"}))
    extra = [] if option == "--selftest" else ["--selftest", "1"]
    status = main(["check", "--outputs", str(outputs), option, value, *extra])
    err = capsys.readouterr().err
    assert status == 2
    assert option in err
    assert err.count("\n") == 1


@pytest.mark.slow
def test_selftest_through_a_local_fleet(cloud: str, tmp_path: Path) -> None:
    """One selftest job through a real worker process (payload's worker, the local fleet of
    `spotcube demo`): the check waits for the worker's DONE and passes."""
    import time

    from spotcube.local.fleet import Fleet, InterruptionModel, WorkerSpec

    outputs = provision(cloud)
    fleet = Fleet(
        spec=WorkerSpec(outputs=outputs, root=tmp_path, extra_args=["--poll-wait", "1"]),
        size=1,
        model=InterruptionModel(rate_per_hour=0.0),
    )

    def wait(seconds: float) -> None:
        fleet.tick()
        time.sleep(seconds)

    with fleet:
        result = run_selftest(outputs, 1, timeout_seconds=300, poll_seconds=0.5, sleep=wait)
    assert result.status is Status.PASS, result
    assert "1 done through the fleet" in result.detail


def test_brake_that_fails_is_a_failed_check(env: str) -> None:
    """A Lambda error (FunctionError) is one failed line naming the log group, not a crash."""
    stack = deploy(env)

    def broken(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("the brake Lambda failed: KeyError 'ASG_NAME'")

    result = check_brake_dry_run(
        Aws(REGION), stack.outputs, invoke=broken, deployed_source=lambda: '"dry_run"'
    )
    assert result.status is Status.FAIL
    assert f"/aws/lambda/{stack.names.asg}-brake" in result.fix
