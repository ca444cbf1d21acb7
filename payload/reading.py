"""Read interferometer files, one frequency chunk at a time.

uvh5 files are read directly with partial reads, which cost only the chunk's share of the
file: with h5py alone when they are the common kind (:mod:`payload.uvh5`; no pyuvdata
import, ~1.8 s of every job process), with pyuvdata's ``freq_chans=`` otherwise. Every
other format pyuvdata reads (uvfits, Measurement Sets, MWA raw correlator files given as a
directory of metafits + gpubox files, Miriad) is read once, converted to a uvh5 file in the
job's cache directory, and then read like uvh5: "read once and split", with a cache that
later chunks in the same process reuse.

Anything wrong with the input becomes an :class:`~payload.errors.InvalidInputError` whose
message starts with the file name and says what is wrong: missing, empty, truncated, not a
regular file or directory, not a format pyuvdata knows, no XX/YY data, no
cross-correlations, several phase centres, values that break the rule for values
(:mod:`payload.validation`), or every visibility flagged. Whatever else a reader raises
while an input is opened or read is classified at this boundary
(:func:`payload.classify.input_failure`): the machine's errors are transient, the rest
invalid.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import numpy.typing as npt

from payload import resources, uvh5, validation
from payload.classify import input_failure
from payload.errors import InvalidInputError, PayloadError
from payload.inputcheck import check_input_path
from payload.inputlayout import HDF5_SIGNATURE, frequency_chunking_problem
from payload.mspointing import delays_keyword, mwa_ms_delays
from payload.uvh5 import H5Input, Header, RangeReader, Slab
from payload.validation import FlagCounts

if TYPE_CHECKING:
    from pyuvdata import UVData


def _numba_caching(factory: Callable[..., Any]) -> Callable[..., Any]:
    """``factory`` (``numba.njit`` or ``numba.vectorize``) with ``cache=True`` by default.

    Falls back to no cache where numba finds no writable cache directory, which is what
    pyuvdata itself would have done.
    """

    def configured(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and callable(args[0]) and not kwargs:  # bare ``@numba.njit``
            return configured()(args[0])

        def decorate(func: Callable[..., Any]) -> Any:
            try:
                return factory(*args, **{"cache": True, **kwargs})(func)
            except RuntimeError:
                return factory(*args, **kwargs)(func)

        return decorate

    return configured


def _import_pyuvdata() -> None:
    """Import pyuvdata with its numba kernels cached on disk.

    pyuvdata compiles its baseline-number kernels (``pyuvdata.utils.bls_numba``) without
    numba's on-disk cache: an eagerly typed ``vectorize`` at import and an ``njit`` on the
    first read, about 2 s of LLVM work in every process, i.e. in every job and chunk
    process. Those decorators run only while pyuvdata is imported, so for that moment
    ``numba.njit``/``numba.vectorize`` default to ``cache=True``; later processes load the
    machine code from numba's cache (keyed by source file and CPU, so always current).
    The kernels are integer baseline-number arithmetic: caching changes no result.
    """
    import numba

    saved = numba.njit, numba.vectorize
    numba.njit, numba.vectorize = _numba_caching(numba.njit), _numba_caching(numba.vectorize)
    try:
        import pyuvdata  # noqa: F401
    finally:
        numba.njit, numba.vectorize = saved


@functools.cache
def _uvdata_class() -> type[UVData]:
    """pyuvdata's UVData, imported on first use (see :func:`_import_pyuvdata`)."""
    from payload.sites import install_offline_sites  # astropy.coordinates: only for pyuvdata

    install_offline_sites()
    _import_pyuvdata()
    from pyuvdata import UVData

    return UVData


def __getattr__(name: str) -> Any:
    # ``from payload.reading import UVData`` keeps working, and imports pyuvdata only then.
    if name == "UVData":
        return _uvdata_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


C_M_S = 299_792_458.0
XX, YY = -5, -6
POL_CODES = {"XX": XX, "YY": YY}
# Flag scan slabs start small and double: usable data is found in the first slab (a few
# MB read), while a fully flagged file still costs one pass in large reads.
_FLAG_SCAN_FIRST_ROWS = 1_024
_FLAG_SCAN_MAX_ROWS = 65_536
# Memory of one scan slab at most (visibilities, flags, nsamples and the weights made from
# them: ~32 bytes per cell), so a file of many channels is scanned in channel blocks too.
_FLAG_SCAN_BYTES = 256 * 1024**2
_SCAN_CELL_BYTES = 32


@dataclass(frozen=True)
class ObservationInfo:
    """Metadata of one observation (no visibilities)."""

    path: Path  # the uvh5 file that is read (the input, or its cached conversion)
    source: Path  # the file the user gave
    freq_hz: npt.NDArray[np.float64]
    channel_width_hz: float
    n_baselines: int
    n_times: int
    phase_center_ra_deg: float
    phase_center_dec_deg: float
    phase_center_frame: str
    projected: bool
    max_uv_m: float  # longest projected cross-correlation baseline (metres)
    telescope: str
    direct: bool = False  # chunks are read with h5py alone (payload.uvh5), not pyuvdata
    # The file's channel index of each channel of ``freq_hz`` (which is in increasing
    # frequency): a file may store its channels descending or in any order, and a chunk is a
    # range of frequencies, not of storage positions. ``None``: stored increasing.
    channel_order: npt.NDArray[np.intp] | None = None
    # For each baseline-time row, the row it repeats (same antennas, same time), or -1.
    # ``None``: no row repeats another. See :func:`_drop_repeated_rows`.
    repeats: npt.NDArray[np.intp] | None = None
    # The stored input read by range (payload.ranged) instead of ``path``, which then names
    # the input as a download would have placed it (error messages) but does not exist.
    ranged: RangeReader | None = None

    @property
    def n_freqs(self) -> int:
        return len(self.freq_hz)

    @property
    def h5_input(self) -> H5Input:
        """What h5py reads: the local file, or the stored one by range."""
        return self.ranged if self.ranged is not None else self.path

    def open_h5(self) -> h5py.File:
        return uvh5.open_h5(self.h5_input)


@dataclass(frozen=True)
class VisChunk:
    """Cross-correlation visibilities of some channels, ready to grid.

    ``vis[pol]`` and ``weights[pol]`` have shape (n_rows, n_channels); a weight is the
    visibility's nsamples, or 0 where it is flagged. ``I`` is pseudo-Stokes (XX + YY) / 2,
    weighted by the smaller nsamples of the two and flagged where either is.
    """

    uvw_m: npt.NDArray[np.float64]
    freq_hz: npt.NDArray[np.float64]
    vis: dict[str, npt.NDArray[np.complex128]]
    weights: dict[str, npt.NDArray[np.float64]]
    # What the rule for values flagged in this chunk.
    flagged: FlagCounts = field(default_factory=FlagCounts)


def _fail(path: Path, problem: str) -> InvalidInputError:
    return InvalidInputError(f"{path}: {problem}")


def _is_uvh5(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as handle:
            return "Header" in handle and "Data" in handle
    except OSError:
        return False


def _pyuvdata_target(path: Path) -> str | list[str]:
    """What to hand pyuvdata: a file, a Measurement Set, or MWA raw files in a directory."""
    if path.is_dir() and not (path / "table.dat").exists():
        files = sorted(
            str(p)
            for p in path.iterdir()
            if p.suffix in (".metafits", ".mwaf") or "gpubox" in p.name or p.name.endswith("_ch")
        )
        if not files:
            raise _fail(path, "directory is neither a Measurement Set nor MWA raw files")
        return files
    return str(path)


def prepare_input(path: str | Path, cache_dir: str | Path) -> Path:
    """Return a uvh5 file holding the observation at ``path``.

    uvh5 input is returned as it is. Other formats are read once and written to
    ``cache_dir`` (atomically, so a crash never leaves a half-written cache).
    """
    path = Path(path)
    check_input_path(path)
    if _is_uvh5(path):
        return path
    if path.is_file() and path.suffix in (".uvh5", ".h5", ".hdf5"):
        raise _fail(path, "is not a readable uvh5 file (truncated or corrupt HDF5)")
    cache = Path(cache_dir) / f"{_input_key(path)[:24]}.uvh5"
    if cache.exists():
        return cache
    resources.check_conversion(path, cache.parent)
    uvd = _read_uvdata(path)
    if path.is_dir() and (delays := mwa_ms_delays(path)) is not None:
        uvd.extra_keywords["delays"] = delays_keyword(delays)  # pyuvdata leaves them out
    cache.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".uvh5.tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            uvd.write_uvh5(tmp, clobber=True, run_check=False)
        os.replace(tmp, cache)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return cache


# Part of every conversion's cache key: a change in what a conversion writes (v2: an MWA
# Measurement Set's beamformer delays) must not reuse files converted before it.
CONVERSION_VERSION = b"spotcube conversion v2\0"


def _input_key(path: Path) -> str:
    """Cache key of an input: the sha256 of its content (every file under a directory).

    Size and mtime are not enough: a file replaced by another observation of the same
    size keeps its size, and copies made with ``cp -p``, ``rsync -t`` or tar keep the old
    mtime, so the conversion of the old file would be imaged as the new one. Hashing costs
    one read of the input, far less than the conversion it guards.
    """
    digest = hashlib.sha256(CONVERSION_VERSION)
    members = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for member in members:
        name = str(member.relative_to(path)) if path.is_dir() else ""
        digest.update(name.encode("utf8", "surrogateescape") + b"\0")
        with member.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def _broken_member(path: Path) -> tuple[Path, str] | None:
    """The first empty, truncated or unreadable FITS file of an MWA raw directory, and why.

    Called only after pyuvdata has failed, whose message (e.g. a numpy reshape error)
    names neither the file nor the cause; reading every file in full then costs nothing
    on good input.
    """
    if not path.is_dir() or (path / "table.dat").exists():
        return None
    from astropy.io import fits

    for member in sorted(path.iterdir()):
        if not member.is_file() or member.suffix not in (".fits", ".metafits", ".mwaf"):
            continue
        if member.stat().st_size == 0:
            return member, "file is empty (0 bytes)"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with fits.open(member, memmap=False, lazy_load_hdus=False) as hdul:
                    for hdu in hdul:
                        _ = hdu.data  # astropy reads (and checks the length of) each HDU
            except (OSError, ValueError, TypeError, IndexError) as exc:
                return member, f"is truncated or not a valid FITS file ({exc})"
        if any("truncated" in str(w.message) for w in caught):
            return member, "is truncated (shorter than its FITS headers say)"
    return None


def _read_uvdata(path: Path, **select: object) -> UVData:
    uvd = _uvdata_class()()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Our own checks follow; pyuvdata's LST check would load the IERS tables (seconds).
            uvd.read(_pyuvdata_target(path), run_check_acceptability=False, **select)
    except PayloadError:
        raise
    except Exception as exc:
        # pyuvdata reports a bad file through many exception types, depending on the
        # format reader (OSError, ValueError, KeyError, numpy's reshape errors, ...).
        failure = input_failure(path, exc)
        if isinstance(failure, InvalidInputError):
            broken = _broken_member(path)
            if broken is not None:
                raise _fail(*broken) from None
        raise failure from None
    return uvd


def open_observation(path: Path, cache_dir: Path) -> ObservationInfo:
    """Check, convert if needed, and read the metadata of the input at ``path``.

    The boundary of input handling: whatever fails in here is classified by
    :func:`payload.classify.input_failure` (``invalid`` unless the machine failed), so no
    reader's exception leaves it unexplained.
    """
    try:
        uvh5_path = prepare_input(path, cache_dir)
        info = read_info(uvh5_path, source=path)
        check_not_fully_flagged(info)
    except PayloadError:
        raise
    except Exception as exc:
        raise input_failure(path, exc) from None
    return info


def range_read_problem(ranged: RangeReader, chunk_channels: int) -> str | None:
    """Why the stored input cannot be read by range, chunk by chunk; ``None`` if it can.

    Reads only the HDF5 header (superblock, object headers, the header arrays that
    :func:`payload.uvh5.read_header` checks). A file that is not HDF5 (uvfits), not the
    common kind of uvh5 (read by pyuvdata, which wants a path), or whose datasets are not
    stored in chunks at most ``chunk_channels`` channels wide is downloaded whole instead.
    """
    with ranged.open() as stream:
        if stream.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
            return "not an HDF5 file (no HDF5 signature at byte 0)"
    try:
        with uvh5.open_h5(ranged) as handle:
            if "Header" not in handle or "Data" not in handle:
                return "an HDF5 file without the Header and Data groups of uvh5"
            problem = frequency_chunking_problem(handle, chunk_channels)
    except Exception as exc:
        raise uvh5.reader_failure(ranged, exc) from None
    if problem is not None:
        return problem
    if uvh5.read_header(ranged) is None:
        failure = ranged.take_failure()
        if failure is not None:
            raise failure
        return "a uvh5 file pyuvdata must read (not the common kind payload.uvh5 reads)"
    return None


def open_observation_by_range(ranged: RangeReader, path: Path) -> ObservationInfo:
    """:func:`open_observation` for a stored uvh5 input read by range.

    ``path`` is where a download would have put the input: errors name it, and the worker
    maps it back to the input's ``s3://`` URI as it does for a downloaded input.
    """
    try:
        info = read_info(path, ranged=ranged)
        check_not_fully_flagged(info)
    except PayloadError:
        raise
    except Exception as exc:
        raise input_failure(path, uvh5.reader_failure(ranged, exc)) from None
    return info


def read_info(
    path: str | Path,
    *,
    source: str | Path | None = None,
    use_pyuvdata: bool = False,
    ranged: RangeReader | None = None,
) -> ObservationInfo:
    """Read and check the metadata of a uvh5 file (see :func:`prepare_input`).

    Its chunks are then read with h5py alone if it is the common kind of uvh5 file
    (:mod:`payload.uvh5`), with pyuvdata if not or if ``use_pyuvdata``. With ``ranged``
    the file is read by range from the store (the common kind only) and ``path`` only
    names it.
    """
    path = Path(path)
    shown = Path(source) if source is not None else path
    where: H5Input = path
    if ranged is None:
        check_input_path(path)
    else:
        where = ranged
    with _problem_of(shown):
        header = None if use_pyuvdata else uvh5.read_header(where)
    if header is None and ranged is not None:
        failure = ranged.take_failure()
        raise failure or _fail(shown, "is not the common kind of uvh5 a ranged read needs")
    if header is not None:
        with _problem_of(shown):
            _check(header, n_phase_centres=1)
        return _info_from(header, path, shown, projected=True, direct=True, ranged=ranged)
    uvd = _read_uvdata(path, read_data=False)
    with _problem_of(shown):
        header, projected = _header_from_uvdata(uvd)
    return _info_from(header, path, shown, projected=projected, direct=False)


@contextlib.contextmanager
def _problem_of(shown: Path) -> Iterator[None]:
    """Prefix the message of an :class:`InvalidInputError` with the file the user gave."""
    try:
        yield
    except InvalidInputError as exc:
        raise _fail(shown, str(exc)) from None


def _header_from_uvdata(uvd: UVData) -> tuple[Header, bool]:
    """The metadata of a UVData object, checked, and whether its data were projected.

    Unprojected (drift) data are imaged at the zenith of the middle time, as
    :func:`read_chunk` phases them; phasing the metadata gives that zenith's ICRS position.
    """
    catalog = uvd.phase_center_catalog or {}
    header = _uvdata_header(uvd, next(iter(catalog.values()), {}))
    _check(header, n_phase_centres=len(catalog))
    projected = header.phase_center.get("cat_type") == "sidereal"
    if not projected:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            uvd.phase_to_time(_zenith_time(uvd))
        header = _uvdata_header(uvd, next(iter(uvd.phase_center_catalog.values())))
    return header, projected


def _uvdata_header(uvd: UVData, phase_center: dict[str, Any]) -> Header:
    return Header(
        n_blts=int(uvd.Nblts),
        n_bls=int(uvd.Nbls),
        n_times=int(uvd.Ntimes),
        freq_array=np.asarray(uvd.freq_array, dtype=np.float64).ravel(),
        channel_width=np.atleast_1d(np.asarray(uvd.channel_width, dtype=np.float64)),
        polarization_array=np.asarray(uvd.polarization_array),
        ant_1_array=np.asarray(uvd.ant_1_array),
        ant_2_array=np.asarray(uvd.ant_2_array),
        uvw_array=np.asarray(uvd.uvw_array, dtype=np.float64),
        phase_center=phase_center,
        telescope_name=str(uvd.telescope.name),
    )


def _check(header: Header, *, n_phase_centres: int) -> None:
    if header.n_blts == 0 or len(header.freq_array) == 0:
        raise InvalidInputError("holds no visibilities")
    validation.check_frequencies(header.freq_array, header.channel_width)
    pols = set(int(p) for p in header.polarization_array)
    if not {XX, YY} & pols:
        raise InvalidInputError(
            "has no XX or YY polarization (found "
            f"{', '.join(str(p) for p in sorted(pols))}); linear-feed data are required"
        )
    if not (header.ant_1_array != header.ant_2_array).any():
        raise InvalidInputError("holds only autocorrelations, nothing to image")
    if n_phase_centres != 1:
        raise InvalidInputError(
            f"has {n_phase_centres} phase centres; split it into one file per phase centre"
        )
    validation.check_uvw(header.uvw_array, header.ant_1_array != header.ant_2_array)


def _info_from(
    header: Header,
    path: Path,
    shown: Path,
    *,
    projected: bool,
    direct: bool,
    ranged: RangeReader | None = None,
) -> ObservationInfo:
    entry = header.phase_center
    with _problem_of(shown):
        validation.check_phase_centre(entry)
    uvw = header.uvw_array[header.ant_1_array != header.ant_2_array]
    order = np.argsort(header.freq_array, kind="stable")
    stored_increasing = bool((order == np.arange(order.size)).all())
    return ObservationInfo(
        path=path,
        source=shown,
        freq_hz=header.freq_array[order],
        channel_width_hz=float(np.median(np.abs(header.channel_width))),
        n_baselines=header.n_bls,
        n_times=header.n_times,
        phase_center_ra_deg=float(np.degrees(entry["cat_lon"])) % 360.0,
        phase_center_dec_deg=float(np.degrees(entry["cat_lat"])),
        phase_center_frame=str(entry.get("cat_frame", "icrs")),
        projected=projected,
        max_uv_m=float(np.hypot(uvw[:, 0], uvw[:, 1]).max()),
        telescope=header.telescope_name,
        direct=direct,
        channel_order=None if stored_increasing else order,
        repeats=_repeated_rows(ranged if ranged is not None else path, shown, header),
        ranged=ranged,
    )


def _repeated_rows(path: H5Input, shown: Path, header: Header) -> npt.NDArray[np.intp] | None:
    """For each row, the earlier row with the same antennas and time, or -1; None if none.

    Times are compared exactly: a repeated row is a copy (files concatenated, a correlator
    writing an integration twice), which repeats the time bit for bit.
    """
    try:
        with uvh5.open_h5(path) as handle:
            times = np.asarray(handle["Header/time_array"][()], dtype=np.float64).ravel()
    except (OSError, KeyError) as exc:
        failure = uvh5.reader_failure(path, exc)
        if failure is not exc:
            raise failure from None
        raise _fail(shown, f"times cannot be read ({exc})") from None
    if times.shape != header.ant_1_array.shape:
        return None  # a row count mismatch is reported where the times are used
    keys = np.rec.fromarrays(
        [header.ant_1_array.astype(np.int64), header.ant_2_array.astype(np.int64), times]
    )
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if first.size == keys.size:
        return None
    repeats = first[inverse.ravel()].astype(np.intp)
    repeats[repeats == np.arange(repeats.size)] = -1
    return repeats


def _zenith_time(uvd: UVData) -> float:
    times = np.unique(uvd.time_array)
    return float(times[len(times) // 2])


def _complex(stored: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Visibilities as stored, or as complex numbers where a uvh5 file stores integers.

    pyuvdata writes integer visibilities (HERA's correlator output) as a compound of two
    integers named ``r`` and ``i``.
    """
    if stored.dtype.names is None:
        return stored
    return stored["r"].astype(np.float64) + 1j * stored["i"].astype(np.float64)


def check_not_fully_flagged(info: ObservationInfo) -> None:
    """Raise if the rule for values leaves no XX/YY cross-correlation to image.

    Scans the uvh5 file in slabs with h5py and stops at the first slab with a usable
    visibility (unflagged, finite, finite positive nsamples: :mod:`payload.validation`),
    usually the first; a fully flagged or fully damaged file costs one pass.
    """
    try:
        with info.open_h5() as handle:
            pols = np.asarray(handle["Header/polarization_array"][()]).ravel()
            ant1 = np.asarray(handle["Header/ant_1_array"][()])
            ant2 = np.asarray(handle["Header/ant_2_array"][()])
            flags = handle["Data/flags"]
            nsamples = handle["Data/nsamples"]
            visdata = handle["Data/visdata"]
            use = [i for i, p in enumerate(pols) if p in (XX, YY)]
            # files of pyuvdata < 2 (HERA's of 2017-2018) keep a length-1 spectral-window axis
            spw: tuple[int, ...] = (0,) if flags.ndim == 4 else ()
            shape: tuple[int, ...] = tuple(flags.shape)
            n_rows, n_chan, n_pols = shape[0], shape[-2], shape[-1]
            row_bytes = n_pols * _SCAN_CELL_BYTES
            chan_step = max(1, min(n_chan, _FLAG_SCAN_BYTES // row_bytes))
            widths = [int(d.chunks[-2]) for d in (flags, visdata) if d.chunks is not None]
            if widths:
                # Channel blocks of the stored chunks' width: the first slab then reads one
                # column of HDF5 chunks, not every channel's (a file read by range).
                chan_step = min(chan_step, max(widths))
            row_cap = max(1, _FLAG_SCAN_BYTES // (chan_step * row_bytes))
            start, rows = 0, _FLAG_SCAN_FIRST_ROWS
            while start < n_rows:
                stop = start + min(rows, row_cap)
                cross = ant1[start:stop] != ant2[start:stop]
                for first in range(0, n_chan, chan_step) if cross.any() else ():
                    cells = (slice(start, stop), *spw, slice(first, first + chan_step))
                    weights, _ = validation.usable_weights(
                        _complex(visdata[cells][..., use]),
                        flags[cells][..., use],
                        nsamples[cells][..., use],
                    )
                    if (weights[cross] > 0).any():
                        return
                start, rows = stop, min(2 * rows, _FLAG_SCAN_MAX_ROWS)
    except PayloadError:
        raise
    except Exception as exc:
        raise input_failure(info.source, uvh5.reader_failure(info.h5_input, exc)) from None
    raise _fail(
        info.source,
        "every cross-correlation visibility is flagged (or not finite, or has nsamples <= 0)",
    )


def read_chunk(info: ObservationInfo, channels: range, polarizations: tuple[str, ...]) -> VisChunk:
    """Read channels ``channels`` of the cross-correlations, flags and nsamples applied."""
    need = sorted({XX, YY} if "I" in polarizations else {POL_CODES[p] for p in polarizations})
    try:
        slab = _read_slab(info, channels, need)
    except PayloadError:
        raise
    except Exception as exc:
        raise input_failure(info.source, uvh5.reader_failure(info.h5_input, exc)) from None
    cross = slab.ant_1_array != slab.ant_2_array
    pol_index = {int(p): i for i, p in enumerate(slab.polarization_array)}
    vis: dict[str, npt.NDArray[np.complex128]] = {}
    weights: dict[str, npt.NDArray[np.float64]] = {}
    flagged = FlagCounts()
    for name, code in POL_CODES.items():
        if code not in pol_index:
            continue
        i = pol_index[code]
        data = np.asarray(slab.data[cross, :, i], dtype=np.complex128)
        weight, counts = validation.usable_weights(
            data, slab.flags[cross, :, i], slab.nsamples[cross, :, i]
        )
        flagged += counts
        # Flagged data may hold NaN or garbage: zero it so it cannot reach a sum.
        vis[name] = np.where(weight > 0, data, 0.0)
        weights[name] = weight
    if "I" in polarizations:
        if "XX" not in vis or "YY" not in vis:
            raise _fail(info.source, "pseudo-Stokes I needs both XX and YY, which it lacks")
        both = (weights["XX"] > 0) & (weights["YY"] > 0)
        weights["I"] = np.where(both, np.minimum(weights["XX"], weights["YY"]), 0.0)
        vis["I"] = np.where(both, 0.5 * (vis["XX"] + vis["YY"]), 0.0)
    missing = [p for p in polarizations if p not in vis]
    if missing:
        raise _fail(info.source, f"has no {', '.join(missing)} polarization")
    return VisChunk(
        uvw_m=np.ascontiguousarray(slab.uvw_array[cross], dtype=np.float64),
        freq_hz=np.asarray(slab.freq_array, dtype=np.float64).ravel(),
        vis={p: np.ascontiguousarray(vis[p]) for p in polarizations},
        weights={p: np.ascontiguousarray(weights[p]) for p in polarizations},
        flagged=flagged,
    )


def _read_slab(info: ObservationInfo, channels: range, pol_codes: list[int]) -> Slab:
    """Channels (of ``info.freq_hz``) and polarizations of every baseline-time.

    Read through h5py or pyuvdata from wherever the file stores those channels, then put in
    increasing frequency, so a file stored descending or permuted gives the very arrays its
    sorted twin gives; repeated baseline-times are reduced to one (:func:`_drop_repeated_rows`).
    """
    stored: range | npt.NDArray[np.intp] = channels
    if info.channel_order is not None:
        stored = np.sort(info.channel_order[channels.start : channels.stop])
        if stored[-1] - stored[0] + 1 == stored.size:  # a block (e.g. descending): a slice
            stored = range(int(stored[0]), int(stored[-1]) + 1)
    slab = _in_frequency_order(_read_stored(info, stored, pol_codes))
    return _drop_repeated_rows(info, slab)


def _in_frequency_order(slab: Slab) -> Slab:
    order = np.argsort(slab.freq_array, kind="stable")
    if (order == np.arange(order.size)).all():
        return slab
    return Slab(
        freq_array=slab.freq_array[order],
        ant_1_array=slab.ant_1_array,
        ant_2_array=slab.ant_2_array,
        uvw_array=slab.uvw_array,
        polarization_array=slab.polarization_array,
        data=slab.data[:, order],
        flags=slab.flags[:, order],
        nsamples=slab.nsamples[:, order],
    )


def _drop_repeated_rows(info: ObservationInfo, slab: Slab) -> Slab:
    """One copy of each baseline-time: exact repeats flagged, conflicting ones refused.

    The rule (docs/imaging.md, "Repeated baseline-times"): a row that repeats an earlier
    row's antennas and time is the same measurement written twice. If it is identical
    (uvw, visibilities, flags, nsamples; NaN equals NaN) it is flagged here, so it counts
    once: gridding both copies would double its weight and leave the noise a factor sqrt(2)
    off in the error model. If it differs, the file holds two answers for one measurement
    and no rule can pick one: the input is invalid, named with an example.
    """
    if info.repeats is None:
        return slab
    rows = np.flatnonzero(info.repeats >= 0)
    firsts = info.repeats[rows]
    same = np.ones(rows.size, dtype=bool)
    for array in (slab.uvw_array, slab.data, slab.flags, slab.nsamples):
        a, b = array[rows].reshape(rows.size, -1), array[firsts].reshape(rows.size, -1)
        equal = (a == b) | (_nan(a) & _nan(b))
        same &= equal.all(axis=1)
    if not same.all():
        row = int(rows[np.flatnonzero(~same)[0]])
        with info.open_h5() as handle:
            time = float(np.asarray(handle["Header/time_array"][()]).ravel()[row])
        raise _fail(
            info.source,
            f"holds {int((~same).sum())} baseline-time(s) twice with different values (e.g. "
            f"antennas {int(slab.ant_1_array[row])}-{int(slab.ant_2_array[row])} at JD "
            f"{time:.8f}, rows {int(info.repeats[row])} and {row}); keep one copy of each",
        )
    flags = np.array(slab.flags, copy=True)
    flags[rows] = True
    return Slab(
        freq_array=slab.freq_array,
        ant_1_array=slab.ant_1_array,
        ant_2_array=slab.ant_2_array,
        uvw_array=slab.uvw_array,
        polarization_array=slab.polarization_array,
        data=slab.data,
        flags=flags,
        nsamples=slab.nsamples,
    )


def _nan(array: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    if np.issubdtype(array.dtype, np.inexact):
        return np.isnan(array)
    return np.zeros(array.shape, dtype=bool)


def _read_stored(
    info: ObservationInfo, stored: range | npt.NDArray[np.intp], pol_codes: list[int]
) -> Slab:
    """Channels at file positions ``stored`` (increasing), through h5py or pyuvdata."""
    if info.direct:
        return uvh5.read_slab(info.h5_input, stored, pol_codes)
    freq_chans = np.arange(stored.start, stored.stop) if isinstance(stored, range) else stored
    uvd = _read_uvdata(info.path, freq_chans=freq_chans, polarizations=pol_codes)
    if not info.projected:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            uvd.phase_to_time(_zenith_time(uvd))
    return Slab(
        freq_array=np.asarray(uvd.freq_array, dtype=np.float64).ravel(),
        ant_1_array=np.asarray(uvd.ant_1_array),
        ant_2_array=np.asarray(uvd.ant_2_array),
        uvw_array=np.asarray(uvd.uvw_array, dtype=np.float64),
        polarization_array=np.asarray(uvd.polarization_array),
        data=uvd.data_array,
        flags=uvd.flag_array,
        nsamples=uvd.nsample_array,
    )
