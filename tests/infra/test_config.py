"""Stack config parsing: defaults, the example file, and one clear message per kind of mistake."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import DEFAULTS, MAX_FLEET_SIZE, ConfigError, instance_shape, parse_config
from tests.infra.configs import MINIMAL

EXAMPLE = Path(__file__).resolve().parents[2] / "Pulumi.example.yaml"


def with_(**changes: Any) -> dict[str, Any]:
    """MINIMAL with ``section__key=value`` (or top-level ``key=value``) changes."""
    raw = copy.deepcopy(MINIMAL)
    for path, value in changes.items():
        section, _, key = path.partition("__")
        if key:
            raw.setdefault(section, {})[key] = value
        else:
            raw[section] = value
    return raw


def problems(raw: dict[str, Any], stack: str = "dev") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, stack=stack)
    return [str(p) for p in caught.value.problems]


def test_minimal_config_gets_the_documented_defaults() -> None:
    config = parse_config(MINIMAL, stack="dev")
    assert config.region == "us-east-1"
    assert config.ami == "latest"
    assert config.fleet.max_size == 10
    assert config.fleet.on_demand_base == 0
    assert config.fleet.shape.vcpus == 16
    assert config.queue.max_receive_count == 5
    assert config.data.raw_bucket is None
    # A quarter of $150 at m6i.4xlarge's on-demand $0.768/h is 48.8 instance-hours, more
    # than half of what 10 instances run in 6 hours (30): the reachable bound wins.
    assert config.budget.brake_instance_hours == 30
    assert [r.id for r in config.data.products.rules] == [
        "products-archive",
        "products-expire-small",
    ]


def test_example_file_parses_and_documents_every_key() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())["config"]
    raw = {key.removeprefix("spotcube:"): value for key, value in example.items()}
    assert set(raw) == set(DEFAULTS) | {"owner"}
    for section, defaults in DEFAULTS.items():
        if isinstance(defaults, dict):
            assert set(raw[section]) == set(defaults), section
            for key, default in defaults.items():
                if default is not None and section != "budget":
                    assert raw[section][key] == default, f"{section}.{key}"
        else:
            assert raw[section] == defaults, section
    config = parse_config(raw, stack="dev")
    assert config.owner == "alice"


def test_all_problems_are_reported_at_once() -> None:
    raw = {"budget": {"monthlyUsd": -5, "emails": ["nope"]}, "fleet": {"maxSize": 5000}}
    found = problems(raw)
    keys = [p.split(": ")[0] for p in found]
    assert keys == [
        "spotcube:owner",
        "spotcube:fleet.maxSize",
        "spotcube:budget.monthlyUsd",
        "spotcube:budget.emails",
    ]
    message = str(ConfigError([]))
    assert "0 problem(s)" in message


@pytest.mark.parametrize(
    ("raw", "key", "fix"),
    [
        pytest.param(
            {**MINIMAL, "owner": None},
            "owner",
            "pulumi config set spotcube:owner",
            id="owner-missing",
        ),
        pytest.param(with_(owner="Alice_Smith"), "owner", "not DNS-safe", id="owner-not-dns-safe"),
        pytest.param(
            with_(budget__monthlyUsd=0), "budget.monthlyUsd", "positive", id="budget-zero"
        ),
        pytest.param(
            with_(budget__monthlyUsd=None), "budget.monthlyUsd", "monthly cap", id="budget-missing"
        ),
        pytest.param(
            with_(budget__emails=["alice.example.org"]),
            "budget.emails",
            "name@example.org",
            id="bad-email",
        ),
        pytest.param(with_(budget__emails=[]), "budget.emails", "at least one", id="no-email"),
        pytest.param(
            with_(fleet__instanceTypes=["m6i.4xlarge", "m6g.4xlarge", "m5.4xlarge"]),
            "fleet.instanceTypes",
            "no known shape",
            id="unknown-shape",
        ),
        pytest.param(
            with_(fleet__instanceTypes=["m6i.4xlarge", "c6i.4xlarge", "m5.4xlarge"]),
            "fleet.instanceTypes",
            "different shapes",
            id="mixed-shapes",
        ),
        pytest.param(
            with_(fleet__instanceTypes=["m6i.4xlarge", "m5.4xlarge"]),
            "fleet.instanceTypes",
            "at least 3",
            id="too-few-types",
        ),
        pytest.param(
            with_(fleet__maxSize=MAX_FLEET_SIZE + 1),
            "fleet.maxSize",
            "outside 1..100",
            id="fleet-too-big",
        ),
        pytest.param(
            with_(fleet__onDemandBase=20), "fleet.onDemandBase", "exceeds", id="base-above-max"
        ),
        pytest.param(
            with_(fleet__maxSpotPrice=-1), "fleet.maxSpotPrice", "positive", id="negative-price"
        ),
        pytest.param(
            with_(fleet__capacityRebalance="maybe"),
            "fleet.capacityRebalance",
            "true or false",
            id="not-bool",
        ),
        pytest.param(with_(region="mars-1"), "region", "AWS region", id="bad-region"),
        pytest.param(with_(ami="ubuntu"), "ami", "AMI id", id="bad-ami"),
        pytest.param(
            with_(queue__maxReceiveCount=0),
            "queue.maxReceiveCount",
            "dead-letter",
            id="receive-count",
        ),
        pytest.param(
            with_(data__rawBucket="Bad_Bucket"),
            "data.rawBucket",
            "not an S3 bucket",
            id="bad-bucket",
        ),
        pytest.param(
            with_(
                data__products={
                    "transitions": [{"days": 30, "storageClass": "DEEP_ARCHIVE"}],
                    "expireDays": 90,
                }
            ),
            "data.products",
            "early deletion would bill about $",
            id="retention-before-minimum",
        ),
        pytest.param(
            with_(data__products={"transitions": [{"days": 7, "storageClass": "STANDARD_IA"}]}),
            "data.products",
            "only after 30 days in their current class",
            id="ia-too-early",
        ),
        pytest.param(
            with_(
                data__products={
                    "transitions": [{"days": 30, "storageClass": "GLACIER"}],
                    "minTransitionBytes": 0,
                }
            ),
            "data.products",
            "per million objects",
            id="small-objects-to-glacier",
        ),
        pytest.param(
            with_(data__checkpointExpireDays=45),
            "data.checkpointExpireDays",
            "use 30 or less",
            id="checkpoints-archived",
        ),
        pytest.param(with_(data__colour="blue"), "data.colour", "unknown key", id="unknown-key"),
        pytest.param(with_(fleet="big"), "fleet", "must be an object", id="section-not-object"),
    ],
)
def test_bad_config_names_key_and_fix(raw: dict[str, Any], key: str, fix: str) -> None:
    found = problems(raw)
    assert any(p.startswith(f"spotcube:{key}: ") and fix in p for p in found), found


def test_bad_stack_name_is_reported() -> None:
    assert any("stack name" in p for p in problems(MINIMAL, stack="Alice's Stack"))


def test_instance_shapes() -> None:
    assert instance_shape("m6i.4xlarge") == instance_shape("m5a.4xlarge")
    assert instance_shape("c6i.4xlarge") != instance_shape("m6i.4xlarge")
    assert instance_shape("m6g.4xlarge") is None  # Graviton: the AMI is x86_64
    assert instance_shape("nonsense") is None


def test_comma_separated_lists_are_accepted() -> None:
    raw = with_(fleet__instanceTypes="m6i.4xlarge, m6a.4xlarge, m5.4xlarge")
    raw["budget"]["emails"] = "a@example.org,b@example.org"
    config = parse_config(raw, stack="dev")
    assert config.fleet.instance_types == ("m6i.4xlarge", "m6a.4xlarge", "m5.4xlarge")
    assert config.budget.emails == ("a@example.org", "b@example.org")
