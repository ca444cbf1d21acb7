"""Plan S3 lifecycle rules that cannot charge early-deletion or small-object fees.

Pure code, no Pulumi import. The user states an intent ("archive products to Deep Archive
after 30 days, delete after 3 years"); :func:`plan` turns it into lifecycle rules or raises
:class:`LifecycleError` listing every way the intent would be billed for storage it never
used, with what that would have cost. The facts come from DESIGN.md ("Facts to encode").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contract.layout import RUNS

# Minimum storage duration in days: removing an object from the class earlier (delete,
# overwrite or transition out) is billed as if it had stayed this long.
MIN_STORAGE_DAYS: dict[str, int] = {
    "STANDARD": 0,
    "INTELLIGENT_TIERING": 0,
    "STANDARD_IA": 30,
    "ONEZONE_IA": 30,
    "GLACIER_IR": 90,
    "GLACIER": 90,
    "DEEP_ARCHIVE": 180,
}

# Storage price per GB-month (us-east-1, 2024 list prices); used only to say what a
# rejected rule would have cost.
PRICE_PER_GB_MONTH: dict[str, float] = {
    "STANDARD": 0.023,
    "INTELLIGENT_TIERING": 0.023,
    "STANDARD_IA": 0.0125,
    "ONEZONE_IA": 0.01,
    "GLACIER_IR": 0.004,
    "GLACIER": 0.0036,
    "DEEP_ARCHIVE": 0.00099,
}

# Every class a lifecycle rule can name, warmest first (for messages and iteration only).
CLASS_ORDER = (
    "STANDARD",
    "INTELLIGENT_TIERING",
    "STANDARD_IA",
    "ONEZONE_IA",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
)
TRANSITION_CLASSES = CLASS_ORDER[1:]

# Where lifecycle can move an object from each class: the S3 User Guide's "Supported
# lifecycle transitions" list (Transitioning objects using Amazon S3 Lifecycle). It is not a
# linear order: Standard-IA may go to Intelligent-Tiering, while Intelligent-Tiering may not
# go to Standard-IA and One Zone-IA may not go to Glacier Instant Retrieval.
SUPPORTED_TRANSITIONS: dict[str, frozenset[str]] = {
    "STANDARD": frozenset(TRANSITION_CLASSES),
    "STANDARD_IA": frozenset(
        {"INTELLIGENT_TIERING", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"}
    ),
    "INTELLIGENT_TIERING": frozenset({"ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"}),
    "ONEZONE_IA": frozenset({"GLACIER", "DEEP_ARCHIVE"}),
    "GLACIER_IR": frozenset({"GLACIER", "DEEP_ARCHIVE"}),
    "GLACIER": frozenset({"DEEP_ARCHIVE"}),
    "DEEP_ARCHIVE": frozenset(),
}

# Classes a worker can read with a plain GetObject (no restore first).
INSTANT_READ_CLASSES = frozenset(
    {"STANDARD", "INTELLIGENT_TIERING", "STANDARD_IA", "ONEZONE_IA", "GLACIER_IR"}
)
# Classes that bill a retrieval fee per GB read (us-east-1): reading them on every run adds it.
RETRIEVAL_USD_PER_GB: dict[str, float] = {
    "STANDARD_IA": 0.01,
    "ONEZONE_IA": 0.01,
    "GLACIER_IR": 0.03,
}

# Lifecycle transition requests, USD per 1,000 objects moved into the class (Amazon S3
# pricing, "Requests & data retrievals", us-east-1). Every object pays once per transition,
# whatever its size, so small objects can cost more to move than they ever save.
TRANSITION_USD_PER_1000: dict[str, float] = {
    "INTELLIGENT_TIERING": 0.01,
    "STANDARD_IA": 0.01,
    "ONEZONE_IA": 0.01,
    "GLACIER_IR": 0.02,
    "GLACIER": 0.03,
    "DEEP_ARCHIVE": 0.05,
}
# Intelligent-Tiering's monitoring fee, USD per 1,000 objects per month (objects >= 128 KB).
IT_MONITORING_USD_PER_1000_MONTH = 0.0025

# Classes billed at a minimum object size of 128 KB (IA, Glacier IR) or with ~40 KB of
# per-object overhead (Glacier Flexible Retrieval, Deep Archive): small objects cost more
# there than in Standard.
SMALL_OBJECT_PENALTY_CLASSES = frozenset(
    {"STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"}
)
MIN_ARCHIVE_OBJECT_BYTES = 128 * 1024
# Overhead billed per object in Glacier FR / Deep Archive (32 KB at the class price plus 8 KB
# at Standard price); used to explain the small-object penalty.
ARCHIVE_OVERHEAD_BYTES = 40 * 1024

# S3 evaluates lifecycle rules about once a day, so a transition may happen up to a day
# after its nominal day while an expiry happens on time: every plan keeps this margin.
LIFECYCLE_LAG_DAYS = 1

# The value for ``transition_default_minimum_object_size`` that keeps objects under 128 KB
# out of every transition even where a rule has no explicit size filter.
TRANSITION_DEFAULT_MINIMUM_OBJECT_SIZE = "all_storage_classes_128K"

_GB = 1024**3


@dataclass(frozen=True)
class Transition:
    """Move objects to ``storage_class`` ``days`` days after creation."""

    days: int
    storage_class: str


@dataclass(frozen=True)
class LifecycleIntent:
    """What the user wants for the objects under ``prefix``."""

    prefix: str = ""
    transitions: tuple[Transition, ...] = ()
    expire_days: int | None = None
    # Objects smaller than this are never transitioned (they stay in Standard, where small
    # objects cost nothing extra). Below 128 KB the archive classes overcharge.
    min_transition_bytes: int = MIN_ARCHIVE_OBJECT_BYTES


@dataclass(frozen=True)
class LifecycleRule:
    """One S3 lifecycle rule, in plain data (the Pulumi component converts it)."""

    id: str
    prefix: str
    transitions: tuple[Transition, ...] = ()
    expire_days: int | None = None
    object_size_greater_than: int | None = None  # strict: size > value
    object_size_less_than: int | None = None  # strict: size < value
    tag: tuple[str, str] | None = None
    abort_multipart_days: int | None = None

    def matches(self, key: str, size: int, tags: dict[str, str] | None = None) -> bool:
        """Whether an object falls under this rule's filter."""
        if not key.startswith(self.prefix):
            return False
        if self.object_size_greater_than is not None and not size > self.object_size_greater_than:
            return False
        if self.object_size_less_than is not None and not size < self.object_size_less_than:
            return False
        return self.tag is None or (tags or {}).get(self.tag[0]) == self.tag[1]


@dataclass(frozen=True)
class LifecyclePlan:
    rules: tuple[LifecycleRule, ...]
    transition_default_minimum_object_size: str = TRANSITION_DEFAULT_MINIMUM_OBJECT_SIZE
    notes: tuple[str, ...] = field(default=())


class LifecycleError(ValueError):
    """An intent that could be billed for storage it never used; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def early_deletion_cost_per_tb(storage_class: str, days_in_class: float) -> float:
    """USD billed per TB for storage never used when leaving after ``days_in_class``."""
    missing_days = max(0.0, MIN_STORAGE_DAYS[storage_class] - days_in_class)
    return PRICE_PER_GB_MONTH[storage_class] * missing_days / 30.0 * 1024


def small_object_cost_per_million(storage_class: str, size_bytes: int) -> float:
    """Extra USD per million objects of ``size_bytes`` in ``storage_class`` vs their size."""
    if storage_class in ("GLACIER", "DEEP_ARCHIVE"):
        extra = ARCHIVE_OVERHEAD_BYTES
    else:
        extra = max(0, MIN_ARCHIVE_OBJECT_BYTES - size_bytes)
    return PRICE_PER_GB_MONTH[storage_class] * extra / _GB * 1e6


def check_intent(intent: LifecycleIntent) -> list[str]:
    """Every reason ``intent`` could charge early-deletion or small-object fees (or is invalid)."""
    problems: list[str] = []
    for t in intent.transitions:
        if t.storage_class not in TRANSITION_CLASSES:
            problems.append(
                f"unknown storage class {t.storage_class!r}; use one of "
                f"{', '.join(TRANSITION_CLASSES)}"
            )
        if t.days < 0:
            problems.append(f"transition to {t.storage_class} at day {t.days} is negative")
    if problems:
        return problems
    days = [t.days for t in intent.transitions]
    if days != sorted(days) or len(set(days)) != len(days):
        problems.append("transitions must be listed with strictly increasing days")
        return problems
    previous, entered = "STANDARD", 0
    for t in intent.transitions:
        allowed = SUPPORTED_TRANSITIONS[previous]
        if t.storage_class not in allowed:
            problems.append(
                f"S3 lifecycle cannot move objects from {previous} to {t.storage_class} "
                f"(S3 User Guide, supported lifecycle transitions); from {previous} it can "
                f"move them to {', '.join(c for c in CLASS_ORDER if c in allowed) or 'nothing'}"
            )
            return problems
        if t.storage_class in ("STANDARD_IA", "ONEZONE_IA") and (
            t.days < 30 or t.days - entered < 30
        ):
            problems.append(
                f"transition to {t.storage_class} at day {t.days}: S3 moves objects to IA only "
                f"after 30 days in their current class ({previous} since day {entered}); use "
                f"day {max(30, entered + 30)} or later"
            )
        previous, entered = t.storage_class, t.days

    # Each class must be kept for its minimum (plus the daily lag) before the next step.
    steps: list[tuple[Transition, int | None, str]] = []
    for current, following in zip(intent.transitions, intent.transitions[1:], strict=False):
        steps.append((current, following.days, f"moving on to {following.storage_class}"))
    if intent.transitions and intent.expire_days is not None:
        steps.append((intent.transitions[-1], intent.expire_days, "expiring"))
    for current, leave_day, action in steps:
        assert leave_day is not None
        minimum = MIN_STORAGE_DAYS[current.storage_class]
        if minimum == 0:
            continue
        held = leave_day - current.days - LIFECYCLE_LAG_DAYS
        if held < minimum:
            cost = early_deletion_cost_per_tb(current.storage_class, held)
            problems.append(
                f"{action} at day {leave_day} leaves {current.storage_class} (entered at day "
                f"{current.days}, up to {LIFECYCLE_LAG_DAYS} day later) after {max(held, 0)} "
                f"days, before its {minimum}-day minimum: early deletion would bill about "
                f"${cost:.2f} per TB; make it day {current.days + minimum + LIFECYCLE_LAG_DAYS} "
                "or later"
            )

    if intent.expire_days is not None and intent.expire_days < 1:
        problems.append(f"expiry after {intent.expire_days} days: use 1 day or more")

    penalised = [t for t in intent.transitions if t.storage_class in SMALL_OBJECT_PENALTY_CLASSES]
    if penalised and intent.min_transition_bytes < MIN_ARCHIVE_OBJECT_BYTES:
        size = max(intent.min_transition_bytes, 1)
        costliest = max(
            penalised, key=lambda t: small_object_cost_per_million(t.storage_class, size)
        )
        cost = small_object_cost_per_million(costliest.storage_class, size)
        problems.append(
            f"objects of {size} bytes sent to {costliest.storage_class} are billed as at least "
            f"128 KB or carry ~40 KB overhead: about ${cost:.2f} per million objects per month "
            f"more than their size; keep the minimum transition size at "
            f"{MIN_ARCHIVE_OBJECT_BYTES} bytes or more"
        )
        return problems
    problems += _transition_fee_problems(intent)
    return problems


def _monthly_usd_per_object(storage_class: str, size_bytes: int, days_in_class: int) -> float:
    """Storage billed per object per month in ``storage_class`` (us-east-1 list prices).

    Objects are assumed never read (the products and archives this planner is for), so
    Intelligent-Tiering moves them to its infrequent tier after 30 days and to archive instant
    access after 90, and bills its monitoring fee.
    """
    gb = size_bytes / _GB
    if storage_class == "INTELLIGENT_TIERING":
        if size_bytes < MIN_ARCHIVE_OBJECT_BYTES:  # not monitored: frequent tier, no fee
            return PRICE_PER_GB_MONTH["STANDARD"] * gb
        tier = 0.023 if days_in_class < 30 else 0.0125 if days_in_class < 90 else 0.004
        return tier * gb + IT_MONITORING_USD_PER_1000_MONTH / 1000
    if storage_class in ("GLACIER", "DEEP_ARCHIVE"):
        index_gb = 32 * 1024 / _GB  # index data billed at the archive class price
        name_gb = 8 * 1024 / _GB  # and the object's name and metadata at Standard price
        return (
            PRICE_PER_GB_MONTH[storage_class] * (gb + index_gb)
            + PRICE_PER_GB_MONTH["STANDARD"] * name_gb
        )
    billed = (
        size_bytes if storage_class == "STANDARD" else max(size_bytes, MIN_ARCHIVE_OBJECT_BYTES)
    )
    return PRICE_PER_GB_MONTH[storage_class] * billed / _GB


def _segment_cost(storage_class: str, size_bytes: int, days: int) -> float:
    """Storage cost per object of ``days`` in one class (day by day: IT tiers move)."""
    if storage_class != "INTELLIGENT_TIERING":
        return _monthly_usd_per_object(storage_class, size_bytes, 0) * days / 30
    return sum(_monthly_usd_per_object(storage_class, size_bytes, d) / 30 for d in range(days))


def lifetime_cost_per_object(intent: LifecycleIntent, size_bytes: int) -> tuple[float, float]:
    """(USD under ``intent``, USD staying in Standard) per object of ``size_bytes`` until it
    expires: storage, plus one transition request per class it enters. Needs an expiry."""
    if intent.expire_days is None:
        raise ValueError("lifetime cost needs an expiry")
    classes = [("STANDARD", 0), *((t.storage_class, t.days) for t in intent.transitions)]
    ends = [day for _, day in classes[1:]] + [intent.expire_days]
    planned = 0.0
    for (storage_class, start), end in zip(classes, ends, strict=True):
        planned += _segment_cost(storage_class, size_bytes, max(0, end - start))
        planned += TRANSITION_USD_PER_1000.get(storage_class, 0.0) / 1000
    standard = _segment_cost("STANDARD", size_bytes, intent.expire_days)
    return planned, standard


def _transition_fee_problems(intent: LifecycleIntent) -> list[str]:
    """The plan must cost less than Standard for the smallest object it moves."""
    if not intent.transitions or intent.expire_days is None:
        return []
    size = max(intent.min_transition_bytes, MIN_ARCHIVE_OBJECT_BYTES)
    planned, standard = lifetime_cost_per_object(intent, size)
    if planned <= standard:
        return []
    # Above 128 KB the extra cost falls linearly with size: find where the plan pays.
    bigger = size * 4
    planned_big, standard_big = lifetime_cost_per_object(intent, bigger)
    extra, extra_big = planned - standard, planned_big - standard_big
    if extra_big < extra:
        break_even = size + extra * (bigger - size) / (extra - extra_big)
        fix = f"raise minTransitionBytes to {int(break_even) + 1} or more, or keep objects longer"
    else:
        fix = "keep the objects in STANDARD (moving them never pays)"
    path = " -> ".join(t.storage_class for t in intent.transitions)
    return [
        f"objects of {size} bytes moved to {path} and deleted at day {intent.expire_days} "
        f"cost ${planned * 1e6:.2f} per million in transition requests and storage, more than "
        f"${standard * 1e6:.2f} per million left in STANDARD; {fix}"
    ]


def plan(intent: LifecycleIntent, *, rule_prefix: str = "data") -> LifecyclePlan:
    """Rules for ``intent``; raise :class:`LifecycleError` if any could cost early fees."""
    problems = check_intent(intent)
    if problems:
        raise LifecycleError(problems)
    if not intent.transitions:
        if intent.expire_days is None:
            return LifecyclePlan(rules=())
        rule = LifecycleRule(
            id=f"{rule_prefix}-expire", prefix=intent.prefix, expire_days=intent.expire_days
        )
        return LifecyclePlan(rules=(rule,))
    threshold = max(intent.min_transition_bytes, MIN_ARCHIVE_OBJECT_BYTES)
    # A size filter narrows the expiry too, so small objects get a rule of their own that
    # only expires them (they never leave Standard, which has no minimum duration).
    large = LifecycleRule(
        id=f"{rule_prefix}-archive",
        prefix=intent.prefix,
        transitions=intent.transitions,
        expire_days=intent.expire_days,
        object_size_greater_than=threshold - 1,
    )
    rules = [large]
    notes = [
        f"objects under {threshold} bytes stay in STANDARD: archive classes bill them as "
        "128 KB or add 40 KB of overhead"
    ]
    if intent.expire_days is not None:
        rules.append(
            LifecycleRule(
                id=f"{rule_prefix}-expire-small",
                prefix=intent.prefix,
                expire_days=intent.expire_days,
                object_size_less_than=threshold,
            )
        )
    return LifecyclePlan(rules=tuple(rules), notes=tuple(notes))


def housekeeping_rules(
    *, checkpoint_expire_days: int | None, checkpoint_tag: tuple[str, str]
) -> tuple[LifecycleRule, ...]:
    """Rules every bucket gets: abort stale multipart uploads; expire tagged checkpoints.

    Checkpoints live at ``runs/<run>/obs/<obs>/checkpoint/``, which no prefix filter can
    select, so the rule matches the tag workers put on checkpoint objects. Checkpoints stay in
    Standard (no minimum duration), so any expiry day is free of early-deletion fees.
    """
    rules = [LifecycleRule(id="abort-incomplete-multipart", prefix="", abort_multipart_days=2)]
    if checkpoint_expire_days is not None:
        rules.append(
            LifecycleRule(
                id="expire-checkpoints",
                prefix=RUNS,
                expire_days=checkpoint_expire_days,
                tag=checkpoint_tag,
            )
        )
    return tuple(rules)
