"""The checkpoint interval a stack deploys: the one the spot hazard calls for.

Young/Daly's interval minimises one job's expected wall time, but a run ends with its slowest
job, and the work a termination loses grows with the interval. Near its optimum the expected
overhead (checkpoint writing + rework) is flat, so the rule here takes the shortest interval
whose expected overhead is at most ``OVERHEAD_ALLOWANCE`` (5 %) above the optimum's: in
Young's first-order model ``C/τ + λτ/2`` that is ``τ* (k - sqrt(k² - 1))``, 0.73 of Daly's τ*,
which cuts the work lost per termination by a quarter. On the seed workload (100 x 633 min at
9 %/h on m5.4xlarge) Daly's τ* models at 1.103x the uninterrupted turnaround and 1.026x its
cost; this rule (633 s) at 1.092x and 1.027x (tests/spotsim/test_stack_interval.py).

One rule, used by the stack (``spotcube:fleet.checkpointIntervalSeconds`` defaults to it for
``fleet.interruptionPercentPerHour``) and by ``spotcube plan`` (which recommends it and models
the work plane with it), so the plan and the fleet cannot disagree. It lives here, under the
operator CLI, because infra imports nothing from ``spotcube``; pure math, no Pulumi, no boto3.

Why a stack setting rather than a worker that adapts from the interruptions it sees: one
instance sees a termination every ~10 h at the published rate, so its own estimate of the
hazard would rest on zero or one event for most of a job; the stack's rate is a fleet-wide
figure the operator can measure (``spotcube report`` estimates it from a run) and deploy.
"""

from __future__ import annotations

import math

# The MWA group's m5.4xlarge spot experience: six rerun rounds of 100 x 633 min match about
# 9 %/h (spotcube/spotsim.py's docstring; tests/spotsim/test_published.py repeats the match).
PUBLISHED_PERCENT_PER_HOUR = 9.0
# Wall time to make one checkpoint durable (the manifest commit after its chunks), as
# `spotcube plan --checkpoint-cost` assumes by default.
CHECKPOINT_COST_SECONDS = 10.0
# What a stack may deploy. Below a minute the manifest commits would dominate a chunk's work;
# above six hours a job of the published length would checkpoint at most once or twice.
MIN_INTERVAL_SECONDS = 60
# Expected overhead accepted above Young/Daly's minimum, for a shorter tail (module docstring).
OVERHEAD_ALLOWANCE = 1.05
TAIL_SHORTENING = OVERHEAD_ALLOWANCE - math.sqrt(OVERHEAD_ALLOWANCE**2 - 1)
MAX_INTERVAL_SECONDS = 6 * 3600


def hazard_from_percent(percent_per_hour: float) -> float:
    """Constant hazard (per hour) equivalent to a probability ``percent_per_hour`` % per hour."""
    if not 0.0 <= percent_per_hour < 100.0:
        raise ValueError(
            f"an hourly termination probability of {percent_per_hour}% is not in [0, 100)"
        )
    return -math.log1p(-percent_per_hour / 100.0)


def young_daly_interval(hazard_per_hour: float, checkpoint_cost: float) -> float:
    """Checkpoint interval (hours of progress) that minimises expected wall time.

    Daly's higher-order refinement of Young's ``sqrt(2 C M)``, with ``M = 1/λ`` the mean time
    between terminations and ``C`` the cost of one checkpoint (J. T. Daly, "A higher order
    estimate of the optimum checkpoint interval for restart dumps", FGCS 22, 2006).

    Returns ``inf`` when there are no terminations, and ``M`` when ``C >= 2 M``.
    """
    if hazard_per_hour < 0 or checkpoint_cost < 0:
        raise ValueError("hazard and checkpoint cost must be non-negative")
    if hazard_per_hour == 0:
        return math.inf
    mtbf = 1.0 / hazard_per_hour
    if checkpoint_cost >= 2 * mtbf:
        return mtbf
    x = checkpoint_cost / (2 * mtbf)
    return math.sqrt(2 * checkpoint_cost * mtbf) * (1 + math.sqrt(x) / 3 + x / 9) - checkpoint_cost


def recommended_interval(hazard_per_hour: float, checkpoint_cost: float) -> float:
    """Hours of progress between checkpoints that a run should use (module docstring).

    Young/Daly's interval shortened by ``TAIL_SHORTENING``; ``inf`` without terminations.
    """
    return young_daly_interval(hazard_per_hour, checkpoint_cost) * TAIL_SHORTENING


def stack_interval_seconds(
    percent_per_hour: float, checkpoint_cost_seconds: float = CHECKPOINT_COST_SECONDS
) -> int:
    """Whole seconds between checkpoints a stack deploys for a fleet interrupted at this rate.

    :func:`recommended_interval`, kept within what a worker can usefully do
    (``MIN_INTERVAL_SECONDS`` .. ``MAX_INTERVAL_SECONDS``).
    """
    hours = recommended_interval(
        hazard_from_percent(percent_per_hour), checkpoint_cost_seconds / 3600
    )
    seconds = hours * 3600 if math.isfinite(hours) else MAX_INTERVAL_SECONDS
    return int(min(max(round(seconds), MIN_INTERVAL_SECONDS), MAX_INTERVAL_SECONDS))
