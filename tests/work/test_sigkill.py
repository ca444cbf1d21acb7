"""Seeded reclamation at a seeded point of the work; another worker finishes the job.

Each seed picks where the interruption lands, counted in work so that a seed means the same
on a slow machine as on a fast one (``SPOTCUBE_FAULTPOINT`` with an arrival count, see
``payload.store.faultpoint``): a notice after the n-th computed chunk that the worker answers
by itself (``notice``), or a SIGKILL while the worker is held right after its n-th computed
chunk, inside a multipart part upload, a multipart completion or a manifest write. Every run
must end with the observation DONE, products bit-identical to an uninterrupted reference, no
product without DONE, and work lost to the kill within one chunk plus the checkpoint interval.
The waits below are bounds against a hang; none decides where an interruption lands.
"""

from __future__ import annotations

import json
import math
import random
import signal
from pathlib import Path

import pytest

from contract.layout import ObsLayout
from spotcube.local.imds import ImdsEmulator
from tests.work.conftest import RUN, Plane, reference_products, wait_for

SEEDS = list(range(20))
# A quarter of the seeds end by the worker's own reaction to a notice; the rest by a SIGKILL
# inside the riskiest moments.
POINTS = (
    ["notice"] * 5
    + ["chunk-computed"] * 5
    + ["multipart-part"] * 4
    + ["multipart-complete"] * 3
    + ["manifest-write"] * 3
)
CHUNK_SECONDS = 0.25
INTERVAL = 0.3  # the --checkpoint-interval the plane fixture gives workers
# three parts at the workers' 5 MiB part size: multipart (up to two go in one PUT)
BIG = 2 * 5 * 1024 * 1024 + 4096
HOLD = 60  # seconds a worker waits at its point: the kill lands inside however slow we are


def _computed_chunks(plane: Plane, name: str) -> set[str]:
    return {e["chunk"] for e in plane.events(name, "chunk.computed")}


def _resumed(plane: Plane, name: str) -> int:
    """Chunks worker ``name`` found durable when it started (0 when it began afresh)."""
    resumed = plane.events(name, "attempt.resumed")
    return int(resumed[0]["chunks"]) if resumed else 0


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_after_notice(plane: Plane, seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    point = POINTS[seed]
    chunk_bytes = BIG if point.startswith("multipart") else rng.choice([2048, 65536])
    chunks = 2 if chunk_bytes == BIG else 5
    params = {"chunks": chunks, "chunk_seconds": CHUNK_SECONDS, "chunk_bytes": chunk_bytes}
    obs_id = f"kill-{seed}"
    data = rng.randbytes(300)
    message = plane.submit(obs_id, params, data=data)
    marker = tmp_path / "reached"
    if point == "notice":
        # Held after chunk n of 1..chunks-1 until the worker has seen the notice: it comes
        # with work left to hand back, however slowly the worker's watcher runs.
        spec = f"chunk-computed:{HOLD}:{marker}:{rng.randint(1, chunks - 1)}"
    elif point in ("chunk-computed", "manifest-write"):
        spec = f"{point}:{HOLD}:{marker}:{rng.randint(1, chunks - 1)}"
    else:
        spec = f"{point}:{HOLD}:{marker}:{rng.randint(1, 2)}"
    with ImdsEmulator(instance_id=f"i-0kill{seed:04d}") as imds:
        # Visibility 1 s: after the kill the message is back within a second.
        victim = plane.start_worker(
            "--visibility-timeout",
            "1",
            imds=imds,
            env={"SPOTCUBE_FAULTPOINT": spec},
            name="victim",
        )
        wait_for(marker.exists, 60, f"the worker to reach {spec}")
        # The deadline is far enough that only a worker that never reacts meets it.
        imds.schedule_interruption(in_seconds=30)
        # The rescuer starts now so its start-up overlaps the victim's last moments.
        rescuer = plane.start_worker("--max-jobs", "1", "--idle-exit", "30", name="rescuer")
        wait_for(
            lambda: victim.poll() is not None or plane.has_event("victim", "spot.notice"),
            30,
            "the notice",
        )
        if point == "notice":
            marker.unlink()  # release the worker: it has seen the notice and hands back
            victim.wait(timeout=60)
        elif victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    if point == "notice":
        assert victim.returncode == 75, plane.log_of("victim")  # handed back by itself
    else:
        assert victim.returncode == -signal.SIGKILL, "the kill must land inside " + point
    victim_log = plane.log_of("victim")
    notices = [e["source"] for e in plane.events("victim", "spot.notice")]
    assert notices == ["spot"] or victim.returncode == 75, victim_log

    assert rescuer.wait(timeout=120) == 0, plane.log_of("rescuer")
    layout = ObsLayout(RUN, obs_id)
    done = json.loads(plane.get(layout.done) or b"{}")
    reference = reference_products(message, data, tmp_path)
    assert set(done["products"]) == set(reference)
    for name, expected in reference.items():
        assert plane.product(layout, name) == expected, name
    # Work lost = chunks both computed: at most the chunk in progress, the chunks of one
    # checkpoint interval, and one whose upload the kill cut short.
    lost = _computed_chunks(plane, "victim") & _computed_chunks(plane, "rescuer")
    assert len(lost) <= 1 + math.ceil(INTERVAL / CHUNK_SECONDS) + 1, (lost, victim_log)
    resumed = _resumed(plane, "rescuer")
    assert resumed + len(_computed_chunks(plane, "rescuer")) == chunks, plane.log_of("rescuer")
    # Only checkpoint, attempts' products, attempt logs and DONE under the observation; no
    # queued job.
    for key in plane.list_keys(layout.prefix):
        assert (
            key.startswith((layout.checkpoint_prefix, layout.attempts_prefix, layout.logs_prefix))
            or key == layout.done
        ), key
    # A kill between the hand-back's send and its delete leaves a duplicate message, the
    # price of never losing a job (Worker._hand_back): the next worker must drop it unworked.
    if plane.queue_depth() != 0:
        sweeper = plane.start_worker("--max-jobs", "1", "--idle-exit", "10", name="sweeper")
        assert sweeper.wait(timeout=60) == 0, plane.log_of("sweeper")
        sweeper_log = plane.log_of("sweeper")
        assert len(plane.events("sweeper", "job.duplicate")) == 1, sweeper_log
        assert not _computed_chunks(plane, "sweeper")
        assert json.loads(plane.get(layout.done) or b"{}") == done  # DONE is written once
    assert plane.queue_depth() == 0
    attempts = (plane.manifest(obs_id) or {})["attempts"]
    assert attempts[-1]["reason"] == "done"
    assert attempts[0]["instance_id"] == f"i-0kill{seed:04d}"
