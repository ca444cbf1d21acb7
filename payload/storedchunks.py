"""A job's durable chunks read where they are stored, by range, for combine.

Combine needs every chunk, but not on disk at once: the image cubes it writes are
concatenations of byte ranges of the chunks, and the rest of a chunk (weights, uv planes)
is small. Each chunk object is read through a :class:`payload.ranged.RangedSource` pinned
to the ETag its upload was given (the manifest's ``etag``): an object rewritten with other
bytes since answers 412, a one-line ``InvalidInputError``, as a download whose sha256 did
not match the manifest's would. The metadata cache per chunk is small (HDF5 metadata of a
chunk file is a few hundred kB); the image slabs are fetched exactly, never cached.

Every chunk record has an ETag: the manifests of payloads that wrote none are of other code,
which :func:`payload.checkpoint.load_manifest` refuses before any chunk is read.
"""

from __future__ import annotations

from collections.abc import Mapping

from payload.fitsio import RangeSegment
from payload.ranged import RangedFile, RangedSource
from payload.records import ChunkRecord
from payload.store import ObjectStore

METADATA_BLOCK = 256 * 1024
METADATA_BLOCKS = 4  # 1 MiB of cached metadata per chunk at most


class StoredChunks:
    """The chunks a manifest lists, read from the store."""

    def __init__(self, store: ObjectStore, records: Mapping[str, ChunkRecord]) -> None:
        self.store = store
        self.records = dict(records)
        self._sources: dict[str, RangedSource] = {}

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self.records

    def name(self, chunk_id: str) -> str:
        return f"s3://{self.store.bucket}/{self.records[chunk_id].key}"

    def _source(self, chunk_id: str) -> RangedSource:
        record = self.records[chunk_id]
        assert record.etag, f"chunk {chunk_id}: a record of this code has its upload's ETag"
        source = self._sources.get(chunk_id)
        if source is None:
            source = self._sources[chunk_id] = RangedSource(
                self.store,
                record.key,
                etag=record.etag,
                size=record.size,
                block_size=METADATA_BLOCK,
                max_blocks=METADATA_BLOCKS,
            )
        return source

    def open(self, chunk_id: str) -> RangedFile:
        return self._source(chunk_id).open()

    def segment(self, chunk_id: str, offset: int, nbytes: int) -> RangeSegment:
        return RangeSegment(self._source(chunk_id).read, offset, nbytes)

    def take_failure(self) -> BaseException | None:
        """The first fetch error a chunk's reads met (h5py reports its own OSError instead)."""
        for source in self._sources.values():
            failure = source.take_failure()
            if failure is not None:
                return failure
        return None

    def bytes_fetched(self) -> int:
        return sum(source.bytes_fetched for source in self._sources.values())
