"""The figures docs/benchmarks.md records, and a check that a run has not regressed from them.

Each benchmark prints its ratios against the peer measured in the same run (lower is better
for every ratio kept here) and then :func:`compare_recorded`'s verdict, so a regression of
more than :data:`TOLERANCE` against the recorded figure is visible in ``make bench`` output
without reading the page. ``bench/recorded.json`` is updated together with
docs/benchmarks.md, when a figure is re-measured on purpose.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

RECORDED = Path(__file__).with_name("recorded.json")
TOLERANCE = 0.10  # a ratio more than 10 % above its recorded value is a regression


def compare_recorded(
    benchmark: str, ratios: Mapping[str, float], *, recorded_file: Path = RECORDED
) -> str:
    """Lines saying, for each ratio recorded for ``benchmark``, how this run compares."""
    recorded = json.loads(recorded_file.read_text())
    figures = recorded.get(benchmark, {})
    if not figures:
        return f"recorded figures: none for {benchmark!r} in {RECORDED.name}"
    lines = [f"against the figures recorded {figures.get('measured', '(undated)')}:"]
    for name, value in ratios.items():
        if name not in figures:
            continue
        then = float(figures[name])
        change = value / then - 1.0
        verdict = "REGRESSION" if change > TOLERANCE else "ok"
        lines.append(
            f"  {verdict:10s} {name}: {value:.3f} now, {then:.3f} recorded ({change:+.0%})"
        )
    return "\n".join(lines)
