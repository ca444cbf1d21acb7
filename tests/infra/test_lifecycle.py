"""The lifecycle planner: explicit cases, and a simulation of object lifetimes under every plan.

The simulator is written here, apart from the planner, from the billing facts alone: an object
starts in STANDARD; each transition happens on its day or up to a day later (S3 runs lifecycle
about once a day) while an expiry happens on its day (the worst case for early deletion); it is
billed for the rest of a class's minimum duration if it leaves the class early, and archive
classes overcharge objects under 128 KB.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from contract.layout import CHECKPOINT_TAG
from infra.config import ConfigError, parse_config
from infra.lifecycle import (
    LIFECYCLE_LAG_DAYS,
    TRANSITION_CLASSES,
    LifecycleError,
    LifecycleIntent,
    LifecycleRule,
    Transition,
    check_intent,
    housekeeping_rules,
    plan,
)
from tests.infra.configs import MINIMAL

MINIMUM_DAYS = {
    "STANDARD": 0,
    "INTELLIGENT_TIERING": 0,
    "STANDARD_IA": 30,
    "ONEZONE_IA": 30,
    "GLACIER_IR": 90,
    "GLACIER": 90,
    "DEEP_ARCHIVE": 180,
}
SMALL_OBJECT_CLASSES = {"STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"}
SMALL = 128 * 1024


@dataclass(frozen=True)
class Charges:
    early_days: float  # days billed but not stored
    small_object_transitions: int
    ambiguous: bool = False


def matches(rule: LifecycleRule, key: str, size: int, tags: dict[str, str]) -> bool:
    if not key.startswith(rule.prefix):
        return False
    if rule.object_size_greater_than is not None and size <= rule.object_size_greater_than:
        return False
    if rule.object_size_less_than is not None and size >= rule.object_size_less_than:
        return False
    return rule.tag is None or tags.get(rule.tag[0]) == rule.tag[1]


def simulate(
    rules: tuple[LifecycleRule, ...],
    *,
    key: str,
    size: int,
    tags: dict[str, str],
    lags: list[float],
    default_min_size: int = SMALL,
) -> Charges:
    """Charges an object incurs from creation to expiry under ``rules``."""
    applicable = [r for r in rules if matches(r, key, size, tags)]
    expiries = [r.expire_days for r in applicable if r.expire_days is not None]
    expire_at = min(expiries) if expiries else None
    with_transitions = [r for r in applicable if r.transitions]
    if len(with_transitions) > 1:
        return Charges(0, 0, ambiguous=True)
    transitions = with_transitions[0].transitions if with_transitions else ()
    current, entered, early, small = "STANDARD", 0.0, 0.0, 0
    for step, lag in zip(transitions, lags, strict=False):
        when = step.days + lag
        if expire_at is not None and when >= expire_at:
            break  # expired first: expiry wins over a transition due the same day
        if size < default_min_size and not with_transitions[0].object_size_greater_than:
            continue  # the configuration's default size floor holds it back
        early += max(0.0, MINIMUM_DAYS[current] - (when - entered))
        if step.storage_class in SMALL_OBJECT_CLASSES and size < SMALL:
            small += 1
        current, entered = step.storage_class, when
    if expire_at is not None:
        early += max(0.0, MINIMUM_DAYS[current] - (expire_at - entered))
    return Charges(early, small)


# --- explicit cases ---------------------------------------------------------------------------


def test_the_issue_example_is_accepted() -> None:
    intent = LifecycleIntent(
        prefix="runs/", transitions=(Transition(30, "DEEP_ARCHIVE"),), expire_days=3 * 365
    )
    result = plan(intent, rule_prefix="products")
    large, small = result.rules
    assert large.transitions == intent.transitions
    assert large.expire_days == 1095
    assert large.object_size_greater_than == SMALL - 1
    assert small.transitions == ()
    assert small.object_size_less_than == SMALL
    assert result.transition_default_minimum_object_size == "all_storage_classes_128K"


def test_expiry_before_the_minimum_says_what_it_costs() -> None:
    intent = LifecycleIntent(transitions=(Transition(30, "DEEP_ARCHIVE"),), expire_days=200)
    with pytest.raises(LifecycleError) as caught:
        plan(intent)
    (message,) = [p for p in caught.value.problems if "early deletion" in p]
    # 200 - 30 - 1 day of lag = 169 days in Deep Archive, 11 short of 180: 0.00099 $/GB-month.
    assert "$0.37 per TB" in message
    assert "day 211 or later" in message


def test_chain_leaving_a_class_early_is_rejected() -> None:
    intent = LifecycleIntent(
        transitions=(Transition(30, "STANDARD_IA"), Transition(45, "GLACIER")), expire_days=400
    )
    with pytest.raises(LifecycleError, match="moving on to GLACIER at day 45 leaves STANDARD_IA"):
        plan(intent)


def test_ia_before_30_days_is_rejected() -> None:
    with pytest.raises(LifecycleError, match="only after 30 days in their current class"):
        plan(LifecycleIntent(transitions=(Transition(10, "ONEZONE_IA"),)))


def test_small_objects_to_glacier_are_rejected_with_cost() -> None:
    intent = LifecycleIntent(transitions=(Transition(30, "GLACIER"),), min_transition_bytes=4096)
    with pytest.raises(LifecycleError, match=r"objects of 4096 bytes .* per million objects"):
        plan(intent)


def test_warmer_class_after_colder_is_rejected() -> None:
    intent = LifecycleIntent(transitions=(Transition(30, "GLACIER"), Transition(200, "GLACIER_IR")))
    with pytest.raises(LifecycleError, match="cannot move objects from GLACIER to GLACIER_IR"):
        plan(intent)


# The S3 User Guide's list ("Transitioning objects using Amazon S3 Lifecycle", Supported and
# unsupported lifecycle transitions), written out here pair by pair, independently of the
# planner's table. Each pair is tested as the second step after a first move from STANDARD.
SUPPORTED = [
    ("STANDARD_IA", "INTELLIGENT_TIERING"),
    ("STANDARD_IA", "ONEZONE_IA"),
    ("STANDARD_IA", "GLACIER_IR"),
    ("STANDARD_IA", "GLACIER"),
    ("STANDARD_IA", "DEEP_ARCHIVE"),
    ("INTELLIGENT_TIERING", "ONEZONE_IA"),
    ("INTELLIGENT_TIERING", "GLACIER_IR"),
    ("INTELLIGENT_TIERING", "GLACIER"),
    ("INTELLIGENT_TIERING", "DEEP_ARCHIVE"),
    ("ONEZONE_IA", "GLACIER"),
    ("ONEZONE_IA", "DEEP_ARCHIVE"),
    ("GLACIER_IR", "GLACIER"),
    ("GLACIER_IR", "DEEP_ARCHIVE"),
    ("GLACIER", "DEEP_ARCHIVE"),
]
UNSUPPORTED = [
    ("INTELLIGENT_TIERING", "STANDARD_IA"),  # "Intelligent-Tiering to Standard-IA"
    ("ONEZONE_IA", "STANDARD_IA"),  # "One Zone-IA to ... Standard-IA"
    ("ONEZONE_IA", "INTELLIGENT_TIERING"),  # "One Zone-IA to Intelligent-Tiering"
    ("ONEZONE_IA", "GLACIER_IR"),  # "One Zone-IA to ... Glacier Instant Retrieval"
    ("GLACIER", "GLACIER_IR"),
    ("DEEP_ARCHIVE", "GLACIER"),
]


def two_steps(first: str, second: str) -> LifecycleIntent:
    # Day 30 then day 400: past every minimum duration and IA's 30-day rule; no expiry, so
    # only the transition table can refuse it. 1 MB objects: no small-object question.
    return LifecycleIntent(
        transitions=(Transition(30, first), Transition(400, second)),
        min_transition_bytes=2**20,
    )


@pytest.mark.parametrize(("first", "second"), SUPPORTED, ids=[f"{a}->{b}" for a, b in SUPPORTED])
def test_transition_s3_supports_is_accepted(first: str, second: str) -> None:
    assert check_intent(two_steps(first, second)) == []


@pytest.mark.parametrize(
    ("first", "second"), UNSUPPORTED, ids=[f"{a}->{b}" for a, b in UNSUPPORTED]
)
def test_transition_s3_refuses_is_rejected(first: str, second: str) -> None:
    (problem,) = check_intent(two_steps(first, second))
    assert f"cannot move objects from {first} to {second}" in problem


GB = 1024**3


def deep_archive_lifetime_usd(size: int, *, archive_day: int, expire_day: int) -> float:
    """One object: STANDARD until ``archive_day``, then Deep Archive until ``expire_day``.

    Amazon S3 pricing, us-east-1: Standard $0.023/GB-month, Deep Archive $0.00099/GB-month
    plus 32 KB of index at that price and 8 KB of metadata at the Standard price per object
    (S3 User Guide, "Transitioning to the S3 Glacier Flexible Retrieval and S3 Glacier Deep
    Archive storage classes"), and $0.05 per 1,000 lifecycle transition requests.
    """
    standard = 0.023 * size / GB * archive_day / 30
    months_archived = (expire_day - archive_day) / 30
    archived = months_archived * (0.00099 * (size + 32 * 1024) / GB + 0.023 * 8 * 1024 / GB)
    return standard + archived + 0.05 / 1000


@pytest.mark.parametrize("kib", [128, 256, 400])
def test_transition_fees_above_the_saving_are_rejected(kib: int) -> None:
    """The issue's example: Deep Archive at day 30, expiry at day 211; 128-400 KB objects pay
    more in transition requests and overhead than staying in Standard for 211 days."""
    size = kib * 1024
    assert deep_archive_lifetime_usd(size, archive_day=30, expire_day=211) > (
        0.023 * size / GB * 211 / 30
    )
    intent = LifecycleIntent(
        transitions=(Transition(30, "DEEP_ARCHIVE"),), expire_days=211, min_transition_bytes=size
    )
    problems = [p for p in check_intent(intent) if "transition requests" in p]
    assert len(problems) == 1
    assert "raise minTransitionBytes to" in problems[0]


def test_transition_fees_below_the_saving_are_accepted() -> None:
    size = 512 * 1024
    assert deep_archive_lifetime_usd(size, archive_day=30, expire_day=211) < (
        0.023 * size / GB * 211 / 30
    )
    intent = LifecycleIntent(
        transitions=(Transition(30, "DEEP_ARCHIVE"),), expire_days=211, min_transition_bytes=size
    )
    assert check_intent(intent) == []
    # The default products plan (Deep Archive at 30, deleted at 1095) pays even at 128 KB.
    default = LifecycleIntent(transitions=(Transition(30, "DEEP_ARCHIVE"),), expire_days=1095)
    assert deep_archive_lifetime_usd(SMALL, archive_day=30, expire_day=1095) < (
        0.023 * SMALL / GB * 1095 / 30
    )
    assert check_intent(default) == []


def test_expiry_only_needs_no_size_filter() -> None:
    (rule,) = plan(LifecycleIntent(prefix="tmp/", expire_days=3)).rules
    assert rule.object_size_greater_than is None
    assert rule.expire_days == 3


def test_the_simulator_sees_charges_without_the_lag_margin() -> None:
    """A rule set that ignores S3's daily lag does incur a charge: the oracle can fail."""
    naive = LifecycleRule(
        id="naive", prefix="", transitions=(Transition(30, "GLACIER"),), expire_days=120
    )
    on_time = simulate((naive,), key="k", size=10**6, tags={}, lags=[0.0])
    late = simulate((naive,), key="k", size=10**6, tags={}, lags=[1.0])
    assert on_time.early_days == 0
    assert late.early_days == 1


# --- property: no accepted plan can charge early deletion ------------------------------------


@st.composite
def chains(draw: st.DrawFn) -> tuple[Transition, ...]:
    """Transitions to colder and colder classes on increasing days (what S3 accepts)."""
    classes = draw(st.lists(st.sampled_from(TRANSITION_CLASSES), unique=True, max_size=4))
    classes.sort(key=TRANSITION_CLASSES.index)
    day, chain = 0, list[Transition]()
    for storage_class in classes:
        day += draw(st.integers(0 if not chain else 1, 250))
        chain.append(Transition(day, storage_class))
    return tuple(chain)


intents = st.builds(
    LifecycleIntent,
    prefix=st.just("runs/"),
    transitions=chains(),
    expire_days=st.none() | st.integers(1, 2500),
    min_transition_bytes=st.sampled_from([0, 1000, SMALL - 1, SMALL, 10**6]),
)
lags = st.lists(st.floats(0, LIFECYCLE_LAG_DAYS), min_size=4, max_size=4)
sizes = st.integers(0, 10**10)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(intent=intents, size=sizes, lags=lags)
def test_accepted_plans_never_charge_early_deletion(
    intent: LifecycleIntent, size: int, lags: list[float]
) -> None:
    try:
        result = plan(intent)
    except LifecycleError:
        assume(False)
        return
    charges = simulate(result.rules, key="runs/r/obs/o/products/x", size=size, tags={}, lags=lags)
    assert not charges.ambiguous
    assert charges.early_days == 0
    assert charges.small_object_transitions == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    intent=intents,
    checkpoint_days=st.none() | st.integers(1, 400),
    size=sizes,
    lags=lags,
    is_checkpoint=st.booleans(),
)
def test_products_bucket_from_config_never_charges(
    intent: LifecycleIntent,
    checkpoint_days: int | None,
    size: int,
    lags: list[float],
    is_checkpoint: bool,
) -> None:
    """The whole products bucket (archive rules + checkpoint expiry) as the config builds it."""
    products = {
        "transitions": [
            {"days": t.days, "storageClass": t.storage_class} for t in intent.transitions
        ],
        "expireDays": intent.expire_days,
        "minTransitionBytes": intent.min_transition_bytes,
    }
    raw = {**MINIMAL, "data": {"products": products, "checkpointExpireDays": checkpoint_days}}
    try:
        config = parse_config(raw, stack="dev")
    except ConfigError:
        assume(False)
        return
    rules = (
        housekeeping_rules(
            checkpoint_expire_days=config.data.checkpoint_expire_days, checkpoint_tag=CHECKPOINT_TAG
        )
        + config.data.products.rules
    )
    tags = dict([CHECKPOINT_TAG]) if is_checkpoint else {}
    key = "runs/r/obs/o/checkpoint/chunks/0.npz" if is_checkpoint else "runs/r/obs/o/DONE"
    charges = simulate(rules, key=key, size=size, tags=tags, lags=lags)
    assert not charges.ambiguous
    assert charges.early_days == 0
    assert charges.small_object_transitions == 0
