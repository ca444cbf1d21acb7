"""Rewrite a uvh5 file with its visibilities stored in frequency chunks, in bounded memory.

A worker reads a stored uvh5 input by range, one job chunk's channels at a time, only when
``visdata``, ``flags`` and ``nsamples`` are stored in HDF5 chunks at most that many channels
wide (:mod:`payload.inputlayout`); otherwise it downloads the whole
file first. Most files are stored contiguous. pyuvdata can rewrite one
(``UVData.from_file(a).write_uvh5(b, chunks=(rows, 8, npols))``) but holds the whole
observation in memory (~20 GB for a full MWA Phase I observation); ``h5repack -l`` needs no
memory but cannot read the LZF-compressed flags and nsamples pyuvdata writes (it leaves
them out, with a warning only). This copies the file as it is, bar those three datasets,
which it streams in blocks of rows: the same values, dtypes, compression and attributes,
only the chunk shape changes, so every reader gives the same arrays from both files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import h5py

from payload.inputlayout import CHUNK_DATASETS

# Rows per HDF5 chunk are chosen so that one chunk of visdata is about this many bytes:
# large enough that a chunk is one efficient Range GET, small enough that the first slab of
# the flag scan (payload.reading) reads little more than the rows it looks at.
TARGET_CHUNK_BYTES = 2 * 1024 * 1024
# Rows copied per step: a row block of every channel, ~256 MiB of visdata at most.
COPY_BLOCK_BYTES = 256 * 1024 * 1024


def chunk_shape(shape: tuple[int, ...], itemsize: int, chunk_channels: int) -> tuple[int, ...]:
    """HDF5 chunk shape (rows, channels, polarizations) for a (Nblts, Nfreqs, Npols) dataset."""
    n_rows, n_chan, n_pols = shape
    width = min(chunk_channels, n_chan)
    rows = max(1, TARGET_CHUNK_BYTES // (width * n_pols * itemsize))
    return (min(rows, n_rows), width, n_pols)


def rechunk(source: Path, dest: Path, *, chunk_channels: int = 8) -> Path:
    """Write ``source`` to ``dest`` with its visibility datasets in frequency chunks.

    ``dest`` is written through a temporary name in its directory and renamed at the end,
    so a failure never leaves a half-written file under its name.
    """
    if chunk_channels < 1:
        raise ValueError(f"chunk_channels {chunk_channels}: give at least 1")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".uvh5.tmp")
    os.close(fd)
    try:
        with h5py.File(source, "r") as src, h5py.File(tmp, "w") as out:
            _copy_attrs(src, out)
            for name in src:
                if name != "Data":
                    src.copy(src[name], out, name=name)
            data = out.create_group("Data")
            _copy_attrs(src["Data"], data)
            for name, item in src["Data"].items():
                if f"Data/{name}" in CHUNK_DATASETS and item.ndim == 3:
                    _stream(item, data, name, chunk_channels)
                else:
                    src.copy(item, data, name=name)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def _copy_attrs(src: Any, dest: Any) -> None:
    for key, value in src.attrs.items():
        dest.attrs[key] = value


def _stream(dataset: h5py.Dataset, group: h5py.Group, name: str, chunk_channels: int) -> None:
    """Copy ``dataset`` into ``group`` under a frequency chunk shape, a block of rows at a time."""
    shape = dataset.shape
    out = group.create_dataset(
        name,
        shape=shape,
        dtype=dataset.dtype,
        chunks=chunk_shape(shape, dataset.dtype.itemsize, chunk_channels),
        compression=dataset.compression,
        compression_opts=dataset.compression_opts,
        shuffle=dataset.shuffle,
        fletcher32=dataset.fletcher32,
    )
    _copy_attrs(dataset, out)
    row_bytes = max(1, shape[1] * shape[2] * dataset.dtype.itemsize)
    rows = out.chunks[0] * max(1, COPY_BLOCK_BYTES // (row_bytes * out.chunks[0]))
    for start in range(0, shape[0], rows):
        block = slice(start, min(start + rows, shape[0]))
        out[block] = dataset[block]
