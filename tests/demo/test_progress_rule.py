"""The "no progress" rule counts every kind of durable work and is quiet on finished runs.

Generated runs (image and command jobs, attempts with any outcome or none, any chunk count)
against three properties stated without the module's code:

1. a run whose observations are all done is never called outpaced;
2. an instance that made any work durable (a chunk, DONE, or, for a command job, the working
   directory it synced when it handed the job back) is never counted without progress;
3. when at least three instances were interrupted and none made anything durable, and the
   run is unfinished, the run is outpaced.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from payload.records import Attempt, Manifest
from spotcube.progress import MIN_INTERRUPTED, assess, lives_from_manifests

REASONS = (None, "done", "preempted", "transient", "invalid")


@st.composite
def manifests(draw: st.DrawFn) -> list[Manifest]:
    runs = []
    for job in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["image", "command"]))
        manifest = Manifest(run_id="r", obs_id=f"o{job}", kind=kind, params_hash="0" * 64)
        for n in range(draw(st.integers(1, 5))):
            manifest.attempts.append(
                Attempt(
                    instance_id=f"i-{draw(st.integers(0, 6))}",
                    start=f"2026-01-01T00:{job:02d}:{n:02d}Z",
                    reason=(reason := draw(st.sampled_from(REASONS))),
                    end=None if reason is None else "2026-01-01T01:00:00Z",
                    chunks_done=0 if kind == "command" else draw(st.integers(0, 3)),
                )
            )
        runs.append(manifest)
    return runs


def _made_durable(manifest: Manifest, attempt: Attempt) -> bool:
    return (
        attempt.chunks_done > 0
        or attempt.reason == "done"
        or (manifest.kind == "command" and attempt.reason == "preempted")
    )


@settings(max_examples=300, deadline=None)
@given(runs=manifests(), finished=st.booleans())
def test_progress_rule(runs: list[Manifest], finished: bool) -> None:
    verdict = assess(lives_from_manifests(runs), finished=finished)
    if finished:
        assert not verdict.outpaced
    durable = {a.instance_id for m in runs for a in m.attempts if _made_durable(m, a)}
    lives = lives_from_manifests(runs)
    for life in lives:
        if life.instance_id in durable:
            assert life.chunks_done > 0, life
    interrupted = [life for life in lives if life.interrupted]
    nothing = all(life.instance_id not in durable for life in interrupted)
    if not finished and len(interrupted) >= MIN_INTERRUPTED and nothing:
        assert verdict.outpaced


def test_a_command_job_that_synced_on_its_notice_made_progress() -> None:
    """Issue 23: command jobs have no chunks and were always 'no progress'."""
    manifest = Manifest(run_id="r", obs_id="o", kind="command", params_hash="0" * 64)
    manifest.attempts = [
        Attempt(f"i-{n}", f"2026-01-01T00:00:0{n}Z", end="2026-01-01T00:01:00Z", reason="preempted")
        for n in range(4)
    ]
    verdict = assess(lives_from_manifests([manifest]))
    assert (verdict.interrupted, verdict.without_progress, verdict.outpaced) == (4, 0, False)
