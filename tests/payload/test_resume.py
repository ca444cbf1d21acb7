"""Chunked execution: stopping at any chunk boundary and resuming gives identical bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from payload.jobs.base import ChunkedJob
from payload.jobs.image import PRODUCTS, ImageJob
from payload.provenance import file_identity
from payload.records import canonical_json

from .conftest import PROVENANCE, Observation, make_context


def _products(tiny_obs: Observation, root: Path, stop_after: int | None) -> dict[str, bytes]:
    """Run chunks up to ``stop_after`` in one job object, the rest in a fresh one."""
    chunk_dir = root / "chunks"
    first = ImageJob(make_context(tiny_obs.path, tiny_obs.params, root / "work-a"))
    ids = first.chunk_ids()
    paths = {c: chunk_dir / f"{c}.h5" for c in ids}
    for chunk_id in ids[: stop_after if stop_after is not None else len(ids)]:
        first.run_chunk(chunk_id, paths[chunk_id])
    # The "other instance": a new job with its own work directory picks up the store.
    second = ImageJob(make_context(tiny_obs.path, tiny_obs.params, root / "work-b"))
    for chunk_id in ids:
        if not paths[chunk_id].exists():
            second.run_chunk(chunk_id, paths[chunk_id])
    products = second.combine(paths, root / "out")
    return {p.name: p.read_bytes() for p in products}


@pytest.fixture(scope="module")
def reference(tiny_obs: Observation, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return _products(tiny_obs, tmp_path_factory.mktemp("reference"), None)


def test_image_job_is_a_chunked_job(tiny_obs: Observation, tmp_path: Path) -> None:
    job = ImageJob(make_context(tiny_obs.path, tiny_obs.params, tmp_path))
    assert isinstance(job, ChunkedJob)
    assert job.chunk_ids() == ["ch00000-00004", "ch00004-00008", "ch00008-00012", "ch00012-00016"]


def test_reference_has_every_product(reference: dict[str, bytes]) -> None:
    assert sorted(reference) == sorted(PRODUCTS)
    assert reference["powerspec.png"].startswith(b"\x89PNG")


@pytest.mark.parametrize("stop_after", range(5), ids=lambda k: f"stop-after-{k}")
def test_resume_at_every_boundary_is_bit_identical(
    tiny_obs: Observation, reference: dict[str, bytes], tmp_path: Path, stop_after: int
) -> None:
    resumed = _products(tiny_obs, tmp_path, stop_after)
    for name, data in reference.items():
        assert resumed[name] == data, name


def test_chunks_from_another_process_are_identical(tiny_obs: Observation, tmp_path: Path) -> None:
    """The CLI in a subprocess makes the same chunk bytes as this process."""
    out = tmp_path / "cli"
    command = [
        sys.executable, "-m", "payload", "image", str(tiny_obs.path), "--out", str(out),
        "--chunk-channels", "4", "--image-size", "64", "--quiet",
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=120)
    produced = sorted((out / ".chunks").rglob("*.h5"))
    assert len(produced) == 4
    # Chunks record the input they were made from: the CLI's identity of the same file.
    identity = canonical_json(file_identity(tiny_obs.path.resolve()))
    provenance = {**PROVENANCE, "input_identity": identity}
    context = make_context(tiny_obs.path, tiny_obs.params, tmp_path / "work", provenance=provenance)
    job = ImageJob(context)
    for path in produced:
        mine = tmp_path / "mine" / path.name
        job.run_chunk(path.stem, mine)
        assert mine.read_bytes() == path.read_bytes(), path.name
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(PRODUCTS)
