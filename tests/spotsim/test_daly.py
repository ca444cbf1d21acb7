"""spotcube's policy: the Young/Daly interval is where a simulated sweep finds the optimum."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infra.checkpointing import stack_interval_seconds
from spotcube.planning import PlanInputs
from spotcube.prices import quote
from spotcube.spotsim import Hazard, RunModel, hazard_from_percent, simulate, young_daly_interval


def test_young_daly_formula() -> None:
    # small C: Young's sqrt(2 C M)
    assert young_daly_interval(0.01, 1e-4) == pytest.approx(math.sqrt(2 * 1e-4 * 100), rel=0.01)
    # Daly's expansion, worked by hand for M = 2 h, C = 0.1 h
    x = 0.1 / 4
    expected = math.sqrt(0.4) * (1 + math.sqrt(x) / 3 + x / 9) - 0.1
    assert young_daly_interval(0.5, 0.1) == pytest.approx(expected)
    assert young_daly_interval(0.5, 5.0) == pytest.approx(2.0)  # C >= 2M: checkpoint every M
    assert math.isinf(young_daly_interval(0.0, 0.1))
    with pytest.raises(ValueError, match="non-negative"):
        young_daly_interval(-1.0, 0.1)


def test_sweep_finds_the_young_daly_optimum() -> None:
    hazard, cost = 0.5, 2 / 60  # an instance lives 2 h on average; a checkpoint takes 2 min
    best = young_daly_interval(hazard, cost)
    base = RunModel(
        jobs=100,
        runtime=10.0,
        hazard=Hazard.constant(hazard),
        spot_price=1.0,
        on_demand_price=2.0,
        overhead=0.0,
        checkpoint_cost=cost,
        policy="auto",
        delay=0.0,
    )
    factors = np.array([0.25, 0.5, 0.7, 1.0, 1.4, 2.0, 4.0])
    hours = []
    for factor in factors:
        model = RunModel(**{**base.__dict__, "interval": best * factor})
        hours.append(simulate(model, 150, seed=9).instance_hours.mean())
    hours_arr = np.array(hours)
    assert 0.5 <= factors[int(hours_arr.argmin())] <= 2.0
    assert hours_arr[3] <= hours_arr.min() * 1.01
    # the curve is clearly worse a factor of four either side
    assert hours_arr[0] > hours_arr[3] * 1.03
    assert hours_arr[-1] > hours_arr[3] * 1.03


def test_spotcube_policy_beats_manual_resubmission_at_the_bad_month_rate() -> None:
    inputs = PlanInputs(
        jobs=100,
        runtime=633 / 60,
        hazard=Hazard.constant(hazard_from_percent(9.0)),
        prices=quote("m5.4xlarge"),
    )
    # the work plane's checkpoint interval: what a default stack deploys at this rate
    assert inputs.interval == pytest.approx(stack_interval_seconds(9.0) / 3600)
    manual = simulate(inputs.manual(), 500, seed=1)
    ours = simulate(inputs.spotcube(), 500, seed=1)
    on_demand = simulate(inputs.on_demand(), 1)
    assert ours.cost.mean() < manual.cost.mean()
    assert np.quantile(ours.turnaround, 0.9) < 1.2 * on_demand.turnaround[0]
    assert np.quantile(manual.turnaround, 0.1) > 3 * on_demand.turnaround[0]
    assert ours.cost.mean() < 0.65 * on_demand.cost[0]
