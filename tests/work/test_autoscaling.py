"""Scale-in protection while busy, against moto's Auto Scaling API over HTTP.

The worker protects its instance while it holds a job, so the group shrinks by idle instances
first, and lifts the protection when the job is done. (moto has no CompleteLifecycleAction,
so completing the terminating lifecycle action is exercised only on AWS.)
"""

from __future__ import annotations

from typing import Any

from spotcube.local.imds import ImdsEmulator
from spotcube.local.motoserver import local_client
from tests.work.conftest import Plane, wait_for

GROUP = "spotcube-test-fleet"


def _one_instance_group(endpoint: str) -> tuple[Any, str]:
    autoscaling = local_client("autoscaling", endpoint)
    image_id = local_client("ec2", endpoint).describe_images()["Images"][0]["ImageId"]
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="lc", ImageId=image_id, InstanceType="m5.4xlarge"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=GROUP,
        LaunchConfigurationName="lc",
        MinSize=1,
        MaxSize=1,
        DesiredCapacity=1,
        AvailabilityZones=["us-east-1a"],
    )
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])
    return autoscaling, group["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]


def _protected(autoscaling: Any, instance_id: str) -> bool:
    found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])
    return bool(found["AutoScalingInstances"][0]["ProtectedFromScaleIn"])


def test_busy_worker_is_protected_from_scale_in(plane: Plane) -> None:
    autoscaling, instance_id = _one_instance_group(plane.endpoint)
    assert not _protected(autoscaling, instance_id)
    plane.submit("obs-asg", {"chunks": 8, "chunk_seconds": 0.3, "chunk_bytes": 512})
    # The group name comes from the instance's metadata tag, as on AWS.
    with ImdsEmulator(instance_id=instance_id, asg_name=GROUP) as imds:
        worker = plane.start_worker("--max-jobs", "1", imds=imds)
        wait_for(lambda: plane.has_event("w", "chunk.computed"), 30, "the first chunk")
        assert _protected(autoscaling, instance_id), plane.log_of()
        assert worker.wait(timeout=60) == 0, plane.log_of()
    assert not _protected(autoscaling, instance_id)
