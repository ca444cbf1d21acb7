"""The thin ``__main__.py``: reads ``spotcube:`` config as Pulumi hands it over, and builds."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pulumi
import pytest

from tests.infra.program import RecordingMocks

MAIN = Path(__file__).resolve().parents[2] / "__main__.py"


def run_main(config: dict[str, str], *, amis: tuple[str, ...] | None = None) -> RecordingMocks:
    mocks = RecordingMocks("eu-west-1") if amis is None else RecordingMocks("eu-west-1", amis=amis)
    pulumi.runtime.set_mocks(mocks, project="spotcube", stack="dev", preview=False)

    @pulumi.runtime.test
    def program() -> None:
        pulumi.runtime.set_all_config(config)
        runpy.run_path(str(MAIN), run_name="__main__")

    program()
    return mocks


def test_main_reads_structured_config_and_builds() -> None:
    mocks = run_main(
        {
            "spotcube:owner": "erin",
            "spotcube:region": "eu-west-1",
            "spotcube:budget": json.dumps({"monthlyUsd": 90, "emails": ["erin@example.org"]}),
            "spotcube:fleet": json.dumps({"maxSize": 4}),
        }
    )
    (group,) = [r for r in mocks.resources if r.type == "aws:autoscaling/group:Group"]
    assert group.inputs["name"] == "spotcube-erin-dev-fleet"
    assert group.inputs["maxSize"] == 4
    (budget,) = [r for r in mocks.resources if r.type == "aws:budgets/budget:Budget"]
    assert budget.inputs["limitAmount"] == "90.00"


def test_main_reports_every_config_problem_without_a_traceback() -> None:
    with pytest.raises(pulumi.RunError) as caught:
        run_main({"spotcube:fleet": json.dumps({"maxSize": 0})})
    message = str(caught.value)
    assert "spotcube:owner: missing" in message
    assert "spotcube:budget.monthlyUsd: missing" in message
    assert "spotcube:fleet.maxSize: 0 is outside 1..100" in message


BASE = {
    "spotcube:owner": "erin",
    "spotcube:region": "eu-west-1",
    "spotcube:budget": json.dumps({"monthlyUsd": 90, "emails": ["erin@example.org"]}),
}


def test_a_misspelt_top_level_key_reaches_the_parser() -> None:
    """`spotcube:regoin` used to be ignored (only known keys were read) and the stack went to
    us-east-1; every key of the namespace is now read and checked."""
    with pytest.raises(pulumi.RunError) as caught:
        run_main(
            {**BASE, "spotcube:regoin": "eu-west-2", "spotcube:amiId": "ami-0123456789abcdef0"}
        )
    message = str(caught.value)
    assert "spotcube:regoin: unknown key; did you mean 'region'?" in message
    assert "spotcube:amiId: unknown key; did you mean 'ami'?" in message


def test_dangerous_values_are_warned_on_every_up(monkeypatch: pytest.MonkeyPatch) -> None:
    warned: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warned.append(message))
    run_main({**BASE, "spotcube:fleet": json.dumps({"maxSpotPrice": 50})})
    assert any(w.startswith("spotcube:fleet.maxSpotPrice: ") for w in warned)


def test_latest_ami_missing_in_the_region_is_one_line() -> None:
    with pytest.raises(pulumi.RunError) as caught:
        run_main(BASE, amis=())
    message = str(caught.value)
    assert message.count("\n") == 0
    assert "spotcube bake --region eu-west-1" in message


def test_config_from_the_language_host_environment_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under `pulumi up` the Python language host passes config in PULUMI_CONFIG, not through
    set_all_config (pulumi SDK, pulumi/runtime/config.py: get_config falls back to it)."""
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(BASE))
    mocks = run_main({})
    (group,) = [r for r in mocks.resources if r.type == "aws:autoscaling/group:Group"]
    assert group.inputs["name"] == "spotcube-erin-dev-fleet"
