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

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

STOKES_CODES = {"I": 1, "XX": -5, "YY": -6}


def image_to_fits_order(image: npt.NDArray[Any], *, dtype: Any = None) -> npt.NDArray[Any]:
    """(..., i, j) imaging order to (..., y, x) FITS order (see the module docstring)."""
    return np.ascontiguousarray(np.swapaxes(image[..., ::-1, :], -1, -2), dtype=dtype)


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


def write_cube(
    path: Path,
    cubes: Callable[[str], npt.NDArray[np.float32]],
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
    """Write ``cubes(pol)`` (shape (freq, i, j), imaging order) to one FITS file.

    One polarization is in memory at a time: each HDU is appended to the file as soon as its
    cube is loaded, so a full 768-channel MWA cube never needs all polarizations at once.
    """
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
        # One copy: reorder and convert to FITS's big-endian float32 in the same pass.
        data = image_to_fits_order(cubes(pol), dtype=">f4")[None]
        if k == 0:
            fits.PrimaryHDU(data=data, header=header).writeto(
                path, overwrite=True, output_verify="exception"
            )
        else:
            hdu = fits.ImageHDU(data=data, header=header, name=pol)
            with fits.open(path, mode="append") as hdul:
                hdul.append(hdu)
        del data
