"""A worker's disk holds at most two chunk files and never the image cubes (issue 24, item 1).

The invariant a user sizing an instance's volume relies on: whatever the number of channels,
the job directory holds the chunk being computed, at most one chunk still uploading, and the
small products (uv cube, spectrum, figures); chunks are read back from the store by range
and the image cubes are streamed into it. Real parts: moto over HTTP, a real worker process
paused by its own fault points (so each look at the disk happens at the same work, however
slow the machine), S3 multipart uploads of the cubes.

Also here: the streamed products are byte-identical to the local combine's, a chunk object
rewritten after its upload is refused in one line with nothing left behind, and the upload
stream's own contract (bytes, sha256, one PUT for one part, abort leaves nothing).
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.layout import ObsLayout
from payload.checkpoint import Checkpointer
from payload.errors import InvalidInputError
from payload.jobs.image import PRODUCTS, ImageJob
from payload.records import Attempt, ChunkRecord, InputIdentity, JobMessage, Manifest
from payload.store import ObjectStore, StoredObject, s3_client
from payload.storedchunks import StoredChunks
from payload.storedproducts import StoredProducts
from payload.upload import UploadStream
from tests.payload.conftest import make_context
from tests.work.conftest import PRODUCTS as PRODUCTS_BUCKET
from tests.work.conftest import RUN, Plane, wait_for

MIB = 1024 * 1024
# 4 chunks of 8 channels, 256 px: each cube's polarization is 8 MiB and a cube 24 MiB, so
# the cubes go up in several 5 MiB parts.
PARAMS = {"chunk_channels": 8, "image_size": 256}
N_FREQS = 32


@pytest.fixture(scope="module")
def observation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from payload.synth import write_synthetic_observation

    path = tmp_path_factory.mktemp("diskbound") / "obs.uvh5"
    write_synthetic_observation(path, n_tiles=16, n_freqs=N_FREQS, n_times=4, noise_jy=1.0)
    return path


def _store(plane: Plane, part_mib: int = 5) -> ObjectStore:
    return ObjectStore(
        s3_client(plane.endpoint, "us-east-1"), PRODUCTS_BUCKET, part_size=part_mib * MIB
    )


def _chunk_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("ch*-*.h5*") if p.is_file()]


# --- the upload stream ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1000, 5 * MIB, 13 * MIB + 17])
def test_a_stream_stores_exactly_its_bytes_and_their_sha256(plane: Plane, size: int) -> None:
    store = _store(plane)
    data = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
    data = data[:size]
    with UploadStream(store, "p/x.bin") as stream:
        for start in range(0, size, 3 * MIB + 5):  # writes that do not line up with parts
            stream.write(data[start : start + 3 * MIB + 5])
        stored = stream.close()
    assert plane.get("p/x.bin") == data
    assert (stored.size, stored.sha256) == (size, hashlib.sha256(data).hexdigest())
    head = plane.s3.head_object(Bucket=PRODUCTS_BUCKET, Key="p/x.bin")
    assert stored.etag == head["ETag"]
    # S3's multipart ETag ends in "-<parts>": one PUT up to one part, parts beyond
    parts = head["ETag"].strip('"').partition("-")[2]
    assert parts == ("" if size <= 5 * MIB else str(-(-size // (5 * MIB))))


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(0, 7 * MIB), min_size=1, max_size=5),
    seed=st.integers(0, 2**16),
)
def test_any_sequence_of_writes_is_stored_as_its_concatenation(
    plane: Plane, sizes: list[int], seed: int
) -> None:
    """Whatever sizes combine writes in (FITS headers, 8 MiB pieces, padding), the object is
    their concatenation and DONE's sha256 is hashlib's over it: part boundaries never split,
    drop or repeat a byte. Oracle: S3's stored bytes and hashlib, not the stream's own hash."""
    rng = random.Random(seed)
    pieces = [rng.randbytes(size) for size in sizes]
    with UploadStream(_store(plane), "p/any.bin") as stream:
        for piece in pieces:
            stream.write(piece)
        stored = stream.close()
    whole = b"".join(pieces)
    assert plane.get("p/any.bin") == whole
    assert stored.sha256 == hashlib.sha256(whole).hexdigest()


def _fail_after_two_parts(store: ObjectStore) -> None:
    with UploadStream(store, "p/y.bin") as stream:
        stream.write(b"\1" * (11 * MIB))  # two parts already sent
        raise RuntimeError("combine failed")


def test_a_stream_left_by_an_error_stores_nothing(plane: Plane) -> None:
    with pytest.raises(RuntimeError, match="combine failed"):
        _fail_after_two_parts(_store(plane))
    assert plane.get("p/y.bin") is None
    uploads = plane.s3.list_multipart_uploads(Bucket=PRODUCTS_BUCKET).get("Uploads", [])
    assert uploads == []  # aborted, not left to be billed until the lifecycle rule


# --- the checkpointer's half: a chunk file lives until it is durable, one at a time -----------


class GatedStore(ObjectStore):
    """The real store (moto over HTTP) whose chunk uploads wait until the test opens the gate."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.uploading = threading.Event()

    def put_file(self, key: str, path: Path, *, if_none_match: bool = False) -> StoredObject:
        self.uploading.set()
        assert self.gate.wait(timeout=60), "the test never opened the gate"
        return super().put_file(key, path, if_none_match=if_none_match)


def test_a_chunk_file_is_deleted_once_durable_and_the_next_waits_for_it(
    plane: Plane, tmp_path: Path
) -> None:
    store = GatedStore(s3_client(plane.endpoint, "us-east-1"), PRODUCTS_BUCKET)
    message = JobMessage.create(
        run_id=RUN, obs_id="o", input="s3://raw/x", kind="selftest", params={}
    )
    manifest = Manifest.new(message, InputIdentity(uri=message.input))
    attempt = Attempt(instance_id="i-1", start="2026-01-01T00:00:00.000000Z")
    ckpt = Checkpointer(
        store,
        ObsLayout(RUN, "o"),
        manifest,
        attempt,
        chunk_suffix="bin",
        keep_local=False,
        max_pending=1,
    ).start()
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"a" * 1000)
    second.write_bytes(b"b" * 1000)
    ckpt.submit("a", first, 1.0)
    assert store.uploading.wait(timeout=30)
    handed_over = threading.Event()
    threading.Thread(target=lambda: (ckpt.submit("b", second, 1.0), handed_over.set())).start()
    # While "a" is uploading, "b" is not handed over, and "a" is still on the disk.
    assert not handed_over.wait(timeout=1.0)
    assert first.exists()
    store.gate.set()
    assert handed_over.wait(timeout=30)
    ckpt.flush(timeout=60)
    ckpt.stop()
    assert not first.exists()
    assert not second.exists()
    for cid in ("a", "b"):
        record = manifest.chunks[cid]
        head = plane.s3.head_object(Bucket=PRODUCTS_BUCKET, Key=record.key)
        assert record.etag == head["ETag"]  # what combine's ranged reads are pinned to


# --- combine from the store into the store, in process ---------------------------------------


def _stored_job(
    plane: Plane, observation: Path, tmp: Path
) -> tuple[ImageJob, ObjectStore, dict[str, ChunkRecord]]:
    """The image job with every chunk computed and uploaded, and a sink under ``attempt/``."""
    store = _store(plane)
    job = ImageJob(make_context(observation, PARAMS, tmp))
    return job, store, _run_chunks(job, store, tmp)


def _sink(store: ObjectStore, tmp: Path) -> StoredProducts:
    return StoredProducts(store, lambda name: f"attempt/{name}", tmp / "work")


def _run_chunks(job: ImageJob, store: ObjectStore, tmp: Path) -> dict[str, ChunkRecord]:
    """Every chunk computed locally and uploaded as the checkpointer uploads it."""
    records = {}
    for cid in job.chunk_ids():
        path = tmp / f"{cid}.h5"
        job.run_chunk(cid, path)
        stored = store.put_file(f"chunks/{cid}.h5", path)
        records[cid] = ChunkRecord(stored.key, stored.size, stored.sha256, etag=stored.etag)
    return records


def test_products_combined_from_stored_chunks_equal_the_local_combine(
    plane: Plane, observation: Path, tmp_path: Path
) -> None:
    job, store, records = _stored_job(plane, observation, tmp_path)
    local = {
        p.name: p.read_bytes()
        for p in job.combine({c: tmp_path / f"{c}.h5" for c in records}, tmp_path / "out")
    }
    for cid in records:
        (tmp_path / f"{cid}.h5").unlink()  # nothing local to fall back on
    chunks = StoredChunks(store, records)
    with _sink(store, tmp_path) as sink:
        job.combine_into(chunks, sink)
    assert sorted(sink.listing) == sorted(PRODUCTS)
    for name, entry in sink.listing.items():
        stored = plane.get(entry.key)
        assert stored == local[name], name
        assert (entry.size, entry.sha256) == (len(stored), hashlib.sha256(stored).hexdigest())
    # Every chunk byte fetched about once: the slabs exactly, the rest a small overhead.
    assert chunks.bytes_fetched() < 1.5 * sum(r.size for r in records.values())
    assert not list((tmp_path / "work").rglob("*.fits"))


def test_a_chunk_object_rewritten_after_its_upload_is_refused_and_nothing_is_left(
    plane: Plane, observation: Path, tmp_path: Path
) -> None:
    job, store, records = _stored_job(plane, observation, tmp_path)
    last = job.chunk_ids()[-1]
    # Same size, other bytes: only the ETag pin can tell.
    body = bytearray(plane.get(records[last].key) or b"")
    body[-1] ^= 0xFF
    plane.s3.put_object(Bucket=PRODUCTS_BUCKET, Key=records[last].key, Body=bytes(body))
    sink = _sink(store, tmp_path)
    with pytest.raises(InvalidInputError) as caught, sink:
        job.combine_into(StoredChunks(store, records), sink)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"s3://{PRODUCTS_BUCKET}/{records[last].key} was replaced")
    assert plane.list_keys("attempt/") == []
    assert plane.s3.list_multipart_uploads(Bucket=PRODUCTS_BUCKET).get("Uploads", []) == []


# --- a real worker: what its disk holds, looked at while it works ----------------------------


@pytest.mark.slow
def test_a_workers_disk_holds_two_chunk_files_at_most_and_never_a_cube(
    plane: Plane, observation: Path, tmp_path: Path
) -> None:
    uri = plane.put_input("obs.uvh5", observation.read_bytes())
    message = JobMessage.create(run_id=RUN, obs_id="obs-d", input=uri, kind="image", params=PARAMS)
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())
    chunks_marker, product_marker = tmp_path / "chunk", tmp_path / "product"
    workdir = tmp_path / "work-w"
    # Pause after every chunk is computed and after the first product is stored.
    faults = f"chunk-computed:120:{chunks_marker},product-uploaded:120:{product_marker}:1"
    worker = plane.start_worker("--max-jobs", "1", env={"SPOTCUBE_FAULTPOINT": faults})
    seen: list[int] = []
    while len(seen) < N_FREQS // 8:
        wait_for(lambda: chunks_marker.exists() or worker.poll() is not None, 180, "a chunk")
        assert worker.poll() is None, plane.log_of()
        seen.append(len(_chunk_files(workdir)))
        chunks_marker.unlink()
    wait_for(lambda: product_marker.exists() or worker.poll() is not None, 180, "a product")
    assert worker.poll() is None, plane.log_of()
    # Combine is under way: the first cube is stored, and no chunk file is on the disk.
    assert _chunk_files(workdir) == []
    assert [p for p in workdir.rglob("*.fits")] == []
    product_marker.unlink()
    assert worker.wait(timeout=180) == 0, plane.log_of()
    # The chunk just computed, and at most the one before it still uploading.
    assert 1 <= max(seen) <= 2, seen
    layout = ObsLayout(RUN, "obs-d")
    done = json.loads(plane.get(layout.done) or b"{}")
    assert sorted(done["products"]) == sorted(PRODUCTS)
    for entry in done["products"].values():
        stored = plane.get(entry["key"])
        assert stored is not None
        assert hashlib.sha256(stored).hexdigest() == entry["sha256"]
    cube = done["products"]["image_cube.fits"]
    assert cube["size"] > 2 * 5 * MIB  # streamed in parts, not one PUT
    assert not list(workdir.rglob("*.fits"))
