"""The embedded local cloud: moto over HTTP with the buckets and queues the stack declares.

``spotcube demo`` and the tests provision the same resource names as ``pulumi up``
(:data:`contract.names.LOCAL_NAMES`) and hand out the same :class:`~spotcube.stack.StackOutputs`,
so ``submit``, ``status`` and the worker run the code paths they run on AWS.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contract.names import LOCAL_NAMES
from contract.queue import DEFAULT_MAX_RECEIVE_COUNT
from spotcube.local.motoserver import local_client, moto_server
from spotcube.stack import StackOutputs, local_outputs

# How long a received job stays hidden. A SIGKILLed worker cannot hand its job back, so on
# the local cloud this is short: the job comes back to the queue soon after a hard kill.
DEFAULT_VISIBILITY_TIMEOUT = 20


def provision(
    endpoint: str,
    *,
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
) -> StackOutputs:
    """Create the raw and products buckets, the job queue and its DLQ at ``endpoint``.

    Returns the stack outputs of the local cloud. Idempotent: creating an existing bucket or
    queue with the same attributes is not an error, so a second call is harmless.
    """
    if max_receive_count < 1:
        raise ValueError(f"max_receive_count must be at least 1, not {max_receive_count}")
    outputs = local_outputs(endpoint)
    s3 = local_client("s3", endpoint)
    for bucket in (outputs.raw_bucket, outputs.products_bucket):
        if not _bucket_exists(s3, bucket):
            s3.create_bucket(Bucket=bucket)
    queue_url, dlq_url = _create_queue_pair(
        endpoint,
        LOCAL_NAMES.job_queue,
        LOCAL_NAMES.dead_letter_queue,
        max_receive_count=max_receive_count,
        visibility_timeout=visibility_timeout,
    )
    # The outputs are computed from naming rules; a mismatch would mean submit/status on
    # --endpoint look at different queues than the demo created.
    if (queue_url, dlq_url) != (outputs.job_queue_url, outputs.dead_letter_queue_url):
        raise RuntimeError(
            f"local cloud queue URLs {queue_url}, {dlq_url} differ from the stack outputs "
            f"{outputs.job_queue_url}, {outputs.dead_letter_queue_url}"
        )
    return outputs


def _create_queue_pair(
    endpoint: str, name: str, dlq_name: str, *, max_receive_count: int, visibility_timeout: int
) -> tuple[str, str]:
    """A job queue ``name`` whose messages go to ``dlq_name`` after ``max_receive_count``."""
    sqs = local_client("sqs", endpoint)
    dlq_url = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "RedrivePolicy": json.dumps(redrive),
            "VisibilityTimeout": str(visibility_timeout),
        },
    )["QueueUrl"]
    return queue_url, dlq_url


def isolated_queues(
    outputs: StackOutputs,
    suffix: str,
    *,
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
) -> StackOutputs:
    """The same stack with a job queue and DLQ of its own (``<queue>-<suffix>``).

    The demo's reference run uses it: a worker of the reference can then never receive a
    message of the interrupted run, so the reference cannot finish the spot run's jobs.
    """
    if not outputs.endpoint_url:
        raise ValueError("isolated queues are made on the local cloud only")
    queue_url, dlq_url = _create_queue_pair(
        outputs.endpoint_url,
        f"{LOCAL_NAMES.job_queue}-{suffix}",
        f"{LOCAL_NAMES.dead_letter_queue}-{suffix}",
        max_receive_count=max_receive_count,
        visibility_timeout=visibility_timeout,
    )
    return dataclasses.replace(outputs, job_queue_url=queue_url, dead_letter_queue_url=dlq_url)


def _bucket_exists(s3: Any, bucket: str) -> bool:
    names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    return bucket in names


def quiet_server_logs() -> None:
    """Silence the per-request access log moto's HTTP server writes to stderr."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_serving(endpoint: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded by ``timeout``
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


@contextmanager
def moto_process(log_path: Path | None = None, *, start_timeout: float = 30.0) -> Iterator[str]:
    """Run moto's server in a child process on a free loopback port; yield its endpoint.

    The demo serves every worker's S3 and SQS traffic: in a process of its own, moto does not
    compete for the GIL with the demo's IMDS emulators, whose answers must stay prompt.
    """
    from spotcube.local.fleet import die_with_parent

    log = log_path.open("ab") if log_path else subprocess.DEVNULL
    try:
        for _ in range(3):  # another program may take the free port before moto binds it
            port = _free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=die_with_parent,
                # Not in the terminal's process group: Ctrl-C reaches the demo alone, which
                # stops its workers first and this server last (they still need it).
                start_new_session=True,
            )
            endpoint = f"http://127.0.0.1:{port}"
            if _wait_until_serving(endpoint, process, start_timeout):
                break
            process.kill()
            process.wait()
        else:
            raise RuntimeError(
                f"moto server did not start within {start_timeout:g} s"
                + (f"; see {log_path}" if log_path else "")
            )
        try:
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr]


@contextmanager
def local_cloud(
    *,
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
    separate_process: bool = True,
    log_path: Path | None = None,
) -> Iterator[StackOutputs]:
    """Start moto on a free loopback port, provision the stack's resources, yield outputs.

    ``separate_process=False`` runs moto in a thread of this process (``ThreadedMotoServer``),
    which starts faster and suits light use such as tests of submit and status.
    """
    quiet_server_logs()
    server = moto_process(log_path) if separate_process else moto_server()
    with server as endpoint:
        yield provision(
            endpoint,
            max_receive_count=max_receive_count,
            visibility_timeout=visibility_timeout,
        )
