"""Every ``spotcube plan`` input is bounded before any simulation starts.

Invariants:
- an input whose jobs could not finish is refused (exit 3, one line) from the expected number
  of terminations, computed before simulating: the refusal holds with the simulator removed;
  the message names the option to change and never offers the user's own value as the fix;
- the expected terminations per job (a closed form, planning.expected_terminations) agree
  with what the simulator counts over 16,000 simulated jobs;
- any accepted input simulates without reaching the simulator's own stop
  (spotsim.MAX_TERMINATIONS_PER_JOB): a generator tries extreme values of every duration.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spotcube import planning, spotsim
from spotcube.cli import build_parser
from spotcube.commands import plan as plan_command
from spotcube.errors import ExitStatus, SpotcubeError
from spotcube.spotsim import Hazard, RunModel, hazard_from_percent
from tests.clirunner import run_cli

SEED = ["plan", "--jobs", "100", "--runtime", "633m", "--rate", "9%/h"]


@pytest.fixture
def no_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusals must come before any simulated attempt."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the plan simulated before refusing")

    monkeypatch.setattr(spotsim, "simulate", refuse)


@pytest.mark.parametrize(
    ("option", "value", "fix"),
    [
        ("--interval", "0.001s", "--interval"),
        ("--overhead", "10000h", "--overhead"),
        ("--checkpoint-cost", "100h", "--checkpoint-cost"),
        ("--interval", "8h", "--interval"),  # a long interval at a high rate
        ("--manual-checkpoints", "0", "--manual-checkpoints"),
    ],
)
def test_unfinishable_inputs_are_refused_before_simulating(
    no_simulation: None, option: str, value: str, fix: str
) -> None:
    rate = ["--rate", "60%/h"] if value in ("8h", "0") else []
    result = run_cli([*SEED, option, value, *rate])
    assert result.status == ExitStatus.REFUSED, result.stderr
    (line,) = result.stderr_lines
    assert fix in line.rsplit(";", 1)[-1]  # the advice names the option to change
    # The advice is a value worked out for this rate, never the user's own.
    for advised in re.findall(rf"pass {re.escape(fix)} (\S+)", line):
        assert advised != value


def test_the_advised_interval_is_accepted(no_simulation: None) -> None:
    result = run_cli([*SEED, "--interval", "0.001s"])
    advised = re.search(r"pass --interval (\S+)", result.stderr).group(1)  # type: ignore[union-attr]
    args = build_parser(SEED).parse_args([*SEED, "--interval", advised])
    plan_command._inputs(args)  # no refusal


@settings(max_examples=25, deadline=None)
@given(
    percent=st.floats(0.5, 60),
    segments=st.integers(1, 6),
    segment_hours=st.floats(0.05, 4),
    overhead=st.floats(0, 2),
)
def test_expected_terminations_match_the_reference_loop(
    percent: float, segments: int, segment_hours: float, overhead: float
) -> None:
    model = RunModel(
        jobs=40,
        runtime=segments * segment_hours,
        hazard=Hazard.constant(hazard_from_percent(percent)),
        spot_price=1.0,
        on_demand_price=2.0,
        overhead=overhead,
        interval=segment_hours,
        checkpoint_cost=0.0,  # every segment alike: the closed form is exact
        policy="auto",
    )
    expected = planning.expected_terminations(model)
    if expected > 30:  # a long simulation; the bound refuses these anyway
        return
    stats = spotsim.simulate(model, 400, seed=3)
    observed, samples = int(stats.terminations.sum()), 400 * model.jobs
    # each job's count is a sum of geometric counts: variance at most E (1 + E)
    spread = math.sqrt(samples * expected * (1 + expected))
    assert abs(observed - samples * expected) <= 4 * spread + 3


durations = st.sampled_from(
    [
        *("0s", "0.000000000001s", "0.001s", "1s", "10s", "1m", "5m", "30m"),
        *("2h", "8h", "1d", "10d", "100h", "10000h"),
    ]
)


@settings(max_examples=60, deadline=None)
# Found by this generator: free checkpoints recommend an interval of 0, which the refusal's
# own advice then tried to model ("run model has invalid interval", no option named).
@example(interval="0.001s", overhead="2h", cost="0s", runtime="1m", rate="90%/h", manual=0)
@given(
    interval=durations,
    overhead=durations,
    cost=durations,
    runtime=st.sampled_from(["1m", "30m", "633m", "2d", "31d"]),
    rate=st.sampled_from(["0%/h", "1%/h", "9%/h", "30%/h", "90%/h", "2%/h@0-6h,60%/h"]),
    manual=st.integers(0, 10_000),
)
def test_every_input_is_refused_or_simulates_within_its_bound(
    interval: str, overhead: str, cost: str, runtime: str, rate: str, manual: int
) -> None:
    argv = ["plan", "--jobs", "3", "--runs", "5", "--runtime", runtime, "--rate", rate]
    argv += ["--interval", interval, "--overhead", overhead, "--checkpoint-cost", cost]
    args = build_parser(argv).parse_args([*argv, "--manual-checkpoints", str(manual)])
    refusal: SpotcubeError | None
    try:
        inputs = plan_command._inputs(args)
    except SpotcubeError as exc:
        refusal = exc
    else:
        refusal = None
    if refusal is not None:
        assert refusal.status in (ExitStatus.USAGE, ExitStatus.REFUSED)
        assert "\n" not in str(refusal)
        assert "--" in str(refusal)  # names the option
        return
    for model in planning.simulated_models(inputs).values():
        assert planning.expected_terminations(model) <= planning.MAX_EXPECTED_TERMINATIONS
        stats = spotsim.simulate(model, inputs.runs, seed=0)  # never the simulator's own stop
        assert np.all(stats.attempts >= inputs.jobs)
