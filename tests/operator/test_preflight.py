"""``spotcube preflight`` against moto's server and responses recorded from AWS's API reference.

moto serves EC2 (regions, zones, instance type offerings, images), S3, STS, Auto Scaling,
Organizations and Budgets; Service Quotas (moto knows only VPC quotas) and Cost Explorer's
ListCostAllocationTags (not in moto) are replayed from recordings under ``recorded/``, each
naming the API reference page it follows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from contract.localcloud import LOCAL_CREDENTIALS
from infra.config import StackConfig
from spotcube.account.preflight import bucket_names, check_budget
from spotcube.account.results import Status
from spotcube.account.session import Aws
from spotcube.account.stackconfig import from_file
from spotcube.bake.aws import CONTENT_HASH_TAG
from spotcube.bake.contenthash import content_hash
from spotcube.bake.provenance import repo_root
from spotcube.cli import main
from tests.operator.replay import ReplayServer, replay

EXAMPLE = repo_root() / "Pulumi.example.yaml"
OTHER_ACCOUNT = "111122223333"


def write_config(
    tmp_path: Path, changes: dict[str, Any] | None = None, stack: str = "sandbox"
) -> Path:
    """Pulumi.example.yaml with ``changes`` (``{"fleet.maxSize": 4}``) as a stack config file."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    config = doc["config"]
    for dotted, value in (changes or {}).items():
        section, _, key = dotted.partition(".")
        if key:
            config[f"spotcube:{section}"][key] = value
        else:
            config[f"spotcube:{section}"] = value
    path = tmp_path / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def client(service: str, endpoint: str, region: str = "us-east-1", account: str = "") -> Any:
    c = boto3.client(service, endpoint_url=endpoint, region_name=region, **LOCAL_CREDENTIALS)
    if account:
        # moto's way of acting as another account (moto.core.responses.get_current_account).
        def header(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account

        c.meta.events.register("before-sign.*.*", header)
    return c


@pytest.fixture
def aws_env(cloud: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every boto3 client of the command goes to moto (boto3's AWS_ENDPOINT_URL)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", cloud)
    return cloud


@contextmanager
def use_recordings(monkeypatch: pytest.MonkeyPatch, *names: str) -> Iterator[ReplayServer]:
    with replay(*names) as server:
        for service in ("SERVICE_QUOTAS", "COST_EXPLORER"):
            monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", server.endpoint)
        if any(n.startswith("organization") for n in names):
            monkeypatch.setenv("AWS_ENDPOINT_URL_ORGANIZATIONS", server.endpoint)
        yield server


def bake_image(endpoint: str, region: str = "us-east-1", variant: str = "default") -> str:
    """An AMI of this account tagged the way `spotcube bake --target aws` tags it."""
    ec2 = client("ec2", endpoint, region)
    image = ec2.register_image(
        Name="spotcube-payload-test", RootDeviceName="/dev/xvda", Architecture="x86_64"
    )["ImageId"]
    ec2.create_tags(
        Resources=[image],
        Tags=[
            {"Key": CONTENT_HASH_TAG, "Value": content_hash(repo_root()).hexdigest},
            {"Key": "Project", "Value": "spotcube"},
            {"Key": "spotcube:variant", "Value": variant},
        ],
    )
    return str(image)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    status = main(["preflight", *argv, "--json"])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if out.strip() else {}), err


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def test_fresh_account_is_refused_with_the_fixes(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A new account: 5 Standard spot vCPUs, no AMI, tags not yet seen by billing.

    Quota value 5.0 of a new account's Standard quota: the AWS CLI User Guide's
    get-aws-default-service-quota example (recorded/quota-*-new-account.json). moto's EC2
    offerings for us-east-1 (taken from AWS) have none of the example's types in
    us-east-1e. Exit status 3 (ExitStatus.REFUSED) when a check fails.
    """
    with use_recordings(
        monkeypatch, "quota-spot-new-account", "quota-on-demand-new-account", "cost-tags-unseen"
    ):
        config = write_config(tmp_path)
        status, report, err = run(capsys, "--config", str(config))
    checks = by_name(report)
    assert status == 3
    assert err.count("\n") == 1
    assert "spot vCPU quota" in err
    assert "image in region" in err
    spot = checks["spot vCPU quota"]
    assert spot["status"] == "fail"
    assert "below one 16-vCPU instance" in spot["detail"]
    assert "--quota-code L-34B43A08 --desired-value 160" in spot["fix"]
    assert checks["on-demand vCPU quota"]["status"] == "pass"  # onDemandBase 0 needs none
    assert checks["image in region"]["status"] == "fail"
    assert "spotcube bake --target aws --region us-east-1" in checks["image in region"]["fix"]
    tags = checks["cost allocation tags"]
    assert tags["status"] == "warn"
    assert "24 hours" in tags["fix"]
    assert "TagKey=Owner,Status=Active" in tags["fix"]
    offered = checks["instance types offered"]
    assert offered["status"] == "warn"
    assert "us-east-1e" in offered["detail"]
    for bucket in bucket_names(from_file(config), _account()):
        assert checks[f"bucket {bucket}"]["status"] == "pass"
    assert checks["other spotcube stacks"]["status"] == "pass"
    assert checks["credentials"]["detail"].startswith("account 123456789012")


def test_ready_account_passes(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Raised spot quota, an AMI with this checkout's hash, active tags: exit status 0.

    The table (no --json) names every check with PASS or WARN and prints no FAIL line.
    """
    bake_image(aws_env)
    config = write_config(tmp_path)
    with use_recordings(monkeypatch, "quota-spot-raised", "cost-tags-active") as server:
        status, report, _ = run(capsys, "--config", str(config))
        assert main(["preflight", "--config", str(config)]) == 0
        table = capsys.readouterr().out
    assert status == 0
    assert report["ok"] is True
    assert "FAIL" not in table
    assert "PASS  spot vCPU quota" in table
    # Service Quotas was asked for the spot quota in the stack's region, nothing else.
    asked = [fields.get("QuotaCode") for op, fields in server.requests if op == "GetServiceQuota"]
    assert set(asked) == {"L-34B43A08"}


def test_on_demand_base_checks_the_on_demand_quota_and_falls_back_to_the_default(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No applied value: GetServiceQuota raises NoSuchResourceException (documented in its
    Errors section), and the AWS default (GetAWSDefaultServiceQuota, 5 vCPUs) is what holds.
    """
    bake_image(aws_env)
    config = write_config(tmp_path, {"fleet.onDemandBase": 1})
    with use_recordings(
        monkeypatch,
        "quota-spot-raised",
        "quota-on-demand-not-applied",
        "default-quota-on-demand",
        "cost-tags-active",
    ):
        status, report, _ = run(capsys, "--config", str(config))
    on_demand = by_name(report)["on-demand vCPU quota"]
    assert status == 3
    assert on_demand["status"] == "fail"
    assert "quota 5 vCPUs" in on_demand["detail"]
    assert "L-1216C47A --desired-value 16" in on_demand["fix"]


def test_organization_member_cannot_activate_tags(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A member account: DescribeOrganization names another management account, and
    ListCostAllocationTags is denied ("Linked account doesn't have access to cost allocation
    tags", as reported in hashicorp/terraform-provider-aws#37636 and
    aws/aws-parallelcluster-ui#242): the budget would be blind, so preflight fails.
    """
    bake_image(aws_env)
    with use_recordings(
        monkeypatch, "quota-spot-raised", "cost-tags-linked-account", "organization-member"
    ):
        status, report, _ = run(capsys, "--config", str(write_config(tmp_path)))
    tags = by_name(report)["cost allocation tags"]
    assert status == 3
    assert tags["status"] == "fail"
    assert "Linked account" in tags["detail"]
    assert "111111111111" in tags["fix"]


def test_region_without_the_types_fails(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """moto's offerings for eu-north-1 (from AWS) have no m6a.4xlarge or m5a.4xlarge."""
    config = write_config(tmp_path, {"region": "eu-north-1"})
    with use_recordings(monkeypatch, "quota-spot-raised", "cost-tags-active"):
        status, report, _ = run(capsys, "--config", str(config))
    offered = by_name(report)["instance types offered"]
    assert status == 3
    assert offered["status"] == "fail"
    assert offered["detail"].startswith("m6a.4xlarge, m5a.4xlarge not offered in any zone")


def test_opt_in_region_not_enabled_skips_the_rest(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """ap-southeast-4 is an opt-in region (moto reports it not-opted-in, as AWS does for an
    account that never enabled it): every other answer would be about an unusable region.
    """
    config = write_config(tmp_path, {"region": "ap-southeast-4"})
    with use_recordings(monkeypatch, "quota-spot-raised", "cost-tags-active"):
        status, report, _ = run(capsys, "--config", str(config))
    checks = by_name(report)
    assert status == 3
    assert checks["region"]["status"] == "fail"
    assert "aws account enable-region --region-name ap-southeast-4" in checks["region"]["fix"]
    assert {c["status"] for n, c in checks.items() if n not in ("credentials", "region")} == {
        "skip"
    }


def test_bucket_of_another_account_and_other_stacks(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bucket names are global: a name another account holds fails the check (moto answers
    HeadBucket of a foreign bucket as S3 does). Another spotcube group in the region counts
    against the shared spot quota: 640 vCPUs hold this fleet (160) but not with a second
    fleet of 40 x 16 vCPUs.
    """
    bake_image(aws_env)
    config = write_config(tmp_path)
    products, raw = bucket_names(from_file(config), _account())
    client("s3", aws_env, account=OTHER_ACCOUNT).create_bucket(Bucket=products)
    ec2 = client("ec2", aws_env)
    template = ec2.create_launch_template(
        LaunchTemplateName="bob-fleet", LaunchTemplateData={"ImageId": "ami-12c6146b"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    client("autoscaling", aws_env).create_auto_scaling_group(
        AutoScalingGroupName="spotcube-bob-prod-fleet",
        MinSize=0,
        MaxSize=40,
        AvailabilityZones=["us-east-1a"],
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": template},
                "Overrides": [{"InstanceType": "m6i.4xlarge"}, {"InstanceType": "m5.4xlarge"}],
            }
        },
        Tags=[{"Key": "Project", "Value": "spotcube", "PropagateAtLaunch": True}],
    )
    with use_recordings(monkeypatch, "quota-spot-raised", "cost-tags-active"):
        status, report, _ = run(capsys, "--config", str(config))
    checks = by_name(report)
    assert status == 3
    assert checks[f"bucket {products}"]["status"] == "fail"
    assert checks[f"bucket {raw}"]["status"] == "pass"
    stacks = checks["other spotcube stacks"]
    assert stacks["status"] == "warn"
    assert "spotcube-bob-prod-fleet (max 40)" in stacks["detail"]
    assert "spotcube:guards.accountVcpus 800" in stacks["fix"]
    spot = checks["spot vCPU quota"]
    assert spot["status"] == "fail"
    assert "160 plus 640 of other spotcube stacks" in spot["detail"]


def test_config_warnings_are_listed(
    aws_env: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Valid but dangerous values (infra.config's warnings) appear as WARN lines, not FAILs."""
    bake_image(aws_env)
    config = write_config(tmp_path, {"budget.monthlyUsd": 50000})
    with use_recordings(monkeypatch, "quota-spot-raised", "cost-tags-active"):
        status, report, _ = run(capsys, "--config", str(config))
    warnings = [c for c in report["checks"] if c["name"] == "config"]
    assert status == 0
    assert [w["status"] for w in warnings] == ["warn"]
    assert warnings[0]["detail"].startswith("spotcube:budget.monthlyUsd:")


def test_more_alert_emails_than_budgets_allows(aws_env: str, tmp_path: Path) -> None:
    """AWS Budgets: "A notification can have one SNS subscriber and up to 10 email
    subscribers" (Budgets API reference, data type Notification). The config is built past
    the parser, which may refuse the same on its own.
    """
    config: StackConfig = from_file(write_config(tmp_path))
    many = tuple(f"user{i}@example.org" for i in range(11))
    config = replace(config, budget=replace(config.budget, emails=many))
    result = check_budget(Aws("us-east-1"), config, account=_account())
    assert result.status is Status.FAIL
    assert "11 alert emails" in result.detail
    ten = replace(config, budget=replace(config.budget, emails=many[:10]))
    assert check_budget(Aws("us-east-1"), ten, account=_account()).status is Status.PASS


def test_budget_of_the_same_name_exists(aws_env: str, tmp_path: Path) -> None:
    """Budget names are unique per account (Budgets' DuplicateRecordException)."""
    config = from_file(write_config(tmp_path))
    client("budgets", aws_env).create_budget(
        AccountId="123456789012",
        Budget={
            "BudgetName": config.names.budget,
            "BudgetLimit": {"Amount": "50", "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
        },
    )
    result = check_budget(Aws("us-east-1"), config, account=_account())
    assert result.status is Status.WARN
    assert "exists already (limit 50" in result.detail


def _account() -> Any:
    from spotcube.account.preflight import Account

    return Account(account_id="123456789012", caller_arn="arn:aws:iam::123456789012:user/t")


def test_unreachable_endpoint_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listens on port 9 of the loopback: exit status 5 (UNREACHABLE), one line."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    status = main(["preflight", "--config", str(write_config(tmp_path))])
    out, err = capsys.readouterr()
    assert status == 5
    assert out == ""
    assert err.count("\n") == 1
    assert "http://127.0.0.1:9" in err


def test_unknown_profile_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["preflight", "--config", str(write_config(tmp_path)), "--profile", "no-such-profile"]
    )
    err = capsys.readouterr().err
    assert status == 5
    assert "'no-such-profile'" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("Pulumi.dev.yaml", "config: [1, 2", "is not YAML"),
        ("Pulumi.dev.yaml", "encryptionsalt: x\n", "has no `config:` mapping"),
        ("dev.yaml", "config: {}\n", "Pulumi.<stack>.yaml"),
        ("Pulumi.dev.yaml", "config:\n  spotcube:owner: Alice!\n", "spotcube:owner"),
    ],
    ids=["not-yaml", "no-config", "wrong-file-name", "bad-owner"],
)
def test_bad_config_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    status = main(["preflight", "--config", str(path)])
    captured = capsys.readouterr()
    assert status == 2
    assert expected in captured.err
    assert captured.out == ""
    assert "Traceback" not in captured.err


def test_latest_image_must_be_of_the_stacks_variant(aws_env: str, tmp_path: Path) -> None:
    """`ami: latest` picks the newest AMI tagged Project=spotcube *and* spotcube:variant=<the
    stack's variant> (infra/stack.py ami_id); an image of another variant alone would let
    preflight pass where `pulumi up` stops (issue 20)."""
    from spotcube.account.preflight import check_ami

    config = from_file(write_config(tmp_path))
    assert config.variant == "default"
    bake_image(aws_env, variant="radio-tools")
    other_only = check_ami(Aws("us-east-1"), config, repo_root())
    assert other_only.status is Status.FAIL
    assert "spotcube:variant=default" in other_only.detail
    bake_image(aws_env)
    assert check_ami(Aws("us-east-1"), config, repo_root()).status is Status.PASS


def test_region_restriction_on_us_east_1_is_reported(aws_env: str) -> None:
    """An Organization SCP that denies regions other than approved ones refuses the key-leak
    guard's us-east-1 parts (the Health rule and the quarantine Lambda). The denial is the
    error AWS returns for an SCP's explicit deny (IAM User Guide, "Troubleshoot access denied
    error messages": "... with an explicit deny in a service control policy")."""
    from botocore.stub import Stubber

    from spotcube.account.preflight import check_us_east_1

    aws = Aws("eu-west-1")
    assert check_us_east_1(aws).status is Status.PASS  # moto answers: nothing restricts it
    events = aws.client("events", region="us-east-1")
    with Stubber(events) as stub:
        stub.add_client_error(
            "list_rules",
            service_error_code="AccessDeniedException",
            service_message=(
                "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: "
                "events:ListRules with an explicit deny in a service control policy"
            ),
            http_status_code=400,
        )
        result = check_us_east_1(aws)
    assert result.status is Status.FAIL
    assert "events:list_rules in us-east-1 is denied" in result.detail
    assert "service control policy" in result.detail
    assert "us-east-1" in result.fix
