"""A stored input read by byte range: a read-only, seekable file over one S3 object.

h5py opens a Python file object directly (``h5py.File(fileobj, "r")``, its "fileobj"
driver), so a uvh5 file whose datasets are chunked along frequency can be read one
frequency chunk at a time without a local copy (:mod:`payload.reading`). Every request is a
``Range`` GET pinned with ``If-Match`` to the ETag the attempt identified the input by: a
replaced object answers 412, which is the same one-line ``InvalidInputError`` the download
path gives (:meth:`payload.store.ObjectStore.download_file`). Requests go through the
store's retry policy (:func:`payload.store.with_retries`); what still fails after it is
``TransientError``.

Memory: HDF5 reads its metadata (superblock, object headers, chunk B-tree nodes) in many
reads of a few hundred bytes to a few kB; those go through an LRU cache of whole blocks
(``block_size`` x ``max_blocks``, 2 MiB x 16 = 32 MiB by default, the bound on what this
module holds). Reads at least ``direct_bytes`` long (HDF5 data chunks, header arrays) are
fetched exactly and not cached: they are read once, and caching them would evict the
metadata and fetch neighbouring chunks of other channels for nothing.

Threads: h5py calls a file object's methods while holding its global lock, and one object's
position must not be moved by two ``h5py.File`` at once (the image job reads the next chunk
on a thread while this one is gridded). So :meth:`RangedSource.open` hands every opener a
new :class:`RangedFile` with its own position; the views share the source's cache under a
lock. An error raised inside h5py's callbacks reaches the caller as it was (h5py 3.16) or
as h5py's own ``OSError``, and callers that turn failures into their own messages (a header
that cannot be read, an unreadable input) would hide it: the source keeps the original for
the reader to raise instead (:meth:`RangedSource.take_failure`).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from typing import Any

from botocore.exceptions import ClientError

from payload.errors import InvalidInputError
from payload.store import ObjectStore, error_code, with_retries

MIB = 1024 * 1024
DEFAULT_BLOCK = 2 * MIB
DEFAULT_BLOCKS = 16
DEFAULT_DIRECT = 256 * 1024


class RangedSource:
    """One S3 object, pinned to an ETag, read in ranges through a bounded block cache.

    Parameters
    ----------
    store : ObjectStore
        The object's bucket (its client and retry policy).
    key, etag, size : str, str, int
        The object as the attempt identified it (HEAD).
    block_size, max_blocks : int, optional
        The metadata cache: at most ``max_blocks`` blocks of ``block_size`` bytes.
    direct_bytes : int, optional
        Reads at least this long bypass the cache.
    """

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        *,
        etag: str,
        size: int,
        block_size: int = DEFAULT_BLOCK,
        max_blocks: int = DEFAULT_BLOCKS,
        direct_bytes: int = DEFAULT_DIRECT,
    ) -> None:
        self.store = store
        self.key = key
        self.etag = etag
        self.size = size
        self.block_size = block_size
        self.max_blocks = max_blocks
        self.direct_bytes = direct_bytes
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes_fetched = 0  # from S3, for logs and tests
        self.requests = 0
        self.failure: BaseException | None = None  # the last fetch error (see module doc)

    @property
    def uri(self) -> str:
        return f"s3://{self.store.bucket}/{self.key}"

    def open(self) -> RangedFile:
        """A new file view (its own position) for one ``h5py.File``."""
        return RangedFile(self)

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end of the object)."""
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        if end - offset >= self.direct_bytes:
            return self._fetch(offset, end)
        parts = []
        first, last = offset // self.block_size, (end - 1) // self.block_size
        for index in range(first, last + 1):
            block = self._block(index)
            start = index * self.block_size
            parts.append(block[max(offset - start, 0) : end - start])
        return b"".join(parts)

    def _block(self, index: int) -> bytes:
        with self._lock:
            block = self._blocks.get(index)
            if block is not None:
                self._blocks.move_to_end(index)
                return block
        start = index * self.block_size
        block = self._fetch(start, min(start + self.block_size, self.size))
        with self._lock:
            self._blocks[index] = block
            while len(self._blocks) > self.max_blocks:
                self._blocks.popitem(last=False)
        return block

    def _fetch(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` by one Range GET, only if the object still has our ETag."""
        client, bucket, key = self.store.client, self.store.bucket, self.key

        def call() -> bytes:
            response = client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", IfMatch=self.etag
            )
            data: bytes = response["Body"].read()
            if len(data) != end - start:  # a response cut short: the connection's fault
                raise ConnectionError(f"{self.uri}: {len(data)} of {end - start} bytes")
            return data

        try:
            data = with_retries(
                call, f"GET {key} bytes {start}-{end - 1}", policy=self.store.policy
            )
        except ClientError as exc:
            failure: BaseException = exc
            if error_code(exc) in {"PreconditionFailed", "412"}:
                failure = InvalidInputError(
                    f"{self.uri} was replaced while this attempt read it (its ETag is no "
                    f"longer {self.etag}); submit it again under a new run id"
                )
            self.failure = failure
            raise failure from None
        except BaseException as exc:
            self.failure = exc
            raise
        with self._lock:
            self.bytes_fetched += len(data)
            self.requests += 1
        return data

    def take_failure(self) -> BaseException | None:
        """The last fetch error, once (h5py raised its own OSError in its place)."""
        failure, self.failure = self.failure, None
        return failure

    def cached_bytes(self) -> int:
        with self._lock:
            return sum(len(block) for block in self._blocks.values())


class RangedFile(io.RawIOBase):
    """A read-only, seekable binary file over a :class:`RangedSource` (one reader at a time)."""

    def __init__(self, source: RangedSource) -> None:
        super().__init__()
        self.source = source
        self.name = source.uri  # what messages about this file call it
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.source.size}[whence]
        if base + offset < 0:
            raise OSError(f"{self.source.uri}: seek to {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.source.read(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)
