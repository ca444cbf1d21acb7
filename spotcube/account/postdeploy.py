"""Checks of a deployed stack's guards, without harm (``spotcube check``).

The brake is asked what it would do (``{"dry_run": true}``) and the group's sizes are compared
before and after; the launch guard is evaluated by IAM's policy simulator, never by launching;
the alarms, the Health rule and the worker logs are read. Only ``--selftest`` spends money,
through the real fleet.
"""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from contract.costfacts import OWNER_TAG
from contract.health import EXPOSED_KEYS_EVENT_TYPE, HEALTH_REGION
from contract.jobs import JobKind
from contract.layout import RUNS
from infra.config import StackConfig
from infra.lambdas import meter
from spotcube.account.preflight import Account, check_cost_tags
from spotcube.account.results import CheckResult, failed, passed, skipped, warned
from spotcube.account.session import Aws, error_code, run_checks
from spotcube.account.stackparts import (
    brake_function_arn,
    brake_function_name,
    brake_topics,
    burn_alarms,
    quarantine_function_name,
    stack_prefix,
)
from spotcube.stack import StackOutputs

# A type no spotcube fleet lists, and a region to stand for "any other region".
FOREIGN_TYPE = "p4d.24xlarge"
FOREIGN_REGIONS = ("ap-southeast-2", "eu-west-1")
LOGS_FRESH_HOURS = 24

BrakeInvoker = Callable[[dict[str, Any]], dict[str, Any]]
SourceReader = Callable[[], str | None]


# --- the brake --------------------------------------------------------------------------


def lambda_invoker(aws: Aws, function_name: str) -> BrakeInvoker:
    """Invoke the deployed brake synchronously and return its JSON answer."""

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        response = aws.client("lambda").invoke(
            FunctionName=function_name, Payload=json.dumps(event).encode()
        )
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            message = payload.get("errorMessage") if isinstance(payload, dict) else payload
            raise RuntimeError(f"the brake Lambda failed: {message}")
        return payload if isinstance(payload, dict) else {"answer": payload}

    return invoke


def deployed_source_reader(aws: Aws, function_name: str) -> SourceReader:
    """The deployed brake.py, read from the function's code package (None if unreadable)."""

    def read() -> str | None:
        location = (
            aws.client("lambda").get_function(FunctionName=function_name)["Code"].get("Location")
        )
        if not location:
            return None
        try:
            # A presigned S3 URL to the deployment package, valid for 10 minutes.
            with urllib.request.urlopen(location, timeout=15) as response:
                package = response.read()
            with zipfile.ZipFile(io.BytesIO(package)) as archive:
                return archive.read("brake.py").decode()
        except (OSError, KeyError, zipfile.BadZipFile):
            return None

    return read


def _sizes(aws: Aws, asg: str) -> tuple[int, int, int] | None:
    groups = aws.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[asg])[
        "AutoScalingGroups"
    ]
    if not groups:
        return None
    g = groups[0]
    return int(g["MinSize"]), int(g["MaxSize"]), int(g["DesiredCapacity"])


def check_brake_dry_run(
    aws: Aws, outputs: StackOutputs, *, invoke: BrakeInvoker, deployed_source: SourceReader
) -> CheckResult:
    """The brake answers a dry run for this group and leaves the group as it was."""
    name = "brake dry run"
    source = deployed_source()
    if source is None:
        return skipped(
            name,
            "could not read the deployed brake's code, so it was not invoked (a brake "
            "without dry-run support would brake for real)",
            f"check that {brake_function_name(outputs)} exists (`pulumi up`)",
        )
    if '"dry_run"' not in source:
        return failed(
            name,
            "the deployed brake predates dry-run support: invoking it would scale the fleet "
            "to zero, so it was not invoked",
            "`pulumi up` with this checkout deploys the current brake",
        )
    before = _sizes(aws, outputs.asg_name)
    try:
        answer = invoke({"dry_run": True})
    except (RuntimeError, ValueError) as exc:  # the function failed, or answered no JSON
        return failed(
            name,
            str(exc),
            f"read its log group /aws/lambda/{brake_function_name(outputs)}; `pulumi up`",
        )
    after = _sizes(aws, outputs.asg_name)
    if before != after:
        return failed(
            name,
            f"the dry run changed {outputs.asg_name} from min/max/desired {before} to {after}",
            "the brake ignores dry_run: redeploy it with `pulumi up`, then `spotcube resume`",
        )
    if answer.get("dry_run") is not True:
        return failed(name, f"the brake did not answer as a dry run: {answer}", "`pulumi up`")
    if answer.get("problems"):
        return failed(
            name,
            f"the brake could not act: {'; '.join(map(str, answer['problems']))}",
            "its ASG_NAME must name the stack's group; `pulumi up`",
        )
    groups = [g for g in answer.get("groups", []) if g.get("asg") == outputs.asg_name]
    if not groups:
        return failed(
            name,
            f"the brake acts on {[g.get('asg') for g in answer.get('groups', [])]}, not on "
            f"{outputs.asg_name}",
            "`pulumi up` so its ASG_NAME names the stack's group",
        )
    plan = groups[0]
    current = plan.get("current", {})
    would = (
        f"would set min/max/desired {current.get('min')}/{current.get('max')}/"
        f"{current.get('desired')} to 0/0/0"
        if plan.get("resize")
        else "group already at zero"
    )
    unprotect = len(plan.get("unprotect", []))
    return passed(
        name,
        f"{would}, lift scale-in protection of {unprotect} instance(s); nothing changed",
    )


def check_brake_wiring(aws: Aws, outputs: StackOutputs, config: StackConfig) -> list[CheckResult]:
    """Alarm -> topic -> Lambda: every link the fast brake needs, and that it can fire."""
    results: list[CheckResult] = []
    fn_name = brake_function_name(outputs)
    lam = aws.client("lambda")
    try:
        fn_arn = lam.get_function_configuration(FunctionName=fn_name)["FunctionArn"]
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        return [failed("brake Lambda", f"{fn_name} does not exist", "`pulumi up`")]
    topics = brake_topics(aws, fn_arn)
    if len(topics) != 1:
        return [
            failed(
                "brake topic",
                f"{len(topics)} SNS topics subscribe {fn_name}; the stack makes one",
                "`pulumi up` (or `pulumi refresh` then `pulumi up` if it was changed by hand)",
            )
        ]
    topic = topics[0]
    allowed = _lambda_allows(aws, fn_name, "sns.amazonaws.com", topic)
    results.append(
        passed("brake topic", f"{topic.rsplit(':', 1)[-1]} -> {fn_name}, invoke permitted")
        if allowed
        else failed(
            "brake topic",
            f"{fn_name}'s resource policy does not let {topic} invoke it",
            "`pulumi up` restores the permission",
        )
    )
    alarms = burn_alarms(aws, outputs)
    if not alarms:
        return [
            *results,
            failed("burn-rate alarm", f"no alarm watches {outputs.asg_name}", "`pulumi up`"),
        ]
    group = aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[outputs.asg_name]
    )["AutoScalingGroups"]
    enabled = {m["Metric"] for g in group for m in g.get("EnabledMetrics", []) if m.get("Metric")}
    for alarm in alarms:
        results.append(_judge_alarm(alarm, topic, enabled, config))
    return results


def _lambda_allows(
    aws: Aws, function: str, service: str, source_arn: str, region: str = ""
) -> bool:
    try:
        policy = json.loads(
            aws.client("lambda", region=region or None).get_policy(FunctionName=function)["Policy"]
        )
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    for statement in policy.get("Statement", []):
        principal = statement.get("Principal", {})
        services = principal.get("Service") if isinstance(principal, dict) else None
        sources = json.dumps(statement.get("Condition", {}))
        if (
            statement.get("Effect") == "Allow"
            and service in str(services)
            and source_arn in sources
        ):
            return True
    return False


def max_metric_value(alarm: dict[str, Any], max_size: int) -> float | None:
    """The largest value the alarm's statistic can reach with the whole fleet running.

    GroupInServiceInstances is published every minute once metrics collection is enabled:
    a Sum over a period adds one sample per minute (instance-minutes), Maximum/Average/
    Minimum stay at the instance count.
    """
    if alarm.get("MetricName") != "GroupInServiceInstances" or "Period" not in alarm:
        return None
    statistic = alarm.get("Statistic")
    if statistic == "Sum":
        return float(max_size) * int(alarm["Period"]) / 60
    if statistic in ("Maximum", "Average", "Minimum"):
        return float(max_size)
    return None


def _judge_meter_alarm(
    alarm: dict[str, Any], enabled_metrics: set[str], config: StackConfig
) -> tuple[str, str] | None:
    """(problem, fix) of the month-to-date spend alarm, or None when it can do its job."""
    if meter.SOURCE_METRIC not in enabled_metrics:
        return (
            f"the group does not publish {meter.SOURCE_METRIC}: the meter prices nothing and "
            "the alarm never fires",
            "`pulumi up` (the group's enabled_metrics)",
        )
    threshold = float(alarm.get("Threshold", 0))
    expected = config.budget.brake_threshold_usd
    if abs(threshold - expected) > 0.005:
        return (
            f"threshold ${threshold:,.2f} is not the budget's ${expected:,.2f}: the stack "
            "was deployed with another budget.monthlyUsd",
            "`pulumi up` with this config",
        )
    return None


def _judge_alarm(
    alarm: dict[str, Any], topic: str, enabled_metrics: set[str], config: StackConfig
) -> CheckResult:
    name = f"alarm {alarm['AlarmName']}"
    if topic not in alarm.get("AlarmActions", []):
        return failed(name, "its actions do not include the brake topic", "`pulumi up`")
    if not alarm.get("ActionsEnabled", True):
        return failed(
            name,
            "its actions are disabled: it changes state but never pulls the brake",
            f"`aws cloudwatch enable-alarm-actions --alarm-names {alarm['AlarmName']}`",
        )
    metric = alarm.get("MetricName", "")
    if alarm.get("Namespace") == meter.NAMESPACE and metric == meter.METRIC:
        problem = _judge_meter_alarm(alarm, enabled_metrics, config)
        if problem is not None:
            return failed(name, *problem)
    elif metric.startswith("Group") and metric not in enabled_metrics:
        return failed(
            name,
            f"the group does not publish {metric}: the alarm never sees data",
            "`pulumi up` (the group's enabled_metrics)",
        )
    ceiling = max_metric_value(alarm, config.fleet.max_size)
    threshold = float(alarm.get("Threshold", 0))
    if ceiling is not None and threshold >= ceiling:
        return failed(
            name,
            f"threshold {threshold:g} is unreachable: {config.fleet.max_size} instances reach "
            f"at most {ceiling:g} per {int(alarm['Period']) // 60} min",
            "`pulumi up` replaces it with the month-to-date spend alarm (ADR 0002)",
        )
    state = alarm.get("StateValue", "?")
    reach = (
        f"; the full fleet reaches it after {threshold / ceiling:.0%} of a period"
        if ceiling
        else ""
    )
    if state == "ALARM":
        return warned(
            name,
            f"in ALARM now (threshold {threshold:g}{reach})",
            "it acts only on entering ALARM: `spotcube resume` resets it when you release "
            "the brake",
        )
    return passed(name, f"wired to the brake, state {state}, threshold {threshold:g}{reach}")


def check_budget_brake(aws: Aws, outputs: StackOutputs, account: Account) -> CheckResult:
    """The budget's 100 % notification publishes to the brake and has not fired this month."""
    from spotcube.account.resume import is_brake, is_rearm

    name = "budget brake"
    budgets = aws.client("budgets", region="us-east-1")
    notes = budgets.describe_notifications_for_budget(
        AccountId=account.account_id, BudgetName=outputs.budget_name
    ).get("Notifications", [])
    brakes = [n for n in notes if is_brake(n)]
    if not brakes:
        return failed(
            name, f"{outputs.budget_name} has no 100% actual-spend notification", "`pulumi up`"
        )
    brake = brakes[0]
    subscribers = budgets.describe_subscribers_for_notification(
        AccountId=account.account_id,
        BudgetName=outputs.budget_name,
        Notification={
            k: brake[k]
            for k in ("NotificationType", "ComparisonOperator", "Threshold", "ThresholdType")
        },
    ).get("Subscribers", [])
    topics = [s["Address"] for s in subscribers if s.get("SubscriptionType") == "SNS"]
    brake_topic = brake_topics(aws, brake_function_arn(aws, outputs))
    if not set(topics) & set(brake_topic):
        return failed(
            name,
            f"the 100% notification publishes to {', '.join(topics) or 'no SNS topic'}, not to "
            "the topic of the brake Lambda: reaching the budget would only send email",
            "`pulumi up` (or `pulumi refresh` then `pulumi up` if it was changed by hand)",
        )
    if brake.get("NotificationState") == "ALARM":
        return warned(
            name,
            "the 100% notification has fired this month; Budgets notify once per period, so "
            "it will not brake again before the month ends",
            "raise spotcube:budget.monthlyUsd above this month's spend, `pulumi up`, then "
            "`spotcube resume` re-arms it",
        )
    if any(map(is_rearm, notes)):
        return warned(
            name,
            "an absolute-amount notification an earlier `spotcube resume --allow-usd` added is "
            "still there; `pulumi up --refresh` deletes it",
            "run `spotcube resume` (it removes it and re-arms the 100% notification instead)",
        )
    return passed(
        name, f"{outputs.budget_name}: the 100% actual-spend notification is armed, to the brake"
    )


# --- the launch guard ------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchCase:
    """One request the guard must decide: what, with which context, and what must happen."""

    label: str
    action: str
    region: str
    instance_type: str | None
    tags: dict[str, str]
    must_be_denied: bool

    def context(self) -> list[dict[str, Any]]:
        entries = [("aws:RequestedRegion", self.region)]
        if self.instance_type:
            entries.append(("ec2:InstanceType", self.instance_type))
        entries += [(f"aws:RequestTag/{k}", v) for k, v in sorted(self.tags.items())]
        if self.tags:
            entries.append(("aws:TagKeys", ",".join(sorted(self.tags))))
        return [
            {
                "ContextKeyName": key,
                "ContextKeyValues": value.split(",") if key == "aws:TagKeys" else [value],
                "ContextKeyType": "stringList" if key == "aws:TagKeys" else "string",
            }
            for key, value in entries
        ]


def launch_cases(config: StackConfig) -> list[LaunchCase]:
    region = config.region
    other = next(r for r in FOREIGN_REGIONS if r != region)
    allowed_type = config.fleet.instance_types[0]
    tags = config.names.cost_tags  # what the fleet's launches carry
    return [
        LaunchCase("the fleet's own launch", "ec2:RunInstances", region, allowed_type, tags, False),
        LaunchCase(f"launch in {other}", "ec2:RunInstances", other, allowed_type, tags, True),
        LaunchCase(
            f"launch of {FOREIGN_TYPE}", "ec2:RunInstances", region, FOREIGN_TYPE, tags, True
        ),
        LaunchCase("untagged launch", "ec2:RunInstances", region, allowed_type, {}, True),
        LaunchCase(
            "launch tagged for another owner",
            "ec2:RunInstances",
            region,
            allowed_type,
            {**tags, OWNER_TAG: "someone-else"},
            True,
        ),
        LaunchCase("CreateFleet", "ec2:CreateFleet", region, allowed_type, tags, True),
    ]


# With the guard alone every decision would be an implicit deny; beside an allow-all the
# simulator shows exactly what the guard's own Deny statements block.
ALLOW_EC2 = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}],
    }
)


def launch_guard_document(aws: Aws, outputs: StackOutputs) -> tuple[str, str] | None:
    """(ARN, policy JSON) of the stack's launch guard, or None if it does not exist."""
    iam = aws.client("iam")
    arn = outputs.launch_guard_policy_arn
    if not arn:
        wanted = f"{stack_prefix(outputs)}-launch-guard"
        for page in iam.get_paginator("list_policies").paginate(Scope="Local"):
            arn = next((p["Arn"] for p in page["Policies"] if p["PolicyName"] == wanted), "")
            if arn:
                break
    if not arn:
        return None
    try:
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
        return None
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    if isinstance(document, str):
        from urllib.parse import unquote

        document = json.loads(unquote(document))
    return arn, json.dumps(document)


def check_launch_guard(
    aws: Aws,
    outputs: StackOutputs,
    config: StackConfig,
    account: Account,
    *,
    principal: str | None = None,
) -> list[CheckResult]:
    """IAM's policy simulator on launches the guard must deny, and on the one it must allow.

    Without ``principal`` the guard's own document is simulated (SimulateCustomPolicy); with
    it, the principal's real policies (SimulatePrincipalPolicy), which also shows whether
    the guard is attached to that user or role.
    """
    found = launch_guard_document(aws, outputs)
    if found is None:
        return [
            failed("launch guard", "the stack's launch-guard policy does not exist", "`pulumi up`")
        ]
    arn, document = found
    iam = aws.client("iam")
    results: list[CheckResult] = []
    who = principal.rsplit(":", 1)[-1] if principal else "the guard policy"
    for case in launch_cases(config):
        resource = f"arn:aws:ec2:{case.region}:{account.account_id}:instance/*"
        common: dict[str, Any] = {
            "ActionNames": [case.action],
            "ResourceArns": [resource],
            "ContextEntries": case.context(),
        }
        if principal:
            answer = iam.simulate_principal_policy(PolicySourceArn=principal, **common)
        else:
            answer = iam.simulate_custom_policy(PolicyInputList=[ALLOW_EC2, document], **common)
        decisions = [r["EvalDecision"] for r in answer["EvaluationResults"]]
        decision = decisions[0] if decisions else "none"
        name = f"guard: {case.label}"
        denied = decision in ("explicitDeny", "implicitDeny")
        if case.must_be_denied and decision == "explicitDeny":
            results.append(passed(name, f"denied by {who}"))
        elif case.must_be_denied:
            results.append(
                failed(
                    name,
                    f"{decision} for {who}: a stolen key of a guarded user could do this",
                    f"the guard ({arn.rsplit('/', 1)[-1]}) must deny {case.action} here; "
                    "update infra/guards.py and `pulumi up`"
                    if not principal
                    else f"attach {arn} to {who}",
                )
            )
        elif denied:
            results.append(
                failed(
                    name,
                    f"{decision} for {who}: the guard blocks the launches the fleet needs",
                    "the guard must allow the stack's own types, region and tags",
                )
            )
        else:
            results.append(passed(name, f"allowed for {who}"))
    return results


# --- Health rule and logs --------------------------------------------------------------


def check_health_rule(aws: Aws, outputs: StackOutputs) -> CheckResult:
    """The exposed-keys rule in us-east-1 targets this stack's quarantine Lambda, enabled."""
    name = "exposed-key rule"
    events = aws.client("events", region=HEALTH_REGION)
    function = quarantine_function_name(outputs)
    for page in events.get_paginator("list_rules").paginate():
        for rule in page["Rules"]:
            if EXPOSED_KEYS_EVENT_TYPE not in rule.get("EventPattern", ""):
                continue
            targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
            mine = [t for t in targets if t["Arn"].endswith(f":function:{function}")]
            if not mine:
                continue
            if rule.get("State") != "ENABLED":
                return failed(
                    name,
                    f"rule {rule['Name']} is {rule.get('State')}",
                    f"`aws events enable-rule --name {rule['Name']} --region {HEALTH_REGION}`",
                )
            if not _lambda_allows(
                aws, function, "events.amazonaws.com", rule["Arn"], HEALTH_REGION
            ):
                return failed(
                    name,
                    f"{function} does not let rule {rule['Name']} invoke it",
                    "`pulumi up` restores the permission",
                )
            return passed(name, f"{rule['Name']} ({HEALTH_REGION}) -> {function}, enabled")
    return failed(
        name,
        f"no EventBridge rule in {HEALTH_REGION} sends {EXPOSED_KEYS_EVENT_TYPE} to {function}",
        "`pulumi up` (AWS Health delivers these events in us-east-1 only)",
    )


def check_worker_logs(
    aws: Aws, outputs: StackOutputs, *, since: datetime | None = None
) -> CheckResult:
    """Workers' logs reach where they are kept (after ``since`` when a self-test ran).

    Workers ship each attempt's log to the products bucket (payload/logship.py,
    ``runs/<run>/obs/<obs>/logs/attempt-<n>.log``), not to CloudWatch Logs: the image runs
    no log agent. ``spotcube logs <run>`` reads them.
    """
    name = "worker logs"
    bucket = outputs.products_bucket
    newest: dict[str, Any] | None = None
    pages = (
        aws.client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=RUNS, PaginationConfig={"MaxItems": LOG_SCAN_KEYS})
    )
    try:
        for page in pages:
            for obj in page.get("Contents", []):
                if LOG_KEY_PART in obj["Key"] and (
                    newest is None or obj["LastModified"] > newest["LastModified"]
                ):
                    newest = obj
    except ClientError as exc:
        if error_code(exc) != "NoSuchBucket":
            raise
        return failed(name, f"products bucket {bucket} does not exist", "`pulumi up`")
    if newest is None:
        result = skipped if since is None else failed
        return result(
            name,
            f"no attempt log under s3://{bucket}/runs/ yet: no worker has run",
            "run `spotcube check --selftest 1` to see a worker ship its log (a few cents)",
        )
    last = newest["LastModified"]
    age_h = (datetime.now(UTC) - last).total_seconds() / 3600
    if since is not None and last < since:
        return failed(
            name,
            f"no worker shipped a log since the self-test started ({last:%Y-%m-%d %H:%M} UTC last)",
            "on an instance, `journalctl -u spotcube-worker` shows why the worker did not "
            "start or could not write to the products bucket",
        )
    detail = f"last log {age_h:.1f} h ago: s3://{bucket}/{newest['Key']}"
    if since is None and age_h > LOGS_FRESH_HOURS:
        return warned(name, detail, "fine if the fleet has been idle; `spotcube logs <run>`")
    return passed(name, detail)


# The worker's shipped logs (contract/layout.py ObsLayout.log); a check lists at most this many
# keys under runs/ (one ListObjectsV2 page is 1,000).
LOG_KEY_PART = "/logs/attempt-"
LOG_SCAN_KEYS = 20_000


def run_check(
    aws: Aws,
    outputs: StackOutputs,
    config: StackConfig,
    account: Account,
    *,
    invoke: BrakeInvoker | None = None,
    deployed_source: SourceReader | None = None,
    principal: str | None = None,
) -> list[CheckResult]:
    fn = brake_function_name(outputs)
    checks: list[tuple[str, Callable[[], CheckResult | list[CheckResult]]]] = [
        (
            "brake dry run",
            lambda: check_brake_dry_run(
                aws,
                outputs,
                invoke=invoke or lambda_invoker(aws, fn),
                deployed_source=deployed_source or deployed_source_reader(aws, fn),
            ),
        ),
        ("brake wiring", lambda: check_brake_wiring(aws, outputs, config)),
        ("budget brake", lambda: check_budget_brake(aws, outputs, account)),
        (
            "launch guard",
            lambda: check_launch_guard(aws, outputs, config, account, principal=principal),
        ),
        ("exposed-key rule", lambda: check_health_rule(aws, outputs)),
        ("worker logs", lambda: check_worker_logs(aws, outputs)),
        ("cost allocation tags", lambda: check_cost_tags(aws, account, deployed=True)),
    ]
    return run_checks(aws, checks)


# --- self-test through the real fleet --------------------------------------------------


def run_selftest(
    outputs: StackOutputs,
    jobs: int,
    *,
    timeout_seconds: float,
    poll_seconds: float = 20.0,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> CheckResult:
    """Submit ``jobs`` selftest jobs, wait until they finish or ``timeout_seconds`` pass."""
    import time

    from payload.records import ObservationRef
    from spotcube.status import run_status
    from spotcube.submit import selftest_input, submit_run

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    name = f"selftest ({jobs} job{'s' if jobs != 1 else ''})"
    uri = selftest_input(outputs)
    run_id, _ = submit_run(
        outputs,
        [ObservationRef(f"selftest-{i:03d}", uri) for i in range(jobs)],
        kind=JobKind.SELFTEST.value,
    )
    deadline = clock() + timeout_seconds
    while True:
        status = run_status(outputs, run_id)
        if status.finished or clock() >= deadline:
            break
        sleep(poll_seconds)
    done, failures = status.count("done"), status.count("failed")
    if done == jobs:
        return passed(name, f"run {run_id}: {done} done through the fleet")
    if failures:
        return failed(
            name,
            f"run {run_id}: {failures} failed, {done} done",
            f"`spotcube status {run_id}` shows why; the worker logs say more",
        )
    return failed(
        name,
        f"run {run_id}: {done} of {jobs} done after {timeout_seconds / 60:.0f} min",
        "is the group at zero (`spotcube resume`), the spot quota too low "
        "(`spotcube preflight`), or the image missing? `spotcube status` watches on",
    )
