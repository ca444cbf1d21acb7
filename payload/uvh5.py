"""The common kind of uvh5 file, read with h5py alone.

Importing pyuvdata (numba, llvmlite, astropy.coordinates) costs about 1.8 s of every job
process, more than reading a chunk does. The files most jobs read need none of it: uvh5 as
pyuvdata 2.2 and later write it, with one sidereal phase centre and the current array shapes
(``visdata`` of shape (Nblts, Nfreqs, Npols), stored complex). For those, :func:`read_header`
and :func:`read_slab` return the arrays pyuvdata would, bit for bit (the tests compare
both paths on every format the payload reads). Anything else (drift scans that must be
phased, several phase centres, the old spectral-window axis, integer visibilities, HERA's
old ``Nbls`` quirk) gives ``None`` from :func:`read_header`, and the caller uses pyuvdata.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np
import numpy.typing as npt

from payload import resources
from payload.errors import InvalidInputError

_COMPLEX = (np.dtype(np.complex64), np.dtype(np.complex128))


class RangeReader(Protocol):
    """A stored file read by range (:class:`payload.ranged.RangedSource`)."""

    def open(self) -> io.RawIOBase: ...

    def take_failure(self) -> BaseException | None: ...


# A uvh5 file on this machine, or one read by range from the store.
H5Input = Path | RangeReader


def open_h5(where: H5Input) -> h5py.File:
    """``where`` opened read-only with h5py (a file object for a ranged input)."""
    return h5py.File(where if isinstance(where, Path) else where.open(), "r")


class FailureHolder(Protocol):
    """What read by range for h5py and kept the error its reads met (a ranged input, the
    stored chunks of :mod:`payload.storedchunks`)."""

    def take_failure(self) -> BaseException | None: ...


def reader_failure(where: Path | FailureHolder, exc: BaseException) -> BaseException:
    """What to raise for ``exc`` from h5py: the ranged reader's own error (an input replaced
    mid-read, a store still failing after retries) if it caused it, else ``exc``.

    h5py passes an exception raised in a file object's methods on as it was, or (other
    versions) as its own ``OSError``; readers that catch either to say "unreadable" would
    hide the reader's own, truer error. Both lose their tracebacks then: they hold h5py's
    frames around the failed read (its buffer among them), and such an exception kept alive
    until the interpreter exits (a caller's record of it, a test's) crashes it with a
    segmentation fault (h5py 3.16).
    """
    failure = None if isinstance(where, Path) else where.take_failure()
    if failure is None:
        return exc
    exc.__traceback__ = None  # also the context of whatever the caller raises instead
    return failure.with_traceback(None)


@dataclass(frozen=True)
class Header:
    """The metadata an imaging job needs, as pyuvdata's UVData attributes hold it."""

    n_blts: int
    n_bls: int
    n_times: int
    freq_array: npt.NDArray[np.float64]
    channel_width: npt.NDArray[np.float64]
    polarization_array: npt.NDArray[np.int64]
    ant_1_array: npt.NDArray[np.int64]
    ant_2_array: npt.NDArray[np.int64]
    uvw_array: npt.NDArray[np.float64]
    phase_center: dict[str, Any]  # the single entry of pyuvdata's phase_center_catalog
    telescope_name: str


@dataclass(frozen=True)
class Slab:
    """Some channels and polarizations of every baseline-time, as pyuvdata's select gives."""

    freq_array: npt.NDArray[np.float64]
    ant_1_array: npt.NDArray[np.int64]
    ant_2_array: npt.NDArray[np.int64]
    uvw_array: npt.NDArray[np.float64]
    polarization_array: npt.NDArray[np.int64]
    data: npt.NDArray[np.complexfloating[Any, Any]]  # (Nblts, channels, pols)
    flags: npt.NDArray[np.bool_]
    nsamples: npt.NDArray[np.floating[Any]]


def _text(dataset: h5py.Dataset) -> str:
    return bytes(dataset[()]).decode("utf8")


def _catalog_entry(group: h5py.Group) -> dict[str, Any]:
    """One phase centre, decoded as pyuvdata decodes it (text, scalars, None)."""
    entry: dict[str, Any] = {}
    for key, dataset in group.items():
        if issubclass(dataset.dtype.type, np.bytes_):
            entry[key] = _text(dataset)
        elif dataset.shape is None:
            entry[key] = None
        else:
            entry[key] = dataset[()]
    return entry


def read_header(path: H5Input) -> Header | None:
    """The header of ``path`` if it is the common kind of uvh5 file, else ``None``.

    Never raises for an unreadable or unusual file: pyuvdata then reads it, and reports
    what is wrong with it in the payload's words. A header whose counts disagree with its
    own arrays (``Nfreqs`` = 10^9 over 16 frequencies) is neither, and is refused here:
    pyuvdata would size its arrays by the count.
    """
    try:
        with open_h5(path) as handle:
            _check_counts(handle)
            return _header(handle)
    except InvalidInputError:
        raise
    except (OSError, KeyError, ValueError, TypeError):
        return None


def _check_counts(handle: h5py.File) -> None:
    """The header's counts (Nfreqs, Npols, Nblts) equal the lengths of the arrays they count,
    and the header arrays fit in a quarter of the available memory (their shapes are known
    before they are read)."""
    header = handle["Header"]
    arrays = ("freq_array", "channel_width", "ant_1_array", "ant_2_array", "uvw_array")
    needed = 8 * sum(header[name].size for name in arrays if name in header)  # as float64/int64
    available = resources.available_memory()
    # The metadata must leave room for the job itself (a chunk's visibilities, the grids).
    if needed > resources.HEADER_SHARE * available:
        raise InvalidInputError(
            f"has header arrays ({int(header['freq_array'].size)} channels, "
            f"{int(header['ant_1_array'].shape[0])} baseline-times) that alone need "
            f"{resources.size_text(needed)} of memory, this machine has "
            f"{resources.size_text(available)} available"
        )
    counted = {
        "Nfreqs": ("freq_array", lambda a: a.size),
        "Npols": ("polarization_array", lambda a: a.size),
        "Nblts": ("ant_1_array", lambda a: a.shape[0]),
    }
    for count, (array, length) in counted.items():
        if count not in header or array not in header:
            continue
        stated, actual = int(header[count][()]), int(length(header[array]))
        if stated != actual:
            raise InvalidInputError(
                f"has an inconsistent header: {count} = {stated}, but {array} has {actual} entries"
            )


def _header(handle: h5py.File) -> Header | None:
    header, data = handle["Header"], handle["Data"]
    catalog = header.get("phase_center_catalog")
    if not isinstance(catalog, h5py.Group) or len(catalog) != 1:
        return None
    group = catalog[next(iter(catalog))]
    if not isinstance(group, h5py.Group):
        return None  # the pre-3.0 JSON form of the catalog
    entry = _catalog_entry(group)
    if entry.get("cat_type") != "sidereal" or entry.get("cat_times") is not None:
        return None
    visdata = data["visdata"]
    if visdata.ndim != 3 or visdata.dtype not in _COMPLEX:
        return None
    if int(header["Nspws"][()]) != 1:
        return None
    freq = np.asarray(header["freq_array"][()], dtype=np.float64)
    width = np.asarray(header["channel_width"][()], dtype=np.float64)
    if freq.ndim != 1 or width.shape != freq.shape:
        return None
    n_blts, n_bls, n_times = (int(header[key][()]) for key in ("Nblts", "Nbls", "Ntimes"))
    name = _text(header["telescope_name"])
    if name == "HERA" and n_bls == n_blts:
        return None  # old HERA files state Nblts as Nbls; pyuvdata corrects that
    pols = np.asarray(header["polarization_array"][()])
    ant_1, ant_2 = (np.asarray(header[key][()]) for key in ("ant_1_array", "ant_2_array"))
    uvw = np.asarray(header["uvw_array"][()], dtype=np.float64)
    shape = (n_blts, len(freq), len(pols))
    consistent = (
        visdata.shape == data["flags"].shape == data["nsamples"].shape == shape
        and ant_1.shape == ant_2.shape == (n_blts,)
        and uvw.shape == (n_blts, 3)
    )
    if not consistent:
        return None  # pyuvdata's checks say what is wrong
    return Header(
        n_blts=n_blts,
        n_bls=n_bls,
        n_times=n_times,
        freq_array=freq,
        channel_width=width,
        polarization_array=pols,
        ant_1_array=ant_1,
        ant_2_array=ant_2,
        uvw_array=uvw,
        phase_center=entry,
        telescope_name=name,
    )


def read_slab(
    path: H5Input, channels: range | npt.NDArray[np.intp], polarizations: npt.ArrayLike
) -> Slab:
    """Channels ``channels`` and the given polarization codes, in the file's order.

    ``channels`` is a range, or increasing file channel indices (a chunk of a file whose
    frequencies are not stored in increasing order, :mod:`payload.reading`). Reads one
    hyperslab per dataset: the channels of the polarizations asked for (pyuvdata chunks the
    datasets by polarization, so XX and YY of four polarizations is half the reading and
    decompressing). h5py's errors (a truncated file, a bad compression filter) reach the
    caller.
    """
    wanted = set(int(p) for p in np.asarray(polarizations).ravel())
    if isinstance(channels, range):
        chans: slice | list[int] = slice(channels.start, channels.stop)
    else:
        # h5py takes one increasing index list per selection (slower than a slice).
        chans = [int(c) for c in channels]
    with open_h5(path) as handle:
        header = handle["Header"]
        freq = np.asarray(header["freq_array"][()], dtype=np.float64).ravel()[chans]
        ant_1, ant_2 = (np.asarray(header[key][()]) for key in ("ant_1_array", "ant_2_array"))
        uvw = np.asarray(header["uvw_array"][()], dtype=np.float64)
        codes = np.asarray(header["polarization_array"][()])
        keep = [i for i, code in enumerate(codes) if int(code) in wanted]
        # The polarizations from the first to the last one asked for: a slice (h5py's index
        # lists are many times slower), then the ones in between dropped here.
        first, end = (keep[0], keep[-1] + 1) if keep else (0, 0)
        span = np.s_[:, chans, first:end]
        data = handle["Data/visdata"][span]
        flags = handle["Data/flags"][span]
        nsamples = handle["Data/nsamples"][span]
    if len(keep) < end - first:
        inside = [i - first for i in keep]
        data, flags, nsamples = data[..., inside], flags[..., inside], nsamples[..., inside]
    return Slab(
        freq_array=freq,
        ant_1_array=ant_1,
        ant_2_array=ant_2,
        uvw_array=uvw,
        polarization_array=codes[keep],
        data=data,
        flags=flags,
        nsamples=nsamples,
    )
