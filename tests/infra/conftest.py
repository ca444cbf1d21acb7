"""Fixtures of the infra tests: each stack config built once under Pulumi mocks."""

from __future__ import annotations

import pytest

from infra.config import StackConfig, parse_config
from tests.infra.configs import ALL
from tests.infra.program import Program, run_program


@pytest.fixture(scope="session")
def programs() -> dict[str, tuple[StackConfig, Program]]:
    """Every config of tests.infra.configs, parsed and built (built once: ~1 s each)."""
    built = {}
    for label, (raw, stack) in ALL.items():
        config = parse_config(raw, stack=stack)
        built[label] = (config, run_program(config))
    return built


@pytest.fixture(params=sorted(ALL))
def built(
    request: pytest.FixtureRequest, programs: dict[str, tuple[StackConfig, Program]]
) -> tuple[StackConfig, Program]:
    return programs[request.param]
