"""A real worker process against the local cloud: done, its shipped log, ``spotcube logs``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.layout import ObsLayout
from spotcube.cli import main
from spotcube.local.imds import ImdsEmulator
from spotcube.stack import StackOutputs
from tests.work.conftest import PRODUCTS, RAW, RUN, Plane, reference_products, wait_for

PARAMS = {"chunks": 5, "chunk_seconds": 0.2, "chunk_bytes": 4096}


def test_job_runs_to_done_with_reference_products(plane: Plane, imds: ImdsEmulator) -> None:
    message = plane.submit("obs-a", PARAMS, data=b"abc" * 1000)
    worker = plane.start_worker("--max-jobs", "1", imds=imds)
    assert worker.wait(timeout=60) == 0, plane.log_of()
    layout = ObsLayout(RUN, "obs-a")
    done = json.loads(plane.get(layout.done) or b"{}")
    reference = reference_products(message, b"abc" * 1000, plane.tmp)
    for name, data in reference.items():
        assert plane.product(layout, name) == data
        assert done["products"][name]["size"] == len(data)
    manifest = plane.manifest("obs-a")
    assert manifest is not None
    assert sorted(manifest["chunks"]) == ["0", "1", "2", "3", "4"]
    (attempt,) = manifest["attempts"]
    assert attempt["instance_id"] == "i-0test000000000001"
    assert attempt["reason"] == "done"
    assert attempt["chunks_done"] == 5
    assert plane.queue_depth() == 0
    # its log outlives the worker, in the products bucket, under the key the attempt records
    assert attempt["log"] == layout.log(1)
    shipped = (plane.get(layout.log(1)) or b"").decode()
    for chunk in manifest["chunks"]:
        assert f"chunk {chunk} computed" in shipped
    assert shipped.rstrip().endswith("attempt ended: done")


def test_logs_follow_a_running_attempt_to_its_end(
    plane: Plane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``spotcube logs --follow`` while a worker runs: every line once, then it returns."""
    plane.submit("obs-f", {"chunks": 6, "chunk_seconds": 0.3, "chunk_bytes": 1024})
    outputs = StackOutputs(
        region="us-east-1",
        raw_bucket=RAW,
        products_bucket=PRODUCTS,
        job_queue_url=plane.queue_url,
        dead_letter_queue_url=plane.dlq_url,
        endpoint_url=plane.endpoint,
    )
    path = tmp_path / "outputs.json"
    path.write_text(outputs.to_json())
    worker = plane.start_worker("--max-jobs", "1")
    wait_for(lambda: plane.manifest("obs-f") is not None, 60, "the attempt to start")
    argv = ["logs", RUN, "obs-f", "--follow", "--interval", "0.1", "--outputs", str(path)]
    assert main(argv) == 0  # returns by itself once the observation is DONE
    assert worker.wait(timeout=60) == 0, plane.log_of()
    out = capsys.readouterr().out
    assert out.startswith("--- obs-f attempt 1 on local-")
    for chunk in range(6):
        assert out.count(f"chunk {chunk} computed") == 1, out
    assert out.count("attempt ended: done") == 1
    assert out == "".join(
        [
            out.splitlines(keepends=True)[0],
            (plane.get(ObsLayout(RUN, "obs-f").log(1)) or b"").decode(),
        ]
    )
