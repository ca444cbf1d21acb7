"""The worker's product sink: each product goes under the attempt's private prefix as soon
as it is finished, and is listed for ``DONE`` (:meth:`payload.attempt.JobAttempt.commit_done`).

Streams (the image cubes) are multipart uploads written as combine makes them
(:class:`payload.upload.UploadStream`), so they never exist on the worker's disk; files in
``staging`` are uploaded when handed over and deleted at once. Nothing here is read by
anyone before ``DONE`` lists it; :meth:`StoredProducts.discard` deletes what was uploaded
when combine fails, and an unfinished stream is aborted (no object appears).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, cast

from payload.records import ProductEntry
from payload.store import ObjectStore, StoredObject, faultpoint
from payload.upload import UploadStream

log = logging.getLogger(__name__)


def delete_products(store: ObjectStore, listing: Mapping[str, ProductEntry]) -> None:
    """Delete uploaded, unlisted products, best effort: nothing reads a product ``DONE`` does
    not list, and the attempt whose ``DONE`` stands sweeps what is left."""
    for entry in listing.values():
        try:
            store.delete(entry.key)
        except Exception as exc:
            log.warning("could not delete %s: %s", entry.key, exc)


class StoredProducts:
    """Products uploaded to ``key_of(name)`` as they are finished.

    Used as a context manager: leaving by an exception deletes what was uploaded; either
    way the staging directory goes.
    """

    def __init__(self, store: ObjectStore, key_of: Callable[[str], str], workdir: Path) -> None:
        self.store = store
        self.key_of = key_of
        workdir.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(dir=workdir, prefix=".products-"))
        self.listing: dict[str, ProductEntry] = {}

    @contextmanager
    def stream(self, name: str) -> Iterator[BinaryIO]:
        with UploadStream(self.store, self.key_of(name)) as upload:
            yield cast(BinaryIO, upload)
            self._record(name, upload.close())

    def add(self, name: str) -> None:
        """Upload ``staging / name`` and delete it."""
        self.put(name, self.staging / name)
        (self.staging / name).unlink()

    def put(self, name: str, path: Path) -> None:
        """Upload the finished file ``path`` as the product ``name``."""
        self._record(name, self.store.put_file(self.key_of(name), path))

    def _record(self, name: str, stored: StoredObject) -> None:
        self.listing[name] = ProductEntry(key=stored.key, size=stored.size, sha256=stored.sha256)
        faultpoint("product-uploaded")

    def discard(self) -> None:
        """Delete what was uploaded (best effort: nothing reads an unlisted product)."""
        shutil.rmtree(self.staging, ignore_errors=True)
        delete_products(self.store, self.listing)
        self.listing.clear()

    def __enter__(self) -> StoredProducts:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.discard()
        shutil.rmtree(self.staging, ignore_errors=True)
