"""Skies of known power spectrum seen by MWA baselines, predicted without the gridder.

* The sky is a Gaussian random field made by ``powerbox`` (Murray 2018) in a comoving box
  whose transverse side is the field's angular size times X and whose depth is the band
  times Y (Planck18, as in the estimator), in mK. It is made white per solid angle, as the
  21 cm sky is: a pixel of the sky grid (an orthographic, SIN, projection) covers
  ``dOmega = pixsize^2 / n``, so powerbox's field (white per ``pixsize^2``) is scaled by
  ``sqrt(pixsize^2 / dOmega)`` and its flux is ``T dOmega`` (:func:`predict`). The
  normaliser of such a sky is ``int A^2 dOmega`` (:func:`omega_pp`).
* The beam multiplies the sky: pyuvdata's ``GaussianBeam`` (power pattern of the given
  FWHM), evaluated here directly, not through :mod:`payload.beams`.
* Visibilities are predicted with ducc0's ``dirty2vis`` (a non-uniform FFT from the sky
  pixels to each baseline, the forward direction; the estimator grids with ``vis2dirty``)
  on a sky grid of another pixel size than the estimator's.
* Baselines: MWA Phase I tiles (pyuvdata's layout) shorter than 110 m, tracking a field at
  the MWA's latitude for a snapshot (8 x 8 s) or an hour (60 x 60 s).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ducc0
import numpy as np
import numpy.typing as npt
import powerbox
from pyuvdata.analytic_beam import GaussianBeam

from payload.beamframe import BeamFrame
from payload.cosmology import CosmoScales, jy_to_mk_sr
from payload.imaging import FLIPS
from payload.params import ImagingParams
from payload.powerspec import PowerSpectrum, compute_power_spectrum
from payload.reading import VisChunk
from payload.synth import mwa_phase1_tiles
from payload.uvcube import UVCube, UVGrid, grid_chunk, time_halves

MWA_LATITUDE_RAD = math.radians(-26.703319)
C_M_S = 299_792_458.0
SIDEREAL_RAD_PER_S = 2 * math.pi / 86164.0905


def short_baselines_enu(max_m: float = 110.0) -> npt.NDArray[np.float64]:
    """East-north-up vectors (m) of MWA Phase I baselines shorter than ``max_m``."""
    enu, pairs = short_baseline_pairs(max_m)
    first, second = np.asarray(pairs).T
    return np.asarray(enu[second] - enu[first])


def short_baseline_pairs(
    max_m: float = 110.0,
) -> tuple[npt.NDArray[np.float64], list[tuple[int, int]]]:
    """MWA Phase I tile positions (ENU, m) and the tile pairs of baselines shorter than ``max_m``.

    Pairs are (i, j) with i < j in row-major order; :func:`short_baselines_enu` gives their
    vectors (j - i) in the same order.
    """
    from pyuvdata import Telescope

    from payload.sites import install_offline_sites

    install_offline_sites()
    _, _, positions = mwa_phase1_tiles()
    telescope = Telescope.from_known_telescopes("mwa")
    telescope.antenna_positions = positions
    telescope.Nants = len(positions)
    enu = np.asarray(telescope.get_enu_antpos())
    i, j = np.triu_indices(len(enu), k=1)
    vec = enu[j] - enu[i]
    keep = np.hypot(vec[:, 0], vec[:, 1]) < max_m
    return enu, [(int(a), int(b)) for a, b in zip(i[keep], j[keep], strict=True)]


def track_uvw(
    enu: npt.NDArray[np.float64],
    n_times: int,
    step_s: float,
    *,
    hour_angle_rad: float = 0.0,
    dec_rad: float | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """uvw (m) of every baseline at ``n_times`` times centred on ``hour_angle_rad``, and
    time indices.

    By default the field is at declination = latitude, so it passes through zenith at transit.
    """
    lat = MWA_LATITUDE_RAD
    dec = lat if dec_rad is None else dec_rad
    e, n, up = enu[:, 0], enu[:, 1], enu[:, 2]
    x = -math.sin(lat) * n + math.cos(lat) * up
    y = e
    z = math.cos(lat) * n + math.sin(lat) * up
    rows, times = [], []
    for t in range(n_times):
        ha = hour_angle_rad + (t - (n_times - 1) / 2) * step_s * SIDEREAL_RAD_PER_S
        u = math.sin(ha) * x + math.cos(ha) * y
        v = -math.sin(dec) * math.cos(ha) * x + math.sin(dec) * math.sin(ha) * y + math.cos(dec) * z
        w = math.cos(dec) * math.cos(ha) * x - math.cos(dec) * math.sin(ha) * y + math.sin(dec) * z
        rows.append(np.stack([u, v, w], axis=1))
        times.append(np.full(len(enu), t))
    return np.concatenate(rows), np.concatenate(times)


@dataclass(frozen=True)
class Band:
    n_freqs: int
    start_hz: float
    width_hz: float

    @property
    def freq_hz(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.start_hz + self.width_hz * np.arange(self.n_freqs), dtype=float)


def sky_cube(
    pk: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
    band: Band,
    *,
    npix: int,
    pixsize: float,
    seed: int,
) -> npt.NDArray[np.float64]:
    """A powerbox field (mK) of P(k) = ``pk(k)`` [mK^2 Mpc^3]: (l, m, freq) on the sky grid."""
    scales = CosmoScales.at(float(band.freq_hz.mean()))
    side = npix * pixsize * scales.x_mpc_per_rad
    depth = band.n_freqs * band.width_hz * scales.y_mpc_per_hz
    box = powerbox.PowerBox(
        shape=(npix, npix, band.n_freqs), size=(side, side, depth), pk=pk, seed=seed
    )
    return np.asarray(box.delta_x(), dtype=np.float64)


def gaussian_beam_power(
    fwhm_deg: float, npix: int, pixsize: float, freq_hz: float
) -> npt.NDArray[np.float64]:
    """pyuvdata's Gaussian power beam on the sky grid (l east, m north; sin za = |lm|)."""
    lm = (np.arange(npix) - npix // 2) * pixsize
    ll, mm = np.meshgrid(lm, lm, indexing="ij")
    rho = np.hypot(ll, mm)
    za = np.arcsin(np.clip(rho, 0, 1))
    az = np.arctan2(ll, mm)
    sigma = math.radians(fwhm_deg) / (2 * math.sqrt(2 * math.log(2)))
    beam = GaussianBeam(sigma=sigma, sigma_type="power")
    power = beam.power_eval(
        az_array=az.ravel(), za_array=za.ravel(), freq_array=np.asarray([freq_hz])
    )
    return np.asarray(np.where(rho < 1, power.real[0, 0, 0].reshape(ll.shape), 0.0))


def pixel_solid_angle(npix: int, pixsize: float) -> npt.NDArray[np.float64]:
    """The solid angle of each sky-grid pixel, ``pixsize^2 / n`` (0 beyond the horizon).

    n is floored at ``sqrt(pixsize)``, its value half a pixel inside the horizon: a pixel
    centre that falls (to rounding) on the horizon would otherwise stand for an unbounded
    solid angle."""
    lm = (np.arange(npix) - npix // 2) * pixsize
    r2 = lm[:, None] ** 2 + lm[None, :] ** 2
    inside = r2 < 1.0
    n = np.maximum(np.sqrt(np.where(inside, 1.0 - r2, 1.0)), math.sqrt(pixsize))
    return np.where(inside, pixsize**2 / n, 0.0)


def omega_pp(beam: npt.NDArray[np.float64], pixsize: float) -> float:
    """``int A^2 dOmega`` of a power beam on the sky grid: the normaliser of a sky white per
    solid angle (a per-baseline delay spectrum divides by it)."""
    return float((beam**2 * pixel_solid_angle(beam.shape[0], pixsize)).sum())


def predict(
    uvw_m: npt.NDArray[np.float64],
    band: Band,
    sky_mk: npt.NDArray[np.float64],
    beam: npt.NDArray[np.float64],
    pixsize: float,
) -> npt.NDArray[np.complex128]:
    """V = sum_pix A T / c(f) dOmega exp(+2 pi i (u l + v m)) [Jy], no w term, of ``sky_mk``
    made white per solid angle: T = sky_mk sqrt(pixsize^2 / dOmega) (module docstring)."""
    flat = np.ascontiguousarray(uvw_m.copy())
    flat[:, 2] = 0.0
    out = np.zeros((len(uvw_m), band.n_freqs), dtype=np.complex128)
    # T dOmega = sky_mk sqrt(pixsize^2 / dOmega) dOmega = sky_mk pixsize sqrt(dOmega)
    flux_per_mk = pixsize * np.sqrt(pixel_solid_angle(sky_mk.shape[0], pixsize))
    for c, freq in enumerate(band.freq_hz):
        image = sky_mk[:, :, c] * beam * flux_per_mk / jy_to_mk_sr(freq)
        out[:, c] = ducc0.wgridder.experimental.dirty2vis(
            uvw=flat,
            freq=np.asarray([freq]),
            dirty=np.ascontiguousarray(image),
            pixsize_x=pixsize,
            pixsize_y=pixsize,
            epsilon=1e-10,
            do_wgridding=False,
            nthreads=1,
            divide_by_n=False,
            **FLIPS,
        )[:, 0]
    return out


def chunk_of(
    uvw_m: npt.NDArray[np.float64],
    band: Band,
    vis: npt.NDArray[np.complex128],
    weights: npt.NDArray[np.float64] | None = None,
) -> VisChunk:
    """A one-polarization (I) chunk of the visibilities, as the reader would give it."""
    w = np.ones(vis.shape) if weights is None else weights
    return VisChunk(
        uvw_m=np.ascontiguousarray(uvw_m),
        freq_hz=band.freq_hz,
        vis={"I": np.ascontiguousarray(vis)},
        weights={"I": np.ascontiguousarray(w)},
    )


def windowed_model(
    pk: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
    band: Band,
    window: npt.NDArray[np.float64],
) -> Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
    """Expected power of every (delay, cell) element: P(k) seen through the window.

    The box is periodic along frequency, so its modes sit on the delay bins and the window
    mixes bin m into bin j with weight |FFT(window)[j - m]|^2 (normalised): a circular
    convolution over delay bins, done here with the FFT.
    """
    scales = CosmoScales.at(float(band.freq_hz.mean()))
    n_f = band.n_freqs
    eta = np.fft.fftfreq(n_f, band.width_hz)
    k_par = 2 * math.pi * np.abs(eta) / scales.y_mpc_per_hz
    response = np.abs(np.fft.fft(window)) ** 2
    response /= response.sum()

    def model(k_perp: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        k = np.hypot(k_perp[None], k_par.reshape((-1,) + (1,) * k_perp.ndim))
        power = pk(k)
        # circular convolution over the delay axis
        spec = np.fft.ifft(
            np.fft.fft(power, axis=0) * np.fft.fft(response).reshape((-1,) + (1,) * k_perp.ndim),
            axis=0,
        ).real
        return np.asarray(spec)

    return model


def observe_skies(
    skies: dict[str, Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]],
    band: Band,
    fwhm_deg: float,
    n_times: int,
    step_s: float,
    *,
    npix: int = 200,
    pixsize: float = 0.005,
    seed: int = 7,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], dict[str, npt.NDArray[np.complex128]]]:
    """uvw, time indices and visibilities of each powerbox sky (by name) through the beam.

    The sky grid (``npix`` x ``pixsize``) differs from the estimator's image pixels (1 / 140).

    MWA Phase I baselines shorter than 110 m tracked for ``n_times`` x ``step_s``; every sky
    from the same seed, seen through a Gaussian power beam of ``fwhm_deg``.
    """
    uvw, times = track_uvw(short_baselines_enu(110.0), n_times, step_s)
    beam = gaussian_beam_power(fwhm_deg, npix, pixsize, float(band.freq_hz.mean()))
    vis = {
        name: predict(
            uvw, band, sky_cube(pk, band, npix=npix, pixsize=pixsize, seed=seed), beam, pixsize
        )
        for name, pk in skies.items()
    }
    return uvw, times, vis


def spectrum_of(
    uvw: npt.NDArray[np.float64],
    times: npt.NDArray[np.int64],
    band: Band,
    vis_by_pol: dict[str, npt.NDArray[np.complex128]],
    fwhm_deg: float,
    n_k_bins: int = 16,
    *,
    beam_spec: str | None = None,
    frame: BeamFrame | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> PowerSpectrum:
    """spotcube's power spectrum of these visibilities (one sky per polarization, weight 1).

    The uv cube goes up to 70 wavelengths; even and odd time
    samples are gridded apart. The beam is a ``fwhm_deg`` Gaussian unless ``beam_spec``;
    ``extra_params`` are more imaging parameters (``uv_cell_lambda``, ...).
    """
    pols = tuple(vis_by_pol)
    params = ImagingParams.from_mapping(
        {"uv_max_lambda": 70.0, "polarizations": list(pols), **(extra_params or {})}
    )
    grid = UVGrid.from_params(params)
    chunk = VisChunk(
        uvw_m=uvw,
        freq_hz=band.freq_hz,
        vis=vis_by_pol,
        weights={p: np.ones(v.shape) for p, v in vis_by_pol.items()},
    )
    gridded = grid_chunk(
        chunk, grid, params, max_freq_hz=float(band.freq_hz.max()), halves=time_halves(times)
    )
    cube = UVCube(
        gridded.vis,
        gridded.weights,
        gridded.sampling,
        band.freq_hz,
        pols,
        grid,
        params.stack_params(),
        beam_spec or f"gaussian:{fwhm_deg:g}",
    )
    return compute_power_spectrum(cube, n_k_bins=n_k_bins, frame=frame)


@dataclass(frozen=True)
class PointedSky:
    """A snapshot of MWA baselines phased to where the tiles point, and the beam on the sky grid.

    Geometry by astropy (SIN-projection WCS for the sky pixels, ``AltAz`` at the MWA for
    their azimuth and zenith angle, apparent sidereal time for the hour angle), the beam by
    mwa_hyperbeam's own API: nothing of spotcube's :mod:`payload.beamframe` or
    :mod:`payload.beams`.
    """

    uvw_m: npt.NDArray[np.float64]
    times: npt.NDArray[np.int64]
    beams: dict[str, npt.NDArray[np.float64]]  # XX, YY: A on the sky grid, 1 at zenith
    # for zero delays
    hour_angle_rad: float
    dec_rad: float
    pointing_za_deg: float


def pointed_mwa_snapshot(
    delays: tuple[int, ...],
    freq_hz: float,
    *,
    n_times: int,
    step_s: float,
    npix: int,
    pixsize: float,
    jd: float = 2459001.75,
) -> PointedSky:
    """The tile pattern of ``delays`` on a sky grid around its own peak, at time ``jd``."""
    import mwa_hyperbeam
    from astropy import units
    from astropy.coordinates import TETE, AltAz, EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.wcs import WCS

    from payload.sites import MWA_LATITUDE_DEG, MWA_LONGITUDE_DEG, install_offline_sites

    install_offline_sites()
    model = mwa_hyperbeam.AnalyticBeam()
    # the peak of the pattern: a coarse then a fine search in az / za
    best = (-1.0, 0.0, 0.0)
    for az_deg in np.arange(0.0, 360.0, 1.0):
        za = np.radians(np.arange(0.0, 40.0, 0.1))
        jones = np.asarray(
            model.calc_jones_array(
                np.full(za.shape, math.radians(az_deg)), za, freq_hz, list(delays), [1.0] * 16, True
            )
        )
        power = 0.5 * (np.abs(jones[:, :2]) ** 2).sum(axis=1) + 0.5 * (
            np.abs(jones[:, 2:]) ** 2
        ).sum(axis=1)
        i = int(power.argmax())
        if power[i] > best[0]:
            best = (float(power[i]), float(az_deg), math.degrees(float(za[i])))
    _, az_p, za_p = best
    location = EarthLocation.from_geodetic(MWA_LONGITUDE_DEG, MWA_LATITUDE_DEG, 377.83)
    when = Time(jd, format="jd", scale="utc")
    frame = AltAz(obstime=when, location=location)
    centre = SkyCoord(az=az_p * units.deg, alt=(90.0 - za_p) * units.deg, frame=frame).icrs
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [centre.ra.deg, centre.dec.deg]
    wcs.wcs.crpix = [npix // 2 + 1, npix // 2 + 1]
    # l grows with RA (east): the first axis's pixel step is -pixsize in the FITS convention
    wcs.wcs.cdelt = [-math.degrees(pixsize), math.degrees(pixsize)]
    lm = (np.arange(npix) - npix // 2) * pixsize
    ll, mm = np.meshgrid(lm, lm, indexing="ij")
    on_sky = ll**2 + mm**2 < 1.0
    ra, dec = wcs.wcs_pix2world(
        -ll[on_sky] / pixsize + npix // 2, mm[on_sky] / pixsize + npix // 2, 0
    )
    altaz = SkyCoord(ra=ra * units.deg, dec=dec * units.deg, frame="icrs").transform_to(frame)
    above = np.asarray(altaz.alt.deg) > 0
    az = np.radians(np.asarray(altaz.az.deg))[above]
    za = np.radians(90.0 - np.asarray(altaz.alt.deg))[above]

    def pattern(
        d: list[int], a: npt.NDArray[np.float64], z: npt.NDArray[np.float64], pol: str
    ) -> Any:
        jones = np.asarray(model.calc_jones_array(a, z, freq_hz, d, [1.0] * 16, True))
        columns = slice(0, 2) if pol == "XX" else slice(2, 4)
        return (np.abs(jones[:, columns]) ** 2).sum(axis=1)

    beams = {}
    for pol in ("XX", "YY"):
        zenith = float(pattern([0] * 16, np.zeros(1), np.zeros(1), pol)[0])
        values = np.zeros(int(on_sky.sum()))
        values[above] = pattern(list(delays), az, za, pol) / zenith
        beams[pol] = np.zeros(ll.shape)
        beams[pol][on_sky] = values
    # the hour angle is counted on the true equator and equinox of the date
    apparent = SkyCoord(ra=centre.ra, dec=centre.dec, frame="icrs").transform_to(TETE(obstime=when))
    lst = when.sidereal_time("apparent", longitude=location.lon).rad
    hour_angle = (lst - float(apparent.ra.rad) + math.pi) % (2 * math.pi) - math.pi
    uvw, times = track_uvw(
        short_baselines_enu(110.0),
        n_times,
        step_s,
        hour_angle_rad=hour_angle,
        dec_rad=float(apparent.dec.rad),
    )
    return PointedSky(uvw, times, beams, hour_angle, float(apparent.dec.rad), za_p)
