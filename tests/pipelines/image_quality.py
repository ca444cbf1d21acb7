"""How good an image of Fornax A is, measured the way a radio astronomer would check it.

Everything here reads the FITS image through astropy (its WCS, its restoring beam) and knows
nothing of the pipeline: the same functions measure the pipeline's image and the reference
images the tests make from the same data by other routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# NGC 1316 (the host galaxy of Fornax A), NASA/IPAC Extragalactic Database, J2000.
FORNAX_A_RA = "03h22m41.7s"
FORNAX_A_DEC = "-37d12m30s"
# Fornax A's lobes reach ~0.5 degrees from the core: its flux is summed within 1 degree, and
# the noise is measured beyond 3 degrees (no emission of Fornax A, its sidelobes included).
APERTURE_DEG = 1.0
OFF_SOURCE_DEG = 3.0


@dataclass(frozen=True)
class ImageQuality:
    """Fornax A in one restored image.

    peak : brightest pixel within the aperture (Jy/beam)
    off_source_rms : rms of every pixel beyond OFF_SOURCE_DEG (Jy/beam): noise, sidelobes
        and calibration errors' stripes alike, which is what a bad calibration raises
    flux_jy : aperture flux, the pixels' sum within APERTURE_DEG over the restoring beam's
        area in pixels (Jy)
    peak_offset_arcmin : distance of the brightest pixel from NGC 1316
    pixel_arcmin : the pixel size
    """

    peak: float
    off_source_rms: float
    flux_jy: float
    peak_offset_arcmin: float
    pixel_arcmin: float

    @property
    def dynamic_range(self) -> float:
        return self.peak / self.off_source_rms


def measure(image_fits: Path) -> ImageQuality:
    """Measure Fornax A in a WSClean restored image (Stokes I, one channel)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.wcs import WCS

    with fits.open(image_fits) as hdus:
        header = hdus[0].header
        image = np.asarray(hdus[0].data, dtype=np.float64).squeeze()
    if not np.isfinite(image).all():
        raise ValueError(f"{image_fits} has non-finite pixels")
    wcs = WCS(header).celestial
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    fornax_a = SkyCoord(FORNAX_A_RA, FORNAX_A_DEC)
    separation = wcs.pixel_to_world(cols, rows).separation(fornax_a).deg
    aperture = separation < APERTURE_DEG
    off = separation > OFF_SOURCE_DEG
    peak_index = np.unravel_index(np.argmax(np.where(aperture, image, -np.inf)), image.shape)
    peak_sky = wcs.pixel_to_world(peak_index[1], peak_index[0])
    pixel_deg = abs(float(header["CDELT1"]))
    # A Gaussian restoring beam's area is pi * BMAJ * BMIN / (4 ln 2).
    beam_pixels = np.pi * header["BMAJ"] * header["BMIN"] / (4 * np.log(2)) / pixel_deg**2
    return ImageQuality(
        peak=float(image[peak_index]),
        off_source_rms=float(np.sqrt(np.mean(image[off] ** 2))),
        flux_jy=float(image[aperture].sum() / beam_pixels),
        peak_offset_arcmin=float(peak_sky.separation(fornax_a).to(u.arcmin).value),
        pixel_arcmin=pixel_deg * 60,
    )


def model_flux_jy(skymodel: Path) -> float:
    """Total Stokes I of a makesourcedb sky model (the ``I`` column of its components)."""
    lines = [ln.strip() for ln in skymodel.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    header, components = lines[0], lines[1:]
    columns = [c.split("=")[0].strip() for c in header.split("=", 1)[1].split(",")]
    column = columns.index("I")
    return sum(float(c.split(",")[column]) for c in components)


# Baselines this short (fringe spacing above 5.7 degrees) see Fornax A, about 1 degree
# across, nearly whole: the mean of their real Stokes I is its flux without any imaging.
SHORT_BASELINE_LAMBDA = 10.0


def short_baseline_flux_jy(ms: Path, *, max_lambda: float = SHORT_BASELINE_LAMBDA) -> float:
    """Fornax A's flux from a phase-centred Measurement Set's visibilities (python-casacore).

    The mean real part of Stokes I = (XX + YY) / 2 over the unflagged cross-correlations
    shorter than ``max_lambda`` wavelengths: the zero-spacing flux of the source at the phase
    centre, through no gridding, weighting or deconvolution (an estimator independent of
    WSClean). Other sources of the field average out in it: their fringes on these baselines
    have random phases.
    """
    from casacore.tables import table

    with table(str(ms), ack=False) as main:
        data = main.getcol("DATA")
        flags = main.getcol("FLAG")
        uvw = main.getcol("UVW")
        cross = main.getcol("ANTENNA1") != main.getcol("ANTENNA2")
    with table(str(ms / "SPECTRAL_WINDOW"), ack=False) as windows:
        frequencies = windows.getcol("CHAN_FREQ")[0]
    speed_of_light = 299_792_458.0
    stokes_i = 0.5 * (data[..., 0] + data[..., 3])  # correlations XX, XY, YX, YY
    flagged = flags[..., 0] | flags[..., 3]
    length = np.hypot(uvw[:, 0], uvw[:, 1])[:, None] * frequencies[None, :] / speed_of_light
    chosen = cross[:, None] & ~flagged & (length < max_lambda)
    if not chosen.any():
        raise ValueError(f"{ms} has no unflagged baseline shorter than {max_lambda} wavelengths")
    return float(np.mean(stokes_i.real[chosen]))
