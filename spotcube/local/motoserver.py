"""moto in server mode on 127.0.0.1: S3 and SQS over real HTTP for the demo and the tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from contract.localcloud import LOCAL_CREDENTIALS, LOCAL_REGION


def local_environment() -> dict[str, str]:
    """Environment variables that point a boto3 process at local credentials (not AWS's)."""
    return {
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": LOCAL_REGION,
    }


@contextmanager
def moto_server() -> Iterator[str]:
    """Run a moto server on a free loopback port; yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "false")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def local_client(service: str, endpoint: str, **kwargs: Any) -> Any:
    """A boto3 client for ``service`` on the local cloud at ``endpoint``."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=LOCAL_REGION,
        **LOCAL_CREDENTIALS,
        **kwargs,
    )
