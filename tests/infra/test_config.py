"""Stack config parsing: defaults, the example file, and one clear message per kind of mistake."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

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
    # The fast brake fires above the whole budget, pricing spot at on-demand (no cap): the
    # default fleet's dearest type, m7i.4xlarge at $0.8064/h (AWS's list price).
    assert config.budget.brake_threshold_usd == 150
    assert config.budget.spot_bound_usd == config.budget.on_demand_usd == pytest.approx(0.8064)
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
    # One shape function with plan (contract.instances): a size AWS does not make is refused.
    assert instance_shape("c5.8xlarge") is None


# AWS EC2 on-demand list prices, Linux, us-east-1 (aws.amazon.com/ec2/pricing/on-demand),
# written here from the price page, not read from the contract's table.
LIST_PRICES = {
    "m5.4xlarge": 0.768,
    "m5a.4xlarge": 0.688,
    "m6i.4xlarge": 0.768,
    "m6a.4xlarge": 0.6912,
    "m7i.4xlarge": 0.8064,
}


@given(st.sets(st.sampled_from(sorted(LIST_PRICES)), min_size=3))
@settings(max_examples=30, deadline=None)
def test_the_brake_prices_an_instance_at_the_dearest_type_the_fleet_may_run(
    types: set[str],
) -> None:
    """Found in review: the brake priced the default fleet at m6i's rate while m7i, one of its
    types, lists 5 % higher; the month-to-date bound it brakes on was then not a bound."""
    config = parse_config(with_(fleet__instanceTypes=sorted(types)), stack="dev")
    assert config.budget.on_demand_usd >= max(LIST_PRICES[t] for t in types) - 1e-9


def test_comma_separated_lists_are_accepted() -> None:
    raw = with_(fleet__instanceTypes="m6i.4xlarge, m6a.4xlarge, m5.4xlarge")
    raw["budget"]["emails"] = "a@example.org,b@example.org"
    config = parse_config(raw, stack="dev")
    assert config.fleet.instance_types == ("m6i.4xlarge", "m6a.4xlarge", "m5.4xlarge")
    assert config.budget.emails == ("a@example.org", "b@example.org")


# --- mistakes a new user makes (issue 11, item 19): each named, with a fix -----------------


@pytest.mark.parametrize(
    ("raw", "key", "fix"),
    [
        pytest.param(with_(regoin="eu-west-1"), "regoin", "did you mean 'region'", id="regoin"),
        pytest.param(
            with_(amiId="ami-0123456789abcdef0"), "amiId", "did you mean 'ami'", id="amiId"
        ),
        pytest.param(with_(fleet__maxsize=4), "fleet.maxsize", "did you mean 'maxSize'", id="case"),
        pytest.param(
            with_(budget__email=["a@example.org"]),
            "budget.email",
            "did you mean 'emails'",
            id="budget-email",
        ),
        pytest.param(
            with_(data__products={"expireDay": 400}),
            "data.products.expireDay",
            "did you mean 'expireDays'",
            id="nested-typo",
        ),
        pytest.param(
            with_(data__products={"transitions": [{"days": 30, "storageclass": "GLACIER"}]}),
            "data.products.transitions[0].storageclass",
            "did you mean 'storageClass'",
            id="transition-typo",
        ),
        pytest.param(
            with_(budget__monthlyUsd=float("nan")), "budget.monthlyUsd", "finite", id="nan-budget"
        ),
        pytest.param(
            with_(budget__monthlyUsd="NaN"), "budget.monthlyUsd", "finite", id="nan-string"
        ),
        pytest.param(
            with_(fleet__maxSpotPrice=float("inf")),
            "fleet.maxSpotPrice",
            "finite",
            id="inf-price",
        ),
        pytest.param(
            with_(data__rawBucket="mwa-archive", data__rawPrefix=["phase1/"]),
            "data.rawPrefix",
            "is not one prefix",
            id="raw-prefix-list-not-stringified",
        ),
        pytest.param(
            # S3 User Guide, "General purpose bucket naming rules": not formatted as an IP
            # address (for example, 192.168.5.4).
            with_(data__rawBucket="192.168.5.4"),
            "data.rawBucket",
            "formatted as an IP address",
            id="raw-bucket-ip-address",
        ),
        pytest.param(
            with_(budget__brakeInstanceHours=60),
            "budget.brakeInstanceHours",
            "was removed",
            id="brake-hours-removed",
        ),
        pytest.param(
            with_(budget__monthlyUsd=20),
            "budget.monthlyUsd",
            "give at least $",
            id="budget-too-small-to-stop-within-margin",
        ),
        pytest.param(with_(region="us-east-9"), "region", "did you mean 'us-east-", id="us-east-9"),
        pytest.param(
            with_(region="us-gov-west-1"), "region", "aws partition", id="other-partition"
        ),
        pytest.param(
            with_(budget__emails=[f"p{i}@example.org" for i in range(11)]),
            "budget.emails",
            "at most 10",
            id="eleven-emails",
        ),
        pytest.param(
            with_(data__raw={"transitions": [{"days": 30, "storageClass": "DEEP_ARCHIVE"}]}),
            "data.raw",
            "cannot be read without a restore",
            id="raw-to-deep-archive",
        ),
        pytest.param(
            with_(fleet__maxSize=2.5), "fleet.maxSize", "not a whole number", id="fractional"
        ),
        pytest.param(
            with_(guards__accountVcpus=8),
            "guards.accountVcpus",
            "at least this fleet's 160",
            id="account-vcpus-below-fleet",
        ),
    ],
)
def test_silent_mistakes_are_now_reported(raw: dict[str, Any], key: str, fix: str) -> None:
    """Unknown keys at every level get a did-you-mean (difflib); NaN/Inf are not numbers a
    budget can use; regions come from botocore's endpoint data for the aws partition (the
    stack writes arn:aws: ARNs); AWS Budgets takes at most 10 email subscribers per
    notification (Budgets API reference, NotificationWithSubscribers); archived raw data
    cannot be read without a restore (S3 User Guide, "Restoring an archived object")."""
    found = problems(raw)
    assert any(p.startswith(f"spotcube:{key}: ") and fix in p for p in found), found


def test_setting_one_lifecycle_key_keeps_the_others() -> None:
    """Only expireDays: the default Deep Archive transition stays (it used to be dropped);
    only minTransitionBytes: the rules stay (they used to vanish)."""
    only_expiry = parse_config(with_(data__products={"expireDays": 2000}), stack="dev")
    (archive, small) = only_expiry.data.products.rules
    assert [t.storage_class for t in archive.transitions] == ["DEEP_ARCHIVE"]
    assert archive.expire_days == small.expire_days == 2000
    only_size = parse_config(with_(data__products={"minTransitionBytes": 2**20}), stack="dev")
    (archive, _) = only_size.data.products.rules
    assert archive.object_size_greater_than == 2**20 - 1
    assert archive.expire_days == 1095


def test_null_means_keep_where_the_example_says_so() -> None:
    config = parse_config(
        with_(data__checkpointExpireDays=None, data__products={"expireDays": None}), stack="dev"
    )
    assert config.data.checkpoint_expire_days is None
    assert all(r.expire_days is None for r in config.data.products.rules)
    # A null where null means nothing keeps the default.
    assert parse_config(with_(fleet__maxSize=None), stack="dev").fleet.max_size == 10


@pytest.mark.parametrize(
    ("raw", "key", "says"),
    [
        pytest.param(with_(budget__monthlyUsd=50000), "budget.monthlyUsd", "50,000", id="budget"),
        pytest.param(
            with_(fleet__maxSize=100, fleet__onDemandBase=100, budget__monthlyUsd=1000),
            "fleet.onDemandBase",
            "100 on-demand instances",
            id="on-demand",
        ),
        pytest.param(
            with_(fleet__maxSpotPrice=50), "fleet.maxSpotPrice", "caps nothing", id="cap-high"
        ),
        pytest.param(
            with_(fleet__maxSpotPrice=0.01), "fleet.maxSpotPrice", "rarely get", id="cap-low"
        ),
        pytest.param(
            with_(data__raw={"transitions": [{"days": 30, "storageClass": "STANDARD_IA"}]}),
            "data.raw",
            "each time a worker reads",
            id="raw-ia",
        ),
    ],
)
def test_valid_but_dangerous_values_warn(raw: dict[str, Any], key: str, says: str) -> None:
    config = parse_config(raw, stack="dev")
    assert any(w.startswith(f"spotcube:{key}: ") and says in w for w in config.warnings)


@pytest.mark.parametrize("variant", ["Radio_Tools", "", "-x", "a" * 41, "radio tools"])
def test_variant_must_be_a_bake_variant_name(variant: str) -> None:
    raw = {**MINIMAL, "variant": variant}
    if not variant:  # empty means the default, like every other unset key
        assert parse_config(raw, stack="dev").variant == "default"
        return
    with pytest.raises(ConfigError, match=r"spotcube:variant: .* not a variant name"):
        parse_config(raw, stack="dev")


def test_variant_with_a_fixed_ami_warns_that_it_is_ignored() -> None:
    config = parse_config(
        {**MINIMAL, "variant": "radio-tools", "ami": "ami-0123456789abcdef0"}, stack="dev"
    )
    assert any(w.startswith("spotcube:variant: ") for w in config.warnings)


def test_documented_configs_have_no_warnings() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())["config"]
    raw = {key.removeprefix("spotcube:"): value for key, value in example.items()}
    assert parse_config(raw, stack="dev").warnings == ()
    assert parse_config(MINIMAL, stack="dev").warnings == ()


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)


def leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in leaves(v, (*path, k))] or [path]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in leaves(v, (*path, i))] or [path]
    return [path]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_damaged_example_gives_a_config_or_one_line_per_problem(data: st.DataObject) -> None:
    """Property-based damage: any leaf of the example replaced by junk (NaN, huge numbers,
    lists, objects, text) either parses or fails with ConfigError lines naming a key; never
    another exception, never a traceback for the user."""
    example = yaml.safe_load(EXAMPLE.read_text())["config"]
    raw: Any = {key.removeprefix("spotcube:"): value for key, value in example.items()}
    for path in data.draw(st.lists(st.sampled_from(leaves(raw)), min_size=1, max_size=3)):
        target = raw
        for part in path[:-1]:
            target = target[part]
        if path:
            target[path[-1]] = data.draw(JUNK)
    lines: list[str] | None = None
    try:
        parse_config(raw, stack="dev")
    except ConfigError as exc:
        lines = [str(problem) for problem in exc.problems]
    if lines is not None:
        assert lines
        assert all(line.startswith("spotcube:") for line in lines)
        assert not any("\n" in line for line in lines)
