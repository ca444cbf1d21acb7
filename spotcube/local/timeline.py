"""What happened when, on the local fleet: instance lives, spot notices, kills, chunks.

The fleet records instance events and the demo records chunk completions as it sees them
appear in the checkpoint manifests; :func:`plot_timeline` draws one row per instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENT_KINDS = ("launch", "notice", "exit", "kill", "stop", "chunk", "done")


@dataclass(frozen=True)
class Event:
    """One thing that happened, ``t`` seconds (wall clock) after the fleet started."""

    t: float
    kind: str
    instance_id: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"timeline event kind {self.kind!r} is not one of {EVENT_KINDS}")


@dataclass
class Timeline:
    """An append-only list of events, in the order they were seen."""

    events: list[Event] = field(default_factory=list)

    def add(self, t: float, kind: str, instance_id: str, detail: str = "") -> Event:
        event = Event(round(t, 3), kind, instance_id, detail)
        self.events.append(event)
        return event

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    def instance_ids(self) -> list[str]:
        """Instances in launch order."""
        return [e.instance_id for e in self.of_kind("launch")]


def plot_timeline(timeline: Timeline, path: Path, *, title: str, speedup: float) -> Path:
    """Draw instances as bars with notices, kills and chunk completions; write a PNG.

    The lower axis is wall-clock seconds of the demo; the upper one the simulated hours the
    interruption clock ran at (``speedup`` simulated seconds per real second).
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on instances or CI
    import matplotlib.pyplot as plt
    import numpy as np

    ids = timeline.instance_ids()
    row = {iid: i for i, iid in enumerate(ids)}
    end_time = max((e.t for e in timeline.events), default=1.0) or 1.0
    fig, ax = plt.subplots(figsize=(11, 2.2 + 0.4 * max(len(ids), 1)), dpi=110)
    labelled: set[bool] = set()
    for iid in ids:
        events = [e for e in timeline.events if e.instance_id == iid]
        start = next(e.t for e in events if e.kind == "launch")
        ends = [e.t for e in events if e.kind in ("kill", "stop", "exit")]
        stop = min(ends) if ends else end_time
        killed = any(e.kind == "kill" for e in events)
        ax.barh(
            row[iid],
            stop - start,
            left=start,
            height=0.5,
            color="#f4a6a6" if killed else "#a6c8f4",
            edgecolor="#555555",
            # one legend entry per kind of life, not one per instance
            label=None
            if killed in labelled
            else ("instance life, reclaimed" if killed else "instance life, not reclaimed"),
        )
        labelled.add(killed)
    obs_ids = sorted({e.detail.split("/")[0] for e in timeline.of_kind("chunk")})
    cmap = plt.get_cmap("tab10")
    colour = {obs: cmap(i % 10) for i, obs in enumerate(obs_ids)}
    for obs in obs_ids:
        points = [
            e
            for e in timeline.of_kind("chunk")
            if e.detail.split("/")[0] == obs and e.instance_id in row
        ]
        ax.scatter(
            [e.t for e in points],
            [row[e.instance_id] for e in points],
            s=18,
            marker="o",
            color=colour[obs],
            label=f"chunk of {obs}",
            zorder=3,
        )
    for kind, marker, colour_name, label in (
        ("done", "*", "#2a7d2a", "observation done"),
        ("notice", "v", "#d98200", "spot notice"),
        ("kill", "X", "#c00000", "reclaimed (SIGKILL)"),
    ):
        points = [e for e in timeline.of_kind(kind) if e.instance_id in row]
        if points:
            ax.scatter(
                [e.t for e in points],
                [row[e.instance_id] for e in points],
                s=70,
                marker=marker,
                color=colour_name,
                label=label,
                zorder=4,
            )
    ax.set_yticks(range(len(ids)), ids, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("wall-clock seconds since the fleet started")
    ax.set_xlim(0, end_time * 1.02)

    def to_hours(seconds: Any) -> Any:
        return np.asarray(seconds, dtype=float) * speedup / 3600.0

    def to_seconds(hours: Any) -> Any:
        return np.asarray(hours, dtype=float) * 3600.0 / speedup

    top = ax.secondary_xaxis("top", functions=(to_hours, to_seconds))
    top.set_xlabel(f"simulated hours (time compressed {speedup:g}x)")
    ax.set_title(title, fontsize=10)
    # outside the axes, on the right: markers must not hide the instance rows
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
