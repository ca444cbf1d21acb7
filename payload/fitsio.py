"""FITS image and PSF cubes with a celestial SIN WCS, frequency and Stokes axes.

One FITS file holds one 4-D cube per polarization: the primary HDU is the first
polarization and each further polarization is an image extension named after it. Each HDU
has axes (RA---SIN, DEC--SIN, FREQ, STOKES) with a STOKES axis of length 1 holding the AIPS
code (I = 1, XX = -5, YY = -6): a single STOKES axis cannot describe XX, YY and I together
because FITS axes must be linear.

Pixel order: imaging arrays are ``[i, j]`` with ``l = (i - N/2) dl`` (east) and
``m = (j - N/2) dl`` (north). FITS shows east to the left (CDELT1 < 0), so the l axis is
reversed: FITS x = N - 1 - i, whose reference pixel (1-based) is N/2 for RA and N/2 + 1 for
Dec. CRVAL is the phase centre, so the SIN projection is exact for w-gridded images.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    # Imported where a header is made: chunk processes only reorder pixels (put_fits_order)
    # and need not pay astropy's ~0.4 s import.
    from astropy.io import fits

STOKES_CODES = {"I": 1, "XX": -5, "YY": -6}
BLOCK = 2880  # FITS record size: headers and data are padded to a multiple of it


def fits_view(image: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """(..., i, j) imaging order seen as (..., y, x) FITS order: a view, nothing copied."""
    return np.swapaxes(image[..., ::-1, :], -1, -2)


def put_fits_order(
    out: npt.NDArray[Any], image: npt.NDArray[Any], *, divisor: float = 1.0, rows: int = 64
) -> None:
    """``out[...] = fits_view(image) / divisor``, divided in float64, in bands of ``rows``.

    The division runs on float64 copies of ``image``'s values, one band at a time, and
    casts each quotient straight into ``out``'s dtype: the same bytes as dividing the whole
    image in float64 and converting afterwards, without the image-sized float64 temporaries
    (fresh memory the kernel has to zero, a few MB per image). Reordering reads ``image``
    column-wise; a band of 64 output rows keeps the columns being read and the rows being
    written in cache, about twice as fast as one assignment for an 840-pixel image.
    """
    view = fits_view(image)
    # Values beyond float32 become inf here, silently: the products' finiteness check
    # (payload.validation) refuses the observation with one line, so numpy's warning would
    # only add a second, unexplained line on stderr.
    with np.errstate(over="ignore", invalid="ignore"):
        _put_bands(out, view, divisor, rows)


def _put_bands(out: npt.NDArray[Any], view: npt.NDArray[Any], divisor: float, rows: int) -> None:
    for start in range(0, out.shape[-2], rows):
        np.divide(
            view[..., start : start + rows, :],
            divisor,
            out=out[..., start : start + rows, :],
            dtype=np.float64,
            casting="unsafe",
        )


def image_to_fits_order(image: npt.NDArray[Any], *, dtype: Any = None) -> npt.NDArray[Any]:
    """(..., i, j) imaging order to (..., y, x) FITS order (see the module docstring)."""
    return np.ascontiguousarray(fits_view(image), dtype=dtype)


def celestial_header(
    *,
    npix: int,
    pixsize_rad: float,
    ra_deg: float,
    dec_deg: float,
    freq_hz: npt.NDArray[np.float64],
    polarization: str,
    bunit: str,
    frame: str = "icrs",
) -> fits.Header:
    """Header of one polarization's cube (WCS, units, no timestamps)."""
    from astropy.io import fits

    pixdeg = math.degrees(pixsize_rad)
    width = float(freq_hz[1] - freq_hz[0]) if len(freq_hz) > 1 else 1.0
    header = fits.Header()
    header["BUNIT"] = bunit
    header["BTYPE"] = "Intensity"
    header["CTYPE1"] = ("RA---SIN", "SIN projection about the phase centre")
    header["CRPIX1"] = npix / 2
    header["CRVAL1"] = ra_deg
    header["CDELT1"] = -pixdeg
    header["CUNIT1"] = "deg"
    header["CTYPE2"] = "DEC--SIN"
    header["CRPIX2"] = npix / 2 + 1
    header["CRVAL2"] = dec_deg
    header["CDELT2"] = pixdeg
    header["CUNIT2"] = "deg"
    header["CTYPE3"] = "FREQ"
    header["CRPIX3"] = 1.0
    header["CRVAL3"] = float(freq_hz[0])
    header["CDELT3"] = width
    header["CUNIT3"] = "Hz"
    header["CTYPE4"] = "STOKES"
    header["CRPIX4"] = 1.0
    header["CRVAL4"] = float(STOKES_CODES[polarization])
    header["CDELT4"] = 1.0
    header["CUNIT4"] = ""
    header["RADESYS"] = frame.upper() if frame.lower() in ("icrs", "fk5") else "ICRS"
    if header["RADESYS"] == "FK5":
        header["EQUINOX"] = 2000.0
    header["SPECSYS"] = "TOPOCENT"
    header["POLNAME"] = (polarization, "XX, YY or pseudo-Stokes I = (XX+YY)/2")
    return header


@dataclass(frozen=True)
class FileSegment:
    """``nbytes`` bytes of big-endian float32 FITS-ordered data at ``offset`` in ``path``."""

    path: Path
    offset: int
    nbytes: int


@dataclass(frozen=True)
class RangeSegment:
    """``nbytes`` bytes of FITS-ordered data at ``offset`` of an object read by range
    (``read(offset, length)``: a stored chunk, :mod:`payload.storedchunks`)."""

    read: Callable[[int, int], bytes]
    offset: int
    nbytes: int


# What a cube is made of, in channel order: raw bytes in another file (copied by the
# kernel, never through Python), in a stored object, or an array already in FITS order.
Segment = FileSegment | RangeSegment | npt.NDArray[Any]
# Bytes per read when a segment is copied through Python (a stored chunk, or into a stream
# that is not a file): bounded memory, and large enough that S3 requests stay few.
COPY_PIECE = 8 * 1024 * 1024


def _hdu_header(header: fits.Header, shape: tuple[int, ...], *, primary: bool, name: str) -> bytes:
    """The header bytes astropy writes for a ``>f4`` array of ``shape`` (FITS axis order).

    astropy builds the structural cards (SIMPLE/XTENSION, BITPIX, NAXISn, EXTEND, PCOUNT,
    GCOUNT, EXTNAME) from a one-pixel stand-in array; only the axis lengths are then set,
    so the cards and their order are exactly those of ``writeto`` with the full array.
    """
    from astropy.io import fits

    stand_in = np.zeros((1,) * len(shape), dtype=">f4")
    hdu: fits.PrimaryHDU | fits.ImageHDU
    if primary:
        hdu = fits.PrimaryHDU(data=stand_in, header=header)
    else:
        hdu = fits.ImageHDU(data=stand_in, header=header, name=name)
    # Verify first: astropy's verify rebuilds the axis cards from the stand-in array.
    hdu.verify("exception")
    for axis, length in enumerate(reversed(shape), start=1):
        hdu.header[f"NAXIS{axis}"] = length
    return hdu.header.tostring().encode("ascii")


def _copy_pieces(read: Callable[[int, int], bytes], start: int, nbytes: int, out: BinaryIO) -> None:
    """Copy ``nbytes`` from ``read(offset, length)`` to ``out``, ``COPY_PIECE`` at a time."""
    for offset in range(start, start + nbytes, COPY_PIECE):
        length = min(COPY_PIECE, start + nbytes - offset)
        piece = read(offset, length)
        if len(piece) != length:
            raise OSError(f"short read at byte {offset}: {len(piece)} of {length}")
        out.write(piece)


def _copy_segment(segment: Segment, out: BinaryIO) -> int:
    """Append one segment to ``out``; return its size in bytes."""
    if isinstance(segment, RangeSegment):
        _copy_pieces(segment.read, segment.offset, segment.nbytes, out)
        return segment.nbytes
    if isinstance(segment, FileSegment) and not _is_file(out):
        with open(segment.path, "rb") as src:
            fd = src.fileno()
            _copy_pieces(lambda at, n: os.pread(fd, n, at), segment.offset, segment.nbytes, out)
        return segment.nbytes
    if isinstance(segment, FileSegment):
        out.flush()
        with open(segment.path, "rb") as src:
            offset, left = segment.offset, segment.nbytes
            while left > 0:
                # copy_file_range moves the bytes inside the kernel (no read into Python).
                done = os.copy_file_range(src.fileno(), out.fileno(), left, offset)
                if done <= 0:
                    raise OSError(f"{segment.path}: short read at byte {offset}")
                offset += done
                left -= done
        out.seek(0, os.SEEK_END)
        return segment.nbytes
    data = np.ascontiguousarray(segment, dtype=">f4")
    out.write(data.data.cast("B"))
    return int(data.nbytes)


def _is_file(out: BinaryIO) -> bool:
    """Whether ``out`` is an OS file (the kernel can copy into it)."""
    try:
        out.fileno()
    except (AttributeError, OSError):
        return False
    return True


def write_cube(
    target: Path | BinaryIO,
    segments: Callable[[str], Iterable[Segment]],
    *,
    order: Sequence[str],
    npix: int,
    pixsize_rad: float,
    ra_deg: float,
    dec_deg: float,
    freq_hz: npt.NDArray[np.float64],
    bunit: str,
    frame: str,
    extra: Mapping[str, Any],
) -> None:
    """Write one FITS file with an HDU per polarization, from ``segments(pol)``.

    ``segments(pol)`` yields the polarization's (freq, y, x) cube in FITS order and
    big-endian float32, a channel range at a time (see :class:`FileSegment`). The chunk
    files already hold that byte layout, so the cube is concatenated, never transposed,
    converted or held in memory. The bytes equal astropy's ``writeto`` of the whole array:
    astropy's header, the data, zero padding to a multiple of 2880 bytes. ``target``: a
    path, or a binary stream written in order (:class:`payload.upload.UploadStream`).
    """
    shape = (1, len(freq_hz), npix, npix)
    expected = int(np.prod(shape)) * 4
    what = target if isinstance(target, Path) else getattr(target, "key", "cube")
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(target, "wb")) if isinstance(target, Path) else target
        for k, pol in enumerate(order):
            header = celestial_header(
                npix=npix,
                pixsize_rad=pixsize_rad,
                ra_deg=ra_deg,
                dec_deg=dec_deg,
                freq_hz=freq_hz,
                polarization=pol,
                bunit=bunit,
                frame=frame,
            )
            for key, value in extra.items():
                header[key] = value
            out.write(_hdu_header(header, shape, primary=k == 0, name=pol))
            written = sum(_copy_segment(segment, out) for segment in segments(pol))
            if written != expected:
                raise ValueError(f"{what}: {pol} cube has {written} bytes, expected {expected}")
            out.write(b"\0" * (-written % BLOCK))
