"""The vectorised simulator and the plain Python loop implement the same model."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from spotcube.spotsim import Hazard, RunModel, hazard_from_percent, simulate, simulate_loop

BASE = RunModel(
    jobs=30,
    runtime=8.0,
    hazard=Hazard.constant(hazard_from_percent(5.0)),
    spot_price=0.432,
    on_demand_price=0.768,
    overhead=2 / 60,
)

CASES = {
    "manual-uncapped": replace(BASE, policy="manual").with_checkpoints(2),
    "auto-capped-fallback": replace(
        BASE,
        policy="auto",
        fleet_cap=10,
        interval=1.0,
        checkpoint_cost=0.05,
        hazard=Hazard.constant(hazard_from_percent(8.0)),
        fallback_after=2,
    ),
    "manual-capped-piecewise": replace(
        BASE,
        policy="manual",
        fleet_cap=7,
        lag=2.0,
        hazard=Hazard(rates=(0.02, 0.2), starts=(0.0, 5.0)),
    ),
    "auto-uncapped-piecewise": replace(
        BASE,
        policy="auto",
        delay=0.05,
        interval=5 / 60,
        checkpoint_cost=10 / 3600,
        hazard=Hazard(rates=(0.3, 0.05, 0.15), starts=(0.0, 2.0, 6.0)),
    ),
}
FIELDS = ("cost", "turnaround", "attempts", "terminations", "rerun_rounds", "lost_hours")


@pytest.mark.parametrize("name", list(CASES))
def test_vectorised_and_loop_agree_statistically(name: str) -> None:
    model = CASES[name]
    fast = simulate(model, 2000, seed=1)
    slow = simulate_loop(model, 400, seed=2)
    for field in FIELDS:
        a = np.asarray(getattr(fast, field), dtype=float)
        b = np.asarray(getattr(slow, field), dtype=float)
        se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        # Welch z within 4.5 standard errors (or equal when both are constant)
        assert abs(a.mean() - b.mean()) <= 4.5 * se + 1e-9, (field, a.mean(), b.mean(), se)


def test_loop_and_vectorised_agree_exactly_without_randomness() -> None:
    model = replace(BASE, hazard=Hazard.constant(0.0), fleet_cap=4, policy="auto")
    fast, slow = simulate(model, 2), simulate_loop(model, 2)
    for field in FIELDS:
        np.testing.assert_allclose(getattr(fast, field), getattr(slow, field))
