"""``spotcube plan --cluster``: Sabater et al. (2017) eq. 1 on the plan's own simulated cost.

Sabater et al., "Calibration of LOFAR data on the cloud", Astronomy and Computing 19, 75
(2017), arXiv:1704.05064, eq. 1: a cluster bought for ``I`` and run for ``R`` a year costs
the same as cloud capacity at ``C`` a year after ``t = I / (C - R)`` years. The tests check
the definition itself (``I + R t = C t``), not the code's rearrangement of it.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotcube.breakeven import HOURS_PER_YEAR, ClusterCosts, breakeven, breakeven_years
from tests.clirunner import run_cli

money = st.floats(min_value=1.0, max_value=1e8, allow_nan=False)


@given(investment=money, running=money, extra=money)
def test_breakeven_is_where_the_two_totals_meet(
    investment: float, running: float, extra: float
) -> None:
    cloud = running + extra
    t = breakeven_years(investment, cloud, running)
    assert investment + running * t == pytest.approx(cloud * t, rel=1e-9)


@pytest.mark.parametrize(("cloud", "running"), [(5.0, 5.0), (4.0, 5.0), (0.0, 0.0)])
def test_a_cloud_no_dearer_than_running_the_cluster_never_breaks_even(
    cloud: float, running: float
) -> None:
    assert breakeven_years(1000.0, cloud, running) == math.inf


@given(
    investment=money,
    running=st.floats(min_value=0.0, max_value=1e6),
    cost=st.floats(min_value=1.0, max_value=1e6),
    hours=st.floats(min_value=0.5, max_value=1e4),
)
def test_runs_in_the_breakeven_cost_what_the_cluster_costs(
    investment: float, running: float, cost: float, hours: float
) -> None:
    """n runs of cost S, each T long: n S = I + R n T (T in years) when n runs fill t."""
    verdict = breakeven(
        ClusterCosts(investment, running), cost_per_run=cost, turnaround_hours=hours
    )
    if math.isinf(verdict.years):
        assert cost * HOURS_PER_YEAR / hours <= running
        return
    n = verdict.runs
    assert n * cost == pytest.approx(investment + running * n * hours / HOURS_PER_YEAR, rel=1e-9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("250000,30000", (250000.0, 30000.0)), (" 250_000 , 0 ", (250000.0, 0.0))],
)
def test_cluster_option_parses(text: str, expected: tuple[float, float]) -> None:
    costs = ClusterCosts.parse(text)
    assert (costs.investment, costs.running_per_year) == expected


@pytest.mark.parametrize("text", ["", "1", "1,2,3", "a,b", "-1,5", "0,5", "5,-1", "nan,1", "inf,1"])
def test_bad_cluster_values_name_the_option(text: str) -> None:
    with pytest.raises(ValueError, match="--cluster"):
        ClusterCosts.parse(text)


PLAN = ["plan", "--jobs", "20", "--runtime", "2h", "--rate", "5%/h", "--runs", "200"]


def test_plan_uses_its_own_simulated_cost() -> None:
    result = run_cli([*PLAN, "--cluster", "50000,5000", "--json"])
    assert result.status == 0, result.stderr
    doc = json.loads(result.stdout)
    verdict, spotcube = doc["cluster_breakeven"], doc["strategies"]["spot, spotcube"]
    assert verdict["cloud_usd_per_run"] == spotcube["cost"]["mean"]
    assert verdict["run_turnaround_hours"] == spotcube["turnaround"]["mean"]
    t, n = verdict["breakeven_years"], verdict["runs_in_breakeven"]
    cloud_per_year = spotcube["cost"]["mean"] * HOURS_PER_YEAR / spotcube["turnaround"]["mean"]
    assert 50000 + 5000 * t == pytest.approx(cloud_per_year * t, rel=1e-9)
    assert n == pytest.approx(t * HOURS_PER_YEAR / spotcube["turnaround"]["mean"], rel=1e-9)


def test_plan_table_says_when_the_cluster_never_pays() -> None:
    result = run_cli([*PLAN, "--cluster", "50000,1e9"])
    assert result.status == 0, result.stderr
    assert "never pays for itself" in result.stdout
    doc = json.loads(run_cli([*PLAN, "--cluster", "50000,1e9", "--json"]).stdout)
    assert doc["cluster_breakeven"]["breakeven_years"] is None


def test_plan_table_prints_the_breakeven() -> None:
    result = run_cli([*PLAN, "--cluster", "50000,5000"])
    assert result.status == 0, result.stderr
    assert "pays for itself after" in result.stdout
    assert "Sabater et al. 2017, eq. 1" in result.stdout
