"""Where combine puts a job's products: a local directory, or the store directly.

Products appear all or nothing. A job writes each product either as a stream (``stream``:
the image cubes, gigabytes that should never need a local copy) or as a file in
``staging`` that it then hands over (``add``: HDF5, PNG, JSON, which their libraries
write to paths). :class:`DirectoryProducts` renames everything into the output directory
at :meth:`finish`; the worker's sink (:mod:`payload.storedproducts`) uploads each product
under the attempt's private prefix as it is finished and lists them for ``DONE``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol


class ProductSink(Protocol):
    staging: Path  # a local directory for products written as files

    def stream(self, name: str) -> AbstractContextManager[BinaryIO]:
        """The product ``name`` as a binary stream, kept when the block ends without error."""
        ...

    def add(self, name: str) -> None:
        """``staging / name`` is finished: take it."""
        ...


class DirectoryProducts:
    """Products written into ``out_dir``, through a staging directory renamed at the end."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(dir=self.out_dir, prefix=".products-"))
        self._names: list[str] = []

    @contextmanager
    def stream(self, name: str) -> Iterator[BinaryIO]:
        with open(self.staging / name, "wb") as out:
            yield out
        self._names.append(name)

    def add(self, name: str) -> None:
        self._names.append(name)

    def finish(self, order: tuple[str, ...]) -> list[Path]:
        """Move every product into place; return their paths in ``order``."""
        missing = set(order) - set(self._names)
        if missing:
            raise RuntimeError(f"products never written: {', '.join(sorted(missing))}")
        for name in order:
            os.replace(self.staging / name, self.out_dir / name)
        return [self.out_dir / name for name in order]

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
