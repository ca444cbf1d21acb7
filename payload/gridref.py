"""A plain numpy w-gridder: the reference the ducc0 path is tested against.

Same kernel family as ducc0 (the "exponential of semicircle" kernel
``phi(x) = exp(beta (sqrt(1 - x^2) - 1))``, Barnett et al. 2019) and the same algorithm as
ducc0's w-gridding (Arras et al. 2021): visibilities are spread with the kernel onto an
oversampled uv grid and onto w planes, each plane is Fourier transformed and multiplied by
its w phase screen, and the sum is divided by the kernels' Fourier transforms. It is slow
and simple on purpose: clear enough to check by eye, written independently of ducc0.

Conventions match :func:`payload.imaging.dirty_image`: the result is
``sum_k w_k V_k exp(-2 pi i (u_k l + v_k m + w_k (n - 1)))`` at ``l = (i - N/2) dl``,
``m = (j - N/2) dl`` (the adjoint of pyuvdata's measurement convention).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

C_M_S = 299_792_458.0
SUPPORT = 12  # kernel width in grid cells; error ~1e-9 at oversampling 2
BETA = 2.3 * SUPPORT
OVERSAMPLING = 2


def es_kernel(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The ES kernel on [-1, 1] (zero outside)."""
    inside = np.abs(x) < 1.0
    root = np.sqrt(np.where(inside, 1.0 - x**2, 0.0))
    return np.where(inside, np.exp(BETA * (root - 1.0)), 0.0)


def es_kernel_ft(nu: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``integral phi(x) exp(2 pi i nu x W / 2) dx`` over the kernel's support (in cells).

    Evaluated by Gauss-Legendre quadrature; ``nu`` is the image coordinate in units of the
    grid's image-space period (cycles per cell).
    """
    nodes, weights = np.polynomial.legendre.leggauss(4 * SUPPORT + 40)
    half = SUPPORT / 2
    phase = 2.0 * np.pi * np.multiply.outer(np.asarray(nu, dtype=float), nodes * half)
    return np.asarray(half * (np.cos(phase) * (weights * es_kernel(nodes))).sum(axis=-1))


def _spread(
    grid: npt.NDArray[np.complex128],
    gu: npt.NDArray[np.float64],
    gv: npt.NDArray[np.float64],
    values: npt.NDArray[np.complex128],
) -> None:
    """Add ``values`` at fractional grid positions ``(gu, gv)`` with the ES kernel."""
    n = grid.shape[0]
    half = SUPPORT / 2
    base_u = np.floor(gu - half).astype(np.int64) + 1
    base_v = np.floor(gv - half).astype(np.int64) + 1
    ku = [es_kernel((base_u + a - gu) / half) for a in range(SUPPORT)]
    kv = [es_kernel((base_v + b - gv) / half) for b in range(SUPPORT)]
    flat = grid.reshape(-1)
    for a in range(SUPPORT):
        iu = (base_u + a) % n
        for b in range(SUPPORT):
            iv = (base_v + b) % n
            np.add.at(flat, iu * n + iv, values * ku[a] * kv[b])


def reference_dirty(
    uvw_m: npt.NDArray[np.float64],
    freq_hz: float,
    vis: npt.NDArray[np.complex128],
    weights: npt.NDArray[np.float64],
    npix: int,
    pixsize_rad: float,
    *,
    wgridding: bool = True,
) -> npt.NDArray[np.float64]:
    """Dirty image of one channel by ES-kernel (w-)gridding in plain numpy."""
    nu = OVERSAMPLING * npix
    du = 1.0 / (nu * pixsize_rad)
    scale = freq_hz / C_M_S
    u = uvw_m[:, 0] * scale
    v = uvw_m[:, 1] * scale
    w = uvw_m[:, 2] * scale if wgridding else np.zeros(len(uvw_m))
    values = np.asarray(vis * weights, dtype=np.complex128)
    # The dirty image's exponent is -2 pi i (u l + ...): grid at -u, so the inverse FFT's
    # +2 pi i sign gives it. Grid indices are centred: index c holds u = (c - nu/2) du.
    gu = -u / du + nu // 2
    gv = -v / du + nu // 2
    lm = (np.arange(npix) - npix // 2) * pixsize_rad
    ll, mm = np.meshgrid(lm, lm, indexing="ij")
    nm1 = np.sqrt(np.maximum(1.0 - ll**2 - mm**2, 0.0)) - 1.0  # n - 1 <= 0
    image = np.zeros((npix, npix), dtype=np.complex128)
    if wgridding and np.any(w != 0):
        x_max = max(float(np.abs(nm1).max()), 1e-12)
        dw = 1.0 / (2.0 * OVERSAMPLING * x_max)  # plane spacing: no aliasing in n - 1
        w0 = float(w.min()) - dw * SUPPORT / 2
        n_planes = math.ceil((float(w.max()) - w0) / dw) + SUPPORT + 1
        plane_w = w0 + dw * np.arange(n_planes)
        half = SUPPORT / 2
        for p in range(n_planes):
            kw = es_kernel((plane_w[p] - w) / (dw * half))
            if not kw.any():
                continue
            image += _plane_image(gu, gv, values * kw, nu, npix) * np.exp(
                -2j * np.pi * plane_w[p] * nm1
            )
        image /= es_kernel_ft(nm1 * dw)
    else:
        image = _plane_image(gu, gv, values, nu, npix)
    frac = (np.arange(npix) - npix // 2) / nu
    correction = es_kernel_ft(frac)
    return np.asarray((image / np.outer(correction, correction)).real)


def _plane_image(
    gu: npt.NDArray[np.float64],
    gv: npt.NDArray[np.float64],
    values: npt.NDArray[np.complex128],
    nu: int,
    npix: int,
) -> npt.NDArray[np.complex128]:
    grid = np.zeros((nu, nu), dtype=np.complex128)
    _spread(grid, gu, gv, values)
    # sum_c G[c] exp(+2 pi i (c - nu/2) (i - npix/2) / nu) for i in [0, npix)
    full = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(grid))) * nu * nu
    start = nu // 2 - npix // 2
    return np.asarray(full[start : start + npix, start : start + npix])
