"""``spotcube down`` against the local cloud (moto over HTTP), with an ASG made in setup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contract.layout import ObsLayout
from contract.names import LOCAL_NAMES
from spotcube.cli import main
from spotcube.down import monthly_cost
from spotcube.errors import ExitStatus
from spotcube.local.motoserver import local_client
from spotcube.stack import local_outputs


@pytest.fixture
def stack(cloud: str) -> dict[str, Any]:
    """The local stack's buckets and queues, plus an Auto Scaling group of two instances."""
    s3 = local_client("s3", cloud)
    for bucket in (LOCAL_NAMES.raw_bucket, LOCAL_NAMES.products_bucket):
        s3.create_bucket(Bucket=bucket)
    sqs = local_client("sqs", cloud)
    queue = sqs.create_queue(QueueName=LOCAL_NAMES.job_queue)["QueueUrl"]
    sqs.create_queue(QueueName=LOCAL_NAMES.dead_letter_queue)
    template = local_client("ec2", cloud).create_launch_template(
        LaunchTemplateName="fleet",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "m6i.4xlarge"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling = local_client("autoscaling", cloud)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=LOCAL_NAMES.asg,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
    )
    return {"s3": s3, "sqs": sqs, "queue": queue, "autoscaling": autoscaling}


def capacity(stack: dict[str, Any]) -> tuple[int, int, int]:
    group = stack["autoscaling"].describe_auto_scaling_groups(
        AutoScalingGroupNames=[LOCAL_NAMES.asg]
    )["AutoScalingGroups"][0]
    return group["MinSize"], group["MaxSize"], group["DesiredCapacity"]


def put(stack: dict[str, Any], key: str, size: int, storage_class: str = "STANDARD") -> None:
    stack["s3"].put_object(
        Bucket=LOCAL_NAMES.products_bucket, Key=key, Body=b"x" * size, StorageClass=storage_class
    )


def test_down_scales_to_zero_and_prices_what_stays(
    cloud: str, stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    done = ObsLayout("run1", "obs1")
    put(stack, done.manifest, 1000)
    put(stack, done.product("image.fits"), 3 * 1024**2, "DEEP_ARCHIVE")
    put(stack, done.done, 0)
    stack["s3"].put_object(Bucket=LOCAL_NAMES.raw_bucket, Key="obs1.uvh5", Body=b"y" * 2048)
    stack["sqs"].send_message(QueueUrl=stack["queue"], MessageBody=json.dumps({"obs": "o2"}))

    assert main(["down", "--endpoint", cloud]) == 0

    assert capacity(stack) == (0, 0, 0)
    out = capsys.readouterr().out
    assert f"scaled {LOCAL_NAMES.asg} to zero (was min 0, max 10, desired 2)" in out
    assert "1 job(s) stay queued" in out
    assert f"s3://{LOCAL_NAMES.products_bucket}/" in out
    assert "DEEP_ARCHIVE" in out
    assert f"s3://{LOCAL_NAMES.raw_bucket}/" in out
    expected = monthly_cost("DEEP_ARCHIVE", 1, 3 * 1024**2)
    assert f"${expected:,.2f}" in out
    assert "total about $" in out


def test_deep_archive_cost_includes_per_object_overhead() -> None:
    gb = 1024**3
    assert monthly_cost("DEEP_ARCHIVE", 0, 1024 * gb) == pytest.approx(0.00099 * 1024)
    # A million tiny objects: 32 KB at Deep Archive price + 8 KB at Standard price each.
    overhead = monthly_cost("DEEP_ARCHIVE", 10**6, 0)
    assert overhead == pytest.approx(1e6 * (32 * 1024 * 0.00099 + 8 * 1024 * 0.023) / gb)
    assert monthly_cost("STANDARD", 10**6, 0) == 0


def test_refuses_with_jobs_in_flight(
    cloud: str, stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    stack["sqs"].send_message(QueueUrl=stack["queue"], MessageBody="{}")
    stack["sqs"].receive_message(QueueUrl=stack["queue"], VisibilityTimeout=600)

    assert main(["down", "--endpoint", cloud]) == ExitStatus.REFUSED

    assert "refusing: 1 job(s) in flight" in capsys.readouterr().err
    assert capacity(stack) == (0, 10, 2)


def test_refuses_with_unsynced_checkpoints_unless_forced(
    cloud: str, stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    paused = ObsLayout("run1", "obs7")
    put(stack, paused.manifest, 500)
    put(stack, paused.chunk("0", "npz"), 500)
    failed = ObsLayout("run1", "obs8")
    put(stack, failed.manifest, 500)
    put(stack, failed.failed, 50)

    assert main(["down", "--endpoint", cloud]) == ExitStatus.REFUSED
    err = capsys.readouterr().err
    assert "1 observation(s) checkpointed but not DONE (run1/obs7)" in err
    assert capacity(stack) == (0, 10, 2)

    assert main(["down", "--endpoint", cloud, "--force"]) == 0
    assert capacity(stack) == (0, 0, 0)
    assert "paused mid-way (forced)" in capsys.readouterr().out


def test_dry_run_changes_nothing(
    cloud: str, stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["down", "--endpoint", cloud, "--dry-run"]) == 0
    assert "would scale" in capsys.readouterr().out
    assert capacity(stack) == (0, 10, 2)


def test_second_down_reports_already_at_zero(
    cloud: str, stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["down", "--endpoint", cloud]) == 0
    capsys.readouterr()
    assert main(["down", "--endpoint", cloud]) == 0
    assert "already at zero" in capsys.readouterr().out


def test_without_a_group_it_says_so(
    cloud: str, stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    stack["autoscaling"].delete_auto_scaling_group(
        AutoScalingGroupName=LOCAL_NAMES.asg, ForceDelete=True
    )
    assert main(["down", "--endpoint", cloud]) == 0
    assert "nothing to scale" in capsys.readouterr().out


def test_group_archive_is_named_but_not_listed(
    cloud: str, stack: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = local_outputs(cloud)
    doc = json.loads(outputs.to_json()) | {"raw_bucket": "mwa-archive", "raw_prefix": "p1/"}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(doc))
    # No such bucket in the cloud: listing it would fail, so this also proves it is not listed.
    assert main(["down", "--outputs", str(path)]) == 0
    assert "s3://mwa-archive/p1/" in capsys.readouterr().out
