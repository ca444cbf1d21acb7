"""Seeded reclamation: a notice, then SIGKILL at a random moment; another worker finishes.

Each seed picks where the kill lands: anywhere after the notice, or pinned inside a
multipart part upload, a multipart completion or a manifest write (the worker pauses there
through ``SPOTCUBE_FAULTPOINT`` so the kill provably lands inside). Every run must end with
the observation DONE, products bit-identical to an uninterrupted reference, no product
without DONE, and work lost to the kill within one chunk plus the checkpoint interval.
"""

from __future__ import annotations

import json
import math
import random
import signal
import time
from pathlib import Path

import pytest

from payload.contracts import ObsLayout
from spotcube.local.imds import ImdsEmulator
from tests.work.conftest import RUN, Plane, reference_products, wait_for

SEEDS = list(range(20))
# Half the seeds kill anywhere after the notice; the rest inside the three riskiest writes.
POINTS = (
    ["anywhere"] * 10 + ["multipart-part"] * 4 + ["multipart-complete"] * 3 + ["manifest-write"] * 3
)
CHUNK_SECONDS = 0.25
INTERVAL = 0.3  # the --checkpoint-interval the plane fixture gives workers
BIG = 5 * 1024 * 1024 + 4096  # two parts at the workers' 5 MiB part size


def _computed_chunks(log: str) -> set[str]:
    return {
        line.split("chunk ", 1)[1].split()[0]
        for line in log.splitlines()
        if " computed in " in line
    }


def _resumed(log: str) -> int:
    for line in log.splitlines():
        if "resuming from the manifest: " in line:
            return int(line.split("resuming from the manifest: ", 1)[1].split()[0])
    return 0


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
    env = {}
    if point != "anywhere":
        env["SPOTCUBE_FAULTPOINT"] = f"{point}:3:{marker}"
    with ImdsEmulator(instance_id=f"i-0kill{seed:04d}") as imds:
        # Visibility 1 s: after the kill the message is back within a second.
        victim = plane.start_worker("--visibility-timeout", "1", imds=imds, env=env, name="victim")
        if point == "anywhere":
            wait_for(lambda: plane.manifest(obs_id) is not None, 30, "the attempt to start")
            time.sleep(rng.uniform(0.0, 0.8))
            deadline = rng.uniform(0.4, 1.5)
            imds.schedule_interruption(in_seconds=deadline)
            rescuer = plane.start_worker("--max-jobs", "1", "--idle-exit", "20", name="rescuer")
            wait_for(
                lambda: victim.poll() is not None or "termination notice" in plane.log_of("victim"),
                10,
                "the notice",
            )
            time.sleep(rng.uniform(0.0, deadline + 0.2))
        else:
            wait_for(marker.exists, 30, f"the worker to reach {point}")
            imds.schedule_interruption(in_seconds=10)
            # The rescuer starts now so its start-up overlaps the victim's last moments.
            rescuer = plane.start_worker("--max-jobs", "1", "--idle-exit", "20", name="rescuer")
            time.sleep(rng.uniform(0.2, 0.6))  # the watcher polls every 0.1 s
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    if point != "anywhere":
        assert victim.returncode == -signal.SIGKILL, "the kill must land inside " + point
    victim_log = plane.log_of("victim")
    assert "termination notice from spot" in victim_log or victim.returncode == 75

    assert rescuer.wait(timeout=90) == 0, plane.log_of("rescuer")
    layout = ObsLayout(RUN, obs_id)
    done = json.loads(plane.get(layout.done) or b"{}")
    reference = reference_products(message, data, tmp_path)
    assert set(done["products"]) == set(reference)
    for name, expected in reference.items():
        assert plane.get(layout.product(name)) == expected, name
    # Work lost = chunks both computed: at most the chunk in progress, the chunks of one
    # checkpoint interval, and one whose upload the kill cut short.
    rescuer_log = plane.log_of("rescuer")
    lost = _computed_chunks(victim_log) & _computed_chunks(rescuer_log)
    assert len(lost) <= 1 + math.ceil(INTERVAL / CHUNK_SECONDS) + 1, (lost, victim_log)
    resumed = _resumed(rescuer_log)
    assert resumed + len(_computed_chunks(rescuer_log)) == chunks
    # Only checkpoint, products, attempt logs and DONE under the observation; no queued job.
    for key in plane.list_keys(layout.prefix):
        assert (
            key.startswith((layout.checkpoint_prefix, layout.products_prefix, layout.logs_prefix))
            or key == layout.done
        ), key
    # A kill between the hand-back's send and its delete leaves a duplicate message, the
    # price of never losing a job (Worker._hand_back): the next worker must drop it unworked.
    if plane.queue_depth() != 0:
        sweeper = plane.start_worker("--max-jobs", "1", "--idle-exit", "10", name="sweeper")
        assert sweeper.wait(timeout=60) == 0, plane.log_of("sweeper")
        sweeper_log = plane.log_of("sweeper")
        assert "is already DONE; dropping the duplicate message" in sweeper_log, sweeper_log
        assert not _computed_chunks(sweeper_log)
        assert json.loads(plane.get(layout.done) or b"{}") == done  # DONE is written once
    assert plane.queue_depth() == 0
    attempts = (plane.manifest(obs_id) or {})["attempts"]
    assert attempts[-1]["reason"] == "done"
    assert attempts[0]["instance_id"] == f"i-0kill{seed:04d}"
