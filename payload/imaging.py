"""Dirty images and PSFs per channel and polarization with ducc0's wgridder.

Sign convention (pyuvdata's): uvw = ant2 - ant1 and ``V = sum I exp(+2 pi i (ul + vm +
w(n-1)))``, which ducc0 reproduces with ``flip_u=True, flip_v=True, flip_w=False``. The
image array is indexed ``[i, j]`` with ``l = (i - N/2) * pixsize`` (towards east, i.e.
increasing RA) and ``m = (j - N/2) * pixsize`` (north); :mod:`payload.fitsio` turns that
into FITS order with a SIN WCS.

Images are normalised by the sum of weights, so the PSF peaks at 1 and a point source of
S Jy at a pixel centre reads S Jy/beam. ``divide_by_n=False``: a point source's visibility
carries its flux S (not S/n), so dividing by n would bias fluxes away from the centre.

ducc0 is called with ``nthreads=1`` per image and several images run side by side in a
thread pool: ducc0's multithreaded gridding adds per-thread grids in a varying order, so its
output is not bit-reproducible, while one thread per call is (products must be
byte-identical whatever process ran a chunk).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import ducc0
import numpy as np
import numpy.typing as npt

from payload.fitsio import put_fits_order
from payload.params import ImagingParams
from payload.reading import C_M_S, ObservationInfo, VisChunk

# pyuvdata's convention (uvw = ant2 - ant1, V = ∫ I exp(+2πi(ul + vm + w(n-1)))) in ducc0's
# terms; every ducc0 call of the payload uses it (tests check positions off zenith).
FLIPS = {"flip_u": True, "flip_v": True, "flip_w": False}
SINGLE_PRECISION_EPSILON = 1e-5

Cubes = tuple[npt.NDArray[Any], npt.NDArray[Any]]
# Where a chunk's dirty and PSF cubes are written: given their shapes, two zeroed ``>f4``
# arrays (in memory by default; the image job maps them into its chunk file).
AllocateCubes = Callable[[tuple[int, ...], tuple[int, ...]], Cubes]


def cubes_in_memory(dirty_shape: tuple[int, ...], psf_shape: tuple[int, ...]) -> Cubes:
    return np.zeros(dirty_shape, dtype=">f4"), np.zeros(psf_shape, dtype=">f4")


@dataclass(frozen=True)
class ImageGeometry:
    """Image size (pixels per side) and pixel size (radians)."""

    npix: int
    pixsize_rad: float

    @property
    def pixsize_arcsec(self) -> float:
        return math.degrees(self.pixsize_rad) * 3600.0


def choose_geometry(info: ObservationInfo, params: ImagingParams) -> ImageGeometry:
    """Pixel scale from the longest baseline, image size from the field of view.

    Either is taken from ``params`` when given there.
    """
    if params.pixel_scale_arcsec is not None:
        pixsize = math.radians(params.pixel_scale_arcsec / 3600.0)
    else:
        max_uv_lambda = info.max_uv_m * float(info.freq_hz.max()) / C_M_S
        pixsize = 1.0 / (params.pixels_per_beam * max(max_uv_lambda, 1.0))
    if params.image_size is not None:
        npix = params.image_size
    else:
        wanted = max(32, math.ceil(math.radians(params.fov_deg) / pixsize))
        npix = int(ducc0.fft.good_size(wanted))
        npix += npix % 2
    return ImageGeometry(npix=npix, pixsize_rad=pixsize)


# WSClean's uniform weighting counts visibilities in the cells of its padded image's Fourier
# grid (its -padding, 1.2 by default); spotcube uses the same cells, so that "uniform" gives
# the same image in both (tests/payload/test_against_wsclean.py).
UNIFORM_PADDING = 1.2


def uniform_grid_size(npix: int) -> int:
    """Pixels per side of the image whose Fourier grid holds the uniform-weighting cells.

    WSClean's padded size (``Settings::RecalculateDerivedDimensions``): ``npix`` x 1.2
    rounded up, then up to a multiple of 4.
    """
    padded = math.ceil(npix * UNIFORM_PADDING)
    return padded + (-padded) % 4


def uniform_weights(
    uvw_m: npt.NDArray[np.float64],
    freq_hz: float,
    weights: npt.NDArray[np.float64],
    geometry: ImageGeometry,
) -> npt.NDArray[np.float64]:
    """Uniform weights for one channel: each weight divided by its uv cell's weight sum.

    The cells are WSClean's (``ImageWeights``, structures/imageweights.h): those of the
    Fourier grid of the image padded to :func:`uniform_grid_size` pixels, a visibility with
    v < 0 counted as its Hermitian mirror (-u, -v), the cell of (u, v) being
    ``floor(u / cell) + W/2`` and ``floor(v / cell)``. A visibility beyond the grid has no
    cell and gets weight 0 (as in :func:`beyond_grid`).
    """
    size = uniform_grid_size(geometry.npix)
    scale = freq_hz / C_M_S * size * geometry.pixsize_rad  # cells per metre
    u = uvw_m[:, 0] * scale
    v = uvw_m[:, 1] * scale
    mirror = v < 0
    x = np.floor(np.where(mirror, -u, u) + size // 2).astype(np.int64)
    y = np.floor(np.abs(v)).astype(np.int64)
    inside = (x >= 0) & (x < size) & (y < size // 2)
    index = np.where(inside, y * size + x, 0)
    sums = np.bincount(index[inside], weights=weights[inside], minlength=size * size)
    density = np.where(inside, sums[index], 0.0)
    usable = (weights > 0) & (density > 0)
    return np.where(usable, weights / np.where(usable, density, 1.0), 0.0)


def beyond_grid(
    uvw_m: npt.NDArray[np.float64], freq_hz: float, geometry: ImageGeometry
) -> npt.NDArray[np.bool_]:
    """Visibilities whose |u| or |v| is beyond the image grid's Nyquist limit 1 / (2 pixsize).

    The convention: they are left out of the image, its weight sum and its PSF (counted and
    reported in provenance.json). Kept, they would alias: their
    fringes are finer than a pixel, so between pixel centres the dirty image would no longer
    be the band-limited sky, and an off-pixel source would lose flux. Left out, a coarser
    pixel scale lowers the resolution and keeps the flux scale.
    """
    limit = 0.5 / geometry.pixsize_rad
    scale = freq_hz / C_M_S
    return np.asarray((np.abs(uvw_m[:, 0]) * scale > limit) | (np.abs(uvw_m[:, 1]) * scale > limit))


def dirty_image(
    uvw_m: npt.NDArray[np.float64],
    freq_hz: float,
    vis: npt.NDArray[np.complex128],
    weights: npt.NDArray[np.float64],
    geometry: ImageGeometry,
    *,
    wgridding: bool = True,
    epsilon: float = 1e-6,
) -> npt.NDArray[np.floating[Any]]:
    """Unnormalised dirty image ``sum_k w_k V_k exp(-2 pi i (u l + v m + w (n-1)))``.

    Single precision when ``epsilon`` allows it (ducc0 needs > 1e-5 for that), as WSClean
    does by default, and then the image is float32; double precision otherwise.
    """
    single = epsilon > SINGLE_PRECISION_EPSILON
    vis_type, wgt_type = (np.complex64, np.float32) if single else (np.complex128, np.float64)
    image: npt.NDArray[np.floating[Any]] = ducc0.wgridder.experimental.vis2dirty(
        uvw=uvw_m,
        freq=np.asarray([freq_hz], dtype=np.float64),
        vis=np.ascontiguousarray(vis.reshape(-1, 1), dtype=vis_type),
        wgt=np.ascontiguousarray(weights.reshape(-1, 1), dtype=wgt_type),
        npix_x=geometry.npix,
        npix_y=geometry.npix,
        pixsize_x=geometry.pixsize_rad,
        pixsize_y=geometry.pixsize_rad,
        epsilon=epsilon,
        do_wgridding=wgridding,
        nthreads=1,
        divide_by_n=False,
        **FLIPS,
    )
    return image


@dataclass(frozen=True)
class ChunkImages:
    """Dirty and PSF images of one chunk, normalised, ready to be concatenated into FITS.

    ``dirty`` has shape (n_pols, n_channels, N, N) in FITS pixel order (y, x) and FITS's
    big-endian float32 (see :mod:`payload.fitsio`), so that the products are a byte copy
    of it; ``weight_sum`` is (n_pols, n_channels). ``psf`` holds the distinct PSF cubes
    only: polarization ``k``'s is ``psf[psf_rows[k]]``. When every channel has the same
    weights in every polarization (the usual case) that is one cube, not three identical
    ones, which is a third less to normalise, write and read. ``weighted_sum`` is the sum
    over channels of weight sum x dirty image of polarization ``shown`` (FITS order,
    float64), the numerator of its channel-averaged image.
    """

    polarizations: tuple[str, ...]
    dirty: npt.NDArray[np.float32]
    psf: npt.NDArray[np.float32]
    psf_rows: tuple[int, ...]
    weight_sum: npt.NDArray[np.float64]
    weighted_sum: npt.NDArray[np.float64]
    # visibilities left out as beyond the image grid (see beyond_grid), per (pol, channel):
    # how many, their weight, and the weight of all visibilities given
    beyond_count: npt.NDArray[np.int64]
    beyond_weight: npt.NDArray[np.float64]
    given_weight: npt.NDArray[np.float64]


def image_chunk(
    chunk: VisChunk,
    geometry: ImageGeometry,
    params: ImagingParams,
    *,
    shown: int = 0,
    allocate: AllocateCubes = cubes_in_memory,
) -> ChunkImages:
    """Image every channel and polarization of a chunk (dirty + PSF, normalised).

    Gridding is linear, so work is shared where the result is the same: polarizations with
    identical weights share one PSF, and when XX, YY and I all have the same weights the
    I image is (XX + YY) / 2 of the gridded XX and YY images instead of a third gridding.

    One task per channel grids that channel and writes its normalised images straight
    into the cubes ``allocate`` gives (reordered and converted on the way): the tasks run
    side by side in the thread pool, so normalising and writing cost no serial time, and
    a channel's images are freed as soon as it is done.
    """
    pols = params.polarizations
    n_chan = len(chunk.freq_hz)
    # Channel-major copies: a channel's weights are then contiguous, which makes the sums
    # and comparisons below several times faster than on strided columns (same values:
    # numpy's pairwise summation does not depend on the stride).
    by_channel = {pol: np.ascontiguousarray(chunk.weights[pol].T) for pol in pols}
    weights: dict[tuple[str, int], npt.NDArray[np.float64]] = {}
    beyond = np.zeros((len(pols), n_chan), dtype=np.int64)
    beyond_weight = np.zeros((len(pols), n_chan))
    given_weight = np.zeros((len(pols), n_chan))
    for c in range(n_chan):
        outside = beyond_grid(chunk.uvw_m, float(chunk.freq_hz[c]), geometry)
        for p, pol in enumerate(pols):
            weight = by_channel[pol][c]
            given_weight[p, c] = float(weight.sum())
            if outside.any():
                dropped = outside & (weight > 0)
                beyond[p, c] = int(dropped.sum())
                beyond_weight[p, c] = float(weight[dropped].sum())
                weight = np.where(outside, 0.0, weight)
            if params.weighting == "uniform":
                weight = uniform_weights(chunk.uvw_m, float(chunk.freq_hz[c]), weight, geometry)
            weights[pol, c] = weight

    weight_sum = np.zeros((len(pols), n_chan))
    for c in range(n_chan):
        for p, pol in enumerate(pols):
            weight_sum[p, c] = float(weights[pol, c].sum())
    same = [
        all(np.array_equal(weights[pols[0], c], weights[p, c]) for p in pols[1:])
        for c in range(n_chan)
    ]
    # Equal weights give equal PSFs (same gridding, same total): keep one row for all.
    psf_rows = tuple(0 for _ in pols) if all(same) else tuple(range(len(pols)))
    shape = (len(pols), n_chan, geometry.npix, geometry.npix)
    dirty, psf = allocate(shape, (max(psf_rows) + 1, *shape[1:]))
    # Each task weighs its channel of the shown image; the channels are summed afterwards
    # in channel order, so the sum does not depend on which task finished first.
    weighted = np.zeros((n_chan, geometry.npix, geometry.npix))

    def grid(kind: str, pol: str, c: int) -> npt.NDArray[np.floating[Any]]:
        weight = weights[pol, c]
        values = chunk.vis[pol][:, c] if kind == "dirty" else np.ones(len(weight), complex)
        return dirty_image(
            chunk.uvw_m,
            float(chunk.freq_hz[c]),
            values,
            weight,
            geometry,
            wgridding=params.wgridding,
            epsilon=params.epsilon,
        )

    def channel(c: int) -> None:
        derive_i = same[c] and {"XX", "YY", "I"} <= set(pols)
        raw: dict[tuple[str, str], npt.NDArray[np.floating[Any]]] = {}
        for p, pol in enumerate(pols):
            total = weight_sum[p, c]
            if total <= 0:
                continue
            if pol == "I" and derive_i:
                for part in ("XX", "YY"):
                    if ("dirty", part) not in raw:
                        raw["dirty", part] = grid("dirty", part, c)
                image = np.add(raw["dirty", "XX"], raw["dirty", "YY"], dtype=np.float64)
                image *= 0.5
            else:
                if ("dirty", pol) not in raw:
                    raw["dirty", pol] = grid("dirty", pol, c)
                image = raw["dirty", pol]
            # Normalised in float64 and cast once to >f4 through a transposed view: the
            # same values as normalising to float32 first and reordering afterwards.
            put_fits_order(dirty[p, c], image, divisor=total)
            if p == shown:
                np.multiply(dirty[p, c], total, out=weighted[c], dtype=np.float64)
            owner = pols[0] if same[c] else pol
            if ("psf", owner) not in raw:
                raw["psf", owner] = grid("psf", owner, c)
                put_fits_order(psf[psf_rows[p], c], raw["psf", owner], divisor=total)
            elif psf_rows[p] != psf_rows[pols.index(owner)]:
                put_fits_order(psf[psf_rows[p], c], raw["psf", owner], divisor=total)

    with ThreadPoolExecutor(max_workers=params.nthreads) as pool:
        list(pool.map(channel, range(n_chan)))
    with np.errstate(invalid="ignore"):  # inf - inf: refused by payload.validation, see fitsio
        weighted_sum = np.add.reduce(weighted, axis=0)
    return ChunkImages(
        polarizations=pols,
        dirty=dirty,
        psf=psf,
        psf_rows=psf_rows,
        weight_sum=weight_sum,
        weighted_sum=weighted_sum,
        beyond_count=beyond,
        beyond_weight=beyond_weight,
        given_weight=given_weight,
    )
