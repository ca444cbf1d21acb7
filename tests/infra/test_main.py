"""The thin ``__main__.py``: reads ``spotcube:`` config as Pulumi hands it over, and builds."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pulumi
import pytest

from tests.infra.program import RecordingMocks

MAIN = Path(__file__).resolve().parents[2] / "__main__.py"


def run_main(config: dict[str, str]) -> RecordingMocks:
    mocks = RecordingMocks("eu-west-1")
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
