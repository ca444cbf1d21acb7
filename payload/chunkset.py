"""Where combine finds a job's chunks: files on this disk, or durable objects read by range.

A job's combine reads each chunk through a :class:`ChunkSet`: ``open`` gives what
``h5py.File`` opens (a path, or a file object reading the stored chunk by range), ``segment``
names a byte range of a chunk for the product writer (:mod:`payload.fitsio`) to copy, and
``name`` is what a message calls the chunk. :class:`LocalChunks` are files (the local CLI,
tests); the worker's are the chunk objects themselves (:mod:`payload.storedchunks`), so its
disk never holds more than the chunk being computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from payload.fitsio import FileSegment, RangeSegment


class ChunkSet(Protocol):
    """The durable chunks of one job, by chunk id."""

    def __contains__(self, chunk_id: object) -> bool: ...

    def name(self, chunk_id: str) -> str:
        """What a message calls the chunk (its path or URI)."""
        ...

    def open(self, chunk_id: str) -> Any:
        """Something ``h5py.File(..., "r")`` opens: a path or a binary file object."""
        ...

    def segment(self, chunk_id: str, offset: int, nbytes: int) -> FileSegment | RangeSegment:
        """``nbytes`` bytes at ``offset`` of the chunk, for a product writer to copy."""
        ...

    def take_failure(self) -> BaseException | None:
        """The error a read by range met, which h5py reported as its own ``OSError``."""
        ...


class LocalChunks:
    """Chunk files on this disk."""

    def __init__(self, paths: Mapping[str, Path]) -> None:
        self.paths = {cid: Path(path) for cid, path in paths.items()}

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self.paths

    def name(self, chunk_id: str) -> str:
        return str(self.paths[chunk_id])

    def open(self, chunk_id: str) -> Path:
        return self.paths[chunk_id]

    def segment(self, chunk_id: str, offset: int, nbytes: int) -> FileSegment:
        return FileSegment(self.paths[chunk_id], offset, nbytes)

    def take_failure(self) -> BaseException | None:
        return None
