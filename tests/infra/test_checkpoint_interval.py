"""The checkpoint interval is a stack setting the fleet delivers to every worker.

Invariants: whatever ``spotcube:fleet.interruptionPercentPerHour`` and
``fleet.checkpointIntervalSeconds`` say, the launch template's worker.env carries the parsed
interval under the worker's own env name, and the worker reads that same number back; every
bad value is one problem naming its key; ``spotcube plan --config`` models that interval.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.settings import env_name
from infra.checkpointing import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS, stack_interval_seconds
from infra.config import ConfigError, parse_config
from payload.cli import build_parser
from tests.clirunner import run_cli
from tests.infra.configs import MINIMAL
from tests.infra.program import run_program


def with_fleet(**fleet: Any) -> dict[str, Any]:
    return {**MINIMAL, "fleet": fleet}


def worker_env(raw: dict[str, Any]) -> dict[str, str]:
    """worker.env as the launch template delivers it (user data, base64 in cloud-config)."""
    program = run_program(parse_config(raw, stack="dev"))
    (template,) = program.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    user_data = base64.b64decode(template.inputs["userData"]).decode()
    env_file = base64.b64decode(user_data.split("content: ")[1].strip()).decode()
    return dict(line.split("=", 1) for line in env_file.splitlines() if "=" in line)


@pytest.mark.parametrize(
    ("fleet", "seconds"),
    [
        ({}, stack_interval_seconds(9.0)),
        ({"interruptionPercentPerHour": 30}, stack_interval_seconds(30.0)),
        ({"interruptionPercentPerHour": 0}, MAX_INTERVAL_SECONDS),
        ({"checkpointIntervalSeconds": 900, "interruptionPercentPerHour": 30}, 900),
    ],
    ids=["default", "30%/h", "no-interruptions", "explicit"],
)
def test_the_fleet_delivers_the_stack_interval_to_the_worker(
    fleet: dict[str, Any], seconds: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config(with_fleet(**fleet), stack="dev")
    assert config.fleet.checkpoint_interval_seconds == seconds
    env = worker_env(with_fleet(**fleet))
    name = env_name("checkpoint_interval")
    assert float(env[name]) == seconds
    monkeypatch.setenv(name, env[name])
    assert build_parser().parse_args(["worker"]).checkpoint_interval == seconds


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(percent=st.floats(0, 90))
def test_the_default_interval_is_the_rule_for_the_stated_rate(percent: float) -> None:
    config = parse_config(with_fleet(interruptionPercentPerHour=percent), stack="dev")
    assert config.fleet.checkpoint_interval_seconds == stack_interval_seconds(percent)
    assert config.fleet.interruption_percent_per_hour == percent


@pytest.mark.parametrize(
    ("fleet", "key"),
    [
        ({"interruptionPercentPerHour": "nine"}, "fleet.interruptionPercentPerHour"),
        ({"interruptionPercentPerHour": 120}, "fleet.interruptionPercentPerHour"),
        ({"interruptionPercentPerHour": -1}, "fleet.interruptionPercentPerHour"),
        (
            {"checkpointIntervalSeconds": MIN_INTERVAL_SECONDS - 1},
            "fleet.checkpointIntervalSeconds",
        ),
        ({"checkpointIntervalSeconds": "soon"}, "fleet.checkpointIntervalSeconds"),
        ({"checkpointIntervalSeconds": 10**6}, "fleet.checkpointIntervalSeconds"),
        ({"checkpointInterval": 300}, "fleet.checkpointInterval"),  # a typo of the key
    ],
)
def test_a_bad_value_is_one_problem_naming_its_key(fleet: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(with_fleet(**fleet), stack="dev")
    assert [p.key for p in info.value.problems] == [key]


def test_plan_models_the_interval_of_the_stack_config(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    fleet = {"interruptionPercentPerHour": 20}
    path.write_text(
        yaml.safe_dump({"config": {f"spotcube:{k}": v for k, v in with_fleet(**fleet).items()}})
    )
    argv = ["plan", "--jobs", "4", "--runtime", "2h", "--rate", "9%/h", "--runs", "20", "--json"]
    deployed = parse_config(with_fleet(**fleet), stack="dev").fleet.checkpoint_interval_seconds
    default = parse_config(MINIMAL, stack="dev").fleet.checkpoint_interval_seconds
    for extra, seconds in (
        (["--config", str(path)], deployed),
        ([], default),
        (["--interval", "7m"], 420),
    ):
        result = run_cli([*argv, *extra])
        assert result.status == 0, result.stderr
        assert json.loads(result.stdout)["inputs"]["interval_hours"] * 3600 == pytest.approx(
            seconds
        )
