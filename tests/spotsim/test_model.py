"""The simulator's mechanics: hazards, checkpoints, fleet cap, policies, accounting."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotcube.spotsim import (
    Hazard,
    RunModel,
    hazard_from_percent,
    percent_from_hazard,
    simulate,
)


def model(**changes: object) -> RunModel:
    base = RunModel(
        jobs=20,
        runtime=10.0,
        hazard=Hazard.constant(0.0),
        spot_price=0.4,
        on_demand_price=0.8,
        overhead=0.1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_percent_and_hazard_are_inverse() -> None:
    assert hazard_from_percent(15.0) == pytest.approx(-math.log(0.85))
    assert percent_from_hazard(hazard_from_percent(9.0)) == pytest.approx(9.0)
    with pytest.raises(ValueError, match="100"):
        hazard_from_percent(100.0)


def test_piecewise_cumulative_hazard_inverts() -> None:
    hazard = Hazard(rates=(0.1, 0.0, 0.5), starts=(0.0, 2.0, 5.0))
    t = np.array([0.0, 1.0, 2.0, 4.9, 5.0, 7.5, 100.0])
    cum = hazard.cumulative(t)
    np.testing.assert_allclose(cum, [0, 0.1, 0.2, 0.2, 0.2, 1.45, 47.7])
    # inside the zero-rate piece the inverse jumps to where the hazard starts growing again
    np.testing.assert_allclose(hazard.inverse_cumulative(cum[[0, 1, 5, 6]]), t[[0, 1, 5, 6]])
    assert hazard.inverse_cumulative(np.array([0.2]))[0] == pytest.approx(5.0)
    assert np.isinf(
        Hazard(rates=(0.3, 0.0), starts=(0.0, 1.0)).inverse_cumulative(np.array([1.0]))[0]
    )


@pytest.mark.parametrize(
    ("rates", "starts", "message"),
    [
        ((0.1,), (1.0,), "start at 0"),
        ((0.1, 0.2), (0.0,), "one start"),
        ((-1.0,), (0.0,), "non-neg"),
    ],
    ids=["late-start", "mismatch", "negative"],
)
def test_bad_hazards_are_refused(
    rates: tuple[float, ...], starts: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Hazard(rates=rates, starts=starts)


def test_bad_model_names_the_field() -> None:
    with pytest.raises(ValueError, match="fleet_cap"):
        model(fleet_cap=0)


def test_no_hazard_with_fleet_cap_is_exact() -> None:
    stats = simulate(model(fleet_cap=6), 3)
    waves = math.ceil(20 / 6)
    np.testing.assert_allclose(stats.turnaround, waves * 10.1)
    np.testing.assert_allclose(stats.cost, 20 * 10.1 * 0.4)
    assert (stats.attempts == 20).all()
    assert (stats.rerun_rounds == 0).all()


def test_zero_hazard_before_a_breakpoint_protects_short_jobs() -> None:
    hazard = Hazard(rates=(0.0, 0.5), starts=(0.0, 12.0))
    stats = simulate(model(hazard=hazard), 50, seed=1)
    assert (stats.terminations == 0).all()
    # jobs of a second wave start after 12 h and meet the high hazard
    assert simulate(model(hazard=hazard, fleet_cap=10), 50, seed=1).terminations.sum() > 0


def test_hopeless_runs_stop_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="checkpoints closer than 10 h"):
        simulate(model(hazard=Hazard.constant(5.0), jobs=2), 2, seed=1)


def test_termination_probability_across_a_breakpoint() -> None:
    hazard = Hazard(rates=(0.05, 0.3), starts=(0.0, 4.0))
    m = model(hazard=hazard, overhead=0.0, jobs=100)
    runs = 200
    stats = simulate(m, runs, seed=2)
    expected = 1 - math.exp(-(0.05 * 4 + 0.3 * 6))
    fraction = stats.jobs_terminated.sum() / (runs * 100)
    assert abs(fraction - expected) < 4.5 * math.sqrt(expected * (1 - expected) / (runs * 100))


def test_checkpoint_geometry() -> None:
    m = model(interval=3.0, checkpoint_cost=0.5)
    assert m.segments == 4  # 3 + 3 + 3 + 1
    np.testing.assert_allclose(
        m.remaining_wall(np.array([0, 1, 3])), [0.1 + 10 + 1.5, 0.1 + 7 + 1, 0.1 + 1]
    )
    np.testing.assert_array_equal(
        m.segments_reached(np.array([-1.0, 3.4, 3.5, 10.4])), [0, 0, 1, 2]
    )
    assert model().with_checkpoints(2).segments == 3
    assert model().with_checkpoints(0).segments == 1


@settings(max_examples=25, deadline=None)
@given(
    percent=st.floats(0.0, 30.0),
    checkpoints=st.integers(0, 5),
    cost=st.floats(0.0, 0.2),
    cap=st.integers(1, 20),
    policy=st.sampled_from(["manual", "auto"]),
    fallback=st.one_of(st.none(), st.integers(0, 3)),
)
def test_accounting_invariants(
    percent: float, checkpoints: int, cost: float, cap: int, policy: str, fallback: int | None
) -> None:
    m = replace(
        model(
            hazard=Hazard.constant(hazard_from_percent(percent)),
            checkpoint_cost=cost,
            fleet_cap=cap,
            policy=policy,
            fallback_after=fallback,
        ).with_checkpoints(checkpoints)
    )
    stats = simulate(m, 20, seed=0)
    # useful time is the same in every run: the work plus one cost per inner checkpoint
    useful = m.jobs * (m.runtime + cost * (m.segments - 1))
    np.testing.assert_allclose(stats.instance_hours - stats.lost_hours, useful, rtol=1e-9)
    assert (stats.attempts == m.jobs + stats.terminations).all()
    assert (stats.jobs_terminated <= np.minimum(stats.terminations, m.jobs)).all()
    spot_hours = stats.instance_hours - stats.on_demand_hours
    np.testing.assert_allclose(stats.cost, spot_hours * 0.4 + stats.on_demand_hours * 0.8)
    assert (stats.turnaround >= m.runtime).all()
    if fallback is not None:
        assert (stats.terminations <= fallback * m.jobs).all()
    if policy == "manual":
        assert (stats.turnaround >= stats.rerun_rounds * m.lag).all()


def test_on_demand_fallback_after_one_termination() -> None:
    m = model(hazard=Hazard.constant(0.5), fallback_after=1, jobs=50)
    stats = simulate(m, 100, seed=3)
    assert (stats.terminations == stats.jobs_terminated).all()
    assert (stats.rerun_rounds <= 1).all()
    assert (stats.on_demand_hours > 0).all()


def test_manual_rounds_wait_for_the_last_job_and_the_lag() -> None:
    # a hazard so high that every first attempt dies within the overhead, then none at all
    hazard = Hazard(rates=(1e6, 0.0), starts=(0.0, 0.05))
    stats = simulate(model(hazard=hazard, lag=4.0, jobs=5), 10, seed=4)
    assert (stats.rerun_rounds == 1).all()
    # terminated within 0.05 h, resubmitted 4 h later, then 10.1 h of work
    assert (stats.turnaround > 4.0 + 10.1).all()
    assert (stats.turnaround < 4.05 + 10.1 + 1e-9).all()
    auto = simulate(model(hazard=hazard, policy="auto", delay=0.05, jobs=5), 10, seed=4)
    assert (auto.turnaround < 0.1 + 10.1 + 1e-9).all()


@settings(max_examples=200, deadline=None)
@given(
    # zero or physical rates; an Exp(1) draw of exactly 0 has probability 0
    rates=st.lists(st.one_of(st.just(0.0), st.floats(1e-4, 3.0)), min_size=1, max_size=4),
    gaps=st.lists(st.floats(0.1, 5.0), min_size=3, max_size=3),
    start=st.floats(0.0, 20.0),
    draw=st.floats(1e-6, 10.0),
)
def test_scalar_and_vector_termination_times_agree(
    rates: list[float], gaps: list[float], start: float, draw: float
) -> None:
    starts = tuple(np.concatenate(([0.0], np.cumsum(gaps)))[: len(rates)].tolist())
    hazard = Hazard(rates=tuple(rates), starts=starts)
    scalar = hazard.termination_time_scalar(start, draw)
    vector = hazard.termination_time(np.array([start]), np.array([draw]))[0]
    if math.isinf(scalar):
        assert math.isinf(vector)
    else:
        assert vector == pytest.approx(scalar, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    "hazard", [Hazard.constant(5e-324), Hazard(rates=(5e-324, 1e-320), starts=(0.0, 1.0))]
)
def test_a_vanishing_hazard_never_terminates_quietly(hazard: Hazard) -> None:
    # 1 / 5e-324 overflows: that is "never", not a numerical problem worth a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        times = hazard.termination_time(np.array([0.0, 2.0]), np.array([1.0, 3.0]))
    assert np.isinf(times).all()
