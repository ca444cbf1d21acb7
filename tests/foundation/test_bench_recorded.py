"""The recorded benchmark figures: one home (bench/recorded.json), quoted by the docs, and a
regression of more than 10 % flagged in ``make bench`` output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.recorded import RECORDED, compare_recorded  # noqa: E402


def test_a_ratio_more_than_ten_percent_worse_is_flagged(tmp_path: Path) -> None:
    recorded = tmp_path / "recorded.json"
    recorded.write_text(json.dumps({"b": {"measured": "today", "r": 1.0, "s": 2.0}}))
    lines = compare_recorded("b", {"r": 1.11, "s": 2.19, "new": 5.0}, recorded_file=recorded)
    assert "REGRESSION r: 1.110 now, 1.000 recorded (+11%)" in " ".join(lines.split())
    assert "ok s: 2.190 now, 2.000 recorded (+9%)" in " ".join(lines.split())
    assert "new" not in lines  # a ratio nothing was recorded for is not judged
    assert "none for 'other'" in compare_recorded("other", {"r": 9.0}, recorded_file=recorded)


@pytest.mark.parametrize("benchmark", sorted(json.loads(RECORDED.read_text())))
def test_every_recorded_ratio_is_the_one_the_docs_show(benchmark: str) -> None:
    """docs/benchmarks.md shows each recorded ratio (two decimals): re-measuring means
    updating both, and a figure changed in one place only fails here."""
    docs = (REPO / "docs" / "benchmarks.md").read_text()
    figures = json.loads(RECORDED.read_text())[benchmark]
    for name, value in figures.items():
        if name == "measured":
            continue
        assert f"{float(value):.2f}" in docs, f"{benchmark}.{name} = {value} not in the docs"


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    recorded=st.floats(min_value=1e-3, max_value=1e3),
    change=st.floats(min_value=-0.9, max_value=3.0).filter(lambda c: abs(c - 0.10) > 1e-9),
)
def test_regression_is_flagged_exactly_when_more_than_ten_percent_worse(
    recorded: float, change: float, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("rec") / "recorded.json"
    path.write_text(json.dumps({"b": {"r": recorded}}))
    lines = compare_recorded("b", {"r": recorded * (1.0 + change)}, recorded_file=path)
    assert ("REGRESSION" in lines) == (change > 0.10), lines
