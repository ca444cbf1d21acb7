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

from infra.config import CHECKPOINT_TAG, ConfigError, parse_config
from infra.lifecycle import (
    LIFECYCLE_LAG_DAYS,
    TRANSITION_CLASSES,
    LifecycleError,
    LifecycleIntent,
    LifecycleRule,
    Transition,
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
    (message,) = caught.value.problems
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
    with pytest.raises(LifecycleError, match="at least 30 days old"):
        plan(LifecycleIntent(transitions=(Transition(10, "ONEZONE_IA"),)))


def test_small_objects_to_glacier_are_rejected_with_cost() -> None:
    intent = LifecycleIntent(transitions=(Transition(30, "GLACIER"),), min_transition_bytes=4096)
    with pytest.raises(LifecycleError, match=r"objects of 4096 bytes .* per million objects"):
        plan(intent)


def test_warmer_class_after_colder_is_rejected() -> None:
    intent = LifecycleIntent(transitions=(Transition(30, "GLACIER"), Transition(200, "GLACIER_IR")))
    with pytest.raises(LifecycleError, match="only moves objects to colder classes"):
        plan(intent)


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
