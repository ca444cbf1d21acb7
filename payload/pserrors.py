"""Thermal-noise error model of the power spectrum: the noise maps of a uv cube's halves and
the variance of every bin of the even x odd cross power (``docs/imaging.md``, *Noise*).

The covariance of two cells of one half is ``exp(-|u_i - u_j|^2 / 4 s^2) Q((u_i + u_j) / 2)``
(:mod:`payload.psnorm`); :class:`NoiseMaps` holds Q of each half, band total and per channel
transformed along frequency, and :func:`binned_variance` sums the covariance of every pair of
(delay, cell) elements that share a bin, over the cell and delay offsets within the kernel's
and the window's reach. Nothing here depends on the beam: the maps depend on the sampling
only, and the sums on the sampling and on which cells are valid.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft

from payload.psnorm import VALID_NORM_FRACTION, fine_at, half_cell_maps, noise_fine
from payload.uvcube import UVCube, UVGrid

# Correlations below this are left out of the error sums: delay and cell offsets where no
# pair reaches CORRELATION_FLOOR, and within an offset cell pairs below PAIR_FLOOR.
CORRELATION_FLOOR = 1e-2
PAIR_FLOOR = 1e-3


@dataclass(frozen=True)
class NoiseMaps:
    """Q of each half of one polarization (psnorm.noise_fine, scaled by the window and the
    Jy-to-mK factor of each channel): half-cell maps of the band total (``q_e``, ``q_o``,
    :func:`payload.psnorm.half_cell_maps`), the band total on the half-cell grid
    (``fine_e``, ``fine_o``) and (``fine_t_e``, ``fine_t_o``) the same per channel,
    transformed along frequency (numpy.fft.rfft: delay offsets 0 ... n_f // 2): the
    covariance of two delays of a cell pair, which is not the band total times the window's
    correlation when the cell's sampling changes across the band. The transforms are empty
    (size 0) when left out to save memory; :func:`with_delay_maps` makes them again."""

    q_e: dict[tuple[int, int], npt.NDArray[np.float64]]
    q_o: dict[tuple[int, int], npt.NDArray[np.float64]]
    fine_e: npt.NDArray[np.float64]
    fine_o: npt.NDArray[np.float64]
    fine_t_e: npt.NDArray[np.complex64]
    fine_t_o: npt.NDArray[np.complex64]


def noise_maps(
    cube: UVCube,
    p: int,
    window: npt.NDArray[np.float64],
    to_mk: npt.NDArray[np.float64],
    df: float,
    *,
    delay_maps: bool = True,
) -> NoiseMaps:
    """The noise maps of polarization ``p`` (without ``delay_maps``: no transforms)."""
    fine_e, fine_o, fine_t_e, fine_t_o = _noise_maps(
        cube, p, window, to_mk, df, transforms=delay_maps
    )
    return NoiseMaps(
        half_cell_maps(fine_e, cube.grid.n),
        half_cell_maps(fine_o, cube.grid.n),
        fine_e,
        fine_o,
        fine_t_e,
        fine_t_o,
    )


def _noise_maps(
    cube: UVCube,
    p: int,
    window: npt.NDArray[np.float64],
    to_mk: npt.NDArray[np.float64],
    df: float,
    *,
    transforms: bool = True,
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.complex64],
    npt.NDArray[np.complex64],
]:
    """Q of each half on the half-cell grid, band total and (``transforms``) per channel
    transformed along frequency (:class:`NoiseMaps`)."""
    grid = cube.grid
    fine_e = np.zeros((2 * grid.n, grid.n + 1))
    fine_o = np.zeros((2 * grid.n, grid.n + 1))
    n_f = len(cube.freq_hz)
    # a_f^2 Q(f) channel by channel, then transformed along frequency in place
    noise_shape = (n_f, 2 * grid.n, grid.n + 1) if transforms else (0, 0, 0)
    per_channel = {h: np.zeros(noise_shape, np.float32) for h in (0, 1)}
    for c in range(n_f):
        for h, fine in ((0, fine_e), (1, fine_o)):
            half = cube.sampling[h, p, c]
            if half.any():
                q = (df * window[c] * to_mk[c]) ** 2 * noise_fine(half, grid)
                fine += q
                if transforms:
                    per_channel[h][c] = q
    if not transforms:
        empty = np.zeros((0, 0, 0), np.complex64)
        return fine_e, fine_o, empty, empty
    return (
        fine_e,
        fine_o,
        scipy.fft.rfft(per_channel.pop(0), axis=0).astype(np.complex64, copy=False),
        scipy.fft.rfft(per_channel.pop(1), axis=0).astype(np.complex64, copy=False),
    )


def with_delay_maps(
    noise: NoiseMaps,
    cube: UVCube,
    p: int,
    window: npt.NDArray[np.float64],
    to_mk: npt.NDArray[np.float64],
    df: float,
) -> NoiseMaps:
    """``noise`` with its noise maps' transforms along frequency (made again if left out)."""
    if noise.fine_t_e.size:
        return noise
    _, _, fine_t_e, fine_t_o = _noise_maps(cube, p, window, to_mk, df)
    return dataclasses.replace(noise, fine_t_e=fine_t_e, fine_t_o=fine_t_o)


def _shift3(array: npt.NDArray[Any], dt: int, dx: int, dy: int, fill: Any) -> npt.NDArray[Any]:
    """``array[t + dt, u + dx, v + dy]``: delays wrap (they are periodic), u and v do not."""
    rolled = np.roll(array, -dt, axis=0) if dt else array
    out = np.full_like(array, fill)
    _, n0, n1 = array.shape
    src_x = slice(max(dx, 0), n0 + min(dx, 0))
    dst_x = slice(max(-dx, 0), n0 + min(-dx, 0))
    src_y = slice(max(dy, 0), n1 + min(dy, 0))
    dst_y = slice(max(-dy, 0), n1 + min(-dy, 0))
    out[:, dst_x, dst_y] = rolled[:, src_x, src_y]
    return out


def _correlation(
    mid_maps: dict[tuple[int, int], npt.NDArray[np.complex64]],
    base: npt.NDArray[np.float64],
    dx: int,
    dy: int,
    du: float,
    s: float,
) -> npt.NDArray[np.complex128]:
    """Noise correlation coefficient of cell (u, v) with cell (u + dx, v + dy), at the delay
    offset whose transformed Q is ``mid_maps`` (half-cell maps, :func:`half_cell_maps`);
    ``base`` is each cell's band-total Q (its variance)."""
    mid = _shift3(mid_maps[dx % 2, dy % 2][None], 0, dx // 2, dy // 2, 0.0)[0]
    partner = _shift3(base[None], 0, dx, dy, 0.0)[0]
    denom = np.sqrt(np.clip(base * partner, 0.0, None))
    gauss = math.exp(-((dx * du) ** 2 + (dy * du) ** 2) / (4.0 * s**2))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(denom > 0, gauss * mid / denom, 0.0)
    return _clip_unit(r)


def _clip_unit(r: npt.NDArray[Any]) -> npt.NDArray[np.complex128]:
    """A correlation coefficient of magnitude at most 1 (rounding where Q is tiny)."""
    size = np.abs(r)
    return np.asarray(np.where(size > 1.0, r / np.where(size > 0, size, 1.0), r), np.complex128)


def _delay_offsets(noise: NoiseMaps, n_f: int) -> list[int]:
    """Delay offsets at which the cells' noise is still correlated (numpy.fft order, signed).

    The measure is the band-total-weighted mean over cells of |C_e(dt) C_o(dt)| / (C_e(0)
    C_o(0)), which is the window's |R(dt)|^2 when every cell's sampling is constant across
    the band; offsets where it is below CORRELATION_FLOOR are left out of the error sums.
    """
    base = float((noise.fine_e * noise.fine_o).sum())
    if base <= 0:
        return [0]
    rho = [
        float(np.abs(noise.fine_t_e[d].astype(np.complex128) * np.conj(noise.fine_t_o[d])).sum())
        / base
        for d in range(n_f // 2 + 1)
    ]
    return [d for d in range(-(n_f // 2), n_f - n_f // 2) if rho[abs(d)] > CORRELATION_FLOOR]


def _delay_maps(
    noise: NoiseMaps, dt: int, n: int
) -> tuple[dict[tuple[int, int], npt.NDArray[Any]], dict[tuple[int, int], npt.NDArray[Any]]]:
    """Half-cell maps of each half's Q transformed to delay offset ``dt``. Only the product
    of the two halves' (equally conjugated) values enters the errors, so -dt is dt."""
    return (
        half_cell_maps(noise.fine_t_e[abs(dt)], n),
        half_cell_maps(noise.fine_t_o[abs(dt)], n),
    )


def _pair_reach(grid: UVGrid) -> float:
    """Largest distance (wavelengths) between two valid cells whose noise can correlate.

    Two cells share noise through visibilities whose kernel reaches both. A cell is valid
    only if its normalisation exceeds VALID_NORM_FRACTION of the peak, which a visibility at
    distance d gives only while K(d)^2 = exp(-d^2 / s^2) does: d < s sqrt(ln(1 /
    VALID_NORM_FRACTION)). Where the coverage is sparse (one visibility near a cell) the
    correlation of two such cells stays ~1 up to twice that, far beyond the kernel's own
    exp(-d^2 / 4 s^2), so the kernel alone cannot bound the sums.
    """
    return 2.0 * grid.kernel_sigma_lambda * math.sqrt(math.log(1.0 / VALID_NORM_FRACTION))


def _cell_offsets(
    noise: NoiseMaps, grid: UVGrid, valid: npt.NDArray[np.bool_]
) -> list[tuple[int, int]]:
    """Cell offsets at which some pair of valid cells has a noise correlation (product of
    the two halves', band totals) of at least CORRELATION_FLOOR."""
    s = grid.kernel_sigma_lambda
    reach = _pair_reach(grid)
    steps = max(1, math.ceil(reach / grid.du))
    maps_e, maps_o = _delay_maps(noise, 0, grid.n)
    n0, n1 = valid.shape
    kept = []
    for dx in range(-steps, steps + 1):
        for dy in range(-steps, steps + 1):
            if math.hypot(dx, dy) * grid.du > reach:
                continue
            here = (slice(max(-dx, 0), n0 - max(dx, 0)), slice(max(-dy, 0), n1 - max(dy, 0)))
            there = (slice(max(dx, 0), n0 + min(dx, 0)), slice(max(dy, 0), n1 + min(dy, 0)))
            both = valid[here] & valid[there]
            if not both.any():
                continue
            r_e = _correlation(maps_e, noise.q_e[0, 0], dx, dy, grid.du, s)[here]
            r_o = _correlation(maps_o, noise.q_o[0, 0], dx, dy, grid.du, s)[here]
            if float(np.abs(r_e * np.conj(r_o))[both].max()) >= CORRELATION_FLOOR:
                kept.append((dx, dy))
    return kept


def default_workers() -> int:
    """Threads for the error sums: every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


Partial = list[tuple[str, npt.NDArray[Any]]]  # (binning, a bincount of weights to add to it)


def binned_variance(
    y: dict[str, npt.NDArray[np.float64]],
    bins: dict[str, npt.NDArray[np.int64]],
    n_bins: dict[str, int],
    noise: NoiseMaps,
    grid: UVGrid,
    *,
    workers: int | None = None,
) -> dict[str, npt.NDArray[np.float64]]:
    """``sum_ee' y_e y_e' Cov`` per bin for each binning, Cov the cross power's covariance.

    ``y`` is weight x per-cell noise scale on the (delay, u, v) grid; pairs of elements in
    the same bin are summed over offsets within the kernel's and the window's reach, each
    unordered pair once (times 2). The covariance of cells i and j at delays tau and
    tau + dt is ``Re[C_e C_o^*] / 2``, C of each half the transform of that pair's noise
    covariance along frequency at dt (exact: not the band total times the window's
    correlation, which is wrong where a cell's sampling changes across the band).

    The cell offsets of one delay offset are summed on ``workers`` threads (default: every
    core, :func:`default_workers`; numpy's element-wise operations on the big arrays run
    without the GIL, the Python between them does not), each offset's bincounts kept apart
    and added in a fixed order: the result does not depend on the number of threads, bit for
    bit.
    """
    n_f, n0, n1 = next(iter(y.values())).shape
    dts = _delay_offsets(noise, n_f)
    out = {name: np.zeros(n_bins[name]) for name in y}
    valid = np.zeros((n0, n1), dtype=bool)
    for values in y.values():
        valid |= (values != 0).any(axis=0)
    offsets = _cell_offsets(noise, grid, valid)
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        for dt in dts:
            # Delays whose partner dt away can share their bin at all (cylindrical bins hold
            # one |k_par| each, so only +-tau pairs near tau = 0 qualify when dt != 0).
            rows = {
                name: np.nonzero(
                    ((b >= 0) & (b == np.roll(b, -dt, axis=0))).reshape(n_f, -1).any(axis=1)
                )[0]
                for name, b in bins.items()
            }
            if not any(len(r) for r in rows.values()):
                continue
            at_dt = _AtDelayOffset(
                dt=dt,
                maps=_delay_maps(noise, dt, grid.n),
                base=(noise.q_e[0, 0], noise.q_o[0, 0]),
                rows=rows,
                rolled={
                    name: np.roll(values, -dt, axis=0)[rows[name]] for name, values in y.items()
                },
                rolled_b={name: np.roll(b, -dt, axis=0)[rows[name]] for name, b in bins.items()},
                picked={name: values[rows[name]] for name, values in y.items()},
                picked_b={name: b[rows[name]] for name, b in bins.items()},
                n_bins=n_bins,
                grid=grid,
            )
            # counted with its mirror: (dt, dx, dy) < (0, 0, 0)
            mine = [(dx, dy) for dx, dy in offsets if (dt, dx, dy) >= (0, 0, 0)]
            for partial in pool.map(at_dt.pair_sums, mine):
                for name, counts in partial:
                    out[name] += counts
        for partial in pool.map(
            functools.partial(_mirror_pair_sums, y, bins, n_bins, noise, grid, dts),
            _mirror_offsets(grid),
        ):
            for name, counts in partial:
                out[name] += counts
    return out


@dataclass(frozen=True)
class _AtDelayOffset:
    """What the cell offsets of one delay offset ``dt`` share: the noise maps at dt, and
    each binning's delays that can pair (``rows``), their values and bins, and those of
    their partners dt away (``rolled``)."""

    dt: int
    maps: tuple[dict[tuple[int, int], npt.NDArray[Any]], dict[tuple[int, int], npt.NDArray[Any]]]
    base: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
    rows: dict[str, npt.NDArray[np.int64]]
    rolled: dict[str, npt.NDArray[np.float64]]
    rolled_b: dict[str, npt.NDArray[np.int64]]
    picked: dict[str, npt.NDArray[np.float64]]
    picked_b: dict[str, npt.NDArray[np.int64]]
    n_bins: dict[str, int]
    grid: UVGrid

    def pair_sums(self, offset: tuple[int, int]) -> Partial:
        """The bincounts of the pairs of elements (u, v, tau), (u + dx, v + dy, tau + dt)."""
        dx, dy = offset
        dt, grid = self.dt, self.grid
        s = grid.kernel_sigma_lambda
        _, n0, n1 = next(iter(self.picked.values())).shape
        factor = (1.0 if (dt, dx, dy) == (0, 0, 0) else 2.0) / 2.0
        here = (
            slice(None),
            slice(max(-dx, 0), n0 - max(dx, 0)),
            slice(max(-dy, 0), n1 - max(dy, 0)),
        )
        there = (
            slice(None),
            slice(max(dx, 0), n0 + min(dx, 0)),
            slice(max(dy, 0), n1 + min(dy, 0)),
        )
        r_e = _correlation(self.maps[0], self.base[0], dx, dy, grid.du, s)
        r_o = _correlation(self.maps[1], self.base[1], dx, dy, grid.du, s)
        rr = (r_e * np.conj(r_o)).real[here[1:]]
        strong = np.abs(rr) >= PAIR_FLOOR
        if not strong.any():
            return []
        # Far offsets correlate only a few cells (edges of the coverage, lone
        # baselines): sum over those alone.
        cells: Any = (slice(None), *np.nonzero(strong)) if strong.mean() < 0.5 else (slice(None),)
        rr = rr[cells[1:]] * factor if len(cells) > 1 else rr * factor
        partial: Partial = []
        for name, values in self.picked.items():
            if not len(self.rows[name]):
                continue
            b = self.picked_b[name][here][cells]
            same = (b >= 0) & (b == self.rolled_b[name][there][cells])
            if not same.any():
                continue
            term = values[here][cells] * self.rolled[name][there][cells] * rr[None]
            partial.append(
                (name, np.bincount(b[same], weights=term[same], minlength=self.n_bins[name]))
            )
        return partial


def _mirror_offsets(grid: UVGrid) -> list[tuple[int, int]]:
    """The (dx, dy) of :func:`_mirror_pair_sums`: u_i + u_j within the reach of two valid
    cells' shared noise (see :func:`_pair_reach`), dy >= 0."""
    reach = _pair_reach(grid)
    steps = max(1, math.ceil(reach / grid.du))
    return [
        (dx, dy)
        for dx in range(-steps, steps + 1)
        for dy in range(0, steps + 1)
        if math.hypot(dx, dy) * grid.du <= reach
    ]


def _mirror_pair_sums(
    y: dict[str, npt.NDArray[np.float64]],
    bins: dict[str, npt.NDArray[np.int64]],
    n_bins: dict[str, int],
    noise: NoiseMaps,
    grid: UVGrid,
    dts: list[int],
    offset: tuple[int, int],
) -> Partial:
    """The pseudo-covariance E[G_i G_j] of cells near the v = 0 axis, u_i + u_j = ``offset``.

    Each visibility is gridded at u_k and (conjugated) at -u_k, so a cell near the axis and
    one near its mirror (u_i + u_j ~ 0) hold the same noise, one conjugated:
    ``E[G_i G_j] = exp(-|u_i + u_j|^2 / 4 s^2) Q((u_i - u_j) / 2)``, and after the delay
    transform it pairs tau with -tau: the transform of Q along frequency at tau_i + tau_j.
    Over every offset of :func:`_mirror_offsets` every ordered pair is met once.
    """
    dx, dy = offset
    s = grid.kernel_sigma_lambda
    n = grid.n
    n_f = next(iter(y.values())).shape[0]
    cols = np.arange(n)
    partial: Partial = []
    magnitudes = np.abs(np.asarray(dts, dtype=np.int64))  # none when the maps are not finite
    delay_stacks = (noise.fine_t_e[magnitudes], noise.fine_t_o[magnitudes])
    gauss2 = math.exp(-((dx * grid.du) ** 2 + (dy * grid.du) ** 2) / (2 * s**2))
    partner_cols = n - cols + dx
    ok = (partner_cols >= 0) & (partner_cols < n)
    a = cols[ok]
    a2 = partner_cols[ok]
    for b in range(0, dy + 1):
        b2 = dy - b
        if b2 > n // 2:
            continue
        denoms = []
        for fine in (noise.fine_e, noise.fine_o):
            qi = fine_at(fine, 2 * a, np.full(len(a), 2 * b))
            qj = fine_at(fine, 2 * a2, np.full(len(a), 2 * b2))
            denoms.append(np.sqrt(np.clip(qi * qj, 0.0, None)))
        # every delay offset at once: (dt, cell)
        rs = []
        for fine_t, denom in zip(delay_stacks, denoms, strict=True):
            mid = fine_at(fine_t, 2 * a - dx, np.full(len(a), 2 * b - dy))
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(denom > 0, math.sqrt(gauss2) * mid / denom, 0.0)
            rs.append(_clip_unit(r))
        rr_all = (rs[0] * np.conj(rs[1])).real / 2.0
        for dt, rr in zip(dts, rr_all, strict=True):
            if not (2.0 * np.abs(rr) >= CORRELATION_FLOOR).any():
                continue
            partner_t = ((dt - np.arange(n_f)) % n_f)[:, None]
            for name, values in y.items():
                here_b = bins[name][:, a, b]
                there_b = bins[name][partner_t, a2[None], b2]
                same = (here_b >= 0) & (here_b == there_b)
                if not same.any():
                    continue
                term = values[:, a, b] * values[partner_t, a2[None], b2] * rr[None]
                partial.append(
                    (name, np.bincount(here_b[same], weights=term[same], minlength=n_bins[name]))
                )
    return partial
