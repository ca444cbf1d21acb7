"""A stored uvh5 input read by range, chunk by chunk (issue 24, item 1), on the local cloud.

Real parts throughout: moto over HTTP, h5py reading through :mod:`payload.ranged`, the image
job, and a real worker process for the failure case. What is checked:

* products read by range are byte-identical to the same job's products on the download path,
  and the ranged job never downloads;
* one chunk fetches a small fraction of the file (the bytes S3 served, counted);
* an input replaced between two chunks fails the job ``invalid`` with the download path's
  one-line message, and no ``DONE`` is written;
* a contiguous file (the usual case) is downloaded whole, and the log says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import h5py
import pytest

from contract.layout import ObsLayout
from payload import inputs
from payload.errors import InvalidInputError
from payload.jobs.base import JobContext
from payload.jobs.image import ImageJob
from payload.ranged import RangedSource
from payload.reading import open_observation_by_range, read_chunk
from payload.records import JobMessage
from payload.store import ObjectStore, s3_client
from tests.payload.conftest import PROVENANCE, run_job
from tests.work.conftest import RAW, RUN, Plane, wait_for

PARAMS = {"chunk_channels": 8, "image_size": 64}
N_FREQS = 32
DATASETS = ("Data/visdata", "Data/flags", "Data/nsamples")


def _write(path: Path, chunks: tuple[int, int, int] | None) -> Path:
    """A synthetic MWA observation (48 tiles, 8 times, 32 channels, ~10 MB), written with
    visdata, flags and nsamples in ``chunks`` (None: visdata contiguous)."""
    from pyuvdata import UVData

    from payload.synth import write_synthetic_observation

    raw = path.with_suffix(".raw.uvh5")
    write_synthetic_observation(raw, n_tiles=48, n_freqs=N_FREQS, n_times=8, noise_jy=1.0)
    uvd = UVData.from_file(str(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The documented recipe (docs/work-plane.md): chunks (rows, channels, polarizations).
        uvd.write_uvh5(str(path), chunks=chunks, clobber=True)
    raw.unlink()
    return path


@pytest.fixture(scope="module")
def chunked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("ranged") / "obs-chunked.uvh5", (1024, 8, 4))


@pytest.fixture(scope="module")
def contiguous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("ranged") / "obs-contig.uvh5", None)


def _store_input(plane: Plane, path: Path) -> tuple[str, str, dict[str, Any]]:
    """Store ``path`` as ``spotcube submit`` does (content key, name and sha256 metadata)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    key = inputs.content_key("", digest)
    metadata = inputs.metadata_for(path.name, inputs.FORM_FILE, sha256=digest)
    plane.s3.put_object(Bucket=RAW, Key=key, Body=data, Metadata=metadata)
    return key, f"s3://{RAW}/{key}", plane.s3.head_object(Bucket=RAW, Key=key)


def _stored_bytes(path: Path, channels: int) -> float:
    """The stored bytes of ``channels`` channels of visdata, flags and nsamples."""
    with h5py.File(path, "r") as handle:
        total = sum(handle[name].id.get_storage_size() for name in DATASETS)
        return total * channels / handle["Data/visdata"].shape[1]


class _Contexts:
    """The same job's context on the ranged path and on the download path."""

    def __init__(self, plane: Plane, path: Path, tmp: Path) -> None:
        self.store = ObjectStore(s3_client(plane.endpoint, "us-east-1"), RAW)
        self.key, self.uri, head = _store_input(plane, path)
        self.etag, self.size, self.name = head["ETag"], head["ContentLength"], path.name
        self.message = JobMessage.create(
            run_id=RUN, obs_id="obs", input=self.uri, kind="image", params=PARAMS
        )
        self.tmp = tmp
        self.sources: list[RangedSource] = []
        self.downloads = 0

    def _download(self, uri: str) -> Path:
        self.downloads += 1
        dest = self.tmp / f"download-{self.downloads}"
        return inputs.restore(self.store, self.key, dest, uri=uri, if_match=self.etag)

    def _ranged(self, uri: str) -> tuple[RangedSource, Path]:
        source = RangedSource(self.store, self.key, etag=self.etag, size=self.size)
        self.sources.append(source)
        return source, self.tmp / "input" / self.name

    def ranged(self, workdir: Path) -> JobContext:
        return JobContext(
            message=self.message,
            workdir=workdir,
            fetch=self._download,
            provenance=PROVENANCE,
            open_ranged=self._ranged,
        )

    def download(self, workdir: Path) -> JobContext:
        return JobContext(
            message=self.message, workdir=workdir, fetch=self._download, provenance=PROVENANCE
        )


def _read_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        {"ranged": r.ranged, "reason": r.reason}  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "event", None) == "input.read"
    ]


@pytest.mark.slow
def test_products_read_by_range_equal_the_download_paths_byte_for_byte(
    plane: Plane, chunked: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    contexts = _Contexts(plane, chunked, tmp_path)
    caplog.set_level(logging.INFO, logger="payload.jobs.image")
    by_range = ImageJob(contexts.ranged(tmp_path / "ranged-work"))
    ranged_products = run_job(by_range, tmp_path / "ranged-chunks", tmp_path / "ranged-out")
    assert _read_events(caplog) == [
        {
            "ranged": True,
            "reason": "visdata, flags and nsamples are stored in HDF5 chunks at most 8 "
            "channels wide",
        }
    ]
    assert contexts.downloads == 0, "the ranged job downloaded its input"
    (source,) = contexts.sources
    # Every channel once, plus opening and the header arrays each of the 4 chunks re-reads
    # (ant_1, ant_2, uvw: 0.4 MB): measured 1.30x the file. A download is 1x, on disk.
    assert 0.5 * contexts.size < source.bytes_fetched < 1.5 * contexts.size

    downloaded = ImageJob(contexts.download(tmp_path / "download-work"))
    download_products = run_job(downloaded, tmp_path / "dl-chunks", tmp_path / "dl-out")
    assert contexts.downloads == 1
    assert [p.name for p in ranged_products] == [p.name for p in download_products]
    for ours, theirs in zip(ranged_products, download_products, strict=True):
        assert ours.read_bytes() == theirs.read_bytes(), f"{ours.name} differs"


def test_one_chunk_fetches_its_share_of_the_file_not_the_file(
    plane: Plane, chunked: Path, tmp_path: Path
) -> None:
    contexts = _Contexts(plane, chunked, tmp_path)
    source, shown = contexts._ranged(contexts.uri)
    info = open_observation_by_range(source, shown)
    opened = source.bytes_fetched
    read_chunk(info, range(8, 16), ("XX", "YY"))
    one_chunk = source.bytes_fetched - opened
    share = _stored_bytes(chunked, 8)
    # Measured: one chunk fetched 2.62 MB, 0.99x its channels' stored bytes (its data
    # chunks, the header arrays it re-reads, less the row padding of the last HDF5 chunk
    # counted in the share); the file is 11.5 MB, 4.4x. A whole download would be 4.4x.
    assert one_chunk < 2 * share + 1.5 * 2**20, (one_chunk, share, contexts.size)
    assert one_chunk < 0.5 * contexts.size
    # Opening reads the header and the flag scan's first slab, not the channels' data
    # (measured 4.5 MB here: two 2 MiB metadata blocks are a large part of a small file).
    assert opened < 0.5 * contexts.size, (opened, contexts.size)
    assert source.cached_bytes() <= source.block_size * source.max_blocks


def test_a_contiguous_file_is_downloaded_whole_and_the_log_says_why(
    plane: Plane, contiguous: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    contexts = _Contexts(plane, contiguous, tmp_path)
    caplog.set_level(logging.INFO, logger="payload.jobs.image")
    job = ImageJob(contexts.ranged(tmp_path / "work"))
    assert job.info.ranged is None
    assert contexts.downloads == 1
    assert _read_events(caplog) == [
        {
            "ranged": False,
            "reason": "Data/visdata is stored contiguous (all channels in every row)",
        }
    ]
    (source,) = contexts.sources
    assert source.bytes_fetched < 3 * source.block_size  # the header, to look at its layout


def test_a_replaced_input_is_refused_on_the_next_range(
    plane: Plane, chunked: Path, tmp_path: Path
) -> None:
    contexts = _Contexts(plane, chunked, tmp_path)
    source, shown = contexts._ranged(contexts.uri)
    info = open_observation_by_range(source, shown)
    read_chunk(info, range(0, 8), ("XX",))
    plane.s3.put_object(Bucket=RAW, Key=contexts.key, Body=b"other bytes")
    with pytest.raises(InvalidInputError) as caught:
        read_chunk(info, range(8, 16), ("XX",))
    assert str(caught.value) == (
        f"{contexts.uri} was replaced while this attempt read it (its ETag is no longer "
        f"{contexts.etag}); submit it again under a new run id"
    )


@pytest.mark.slow
def test_worker_reading_by_range_fails_invalid_when_the_input_is_replaced_between_chunks(
    plane: Plane, chunked: Path, tmp_path: Path
) -> None:
    key, uri, head = _store_input(plane, chunked)
    message = JobMessage.create(run_id=RUN, obs_id="obs-r", input=uri, kind="image", params=PARAMS)
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())
    marker = tmp_path / "paused"
    # Pause after the first chunk is computed (its successor is prefetched by then; the
    # third chunk is read only after the pause), replace the input, let the worker go on.
    worker = plane.start_worker(
        "--max-jobs", "1", env={"SPOTCUBE_FAULTPOINT": f"chunk-computed:120:{marker}:1"}
    )
    wait_for(marker.exists, 180, "the first chunk")
    plane.s3.put_object(Bucket=RAW, Key=key, Body=b"another observation")
    marker.unlink()
    assert worker.wait(timeout=180) == 0, plane.log_of()
    assert plane.has_event("w", "input.read", ranged=True), plane.log_of()
    layout = ObsLayout(RUN, "obs-r")
    assert plane.get(layout.done) is None
    failed = json.loads(plane.get(layout.failed) or b"{}")
    assert failed["error_class"] == "InvalidInputError", failed
    assert failed["message"] == (
        f"{uri} was replaced while this attempt read it (its ETag is no longer "
        f"{head['ETag']}); submit it again under a new run id"
    )


def test_rechunk_makes_a_contiguous_file_readable_by_range_with_the_same_values(
    contiguous: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from payload import rechunk
    from payload.inputlayout import frequency_chunking_problem
    from payload.reading import read_info

    # Blocks of a few rows, so that the copy takes many steps as it does for a large file.
    monkeypatch.setattr(rechunk, "COPY_BLOCK_BYTES", 64 * 1024)
    out = rechunk.rechunk(contiguous, tmp_path / "rechunked.uvh5", chunk_channels=8)
    with h5py.File(contiguous, "r") as before, h5py.File(out, "r") as after:
        assert frequency_chunking_problem(before, 8) is not None
        assert frequency_chunking_problem(after, 8) is None
        names: list[str] = []
        before.visit(names.append)
        after_names: list[str] = []
        after.visit(after_names.append)
        assert sorted(names) == sorted(after_names)
        for name in names:
            if isinstance(before[name], h5py.Dataset):
                old, new = before[name], after[name]
                assert (old.dtype, old.compression) == (new.dtype, new.compression), name
                np.testing.assert_array_equal(old[()], new[()], err_msg=name)
    for path in (contiguous, out):
        assert read_info(path).direct
    a, b = read_info(contiguous), read_info(out)
    np.testing.assert_array_equal(
        read_chunk(a, range(8, 16), ("I",)).vis["I"], read_chunk(b, range(8, 16), ("I",)).vis["I"]
    )


def test_submit_hints_at_rechunking_a_large_contiguous_uvh5_only(
    contiguous: Path, chunked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spotcube import submit

    other = tmp_path / "obs.uvfits"
    other.write_bytes(b"SIMPLE  =" + b" " * 4000)
    planned = [("a", str(contiguous)), ("b", str(chunked)), ("c", str(other)), ("d", "s3://x/y")]
    assert submit.layout_hints(planned, kind="image", params={}) == []  # all below 2 GB
    monkeypatch.setattr(submit, "RANGED_HINT_BYTES", 1)
    (hint,) = submit.layout_hints(planned, kind="image", params={})
    assert hint.startswith(f"hint: {contiguous} (")
    assert "Data/visdata is stored contiguous" in hint
    assert "payload rechunk" in hint
    assert "\n" not in hint
    # The job's chunks decide: 4-channel chunks are narrower than the file's 8-channel ones.
    assert len(submit.layout_hints(planned, kind="image", params={"chunk_channels": 4})) == 2
    assert submit.layout_hints(planned, kind="command", params={}) == []


def test_the_fixed_beams_frame_reads_the_same_from_a_ranged_file(
    plane: Plane, chunked: Path, tmp_path: Path
) -> None:
    """pyuvdata's reader wants a path; a file read by range goes through its metadata class."""
    from payload.beamframe import frame_from_uvh5

    contexts = _Contexts(plane, chunked, tmp_path)
    source, _shown = contexts._ranged(contexts.uri)
    by_path = frame_from_uvh5(chunked, ra_deg=10.0, dec_deg=-45.0)
    by_range = frame_from_uvh5(source.open(), ra_deg=10.0, dec_deg=-45.0)
    assert by_range == by_path
    assert source.bytes_fetched < 0.5 * contexts.size


def test_a_synthetic_file_written_in_blocks_is_the_one_piece_files_and_readable_by_range(
    tmp_path: Path,
) -> None:
    """The full-observation benchmark writes its input a block of channels at a time (the
    whole is ~24 GiB in memory): pyuvdata reads it as the one-piece file, and it is stored
    in chunks a worker reads by range."""
    import tracemalloc

    import numpy as np
    from pyuvdata import UVData

    from payload.inputlayout import frequency_chunking_problem
    from payload.synth import write_synthetic_observation

    shape = {"n_tiles": 32, "n_freqs": 48, "n_times": 8}
    whole, blocks = tmp_path / "whole.uvh5", tmp_path / "blocks.uvh5"
    peaks = []
    for path, extra in ((whole, {}), (blocks, {"block_channels": 8})):
        tracemalloc.start()
        write_synthetic_observation(path, **shape, **extra)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # One block of 8 channels in memory, not 48: less than the whole data array alone
    # (measured: 0.57 of it, and 4.5x it with the whole arrays allocated).
    n_blts = 32 * 33 // 2 * 8
    data_bytes = n_blts * 48 * 4 * np.dtype(np.complex64).itemsize
    assert peaks[1] < data_bytes < peaks[0], (peaks, data_bytes)
    a, b = UVData.from_file(str(whole)), UVData.from_file(str(blocks))
    for name in ("data_array", "flag_array", "nsample_array", "uvw_array", "freq_array"):
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    assert b.phase_center_catalog == a.phase_center_catalog
    with h5py.File(blocks, "r") as handle:
        assert frequency_chunking_problem(handle, 8) is None
        assert handle["Data/visdata"].dtype == np.complex64  # as the one-piece file stores it
    with h5py.File(whole, "r") as handle:
        assert frequency_chunking_problem(handle, 8) is not None
