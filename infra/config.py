"""Stack config (namespace ``spotcube:``) parsed into a frozen dataclass by pure code.

Every problem is collected and reported at once, each naming its key and the fix, so a user
fixes their ``Pulumi.<stack>.yaml`` in one pass instead of one ``pulumi up`` per mistake.
Defaults live here and nowhere else (or, for those the embedded local cloud shares, in the
``contract`` package); ``Pulumi.example.yaml`` documents the same values.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.session import get_session

# The instance table (shapes and prices) has one home, shared with `spotcube plan`.
from contract.instances import (
    FAMILY_GIB_PER_VCPU,
    SIZE_VCPUS,
    SIZES_NOT_MADE,
    fleet_on_demand_usd_per_hour,
)
from contract.instances import shape as _shape
from contract.layout import RUNS
from contract.names import DEFAULT_VARIANT, VARIANT_NAME, StackNames
from contract.queue import DEFAULT_MAX_RECEIVE_COUNT  # the local cloud's default too
from infra.checkpointing import (
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    PUBLISHED_PERCENT_PER_HOUR,
    stack_interval_seconds,
)
from infra.lambdas.meter import (
    BRAKE_MARGIN,
    brake_threshold_usd,
    max_overshoot_usd,
    most_instances,
    spot_bound_usd,
)
from infra.lifecycle import (
    INSTANT_READ_CLASSES,
    MIN_STORAGE_DAYS,
    RETRIEVAL_USD_PER_GB,
    LifecycleError,
    LifecycleIntent,
    LifecyclePlan,
    Transition,
    plan,
)

NAMESPACE = "spotcube"

MAX_FLEET_SIZE = 100  # beyond this a typo (1000 for 10) is likelier than a real need
MIN_INSTANCE_TYPES = 3  # spot diversification: fewer pools means more interruptions
MAX_BUDGET_USD = 100_000
# AWS Budgets: a notification has one SNS subscriber and at most 10 email subscribers
# (Budgets API reference, NotificationWithSubscribers).
MAX_BUDGET_EMAILS = 10

# The fast brake prices the fleet's month at most (infra/lambdas/meter.py, ADR 0002).
# `spotcube bake --target aws` runs one build instance of packer/variables.pkr.hcl's
# spot_instance_types (*.large: 2 vCPUs); a margin of one xlarge.
BAKE_VCPUS = 4
# Consecutive minutes the account's vCPUs must exceed guards.accountVcpus before the alarm.
VCPU_ALARM_MINUTES = 3

# Valid but dangerous values: accepted, with a warning on every `pulumi up`.
WARN_BUDGET_USD = 5_000
WARN_ON_DEMAND_BASE = 10
# A spot cap below this share of on-demand rarely gets capacity; above on-demand it caps
# nothing (spot never bills more than on-demand).
WARN_SPOT_CAP_SHARE = 0.2

# The stack's ARNs are written for the commercial partition ("arn:aws:").
PARTITION = "aws"

_OWNER = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_AMI = re.compile(r"^ami-[0-9a-f]{8,17}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{NAMESPACE}:{self.key}: {self.message}"


class ConfigError(ValueError):
    """Every problem of a stack config, one line each."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the stack config:\n{lines}")


class StackSetupError(RuntimeError):
    """The account is not ready for the stack (for example no AMI); one line with the fix."""


@dataclass(frozen=True)
class InstanceShape:
    vcpus: int
    memory_gib: float


@dataclass(frozen=True)
class BudgetConfig:
    monthly_usd: float
    emails: tuple[str, ...]
    # The fast brake (ADR 0002): the fleet's month-to-date spend, priced at most
    # (on-demand for the base, min(on-demand, maxSpotPrice) for spot), above this brakes.
    brake_threshold_usd: float = 0.0
    on_demand_usd: float = 0.0
    spot_bound_usd: float = 0.0
    # The most the fleet spends between the crossing and its end (<= BRAKE_MARGIN x budget).
    brake_overshoot_usd: float = 0.0


@dataclass(frozen=True)
class FleetConfig:
    instance_types: tuple[str, ...]
    shape: InstanceShape
    max_size: int
    on_demand_base: int
    max_spot_price: float | None
    checkpoint_grace_seconds: int
    root_volume_gib: int
    capacity_rebalance: bool
    # Spot interruptions the fleet's types see, and the checkpoint interval workers get for
    # it (infra.checkpointing: Young/Daly unless fleet.checkpointIntervalSeconds says otherwise).
    interruption_percent_per_hour: float = PUBLISHED_PERCENT_PER_HOUR
    checkpoint_interval_seconds: int = stack_interval_seconds(PUBLISHED_PERCENT_PER_HOUR)


@dataclass(frozen=True)
class DataConfig:
    raw_bucket: str | None  # an existing group archive (read-only); None: create one
    raw_prefix: str
    products: LifecyclePlan
    raw: LifecyclePlan
    checkpoint_expire_days: int | None


@dataclass(frozen=True)
class GuardsConfig:
    # vCPUs the whole account may run in the stack's region (every class, spot and
    # on-demand) before the alarm says someone else is launching.
    account_vcpus: int


@dataclass(frozen=True)
class QueueConfig:
    max_receive_count: int
    visibility_timeout_seconds: int


@dataclass(frozen=True)
class StackConfig:
    owner: str
    stack: str
    region: str
    budget: BudgetConfig
    fleet: FleetConfig
    data: DataConfig
    queue: QueueConfig
    ami: str  # an AMI id, or "latest": the newest AMI tagged Project=spotcube of `variant`
    guards: GuardsConfig = field(default=GuardsConfig(account_vcpus=0))
    # Valid but dangerous values, one line each naming the key; shown on every `pulumi up`.
    warnings: tuple[str, ...] = ()
    # The image variant whose newest AMI `ami: latest` picks (`spotcube bake --image-config`).
    variant: str = DEFAULT_VARIANT

    @property
    def names(self) -> StackNames:
        return StackNames(owner=self.owner, stack=self.stack)

    def names_in(self, account_id: str) -> StackNames:
        """Names of the stack's resources in ``account_id`` (bucket names carry it)."""
        return StackNames(owner=self.owner, stack=self.stack, account_id=account_id)


DEFAULTS: dict[str, Any] = {
    "region": "us-east-1",
    "ami": "latest",
    "variant": DEFAULT_VARIANT,
    "budget": {"monthlyUsd": None, "emails": []},
    "fleet": {
        "instanceTypes": ["m6i.4xlarge", "m6a.4xlarge", "m5.4xlarge", "m5a.4xlarge", "m7i.4xlarge"],
        "maxSize": 10,
        "onDemandBase": 0,
        "maxSpotPrice": None,
        "checkpointGraceSeconds": 300,
        "rootVolumeGib": 50,
        "capacityRebalance": True,
        "interruptionPercentPerHour": PUBLISHED_PERCENT_PER_HOUR,
        "checkpointIntervalSeconds": None,  # Young/Daly for interruptionPercentPerHour
    },
    "data": {
        "rawBucket": None,
        "rawPrefix": "",
        "checkpointExpireDays": 30,
        # Products: Deep Archive after 30 days, deleted after 3 years.
        "products": {
            "transitions": [{"days": 30, "storageClass": "DEEP_ARCHIVE"}],
            "expireDays": 1095,
            "minTransitionBytes": 131072,
        },
        # Raw data we create: kept in Standard (it is read again for every run).
        "raw": {"transitions": [], "expireDays": None, "minTransitionBytes": 131072},
    },
    "queue": {"maxReceiveCount": DEFAULT_MAX_RECEIVE_COUNT, "visibilityTimeoutSeconds": 900},
    "guards": {"accountVcpus": None},
}

# Keys of earlier releases, with what replaced them.
REMOVED_KEYS = {
    "budget.brakeInstanceHours": (
        "was removed: the brake now fires when the fleet's month-to-date spend exceeds "
        "budget.monthlyUsd (docs/adr/0002-budget-brake.md); delete the key"
    ),
}

# Keys whose null means something ("none", "keep", "computed"), not "use the default".
NULLABLE = frozenset(
    {
        "fleet.maxSpotPrice",
        "fleet.checkpointIntervalSeconds",
        "data.rawBucket",
        "data.checkpointExpireDays",
        "data.products.expireDays",
        "data.raw.expireDays",
        "guards.accountVcpus",
    }
)
TRANSITION_KEYS = ("days", "storageClass")


def did_you_mean(name: str, known: list[str] | tuple[str, ...] | set[str]) -> str:
    """The message for a key not in ``known``, suggesting the closest known key."""
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    hint = f"did you mean {by_lower[close[0]]!r}? " if close else ""
    return f"unknown key; {hint}known keys: {', '.join(sorted(known))}"


@functools.cache
def known_regions() -> frozenset[str]:
    """Regions of the commercial partition, from botocore's endpoint data (not ours)."""
    return frozenset(get_session().get_available_regions("ec2", partition_name=PARTITION))


class _Collector:
    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(key, message))

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(str(ConfigProblem(key, message)))

    def merge(self, key: str, value: Any, default: Mapping[str, Any]) -> dict[str, Any]:
        """``value`` over ``default``, key by key and level by level; unknown keys reported.

        A key given as null keeps the default unless null has a meaning there (``NULLABLE``).
        """
        merged = dict(default)
        if value is None:
            return merged
        if not isinstance(value, Mapping):
            self.add(key, "must be an object (YAML mapping); see Pulumi.example.yaml")
            return merged
        for name in value:
            if f"{key}.{name}" in REMOVED_KEYS:
                self.add(f"{key}.{name}", REMOVED_KEYS[f"{key}.{name}"])
            elif name not in default:
                self.add(f"{key}.{name}", did_you_mean(str(name), list(default)))
        for name, given in value.items():
            if name not in default:
                continue
            path = f"{key}.{name}"
            if isinstance(default[name], Mapping):
                merged[name] = self.merge(path, given, default[name])
            elif given is not None or path in NULLABLE:
                merged[name] = given
        return merged

    def section(self, raw: Mapping[str, Any], key: str) -> dict[str, Any]:
        return self.merge(key, raw.get(key), DEFAULTS[key])

    def integer(self, key: str, value: Any, *, low: int, high: int, fix: str) -> int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(str(value).strip())
            except ValueError:
                self.add(key, f"{value!r} is not a whole number; {fix}")
                return low
        if not low <= value <= high:
            self.add(key, f"{value} is outside {low}..{high}; {fix}")
        return int(value)

    def number(self, key: str, value: Any, *, fix: str) -> float:
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            self.add(key, f"{value!r} is not a number; {fix}")
            return 0.0
        if not math.isfinite(number):
            self.add(key, f"{value!r} is not a finite number; {fix}")
            return 0.0
        return number

    def boolean(self, key: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        self.add(key, f"{value!r} is not true or false")
        return False


def on_demand_hourly(shape: InstanceShape, instance_types: tuple[str, ...]) -> float:
    """The most one instance of the fleet bills per hour on-demand (its dearest type)."""
    return fleet_on_demand_usd_per_hour(instance_types, shape.vcpus, shape.memory_gib)


def instance_shape(instance_type: str) -> InstanceShape | None:
    """vCPUs and memory of a type AWS makes in the table (:func:`contract.instances.shape`),
    or None."""
    known = _shape(instance_type)
    return None if known is None else InstanceShape(vcpus=known[0], memory_gib=known[1])


def parse_config(raw: Mapping[str, Any], *, stack: str) -> StackConfig:
    """Parse raw ``spotcube:`` values (key without namespace) or raise :class:`ConfigError`."""
    c = _Collector()
    known = set(DEFAULTS) | {"owner"}
    for key in sorted(set(raw) - known):
        c.add(key, did_you_mean(key, known))

    owner = raw.get("owner")
    if not owner:
        c.add(
            "owner",
            "missing; set it with `pulumi config set spotcube:owner <your-name>` "
            "(lowercase letters, digits, '-')",
        )
        owner = "missing"
    elif not isinstance(owner, str) or not _OWNER.match(owner):
        c.add(
            "owner",
            f"{owner!r} is not DNS-safe: use 1-20 lowercase letters, digits or '-', starting "
            "and ending with a letter or digit (it becomes part of bucket names)",
        )
    if not re.match(r"^[a-z0-9][a-z0-9-]{0,19}$", stack):
        c.add(
            "owner",
            f"stack name {stack!r} becomes part of bucket names: use 1-20 lowercase letters, "
            "digits or '-' (`pulumi stack init <name>`)",
        )

    region = str(raw.get("region") or DEFAULTS["region"]).strip()
    regions = known_regions()
    if region not in regions:
        close = difflib.get_close_matches(region, sorted(regions), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        c.add(
            "region",
            f"{region!r} is not an AWS region of the {PARTITION} partition; {hint}use one "
            "such as us-east-1 (`aws ec2 describe-regions` lists yours)",
        )

    ami = str(raw.get("ami") or DEFAULTS["ami"])
    if ami != "latest" and not _AMI.match(ami):
        c.add("ami", f"{ami!r} is neither 'latest' nor an AMI id like ami-0123456789abcdef0")

    variant = str(raw.get("variant") or DEFAULT_VARIANT)
    if not VARIANT_NAME.fullmatch(variant):
        c.add(
            "variant",
            f"{variant!r} is not a variant name: lower-case letters, digits and '-', at most "
            "40, as the `name:` of the file given to `spotcube bake --image-config`",
        )
    elif variant != DEFAULT_VARIANT and ami != "latest":
        c.warn(
            "variant",
            f"{variant!r} is used only with `spotcube:ami: latest`; the stack runs {ami} "
            "whatever variant it was baked as",
        )

    fleet = _parse_fleet(c, c.section(raw, "fleet"))
    budget = _parse_budget(c, c.section(raw, "budget"), fleet)
    data = _parse_data(c, c.section(raw, "data"))
    queue_raw = c.section(raw, "queue")
    queue = QueueConfig(
        max_receive_count=c.integer(
            "queue.maxReceiveCount",
            queue_raw["maxReceiveCount"],
            low=1,
            high=1000,
            fix="use how many failed receives send a job to the dead-letter queue (e.g. 5)",
        ),
        visibility_timeout_seconds=c.integer(
            "queue.visibilityTimeoutSeconds",
            queue_raw["visibilityTimeoutSeconds"],
            low=60,
            high=43200,
            fix="use 60..43200 seconds (workers extend it while they work)",
        ),
    )
    guards = _parse_guards(c, c.section(raw, "guards"), fleet)
    if c.problems:
        raise ConfigError(c.problems)
    return StackConfig(
        owner=str(owner),
        stack=stack,
        region=region,
        budget=budget,
        fleet=fleet,
        data=data,
        queue=queue,
        ami=ami,
        guards=guards,
        warnings=tuple(c.warnings),
        variant=variant,
    )


def _parse_guards(c: _Collector, g: dict[str, Any], fleet: FleetConfig) -> GuardsConfig:
    fleet_vcpus = fleet.max_size * fleet.shape.vcpus
    if g["accountVcpus"] is None:
        # Honest days run above maxSize x vCPUs: capacity rebalancing launches up to 10 %
        # over the maximum before the old instances end (held by the lifecycle hook), and a
        # bake adds its build instance. The alarm also wants VCPU_ALARM_MINUTES of excess,
        # longer than a spot instance's 2-minute notice, so an interrupted instance and its
        # replacement overlapping for a moment do not page.
        honest = most_instances(fleet.max_size) * fleet.shape.vcpus + BAKE_VCPUS
        return GuardsConfig(account_vcpus=honest)
    account_vcpus = c.integer(
        "guards.accountVcpus",
        g["accountVcpus"],
        low=max(fleet_vcpus, 1),
        high=100_000,
        fix=f"give the vCPUs every stack of the account may run together, at least this "
        f"fleet's {fleet_vcpus} (fleet.maxSize x vCPUs per instance)",
    )
    return GuardsConfig(account_vcpus=account_vcpus)


def _parse_fleet(c: _Collector, f: dict[str, Any]) -> FleetConfig:
    types_raw = f["instanceTypes"]
    if isinstance(types_raw, str):
        types_raw = [t.strip() for t in types_raw.split(",") if t.strip()]
    types = tuple(str(t) for t in types_raw) if isinstance(types_raw, list) else ()
    shapes: dict[str, InstanceShape] = {}
    for t in types:
        shape = instance_shape(t)
        if shape is None:
            c.add(
                "fleet.instanceTypes",
                f"{t!r} has no known shape: use x86_64 types from families "
                f"{', '.join(sorted(FAMILY_GIB_PER_VCPU))} with sizes "
                f"{', '.join(SIZE_VCPUS)} (AWS makes no "
                + "; ".join(f"{f}.{'/'.join(sorted(s))}" for f, s in SIZES_NOT_MADE.items())
                + ")",
            )
        else:
            shapes[t] = shape
    if len(set(types)) < MIN_INSTANCE_TYPES:
        c.add(
            "fleet.instanceTypes",
            f"{len(set(types))} distinct type(s) given; list at least {MIN_INSTANCE_TYPES} of "
            "one shape so spot capacity comes from several pools",
        )
    distinct = sorted({(s.vcpus, s.memory_gib) for s in shapes.values()})
    if len(distinct) > 1:
        described = ", ".join(
            f"{t} ({s.vcpus} vCPU/{s.memory_gib:g} GiB)" for t, s in shapes.items()
        )
        c.add(
            "fleet.instanceTypes",
            f"types of different shapes: {described}; use one vCPU count and memory size",
        )
    shape = next(iter(shapes.values()), InstanceShape(0, 0))

    max_size = c.integer(
        "fleet.maxSize",
        f["maxSize"],
        low=1,
        high=MAX_FLEET_SIZE,
        fix=f"use 1..{MAX_FLEET_SIZE} instances (raise the limit in infra/config.py on purpose)",
    )
    on_demand_base = c.integer(
        "fleet.onDemandBase",
        f["onDemandBase"],
        low=0,
        high=MAX_FLEET_SIZE,
        fix="use 0 (all spot) or a small number of on-demand instances",
    )
    if on_demand_base > max_size:
        c.add("fleet.onDemandBase", f"{on_demand_base} exceeds fleet.maxSize {max_size}")
    on_demand = on_demand_hourly(shape, types) if shape.vcpus else 0.0
    if on_demand_base > WARN_ON_DEMAND_BASE:
        c.warn(
            "fleet.onDemandBase",
            f"{on_demand_base} on-demand instances run whenever the fleet is up, about "
            f"${on_demand_base * on_demand:,.0f}/h; on-demand is meant as a small base",
        )
    max_spot_price: float | None = None
    if f["maxSpotPrice"] is not None:
        max_spot_price = c.number(
            "fleet.maxSpotPrice", f["maxSpotPrice"], fix="give USD per instance-hour or omit"
        )
        if max_spot_price <= 0:
            c.add("fleet.maxSpotPrice", "must be positive USD per hour, or omitted for none")
        elif on_demand and max_spot_price > on_demand:
            c.warn(
                "fleet.maxSpotPrice",
                f"${max_spot_price:g}/h is above the on-demand price of these types (about "
                f"${on_demand:.2f}/h): it caps nothing, spot never bills more; omit it",
            )
        elif on_demand and max_spot_price < WARN_SPOT_CAP_SHARE * on_demand:
            c.warn(
                "fleet.maxSpotPrice",
                f"${max_spot_price:g}/h is under {WARN_SPOT_CAP_SHARE:.0%} of the on-demand "
                f"price (about ${on_demand:.2f}/h): the fleet will rarely get capacity",
            )
    return FleetConfig(
        instance_types=types,
        shape=shape,
        max_size=max_size,
        on_demand_base=on_demand_base,
        max_spot_price=max_spot_price,
        checkpoint_grace_seconds=c.integer(
            "fleet.checkpointGraceSeconds",
            f["checkpointGraceSeconds"],
            low=30,
            high=7200,
            fix="use 30..7200 seconds for workers to checkpoint before termination",
        ),
        root_volume_gib=c.integer(
            "fleet.rootVolumeGib",
            f["rootVolumeGib"],
            low=8,
            high=2000,
            fix="use 8..2000 GiB",
        ),
        capacity_rebalance=c.boolean("fleet.capacityRebalance", f["capacityRebalance"]),
        **_parse_checkpointing(c, f),
    )


# The hazard a stack may state: above 90 %/h instances live minutes, and no plan helps.
MAX_INTERRUPTION_PERCENT_PER_HOUR = 90.0


def _parse_checkpointing(c: _Collector, f: dict[str, Any]) -> dict[str, Any]:
    """The fleet's interruption rate and the checkpoint interval its workers are given."""
    percent = c.number(
        "fleet.interruptionPercentPerHour",
        f["interruptionPercentPerHour"],
        fix="give the spot interruption probability per hour in percent, e.g. 9 (the "
        "published m5.4xlarge figure) or what `spotcube report` estimated from a run",
    )
    if not 0 <= percent <= MAX_INTERRUPTION_PERCENT_PER_HOUR:
        c.add(
            "fleet.interruptionPercentPerHour",
            f"{percent:g} is outside 0..{MAX_INTERRUPTION_PERCENT_PER_HOUR:g} percent per hour; "
            "give the fleet's measured or published rate, e.g. 9",
        )
        percent = PUBLISHED_PERCENT_PER_HOUR
    given = f["checkpointIntervalSeconds"]
    if given is None:
        interval = stack_interval_seconds(percent)
    else:
        interval = c.integer(
            "fleet.checkpointIntervalSeconds",
            given,
            low=MIN_INTERVAL_SECONDS,
            high=MAX_INTERVAL_SECONDS,
            fix=f"use {MIN_INTERVAL_SECONDS}..{MAX_INTERVAL_SECONDS} seconds, or omit it for "
            "the Young/Daly interval of fleet.interruptionPercentPerHour",
        )
    return {"interruption_percent_per_hour": percent, "checkpoint_interval_seconds": interval}


def _parse_budget(c: _Collector, b: dict[str, Any], fleet: FleetConfig) -> BudgetConfig:
    monthly: float = 0.0
    if b["monthlyUsd"] is None:
        c.add(
            "budget.monthlyUsd",
            "missing; set a monthly cap in USD, e.g. `pulumi config set --path "
            "spotcube:budget.monthlyUsd 200`",
        )
    else:
        monthly = c.number("budget.monthlyUsd", b["monthlyUsd"], fix="give USD, e.g. 200")
        if not 0 < monthly <= MAX_BUDGET_USD:
            c.add(
                "budget.monthlyUsd",
                f"{monthly:g} is not a positive amount up to {MAX_BUDGET_USD}; "
                "give the monthly cap in USD",
            )
        elif monthly > WARN_BUDGET_USD:
            c.warn(
                "budget.monthlyUsd",
                f"${monthly:,.0f} a month: the brake fires only at 100% of it; check the "
                "number of digits",
            )
    emails_raw = b["emails"]
    if isinstance(emails_raw, str):
        emails_raw = [e.strip() for e in emails_raw.split(",") if e.strip()]
    emails_list = [str(e) for e in emails_raw] if isinstance(emails_raw, list) else []
    emails = tuple(dict.fromkeys(emails_list))  # a repeated address is one subscriber
    if not emails:
        c.add("budget.emails", "give at least one address to receive budget alerts")
    if len(emails) > MAX_BUDGET_EMAILS:
        c.add(
            "budget.emails",
            f"{len(emails)} addresses; AWS Budgets accepts at most {MAX_BUDGET_EMAILS} per "
            "notification: list a mailing list instead of each person",
        )
    for email in emails:
        if not _EMAIL.match(email):
            c.add("budget.emails", f"{email!r} is not an email address like name@example.org")
    on_demand = on_demand_hourly(fleet.shape, fleet.instance_types) if fleet.shape.vcpus else 0.0
    spot = spot_bound_usd(on_demand, fleet.max_spot_price)
    overshoot = max_overshoot_usd(
        max_size=fleet.max_size,
        on_demand_usd=on_demand,
        spot_bound_usd=spot,
        on_demand_base=fleet.on_demand_base,
        checkpoint_grace_seconds=fleet.checkpoint_grace_seconds,
    )
    if monthly > 0 and overshoot > BRAKE_MARGIN * monthly:
        c.add(
            "budget.monthlyUsd",
            f"${monthly:,.2f} is too small for this fleet: {fleet.max_size} instances can spend "
            f"${overshoot:,.2f} while the brake stops them, over {BRAKE_MARGIN:.0%} of the "
            f"budget; give at least ${overshoot / BRAKE_MARGIN:,.0f} or a smaller "
            "fleet.maxSize / fleet.maxSpotPrice",
        )
    return BudgetConfig(
        monthly_usd=monthly,
        emails=emails,
        brake_threshold_usd=brake_threshold_usd(monthly),
        on_demand_usd=on_demand,
        spot_bound_usd=spot,
        brake_overshoot_usd=overshoot,
    )


def _intent(c: _Collector, key: str, value: dict[str, Any], prefix: str) -> LifecycleIntent | None:
    transitions: list[Transition] = []
    given = value["transitions"]
    if given is not None and not isinstance(given, list):
        c.add(f"{key}.transitions", "must be a list of {days, storageClass}")
        given = []
    for i, t in enumerate(given or []):
        where = f"{key}.transitions[{i}]"
        if not isinstance(t, Mapping):
            c.add(where, "must be an object with days and storageClass")
            continue
        for name in t:
            if name not in TRANSITION_KEYS:
                c.add(f"{where}.{name}", did_you_mean(str(name), TRANSITION_KEYS))
        missing = [k for k in TRANSITION_KEYS if t.get(k) is None]
        if missing:
            c.add(where, f"missing {' and '.join(missing)}; give days and storageClass")
            continue
        days = c.integer(f"{where}.days", t["days"], low=0, high=36500, fix="give days")
        transitions.append(Transition(days=days, storage_class=str(t["storageClass"])))
    expire = value["expireDays"]
    expire_days = (
        None
        if expire is None
        else c.integer(f"{key}.expireDays", expire, low=1, high=36500, fix="give days or null")
    )
    min_bytes = c.integer(
        f"{key}.minTransitionBytes",
        value["minTransitionBytes"],
        low=0,
        high=5 * 1024**4,
        fix="give bytes",
    )
    return LifecycleIntent(
        prefix=prefix,
        transitions=tuple(transitions),
        expire_days=expire_days,
        min_transition_bytes=min_bytes,
    )


def _plan(c: _Collector, key: str, intent: LifecycleIntent | None, rule: str) -> LifecyclePlan:
    if intent is None:
        return LifecyclePlan(rules=())
    try:
        return plan(intent, rule_prefix=rule)
    except LifecycleError as exc:
        for problem in exc.problems:
            c.add(key, f"retention would cost early-deletion or small-object fees: {problem}")
        return LifecyclePlan(rules=())


def _check_raw_reads(c: _Collector, intent: LifecycleIntent) -> None:
    """Workers read raw data on every run: archived objects cannot be read at all, and
    IA-like classes bill each read. (`spotcube submit` stores inputs by content, so it never
    overwrites one: no early deletion from there.)"""
    for t in intent.transitions:
        if t.storage_class not in INSTANT_READ_CLASSES:
            c.add(
                "data.raw",
                f"{t.storage_class} objects cannot be read without a restore, and workers read "
                "raw data on every run; archive only products (data.products), or use "
                "INTELLIGENT_TIERING for raw data",
            )
        elif t.storage_class in RETRIEVAL_USD_PER_GB:
            c.warn(
                "data.raw",
                f"{t.storage_class} bills ${RETRIEVAL_USD_PER_GB[t.storage_class]}/GB each time "
                "a worker reads raw data; STANDARD or INTELLIGENT_TIERING costs nothing per read",
            )


def _parse_data(c: _Collector, d: dict[str, Any]) -> DataConfig:
    raw_bucket = d["rawBucket"]
    if raw_bucket is not None and (
        not isinstance(raw_bucket, str) or not _BUCKET.match(raw_bucket)
    ):
        c.add("data.rawBucket", f"{raw_bucket!r} is not an S3 bucket name; omit it to create one")
    elif raw_bucket is not None and _IP_ADDRESS.match(raw_bucket):
        # S3 User Guide, "General purpose bucket naming rules": "Bucket names must not be
        # formatted as an IP address (for example, 192.168.5.4)".
        c.add(
            "data.rawBucket",
            f"{raw_bucket!r} is formatted as an IP address, which S3 bucket names may not be; "
            "give the archive bucket's real name",
        )
    raw_prefix_raw = d["rawPrefix"]
    if raw_prefix_raw is not None and not isinstance(raw_prefix_raw, str):
        c.add(
            "data.rawPrefix",
            f'{raw_prefix_raw!r} is not one prefix: give a string such as "phase1/" '
            "(one prefix per stack)",
        )
        raw_prefix_raw = ""
    raw_prefix = raw_prefix_raw or ""
    if raw_prefix.startswith("/"):
        c.add("data.rawPrefix", "must not start with '/' (S3 keys have no leading slash)")
    products_intent = _intent(c, "data.products", d["products"], RUNS)
    products = _plan(c, "data.products", products_intent, "products")
    raw_intent = _intent(c, "data.raw", d["raw"], "")
    if raw_bucket is not None and raw_intent is not None and raw_intent.transitions:
        c.add("data.raw", "an existing raw bucket is read-only to the stack: omit data.raw")
    elif raw_intent is not None:
        _check_raw_reads(c, raw_intent)
    raw = _plan(c, "data.raw", raw_intent, "raw")
    expire = d["checkpointExpireDays"]
    checkpoint_days = (
        None
        if expire is None
        else c.integer(
            "data.checkpointExpireDays", expire, low=1, high=36500, fix="give days or null"
        )
    )
    if checkpoint_days is not None and products_intent is not None:
        # Checkpoints sit under runs/ like products: they must be deleted while still in
        # Standard, or the products' archive rule would move them first and the expiry would
        # delete them from an archive class early.
        for t in products_intent.transitions:
            if MIN_STORAGE_DAYS.get(t.storage_class, 0) > 0 and checkpoint_days > t.days:
                c.add(
                    "data.checkpointExpireDays",
                    f"{checkpoint_days} days is after products move to {t.storage_class} at "
                    f"day {t.days}: checkpoints would be deleted from {t.storage_class} early; "
                    f"use {t.days} or less",
                )
                break
    return DataConfig(
        raw_bucket=raw_bucket,
        raw_prefix=raw_prefix,
        products=products,
        raw=raw,
        checkpoint_expire_days=checkpoint_days,
    )
