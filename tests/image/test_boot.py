"""Boot the local image with systemd under podman and let its worker process one job.

The worker unit starts by itself at boot, reaches the embedded cloud on the host's loopback
(``--network=host``, moto bound to 127.0.0.1), takes a ``selftest`` job from the queue and
leaves a DONE. The rootfs is mounted as an overlay (``:O``): the boot changes nothing in it.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contract.layout import ObsLayout
from contract.localcloud import LOCAL_REGION
from contract.names import LOCAL_NAMES
from payload.records import DoneRecord, JobMessage
from spotcube.local.motoserver import local_client
from tests.image.conftest import PODMAN, LocalBake, podman_reason

pytestmark = [pytest.mark.image, pytest.mark.boot, pytest.mark.slow, pytest.mark.timeout(1800)]

UNIT = "spotcube-worker.service"
DONE_TIMEOUT = 180.0


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, check=check)


# (container name, s3 client, sqs client, queue url)
Booted = tuple[str, Any, Any, str]


@pytest.fixture
def booted(local_bake: LocalBake, cloud: str, tmp_path: Path) -> Iterator[Booted]:
    """A container booted from the local image, its worker pointed at ``cloud``."""
    reason = podman_reason()
    if reason:
        pytest.skip(reason)
    s3 = local_client("s3", cloud)
    sqs = local_client("sqs", cloud)
    s3.create_bucket(Bucket=LOCAL_NAMES.products_bucket)
    s3.create_bucket(Bucket=LOCAL_NAMES.raw_bucket)
    queue_url = sqs.create_queue(QueueName=LOCAL_NAMES.job_queue)["QueueUrl"]
    env = tmp_path / "worker.env"
    env.write_text(
        "\n".join(
            [
                f"SPOTCUBE_QUEUE_URL={queue_url}",
                f"SPOTCUBE_PRODUCTS_BUCKET={LOCAL_NAMES.products_bucket}",
                f"SPOTCUBE_ENDPOINT_URL={cloud}",
                f"SPOTCUBE_REGION={LOCAL_REGION}",
                "SPOTCUBE_POLL_WAIT=1",
                # moto takes any key; these exist only in the test's bind mount, never the image.
                "AWS_ACCESS_KEY_ID=local",
                "AWS_SECRET_ACCESS_KEY=local",
                f"AWS_DEFAULT_REGION={LOCAL_REGION}",
                "AWS_EC2_METADATA_DISABLED=true",
                "",
            ]
        )
    )
    name = f"spotcube-boot-{uuid.uuid4().hex[:8]}"
    started = _podman(
        "run", "--detach", "--name", name, "--network=host", "--systemd=always",
        "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
        "--volume", f"{env}:/etc/spotcube/worker.env:ro",
        "--rootfs", f"{local_bake.rootfs}:O", "/sbin/init",
        check=False,
    )  # fmt: skip
    if started.returncode != 0:
        pytest.fail(f"podman run failed: {started.stderr}")
    try:
        yield name, s3, sqs, queue_url
    finally:
        _podman("rm", "--force", "--time", "5", name, check=False)


def _journal(name: str) -> str:
    result = _podman("exec", name, "journalctl", "--no-pager", "-u", UNIT, "-n", "60", check=False)
    return result.stdout + result.stderr


def test_worker_boots_and_finishes_a_selftest_job(booted: Booted) -> None:
    name, s3, sqs, queue_url = booted
    s3.put_object(Bucket=LOCAL_NAMES.raw_bucket, Key="boot/input.bin", Body=b"boot test input")
    message = JobMessage.create(
        run_id="boot-test",
        obs_id="selftest-1",
        input=f"s3://{LOCAL_NAMES.raw_bucket}/boot/input.bin",
        kind="selftest",
        params={"chunks": 2, "chunk_seconds": 0, "chunk_bytes": 4096},
    )
    sqs.send_message(QueueUrl=queue_url, MessageBody=message.to_json())
    done_key = ObsLayout(message.run_id, message.obs_id).done
    deadline = time.monotonic() + DONE_TIMEOUT
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=LOCAL_NAMES.products_bucket, Prefix=done_key)
        if listed.get("KeyCount", 0):
            break
        time.sleep(2)
    else:
        pytest.fail(f"no {done_key} after {DONE_TIMEOUT:.0f} s; worker journal:\n{_journal(name)}")

    active = _podman("exec", name, "systemctl", "is-active", UNIT, check=False).stdout.strip()
    assert active == "active", _journal(name)
    main_pid = _podman("exec", name, "systemctl", "show", "-P", "MainPID", UNIT).stdout.strip()
    owner = _podman("exec", name, "stat", "-c", "%U", f"/proc/{main_pid}").stdout.strip()
    assert owner == "spotcube"


def test_worker_runs_a_command_job_with_its_context(booted: Booted) -> None:
    """A command job in the booted image: the program runs under the worker's systemd
    sandbox (user spotcube, NoNewPrivileges, ProtectSystem=strict), through the tether
    (payload/jobs/tether.py: prctl(PR_SET_PDEATHSIG) must be allowed there), and sees its
    context: the input the worker downloaded, the run and observation ids."""
    name, s3, sqs, queue_url = booted
    s3.put_object(Bucket=LOCAL_NAMES.raw_bucket, Key="boot/obs.txt", Body=b"observation bytes")
    script = (
        'mkdir -p products && { echo "$SPOTCUBE_RUN_ID/$SPOTCUBE_OBS_ID"; id -un; '
        'cat "$SPOTCUBE_INPUT"; } > products/seen.txt'
    )
    message = JobMessage.create(
        run_id="boot-test",
        obs_id="command-1",
        input=f"s3://{LOCAL_NAMES.raw_bucket}/boot/obs.txt",
        kind="command",
        params={"argv": ["/bin/sh", "-c", script]},
    )
    sqs.send_message(QueueUrl=queue_url, MessageBody=message.to_json())
    done = ObsLayout(message.run_id, message.obs_id).done  # products are found through DONE
    deadline = time.monotonic() + DONE_TIMEOUT
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=LOCAL_NAMES.products_bucket, Prefix=done)
        if listed.get("KeyCount", 0):
            break
        time.sleep(2)
    else:
        pytest.fail(f"no {done} after {DONE_TIMEOUT:.0f} s; worker journal:\n{_journal(name)}")
    raw = s3.get_object(Bucket=LOCAL_NAMES.products_bucket, Key=done)["Body"].read()
    product = DoneRecord.from_json(raw).product_key("seen.txt")
    assert product is not None
    body = s3.get_object(Bucket=LOCAL_NAMES.products_bucket, Key=product)["Body"].read()
    assert body.decode().splitlines() == ["boot-test/command-1", "spotcube", "observation bytes"]
