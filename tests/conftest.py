"""Fixtures shared by every part of the suite.

The embedded cloud is moto in server mode over real HTTP on 127.0.0.1: code under test talks
to it with boto3 and an ``endpoint_url`` exactly as it would talk to AWS.
``mwa_ms`` is a real MWA Measurement Set (tests/mwa_ms.py), for the pipeline tests and the
payload's comparison with WSClean.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from spotcube.local.motoserver import local_environment, moto_server
from tests.mwa_ms import unpack_mwa_ms

# No test may reach a real AWS account, whatever the developer's shell holds.
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_var, None)
os.environ.update(local_environment())
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of one moto server shared by the session (state reset per test by ``cloud``)."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def cloud(moto_endpoint: str) -> str:
    """The moto endpoint, emptied of every bucket, queue and role before the test."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return moto_endpoint


@pytest.fixture(scope="session")
def mwa_ms(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real MWA Measurement Set (tests/mwa_ms.py); skips when it cannot be fetched."""
    return unpack_mwa_ms(request, tmp_path_factory)
