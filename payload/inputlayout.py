"""Whether a uvh5 input's layout lets a worker read it by range, one chunk's channels at a time.

A job chunk reads every baseline-time of some channels. A worker reads those bytes of the
stored file by range (:mod:`payload.ranged`) only when ``visdata``, ``flags`` and
``nsamples`` are stored in HDF5 chunks at most the job's chunk wide in frequency; a dataset
stored contiguous interleaves every channel in every row, so its chunks would each touch the
whole file, and the worker downloads it instead. ``spotcube submit`` asks the same question
of a local file to hint at ``python -m payload rechunk`` (:mod:`payload.rechunk`).
"""

from __future__ import annotations

import h5py

# The datasets a chunk reads, by frequency; the rest of a uvh5 file is header arrays.
CHUNK_DATASETS = ("Data/visdata", "Data/flags", "Data/nsamples")
# The HDF5 superblock's signature, at byte 0 of every file pyuvdata or h5py writes.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def frequency_chunking_problem(handle: h5py.File, chunk_channels: int) -> str | None:
    """Why a chunk of ``chunk_channels`` channels would read more than its channels' share
    of ``handle``'s data, or ``None`` if it would not."""
    for name in CHUNK_DATASETS:
        dataset = handle.get(name)
        if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 3:
            return f"{name} is not a (Nblts, Nfreqs, Npols) dataset"
        if dataset.chunks is None:
            return f"{name} is stored contiguous (all channels in every row)"
        width = int(dataset.chunks[1])
        if width > chunk_channels:
            return (
                f"{name} is stored in HDF5 chunks {width} channels wide, wider than the "
                f"job's {chunk_channels}-channel chunks"
            )
    return None
