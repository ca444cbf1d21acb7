"""The embedded local cloud: moto over HTTP with the buckets and queues the stack declares.

``spotcube demo`` and the tests provision the same resource names as ``pulumi up``
(:data:`infra.naming.LOCAL_NAMES`) and hand out the same :class:`~spotcube.stack.StackOutputs`,
so ``submit``, ``status`` and the worker run the code paths they run on AWS.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infra.naming import LOCAL_NAMES
from spotcube.local.motoserver import local_client, moto_server
from spotcube.stack import StackOutputs, local_outputs

# A job that kept failing this many receives goes to the dead-letter queue (the stack's
# default is the same order of magnitude; preemptions hand a job back without a receive
# being wasted on a crash, so they do not eat into it).
DEFAULT_MAX_RECEIVE_COUNT = 5
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
    sqs = local_client("sqs", endpoint)
    dlq_url = sqs.create_queue(QueueName=LOCAL_NAMES.dead_letter_queue)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
    queue_url = sqs.create_queue(
        QueueName=LOCAL_NAMES.job_queue,
        Attributes={
            "RedrivePolicy": json.dumps(redrive),
            "VisibilityTimeout": str(visibility_timeout),
        },
    )["QueueUrl"]
    # The outputs are computed from naming rules; a mismatch would mean submit/status on
    # --endpoint look at different queues than the demo created.
    if (queue_url, dlq_url) != (outputs.job_queue_url, outputs.dead_letter_queue_url):
        raise RuntimeError(
            f"local cloud queue URLs {queue_url}, {dlq_url} differ from the stack outputs "
            f"{outputs.job_queue_url}, {outputs.dead_letter_queue_url}"
        )
    return outputs


def _bucket_exists(s3: Any, bucket: str) -> bool:
    names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    return bucket in names


def quiet_server_logs() -> None:
    """Silence the per-request access log moto's HTTP server writes to stderr."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


@contextmanager
def local_cloud(
    *,
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
) -> Iterator[StackOutputs]:
    """Start moto on a free loopback port, provision the stack's resources, yield outputs."""
    quiet_server_logs()
    with moto_server() as endpoint:
        yield provision(
            endpoint,
            max_receive_count=max_receive_count,
            visibility_timeout=visibility_timeout,
        )
