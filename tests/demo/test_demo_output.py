"""What the demo shows people: the timeline's legend, output that does not wrap when piped."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from spotcube.demo import demo_console
from spotcube.local.timeline import Timeline, plot_timeline


def test_timeline_legend_names_every_mark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.pyplot as plt

    figures: list[Any] = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to read its legend
    timeline = Timeline()
    timeline.add(0.0, "launch", "i-1")
    timeline.add(0.5, "launch", "i-2")
    timeline.add(0.6, "launch", "i-3")
    timeline.add(1.0, "chunk", "i-1", "obs-a/0")
    timeline.add(2.0, "notice", "i-1")
    timeline.add(8.0, "kill", "i-1", "exit code -9")
    timeline.add(9.0, "done", "i-2", "obs-a")
    timeline.add(12.0, "stop", "i-2")
    timeline.add(12.0, "stop", "i-3")
    plot_timeline(timeline, tmp_path / "t.png", title="t", speedup=600.0)
    (fig,) = figures
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert sorted(labels) == sorted(
        [
            "instance life, reclaimed",
            "instance life, not reclaimed",  # once, though two instances were not reclaimed
            "chunk of obs-a",
            "observation done",
            "spot notice",
            "reclaimed (SIGKILL)",
        ]
    )


def test_piped_output_does_not_wrap() -> None:
    out = io.StringIO()
    console = demo_console(file=out)
    line = "local cloud at http://127.0.0.1:38993 — while the demo runs: " + "x" * 120
    console.print(line)
    assert out.getvalue() == line + "\n"
