"""Per-cell normalisation and thermal-noise covariance of the gridded power spectrum.

The uv cube holds, per channel, ``G(u) = sum_j w_j V_j K(u - u_j)`` (Gaussian kernel K, the
transform of the image-plane taper T; see :mod:`payload.uvcube`). For a sky of power
spectrum P that is smooth on the scale of the primary beam's uv footprint,

    E[G(u) G'(u)^*] = P / (X^2 Y) * N(u),   N(u) = sum_jk a_j a'_k C(u_j - u'_k)

with ``a_j = w_j K(u - u_j)`` and ``C(d) = int A(l)^2 exp(2 pi i d.l) dOmega`` the transform
of the squared (power) primary beam A over solid angle, ``dOmega = dl dm / n`` with
``n = sqrt(1 - l^2 - m^2)``. The measure is solid angle because the 21 cm sky is white per
solid angle (statistically the same in every direction): a visibility is
``int A I exp(-2 pi i u.l) dl dm / n``, and two directions' brightness covary as
``P delta(Omega - Omega')``, so the ``1 / n`` of the visibility, squared, meets the ``n`` of
that delta written in ``dl dm``, leaving one ``1 / n``. (A flat-sky ``dl dm`` measure reads
P high by ``int A^2 dOmega / int A^2 dl dm``: 1.2 % for an MWA tile at zenith, 7.8 % for one
pointed 19.4 deg off it; docs/imaging.md, "Solid-angle measure".) N is the exact per-cell
normalisation for any uv
coverage and any beam: a lone visibility gives ``K^2 Omega_pp`` (the delay-spectrum
normaliser), many visibilities inside one beam footprint add coherently (``W^2 C(0)``),
visibilities farther apart than the footprint add in power. Writing C as an integral,

    N(u) = int A(l)^2 |sum_j a_j exp(2 pi i u_j.l)|^2 dOmega
         = int A(l)^2 |F[S(l' - l) T(l')](u)|^2 dOmega,

where ``S(l) = sum_j w_j exp(-2 pi i u_j.l)`` is the uv grid's unnormalised PSF (the
*sampling image*, stored in the uv cube on twice the grid's field, since l shifts it by up
to half a field) and F the grid's image-to-uv transform. The
integral over l is a sum over a lattice of beam directions whose spacing is fine enough that
the aliases of C (period 1 / spacing in uv) fall beyond the pairs of visibilities one cell
can couple (twice the kernel's reach) plus C's own width: one FFT of the grid per direction.
S is linear in the weights, so the sampling images of many observations add, and N of an
integrated cube is exact too (visibilities of different nights on the same uv track add
coherently, as they should).

Thermal noise of the gridded cube: with natural weights (w = nsamples, noise variance
``sigma0^2 / w``) the covariance of two cells is ``sigma0^2 sum_k w_k K(u_i - u_k) K(u_j -
u_k)``; for a Gaussian K that is ``exp(-|u_i - u_j|^2 / (4 s^2)) Q((u_i + u_j) / 2)`` with
``Q(x) = sigma0^2 sum_k w_k K(x - u_k)^2`` (s the kernel's sigma), and Q is a gridding of the
weights with a taper of twice T's variance, evaluated on a grid of half the cell size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft

from payload.beamframe import SIDEREAL_RAD_PER_S, BeamFrame
from payload.beams import PrimaryBeam
from payload.errors import InvalidInputError
from payload.uvcube import UVGrid

# Aliases of C must sit beyond the pairs a cell couples: visibilities within KERNEL_REACH
# kernel sigmas of the cell on either side (a pair 7 sigma apart weighs exp(-12) at most),
# plus C_REACH sigmas of C (exp(-8)).
KERNEL_REACH = 3.5
C_REACH = 4.0
# Beam directions where A^2 is below this fraction of its peak are left out of the sum.
BEAM_FLOOR = 1e-6
# The whole-sky integrals of the beam: a grid of WHOLE_SKY_STEPS x WHOLE_SKY_STEPS directions
# over -1 <= l, m <= 1 (0.11 degrees at zenith; the narrowest beam the payload knows, airy:14
# at 250 MHz, has A^2 of ~3 degrees FWHM, so ~30 samples across it).
WHOLE_SKY_STEPS = 1024
SKY_ROWS_PER_BLOCK = 64  # rows of the sky grid evaluated at once (64 x 1024 directions)
# Refusals (each would bias P(k) by about this fraction, see docs/imaging.md):
# the share of int A^2 outside the uv grid's field, which the per-cell normalisation's
# lattice does not reach (P comes out 1 / (1 - share) too high) ...
MAX_OUTSIDE_FRACTION = 0.01
# ... and the drift of a fixed beam across the sky within one coherently gridded cube, in
# units of the beam's Gaussian-equivalent sigma: samples a drift D apart share
# exp(-D^2 / 4 sigma^2) of their power, and over a uniform drift the pairs lose
# D^2 / (24 sigma^2) on average: 1 % at 0.5 sigma. Longer drift scans are gridded in
# segments of at most this drift and averaged in power (payload.drift).
MAX_DRIFT_SIGMA = 0.5
# Cells whose even-odd normalisation is below this fraction of the largest are left out of
# the power spectrum: their power would be mostly noise divided by almost nothing.
VALID_NORM_FRACTION = 1e-3
# Directions transformed together (memory: BATCH x n x n complex numbers, three times).
BATCH = 32


@dataclass(frozen=True)
class BeamLattice:
    """Directions to sum over: pixel offsets on the grid's image, (l, m), and dl^2."""

    shift_x: npt.NDArray[np.int64]
    shift_y: npt.NDArray[np.int64]
    l_dir: npt.NDArray[np.float64]
    m_dir: npt.NDArray[np.float64]
    area: float

    def select(self, keep: npt.NDArray[np.bool_]) -> BeamLattice:
        return BeamLattice(
            self.shift_x[keep], self.shift_y[keep], self.l_dir[keep], self.m_dir[keep], self.area
        )

    @property
    def solid_angle(self) -> npt.NDArray[np.float64]:
        """The solid angle each direction stands for, ``dl dm / n`` (0 beyond the horizon):
        the measure of a sky white per solid angle (module docstring)."""
        return solid_angle_weight(self.l_dir, self.m_dir) * self.area


def solid_angle_weight(
    l_dir: npt.NDArray[np.float64], m_dir: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``1 / n = 1 / sqrt(1 - l^2 - m^2)`` above the horizon, 0 beyond: ``dOmega / (dl dm)``."""
    r2 = np.asarray(l_dir, dtype=np.float64) ** 2 + np.asarray(m_dir, dtype=np.float64) ** 2
    inside = r2 < 1.0
    return np.where(inside, 1.0 / np.sqrt(np.where(inside, 1.0 - r2, 1.0)), 0.0)


def beam_lattice(grid: UVGrid, *, omega_pp: float) -> BeamLattice:
    """A lattice over the grid's image, spaced so that the aliases of C do no harm.

    ``omega_pp`` (sr), the smallest ``int A^2`` over the band, sets C's width: for a
    Gaussian A^2 of variance s^2, ``Omega_pp = 2 pi s^2`` and C has sigma ``1 / (2 pi s)``.
    """
    c_sigma = 1.0 / (2.0 * math.pi * math.sqrt(omega_pp / (2.0 * math.pi)))
    reach = 2.0 * KERNEL_REACH * grid.kernel_sigma_lambda + C_REACH * c_sigma
    step = max(1, int(1.0 / (reach * grid.pixsize)))  # lattice spacing in image pixels
    half = grid.n // 2
    offsets = np.arange(-(half // step) * step, half, step)
    ox, oy = np.meshgrid(offsets, offsets, indexing="ij")
    return BeamLattice(
        shift_x=ox.ravel().astype(np.int64),
        shift_y=oy.ravel().astype(np.int64),
        l_dir=ox.ravel() * grid.pixsize,
        m_dir=oy.ravel() * grid.pixsize,
        area=(step * grid.pixsize) ** 2,
    )


def cell_normalisation(
    sampling: tuple[npt.NDArray[np.floating], npt.NDArray[np.floating]],
    grid: UVGrid,
    lattice: BeamLattice,
    beam_squared: npt.NDArray[np.float64],
    *,
    taper: npt.NDArray[np.float64] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(N_ee, N_oo, N_eo)`` of one channel on the half-plane grid (n, n // 2 + 1).

    ``sampling`` are the even and odd halves' sampling images on twice the field (2n, 2n),
    ``beam_squared`` is A^2 at the lattice's directions; N_eo is the real part of the
    even-odd cross normalisation (the one the cross power is divided by).

    ``g_u(l) = F[S(. - l) T](u)``: the sampling image shifted by the direction l (which is
    why it is kept on twice the field), times the same taper as the gridder's, so the kernel
    is exactly the one the cube was gridded with.
    """
    window = grid.taper() if taper is None else taper
    s_e = np.asarray(sampling[0], dtype=np.float64)
    s_o = np.asarray(sampling[1], dtype=np.float64)
    n = grid.n
    shape = (n, n // 2 + 1)
    n_ee, n_oo, n_eo = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    # |g_u(-l)| = |g_u(l)| (the a_j are real): fold -l onto l and sum half the lattice.
    # Each direction weighs A^2 dOmega: the 21 cm sky is white per solid angle.
    folded: dict[tuple[int, int], float] = {}
    weighed = np.asarray(beam_squared, dtype=np.float64) * lattice.solid_angle
    for dx, dy, a2_domega in zip(lattice.shift_x, lattice.shift_y, weighed, strict=True):
        key = (int(dx), int(dy)) if (dx, dy) >= (0, 0) else (int(-dx), int(-dy))
        folded[key] = folded.get(key, 0.0) + float(a2_domega)
    floor = BEAM_FLOOR * max(folded.values(), default=0.0)
    todo = [(key, weight) for key, weight in sorted(folded.items()) if weight > floor]
    half = n // 2
    for start in range(0, len(todo), BATCH):
        part = todo[start : start + BATCH]
        # S(l' - l) on the field's pixels l': rows half - dx ... of the wide image
        idx = [(half - dx, half - dy) for (dx, dy), _ in part]
        moved_e = np.stack([s_e[a : a + n, b : b + n] for a, b in idx]) * window
        moved_o = np.stack([s_o[a : a + n, b : b + n] for a, b in idx]) * window
        weights = np.asarray([weight for _, weight in part])[:, None, None]
        h_e = _rfft_to_uv(moved_e)
        h_o = _rfft_to_uv(moved_o)
        n_ee += (weights * (h_e.real**2 + h_e.imag**2)).sum(axis=0)
        n_oo += (weights * (h_o.real**2 + h_o.imag**2)).sum(axis=0)
        n_eo += (weights * (h_e.real * h_o.real + h_e.imag * h_o.imag)).sum(axis=0)
    return n_ee, n_oo, n_eo


def _rfft_to_uv(images: npt.NDArray[np.float64]) -> npt.NDArray[np.complex128]:
    """:func:`payload.uvcube._to_uv` of a stack of images (last two axes)."""
    shifted = np.fft.ifftshift(images, axes=(-2, -1))
    half = np.conj(scipy.fft.rfft2(shifted, axes=(-2, -1)))
    return np.asarray(np.fft.fftshift(half, axes=-2))


def noise_fine(sampling: npt.NDArray[np.floating], grid: UVGrid) -> npt.NDArray[np.float64]:
    """``Q / sigma0^2`` on a grid of half the cell size: (2n, n + 1), u centred, v >= 0.

    Index ``(i2, j2)`` is ``(u, v) = ((i2 - n) du / 2, j2 du / 2)``. The sampling image covers
    twice the field, so its transform lands on this grid directly.
    """
    n = grid.n
    lm = (np.arange(2 * n) - n) * grid.pixsize
    r2 = lm[:, None] ** 2 + lm[None, :] ** 2
    # K^2 has half K's variance in uv, so its taper has twice T's variance in l.
    wide = np.exp(-0.25 * r2 / grid.taper_sigma_l**2)
    # The kernel the taper T makes on the grid is K(x) = sum_l T(l) exp(2 pi i x.l) =
    # (2 pi s_l^2 / pix^2) exp(-2 pi^2 s_l^2 x^2); the wide taper gives K^2 divided by
    # pi s_l^2 / pix^2. ducc0's dirty image is real: each visibility is gridded half at
    # u_k and half (conjugated) at -u_k, S holds w_k / 2 at both, and the two copies' noise
    # is uncorrelated (E[n n] = 0), so the noise variance is sigma0^2 / 2 times S's Q.
    scale = 0.5 * math.pi * grid.taper_sigma_l**2 / grid.pixsize**2
    return np.asarray(_rfft_to_uv(np.asarray(sampling, dtype=np.float64) * wide * scale).real)


def half_cell_maps(fine: npt.NDArray[Any], n: int) -> dict[tuple[int, int], npt.NDArray[Any]]:
    """Q on the half-plane grid and half a cell beyond it: key ``(a, b)`` is Q at
    ``(u + a du / 2, v + b du / 2)``."""
    padded = np.zeros((2 * n + 1, n + 2), dtype=fine.dtype)
    padded[: 2 * n, : n + 1] = fine
    return {
        (a, b): np.asarray(padded[a : a + 2 * n : 2, b : b + n + 1 : 2][:, : n // 2 + 1])
        for a in (0, 1)
        for b in (0, 1)
    }


def fine_at(
    fine: npt.NDArray[Any], i2: npt.NDArray[np.int64], j2: npt.NDArray[np.int64]
) -> npt.NDArray[Any]:
    """Q at half-cell indices, v of either sign (Q(-x) = Q(x): the sampling is Hermitian,
    channel by channel, so this holds for Q's transforms along frequency too). The grid is
    ``fine``'s last two axes: a stack of maps gives a stack of values."""
    n2, n_v = fine.shape[-2:]
    flip = j2 < 0
    ii = np.where(flip, (n2 - i2) % n2, i2 % n2)
    jj = np.abs(j2)
    inside = jj < n_v
    return np.where(inside, fine[..., ii, np.clip(jj, 0, n_v - 1)], 0.0)


def delay_correlation(window: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``|R(dt)|^2`` for every delay-bin offset (numpy.fft order): the noise correlation of
    two delay bins of one cell, squared, after the window ``window``, when the cell's
    sampling is the same in every channel (the limit of the per-cell-pair correlation
    :mod:`payload.powerspec` computes from the noise maps' frequency transforms)."""
    w2 = window**2
    r = np.fft.fft(w2) / w2.sum()
    return np.asarray(np.abs(r) ** 2)


@dataclass(frozen=True)
class SkyIntegrals:
    """Integrals of the power beam A over the sky above the horizon, in solid angle."""

    omega_p: float  # int A dOmega
    omega_pp: float  # int A^2 dOmega
    peak: float  # max A
    outside_fraction: float  # share of int A^2 dOmega beyond |l| or |m| > half_field
    half_field_needed: float  # the half field that would leave MAX_OUTSIDE_FRACTION out


def whole_sky_integrals(
    beam: PrimaryBeam,
    freq_hz: float,
    pol: str,
    *,
    half_field: float,
    frame: BeamFrame | None = None,
) -> SkyIntegrals:
    """int A and int A^2 over the sky above the horizon (``l^2 + m^2 < 1``), whatever the uv
    grid: a midpoint rule in ``(l, m)`` with the solid-angle measure ``dOmega = dl dm / n``,
    the one the per-cell normalisation sums in (module docstring).
    """
    n = WHOLE_SKY_STEPS
    step = 2.0 / n
    axis = -1.0 + step * (np.arange(n) + 0.5)
    # max(|l|, |m|) takes n/2 values, step x (rank + 1/2): int A^2 summed per rank gives the
    # outside share and the half field needed exactly, without holding the whole sky (a
    # row block at a time keeps this a few MiB instead of hundreds: tests/payload/
    # test_memory_estimate.py measures the job around it).
    rank = (np.abs(np.arange(n) + 0.5 - n / 2) - 0.5).astype(np.int64)
    a2_by_rank = np.zeros(n // 2)
    omega_p = 0.0
    peak = 0.0
    for first in range(0, n, SKY_ROWS_PER_BLOCK):
        rows = slice(first, min(n, first + SKY_ROWS_PER_BLOCK))
        ll = np.broadcast_to(axis[rows, None], (rows.stop - rows.start, n))
        mm = np.broadcast_to(axis[None, :], ll.shape)
        disk = ll**2 + mm**2 < 1.0
        if not disk.any():
            continue
        a = beam.power(ll[disk], mm[disk], freq_hz, pol, frame=frame)
        per_dl_dm = solid_angle_weight(ll[disk], mm[disk])  # dOmega / (dl dm)
        omega_p += float((a * per_dl_dm).sum())
        peak = max(peak, float(a.max()))
        reach_rank = np.maximum(rank[rows, None], rank[None, :])[disk]
        a2_by_rank += np.bincount(reach_rank, weights=a**2 * per_dl_dm, minlength=n // 2)
    reach = step * (np.arange(n // 2) + 0.5)
    omega_pp = float(a2_by_rank.sum()) * step**2
    outside = float(a2_by_rank[reach > half_field].sum()) * step**2
    # the smallest half field whose square holds all but MAX_OUTSIDE_FRACTION of int A^2
    cumulative = np.cumsum(a2_by_rank)
    needed_at = int(np.searchsorted(cumulative, (1.0 - MAX_OUTSIDE_FRACTION) * cumulative[-1]))
    needed = float(reach[min(needed_at, reach.size - 1)])
    return SkyIntegrals(
        omega_p=omega_p * step**2,
        omega_pp=omega_pp,
        peak=peak,
        outside_fraction=outside / omega_pp if omega_pp > 0 else 0.0,
        half_field_needed=needed,
    )


def beam_sky_fit(
    beam: PrimaryBeam,
    freqs_hz: tuple[float, ...],
    grid: UVGrid,
    *,
    frame: BeamFrame | None = None,
    refuse: bool = True,
) -> tuple[list[float], float]:
    """``int A^2`` at each of ``freqs_hz`` and the narrowest Gaussian-equivalent sigma (rad,
    ``sqrt(int A^2 / (pi max A^2))``) over them, after refusing a beam the estimator cannot
    normalise: one that reaches beyond the uv grid's field (unless ``refuse`` is False).

    Raises InvalidInputError with a one-line reason and what to change.
    """
    half_field = grid.n // 2 * grid.pixsize
    omegas: list[float] = []
    sigmas: list[float] = []
    for freq in freqs_hz:
        sky = whole_sky_integrals(beam, freq, "I", half_field=half_field, frame=frame)
        if sky.omega_pp <= 0:
            raise InvalidInputError(
                f"primary beam {beam.spec!r} is zero above the horizon at {freq / 1e6:.1f} MHz"
            )
        if refuse and sky.outside_fraction > MAX_OUTSIDE_FRACTION:
            # rounded down, so that the advice is enough
            largest_cell = math.floor(100.0 / (2.0 * sky.half_field_needed)) / 100.0
            raise InvalidInputError(
                f"primary beam {beam.spec!r}: {sky.outside_fraction:.1%} of int A^2 at "
                f"{freq / 1e6:.1f} MHz lies outside the uv grid's field (|l|, |m| < "
                f"{half_field:.2f}); use uv_cell_lambda <= {largest_cell:g} (--uv-cell)"
            )
        sigmas.append(math.sqrt(sky.omega_pp / (math.pi * sky.peak**2)))
        omegas.append(sky.omega_pp)
    # the narrowest beam of the band binds
    return omegas, min(sigmas)


def coherent_seconds(frame: BeamFrame | None, sigma_rad: float) -> float:
    """The longest stretch of time that may be gridded coherently: the sky drifts
    MAX_DRIFT_SIGMA x the beam's Gaussian-equivalent sigma through a fixed beam in it
    (infinite for a beam that tracks the phase centre)."""
    if frame is None or not frame.fixed:
        return math.inf
    rate = SIDEREAL_RAD_PER_S * abs(math.cos(frame.dec_rad))
    return math.inf if rate <= 0 else MAX_DRIFT_SIGMA * sigma_rad / rate


def check_drift(beam: PrimaryBeam, frame: BeamFrame | None, sigma_rad: float) -> None:
    """Refuse a cube gridded coherently over more drift than its normalisation allows.

    :mod:`payload.drift` splits a drift scan into segments short enough; a cube that was
    gridded over a longer drift can no longer be split, so it is refused (one line).
    """
    if frame is not None and frame.drift_rad > MAX_DRIFT_SIGMA * sigma_rad:
        longest_s = coherent_seconds(frame, sigma_rad)
        raise InvalidInputError(
            f"primary beam {beam.spec!r} is fixed on the ground and the sky drifts "
            f"{math.degrees(frame.drift_rad):.1f} deg through it in {frame.duration_s:.0f} s "
            f"of one coherently gridded cube (more than {MAX_DRIFT_SIGMA:g} x its "
            f"{math.degrees(sigma_rad):.1f} deg Gaussian-equivalent sigma): grid it in drift "
            f"segments of at most {math.floor(longest_s):.0f} s (payload.drift)"
        )


def check_beam_fits(
    beam: PrimaryBeam,
    freqs_hz: tuple[float, ...],
    grid: UVGrid,
    *,
    frame: BeamFrame | None = None,
) -> list[float]:
    """``int A^2`` at each of ``freqs_hz``, after refusing a beam the estimator cannot
    normalise: one that reaches beyond the uv grid's field (:func:`beam_sky_fit`), or one
    the sky drifts through by more than MAX_DRIFT_SIGMA during ``frame`` (:func:`check_drift`:
    a cube gridded coherently over that long).

    Raises InvalidInputError with a one-line reason and what to change.
    """
    omegas, sigma = beam_sky_fit(beam, freqs_hz, grid, frame=frame)
    check_drift(beam, frame, sigma)
    return omegas
