"""A real worker process against the local cloud: done, resume, invalid, duplicates."""

from __future__ import annotations

import json

from payload.contracts import ObsLayout
from spotcube.local.imds import ImdsEmulator
from tests.work.conftest import RUN, Plane, reference_products

PARAMS = {"chunks": 5, "chunk_seconds": 0.2, "chunk_bytes": 4096}


def test_job_runs_to_done_with_reference_products(plane: Plane, imds: ImdsEmulator) -> None:
    message = plane.submit("obs-a", PARAMS, data=b"abc" * 1000)
    worker = plane.start_worker("--max-jobs", "1", imds=imds)
    assert worker.wait(timeout=60) == 0, plane.log_of()
    layout = ObsLayout(RUN, "obs-a")
    done = json.loads(plane.get(layout.done) or b"{}")
    reference = reference_products(message, b"abc" * 1000, plane.tmp)
    for name, data in reference.items():
        assert plane.get(layout.product(name)) == data
        assert done["products"][name]["size"] == len(data)
    manifest = plane.manifest("obs-a")
    assert manifest is not None
    assert sorted(manifest["chunks"]) == ["0", "1", "2", "3", "4"]
    (attempt,) = manifest["attempts"]
    assert attempt["instance_id"] == "i-0test000000000001"
    assert attempt["reason"] == "done"
    assert attempt["chunks_done"] == 5
    assert plane.queue_depth() == 0
