"""A product written straight into the store: a binary stream that is a multipart upload.

A worker's disk must not hold an observation's image cubes (gigabytes at 768 channels) just
to upload them once: combine writes each cube into an :class:`UploadStream`, which sends
every ``part_size`` bytes as a part while the next are written, and hashes the bytes in
order for the ``DONE`` record (the same SHA-256 a file upload would give). Parts are
checked as :meth:`payload.store.ObjectStore.put_file` checks them (CRC32 per part, the
composite checksum of the whole); at most ``concurrency`` parts are in memory.

All or nothing: :meth:`UploadStream.close` completes the upload and returns what was
stored; :meth:`UploadStream.abort`, or leaving the ``with`` block by an exception, aborts it,
so no object appears under the key (S3 makes a multipart object visible only on complete).
A stream of at most one part is sent as one PUT instead, as ``put_file`` would.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from payload.store import ObjectStore, StoredObject, UploadedPart


class UploadStream:
    """Bytes written here become the object ``key`` when the stream is closed."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        self.store = store
        self.key = key
        self.size = 0
        self._sha = hashlib.sha256()
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._futures: list[Future[UploadedPart]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(store.concurrency)
        self._closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; full parts leave as soon as they are complete."""
        if self._closed:
            raise ValueError(f"{self.key}: write after close")
        view = memoryview(data).cast("B")
        self._sha.update(view)
        self.size += len(view)
        self._buffer += view
        part_size = self.store.part_size
        # Strictly more than a part: a stream of exactly one part still goes in one PUT.
        while len(self._buffer) > part_size:
            self._send(bytes(self._buffer[:part_size]))
            del self._buffer[:part_size]
        return len(view)

    def _send(self, data: bytes) -> None:
        store = self.store
        if self._upload_id is None:
            self._upload_id = store.create_multipart(self.key)
            self._pool = ThreadPoolExecutor(store.concurrency, thread_name_prefix="part")
        assert self._pool is not None
        for future in self._futures:  # a part that failed beyond its retries ends the stream
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        number = len(self._futures) + 1
        upload_id = self._upload_id
        self._slots.acquire()  # at most `concurrency` parts in memory

        def send() -> UploadedPart:
            try:
                return store.upload_part(self.key, upload_id, number, data)
            finally:
                self._slots.release()

        self._futures.append(self._pool.submit(send))

    def close(self) -> StoredObject:
        """Send what is left, complete the upload and return what S3 holds."""
        if self._closed:
            raise ValueError(f"{self.key}: closed twice")
        self._closed = True
        try:
            if self._upload_id is None:  # one part or less: one PUT
                data = bytes(self._buffer)
                etag = self.store.put_conditional(self.key, data, sha=self._sha.copy())
                assert etag is not None  # no precondition was asked for
                return StoredObject(self.key, self.size, self._sha.hexdigest(), etag)
            if self._buffer:
                self._send(bytes(self._buffer))
                self._buffer.clear()
            parts = [future.result() for future in self._futures]
            etag = self.store.complete_multipart(self.key, self._upload_id, parts)
            return StoredObject(self.key, self.size, self._sha.hexdigest(), etag)
        except BaseException:
            self._abort()
            raise
        finally:
            self._shutdown()

    def abort(self) -> None:
        """Give the upload up: nothing is stored under the key."""
        if not self._closed:
            self._closed = True
            self._abort()
            self._shutdown()

    def _abort(self) -> None:
        if self._upload_id is not None:
            # Parts still on the wire would land after the abort (S3: "you may need to
            # abort again"): let them finish or fail first.
            self._shutdown()
            self.store.abort_multipart(self.key, self._upload_id)

    def _shutdown(self) -> None:
        self._buffer.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> UploadStream:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.abort()
