"""Image cubes: sources where the FITS WCS says, fluxes right, ducc0 equal to a reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from payload.gridref import reference_dirty
from payload.imaging import ImageGeometry, dirty_image, uniform_weights
from payload.reading import C_M_S, read_chunk, read_info
from payload.synth import lmn

from .conftest import SCIENCE_PIXELS, Observation


def _quadratic_peak(image: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """Sub-pixel (x, y) of the local maximum nearest (x, y), by 1-D parabolas."""
    sub = image[y - 2 : y + 3, x - 2 : x + 3]
    dy, dx = np.unravel_index(int(np.argmax(sub)), sub.shape)
    py, px = y - 2 + int(dy), x - 2 + int(dx)

    def vertex(a: float, b: float, c: float) -> float:
        return 0.5 * (a - c) / (a - 2 * b + c)

    return (
        px + vertex(*image[py, px - 1 : px + 2]),
        py + vertex(*image[py - 1 : py + 2, px]),
    )


def _predicted_dirty(obs: Observation, at_lmn: tuple[float, float, float], channel: int) -> float:
    """Exact (DFT) pseudo-I dirty value at a direction from the other sources' sidelobes."""
    info = read_info(obs.path)
    chunk = read_chunk(info, range(channel, channel + 1), ("I",))
    lam = C_M_S / chunk.freq_hz[0]
    u, v, w = (chunk.uvw_m / lam).T
    weights = chunk.weights["I"][:, 0]
    ra0, dec0 = obs.meta.phase_center_ra_deg, obs.meta.phase_center_dec_deg
    total = 0.0
    for source in obs.meta.sources:
        sl, sm, sn = lmn(source.ra_deg, source.dec_deg, ra0, dec0)
        dl, dm, dn = sl - at_lmn[0], sm - at_lmn[1], sn - at_lmn[2]
        if abs(dl) + abs(dm) < 1e-9:
            continue  # the source itself
        phase = 2 * np.pi * (u * dl + v * dm + w * dn)
        total += source.flux_jy * float((weights * np.cos(phase)).sum() / weights.sum())
    return total


@pytest.fixture(scope="module")
def image_hdu(science_products: dict[str, Path]) -> tuple[np.ndarray, fits.Header]:
    with fits.open(science_products["image_cube.fits"]) as hdul:
        return np.asarray(hdul["PRIMARY"].data, dtype=float), hdul["PRIMARY"].header.copy()


def test_wcs_is_sin_with_frequency_and_stokes(image_hdu: tuple[np.ndarray, fits.Header]) -> None:
    _, header = image_hdu
    assert (header["CTYPE1"], header["CTYPE2"]) == ("RA---SIN", "DEC--SIN")
    assert (header["CTYPE3"], header["CTYPE4"]) == ("FREQ", "STOKES")
    assert header["BUNIT"] == "Jy/beam"
    assert header["CDELT1"] < 0 < header["CDELT2"]


@pytest.mark.parametrize("index", range(len(SCIENCE_PIXELS)), ids=lambda i: f"source{i}")
def test_sources_at_their_radec_through_the_wcs(
    science_obs: Observation, image_hdu: tuple[np.ndarray, fits.Header], index: int
) -> None:
    data, header = image_hdu
    source = science_obs.meta.sources[index]
    wcs = WCS(header)
    for channel in range(data.shape[1]):
        x, y, _, _ = wcs.all_world2pix(source.ra_deg, source.dec_deg, header["CRVAL3"], 1, 0)
        px, py = _quadratic_peak(data[0, channel], round(float(x)), round(float(y)))
        assert math.hypot(px - float(x), py - float(y)) < 0.1, (channel, px - x, py - y)


@pytest.mark.parametrize("index", range(len(SCIENCE_PIXELS)), ids=lambda i: f"source{i}")
def test_fluxes_within_one_percent(
    science_obs: Observation, image_hdu: tuple[np.ndarray, fits.Header], index: int
) -> None:
    """Pixel-centred sources read their flux once the other sources' sidelobes are removed."""
    data, header = image_hdu
    x, y, flux = SCIENCE_PIXELS[index]
    source = science_obs.meta.sources[index]
    at = lmn(source.ra_deg, source.dec_deg, header["CRVAL1"], header["CRVAL2"])
    at_f = (float(at[0]), float(at[1]), float(at[2]))
    for channel in range(data.shape[1]):
        measured = data[0, channel, y, x] - _predicted_dirty(science_obs, at_f, channel)
        assert measured == pytest.approx(flux, rel=0.01), channel


def test_psf_peaks_at_one_on_the_reference_pixel(science_products: dict[str, Path]) -> None:
    with fits.open(science_products["psf_cube.fits"]) as hdul:
        for hdu in hdul:
            x, y = int(hdu.header["CRPIX1"]) - 1, int(hdu.header["CRPIX2"]) - 1
            plane = hdu.data[0, 0]
            assert plane[y, x] == pytest.approx(1.0, abs=1e-5)
            assert np.unravel_index(np.argmax(plane), plane.shape) == (y, x)


def test_each_polarization_has_its_extension(science_products: dict[str, Path]) -> None:
    with fits.open(science_products["image_cube.fits"]) as hdul:
        codes = [hdu.header["CRVAL4"] for hdu in hdul]
        assert codes == [-5, -6, 1]
        assert hdul["YY"].header["POLNAME"] == "YY"


@pytest.mark.parametrize("wgridding", [True, False], ids=["w", "no-w"])
def test_ducc0_agrees_with_numpy_reference(science_obs: Observation, wgridding: bool) -> None:
    info = read_info(science_obs.path)
    chunk = read_chunk(info, range(0, 1), ("XX",))
    # The 400 baselines with the largest |w| keep the reference fast and the w term strong.
    rows = np.argsort(-np.abs(chunk.uvw_m[:, 2]), kind="stable")[:400]
    uvw = np.ascontiguousarray(chunk.uvw_m[rows])
    assert np.abs(uvw[:, 2]).max() * chunk.freq_hz[0] / C_M_S > 300  # hundreds of wavelengths
    vis, wgt = chunk.vis["XX"][rows, 0], chunk.weights["XX"][rows, 0]
    geometry = ImageGeometry(npix=64, pixsize_rad=math.radians(0.1))
    ours = dirty_image(uvw, chunk.freq_hz[0], vis, wgt, geometry, wgridding=wgridding, epsilon=1e-7)
    ref = reference_dirty(
        uvw, chunk.freq_hz[0], vis, wgt, geometry.npix, geometry.pixsize_rad, wgridding=wgridding
    )
    assert np.abs(ours - ref).max() / np.abs(ref).max() < 1e-5


def test_uniform_weights_flatten_cell_density() -> None:
    uvw = np.array([[10.0, 0.3, 0.0], [10.01, 0.3, 0.0], [-10.0, -0.3, 0.0], [20.0, 5.0, 0.0]])
    geometry = ImageGeometry(npix=64, pixsize_rad=math.radians(1.0))
    weights = uniform_weights(uvw, C_M_S, np.ones(4), geometry)
    # Three visibilities share a cell (one as the Hermitian mirror); the fourth is alone.
    # (Cells of 0.72 wavelengths, WSClean's: tests/payload/test_against_wsclean.py.)
    np.testing.assert_allclose(weights, [1 / 3, 1 / 3, 1 / 3, 1.0])


def test_uniform_weighting_sharpens_the_psf(science_obs: Observation) -> None:
    """MWA's dense core dominates natural weighting; uniform weighting narrows the beam."""
    info = read_info(science_obs.path)
    chunk = read_chunk(info, range(0, 1), ("XX",))
    geometry = ImageGeometry(npix=128, pixsize_rad=math.radians(40 / 3600))
    natural = chunk.weights["XX"][:, 0]
    uniform = uniform_weights(chunk.uvw_m, chunk.freq_hz[0], natural, geometry)
    ones = np.ones(len(natural), dtype=complex)
    areas = []
    for weight in (natural, uniform):
        psf = dirty_image(chunk.uvw_m, chunk.freq_hz[0], ones, weight, geometry) / weight.sum()
        areas.append(int((psf > 0.5).sum()))
    assert areas[1] < 0.8 * areas[0]
