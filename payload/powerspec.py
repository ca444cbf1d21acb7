"""21 cm power spectra of a uv cube: cross power of even and odd halves, errors, averages.

Estimator, per polarization, uv cell u and delay tau (derivation in ``docs/imaging.md``)::

    Vt_h(u, tau) = sum_f df B(f) c(f) G_h(u, f) exp(-2 pi i f tau)     [mK sr Hz x weight]
    P(u, tau)    = Re[Vt_0 Vt_1^*] X^2 Y / (B_pp N_01(u))              [mK^2 Mpc^3]

with G_h the gridded visibilities of half h (0: even time samples, 1: odd), c(f) = lambda^2
/ (2 k_B) (Jy to mK sr), B the 4-term Blackman-Harris window (``scipy.signal.windows``),
``B_pp = df sum B^2``, X (Mpc/rad) and Y (Mpc/Hz) from astropy's Planck18 at the band
centre, and ``N_01(u)`` the window-weighted band mean of the per-cell normalisation of
:mod:`payload.psnorm`, which accounts for the primary beam, the taper and the uv coverage.
``k_perp = 2 pi |u| / X``, ``k_par = 2 pi |tau| / Y`` in Mpc^-1 (no h).

The cross power of halves with independent noise has no noise bias. The auto power of the
whole data set, ``|Vt_0 + Vt_1|^2 X^2 Y / (B_pp N_tot)``, is kept as ``*_auto`` with its
expected noise bias ``*_noise``. The thermal-noise 1 sigma of every bin (``sigma_*``) comes
from the noise covariance of the gridded cells (:func:`payload.psnorm.noise_fine`), scaled to
the even-odd difference, in which the sky cancels; it includes the correlation of
cells sharing visibilities (through the kernel) and of neighbouring delays, the latter from the
frequency transform of each cell pair's per-channel covariance (exact when a cell's sampling
changes across the band, which the window's correlation alone is not).

The horizon line is ``k_par = k_perp X / (Y nu)`` (delay |b|/c); ``wedge_buffer`` adds the
window's main lobe (4 delay bins) and the gridding kernel's reach (3 sigma).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import scipy.fft
from scipy.signal import windows

from payload.beamframe import BeamFrame
from payload.beams import PrimaryBeam, parse_beam
from payload.cosmology import CosmoScales, jy_to_mk_sr
from payload.errors import InvalidInputError
from payload.psnorm import (
    BEAM_FLOOR,
    MAX_DRIFT_SIGMA,
    BeamLattice,
    beam_lattice,
    beam_sky_fit,
    cell_normalisation,
    check_drift,
    fine_at,
    half_cell_maps,
    noise_fine,
    whole_sky_integrals,
)
from payload.uvcube import UVCube, UVGrid

SCHEMA = 2
BH_MAIN_LOBE_BINS = 4
# Cells whose even-odd normalisation is below this fraction of the largest are left out:
# their power would be mostly noise divided by almost nothing.
VALID_NORM_FRACTION = 1e-3
# Correlations below this are left out of the error sums: delay and cell offsets where no
# pair reaches CORRELATION_FLOOR, and within an offset cell pairs below PAIR_FLOOR.
CORRELATION_FLOOR = 1e-2
PAIR_FLOOR = 1e-3


BEAM_NORMALISATION = (
    "A is the power pattern; a dish is 1 at its pointing centre; an MWA tile is "
    "mwa_hyperbeam's pattern over the zenith response of the zenith-pointed tile; "
    "omega_pp_sr = int A^2 dl dm over the sky above the horizon"
)


def _describe(frame: BeamFrame | None) -> str:
    """The beam's frame as written in powerspec.h5 (``beam_frame``)."""
    if frame is None or not frame.fixed:
        return "tracking the phase centre"
    return json.dumps(
        {
            "fixed_on_ground": True,
            "latitude_deg": round(math.degrees(frame.latitude_rad), 6),
            "hour_angle_deg": round(math.degrees(frame.hour_angle_rad), 6),
            "dec_deg": round(math.degrees(frame.dec_rad), 6),
            "duration_s": round(frame.duration_s, 3),
        },
        sort_keys=True,
    )


def blackman_harris(n: int) -> npt.NDArray[np.float64]:
    """Symmetric 4-term Blackman-Harris window of ``n`` samples (scipy's)."""
    return np.asarray(windows.blackmanharris(n, sym=True), dtype=np.float64)


@dataclass
class PowerSpectrum:
    """Cylindrical and spherical power spectra of every polarization of a uv cube.

    ``p_*`` is the even x odd cross power (no noise bias), ``sigma_*`` its thermal-noise
    1 sigma, ``p_*_auto`` the auto power of all data and ``noise_*`` its expected noise
    bias. Cylindrical arrays are (pol, k_perp bin, k_par), spherical ones (pol, k bin);
    NaN where a bin is empty.
    """

    polarizations: tuple[str, ...]
    k_perp_edges: npt.NDArray[np.float64]
    k_par: npt.NDArray[np.float64]
    p_cyl: npt.NDArray[np.float64]
    sigma_cyl: npt.NDArray[np.float64]
    p_cyl_auto: npt.NDArray[np.float64]
    noise_cyl: npt.NDArray[np.float64]
    counts_cyl: npt.NDArray[np.int64]  # (k_perp bin,) cells per bin
    k_edges: npt.NDArray[np.float64]
    p_sph: npt.NDArray[np.float64]  # every mode
    sigma_sph: npt.NDArray[np.float64]
    p_sph_window: npt.NDArray[np.float64]  # modes above the wedge buffer only
    sigma_sph_window: npt.NDArray[np.float64]
    p_sph_auto: npt.NDArray[np.float64]
    noise_sph: npt.NDArray[np.float64]
    counts_sph: npt.NDArray[np.int64]
    counts_sph_window: npt.NDArray[np.int64]
    wedge_leakage: npt.NDArray[np.float64]  # (pol,) fraction of auto power above the buffer
    noise_sigma0_jy: npt.NDArray[np.float64]  # (pol,) noise of one visibility of nsamples 1
    scales: CosmoScales
    horizon_slope: float
    wedge_buffer: float
    primary_beam: str
    omega_pp: float  # int A^2 (sr) at the band centre, for reference
    bandwidth_pp_hz: float
    beam_frame: str = "tracking the phase centre"  # JSON of the BeamFrame, when fixed
    # JSON: how many segments were gridded apart and averaged in power, and how long each
    # lasted (payload.drift); one segment is the whole observation, gridded coherently.
    segments: str = ""
    # Per polarization: the spherical bin and weight of every (delay, u, v) element, and
    # k_perp of every cell; not written, used to bin a model the way the data were binned.
    elements: list[dict[str, npt.NDArray[Any]]] = field(default_factory=list, repr=False)

    def bin_model(
        self,
        model: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]],
        *,
        pol_index: int = 0,
        window_only: bool = False,
    ) -> npt.NDArray[np.float64]:
        """Spherical bins of a model: ``model(k_perp of the cells (u, v))`` returns the
        expected power of every (delay in FFT order, u, v) element."""
        parts = self.elements[pol_index]
        key = "win" if window_only else "sph"
        bins, weights = parts[f"{key}_bin"], parts[f"{key}_weight"]
        values = np.broadcast_to(model(parts["k_perp_cell"]), bins.shape)
        use = bins >= 0
        sums = np.bincount(
            bins[use], weights=(values * weights)[use], minlength=len(self.k_edges) - 1
        )
        have = np.bincount(bins[use], minlength=len(self.k_edges) - 1) > 0
        return np.where(have, sums, np.nan)

    _DATASETS = (
        "k_perp_edges",
        "k_par",
        "p_cyl",
        "sigma_cyl",
        "p_cyl_auto",
        "noise_cyl",
        "counts_cyl",
        "k_edges",
        "p_sph",
        "sigma_sph",
        "p_sph_window",
        "sigma_sph_window",
        "p_sph_auto",
        "noise_sph",
        "counts_sph",
        "counts_sph_window",
        "wedge_leakage",
        "noise_sigma0_jy",
    )

    def write(self, path: Any, *, attrs: Mapping[str, Any]) -> None:
        """Write to HDF5 byte-deterministically."""
        with h5py.File(path, "w", track_order=True) as handle:
            kw: dict[str, Any] = {"track_times": False}
            for name in self._DATASETS:
                handle.create_dataset(name, data=getattr(self, name), **kw)
            handle.attrs["schema"] = SCHEMA
            handle.attrs["product"] = "powerspec"
            handle.attrs["polarizations"] = json.dumps(list(self.polarizations))
            handle.attrs["units"] = json.dumps(
                {
                    "k": "Mpc^-1 (not h Mpc^-1)",
                    "power": "mK^2 Mpc^3",
                    "cosmology": "astropy Planck18",
                }
            )
            segmented = bool(self.segments) and json.loads(self.segments)["n_segments"] > 1
            handle.attrs["estimator"] = (
                "cross power of even and odd time samples (p_*), auto power of all (p_*_auto)"
                + (
                    ", per drift segment, averaged over segments weighted by each cell's "
                    "normalisation: X^2 Y sum_s Re[Vt_0s Vt_1s^*] / (B_pp sum_s N_01s)"
                    if segmented
                    else ""
                )
            )
            if self.segments:
                handle.attrs["drift_segments"] = self.segments
            handle.attrs["window"] = "blackman-harris (4-term, symmetric)"
            handle.attrs["primary_beam"] = self.primary_beam
            handle.attrs["redshift"] = self.scales.z
            handle.attrs["band_centre_hz"] = self.scales.freq_hz
            handle.attrs["x_mpc_per_rad"] = self.scales.x_mpc_per_rad
            handle.attrs["y_mpc_per_hz"] = self.scales.y_mpc_per_hz
            handle.attrs["horizon_slope"] = self.horizon_slope
            handle.attrs["wedge_buffer_per_mpc"] = self.wedge_buffer
            handle.attrs["omega_pp_sr"] = self.omega_pp
            handle.attrs["beam_normalisation"] = BEAM_NORMALISATION
            handle.attrs["beam_frame"] = self.beam_frame
            handle.attrs["bandwidth_pp_hz"] = self.bandwidth_pp_hz
            for key in sorted(attrs):
                handle.attrs[key] = attrs[key]


def _channel_width(freq_hz: npt.NDArray[np.float64]) -> float:
    if len(freq_hz) < 4:
        raise InvalidInputError(
            f"a power spectrum needs at least 4 frequency channels, the uv cube has {len(freq_hz)}"
        )
    steps = np.diff(freq_hz)
    if not np.allclose(steps, steps[0], rtol=1e-6, atol=1e-3) or steps[0] <= 0:
        raise InvalidInputError("a delay transform needs evenly spaced, increasing frequencies")
    return float(steps[0])


def _total(parts: Sequence[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    """Sum of per-segment maps (the one map itself for one segment)."""
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def beam_omega_pp(
    beam: PrimaryBeam, grid: UVGrid, freq_hz: float, pol: str, *, frame: BeamFrame | None = None
) -> float:
    """``int A^2 dl dm`` (sr) over the whole sky above the horizon (see :mod:`payload.psnorm`)."""
    half_field = grid.n // 2 * grid.pixsize
    return whole_sky_integrals(beam, freq_hz, pol, half_field=half_field, frame=frame).omega_pp


@dataclass
class _Norm:
    """Band-averaged per-cell quantities of one polarization (half-plane grid)."""

    n_ee: npt.NDArray[np.float64]
    n_oo: npt.NDArray[np.float64]
    n_eo: npt.NDArray[np.float64]
    q_e: dict[tuple[int, int], npt.NDArray[np.float64]]
    q_o: dict[tuple[int, int], npt.NDArray[np.float64]]
    fine_e: npt.NDArray[np.float64]  # Q of each half on the half-cell grid (psnorm.noise_fine)
    fine_o: npt.NDArray[np.float64]
    # The same per channel, transformed along frequency (numpy.fft.rfft: delay offsets
    # 0 ... n_f // 2): the covariance of two delays of a cell pair, which is not the band
    # total times the window's correlation when the cell's sampling changes across the band.
    fine_t_e: npt.NDArray[np.complex64]
    fine_t_o: npt.NDArray[np.complex64]


def _normalisation(
    cube: UVCube,
    p: int,
    beam: PrimaryBeam,
    window: npt.NDArray[np.float64],
    to_mk: npt.NDArray[np.float64],
    lattice: BeamLattice,
    df: float,
    *,
    frame: BeamFrame | None,
    noise_of: _Norm | None = None,
    delay_maps: bool = True,
) -> _Norm:
    """Band-averaged normalisation and noise maps of polarization ``p``; the noise maps
    depend on the sampling only, and are taken from ``noise_of`` when given (a polarization
    with the same sampling but another beam). Without ``delay_maps`` the noise maps'
    transforms along frequency (the big part) are left empty: :func:`_with_delay_maps` adds
    them when the error sums need them."""
    grid, pol = cube.grid, cube.polarizations[p]
    shape = (grid.n, grid.n // 2 + 1)
    w2 = window**2
    total = float(w2.sum())
    n_ee, n_oo, n_eo = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    taper = grid.taper()
    for c, freq in enumerate(cube.freq_hz):
        s_e, s_o = cube.sampling[0, p, c], cube.sampling[1, p, c]
        if not (s_e.any() or s_o.any()):
            continue
        a2 = beam.power(lattice.l_dir, lattice.m_dir, float(freq), pol, frame=frame) ** 2
        ee, oo, eo = cell_normalisation((s_e, s_o), grid, lattice, a2, taper=taper)
        share = w2[c] / total
        n_ee += share * ee
        n_oo += share * oo
        n_eo += share * eo
    if noise_of is not None:
        return _Norm(
            n_ee,
            n_oo,
            n_eo,
            noise_of.q_e,
            noise_of.q_o,
            noise_of.fine_e,
            noise_of.fine_o,
            noise_of.fine_t_e,
            noise_of.fine_t_o,
        )
    fine_e, fine_o, fine_t_e, fine_t_o = _noise_maps(
        cube, p, window, to_mk, df, transforms=delay_maps
    )
    return _Norm(
        n_ee,
        n_oo,
        n_eo,
        half_cell_maps(fine_e, grid.n),
        half_cell_maps(fine_o, grid.n),
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
    transformed along frequency (:class:`_Norm`)."""
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


def _with_delay_maps(
    norm: _Norm,
    cube: UVCube,
    p: int,
    window: npt.NDArray[np.float64],
    to_mk: npt.NDArray[np.float64],
    df: float,
) -> _Norm:
    """``norm`` with its noise maps' transforms along frequency (made again if left out)."""
    if norm.fine_t_e.size:
        return norm
    _, _, fine_t_e, fine_t_o = _noise_maps(cube, p, window, to_mk, df)
    return dataclasses.replace(norm, fine_t_e=fine_t_e, fine_t_o=fine_t_o)


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


def _delay_offsets(norm: _Norm, n_f: int) -> list[int]:
    """Delay offsets at which the cells' noise is still correlated (numpy.fft order, signed).

    The measure is the band-total-weighted mean over cells of |C_e(dt) C_o(dt)| / (C_e(0)
    C_o(0)), which is the window's |R(dt)|^2 when every cell's sampling is constant across
    the band; offsets where it is below CORRELATION_FLOOR are left out of the error sums.
    """
    base = float((norm.fine_e * norm.fine_o).sum())
    if base <= 0:
        return [0]
    rho = [
        float(np.abs(norm.fine_t_e[d].astype(np.complex128) * np.conj(norm.fine_t_o[d])).sum())
        / base
        for d in range(n_f // 2 + 1)
    ]
    return [d for d in range(-(n_f // 2), n_f - n_f // 2) if rho[abs(d)] > CORRELATION_FLOOR]


def _delay_maps(
    norm: _Norm, dt: int, n: int
) -> tuple[dict[tuple[int, int], npt.NDArray[Any]], dict[tuple[int, int], npt.NDArray[Any]]]:
    """Half-cell maps of each half's Q transformed to delay offset ``dt``. Only the product
    of the two halves' (equally conjugated) values enters the errors, so -dt is dt."""
    return (
        half_cell_maps(norm.fine_t_e[abs(dt)], n),
        half_cell_maps(norm.fine_t_o[abs(dt)], n),
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


def _cell_offsets(norm: _Norm, grid: UVGrid, valid: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Cell offsets at which some pair of valid cells has a noise correlation (product of
    the two halves', band totals) of at least CORRELATION_FLOOR."""
    s = grid.kernel_sigma_lambda
    reach = _pair_reach(grid)
    steps = max(1, math.ceil(reach / grid.du))
    maps_e, maps_o = _delay_maps(norm, 0, grid.n)
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
            r_e = _correlation(maps_e, norm.q_e[0, 0], dx, dy, grid.du, s)[here]
            r_o = _correlation(maps_o, norm.q_o[0, 0], dx, dy, grid.du, s)[here]
            if float(np.abs(r_e * np.conj(r_o))[both].max()) >= CORRELATION_FLOOR:
                kept.append((dx, dy))
    return kept


def _binned_variance(
    y: dict[str, npt.NDArray[np.float64]],
    bins: dict[str, npt.NDArray[np.int64]],
    n_bins: dict[str, int],
    norm: _Norm,
    grid: UVGrid,
) -> dict[str, npt.NDArray[np.float64]]:
    """``sum_ee' y_e y_e' Cov`` per bin for each binning, Cov the cross power's covariance.

    ``y`` is weight x per-cell noise scale on the (delay, u, v) grid; pairs of elements in
    the same bin are summed over offsets within the kernel's and the window's reach, each
    unordered pair once (times 2). The covariance of cells i and j at delays tau and
    tau + dt is ``Re[C_e C_o^*] / 2``, C of each half the transform of that pair's noise
    covariance along frequency at dt (exact: not the band total times the window's
    correlation, which is wrong where a cell's sampling changes across the band).
    """
    s = grid.kernel_sigma_lambda
    n_f, n0, n1 = next(iter(y.values())).shape
    dts = _delay_offsets(norm, n_f)
    out = {name: np.zeros(n_bins[name]) for name in y}
    valid = np.zeros((n0, n1), dtype=bool)
    for values in y.values():
        valid |= (values != 0).any(axis=0)
    offsets = _cell_offsets(norm, grid, valid)
    base_e, base_o = norm.q_e[0, 0], norm.q_o[0, 0]
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
        maps_e, maps_o = _delay_maps(norm, dt, grid.n)
        rolled = {name: np.roll(values, -dt, axis=0)[rows[name]] for name, values in y.items()}
        rolled_b = {name: np.roll(b, -dt, axis=0)[rows[name]] for name, b in bins.items()}
        picked = {name: values[rows[name]] for name, values in y.items()}
        picked_b = {name: b[rows[name]] for name, b in bins.items()}
        for dx, dy in offsets:
            if (dt, dx, dy) < (0, 0, 0):
                continue  # counted with its mirror
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
            r_e = _correlation(maps_e, base_e, dx, dy, grid.du, s)
            r_o = _correlation(maps_o, base_o, dx, dy, grid.du, s)
            rr = (r_e * np.conj(r_o)).real[here[1:]]
            strong = np.abs(rr) >= PAIR_FLOOR
            if not strong.any():
                continue
            # Far offsets correlate only a few cells (edges of the coverage, lone
            # baselines): sum over those alone.
            cells: Any = (
                (slice(None), *np.nonzero(strong)) if strong.mean() < 0.5 else (slice(None),)
            )
            rr = rr[cells[1:]] * factor if len(cells) > 1 else rr * factor
            for name, values in picked.items():
                if not len(rows[name]):
                    continue
                b = picked_b[name][here][cells]
                same = (b >= 0) & (b == rolled_b[name][there][cells])
                if not same.any():
                    continue
                term = values[here][cells] * rolled[name][there][cells] * rr[None]
                out[name] += np.bincount(b[same], weights=term[same], minlength=n_bins[name])
    _add_mirror_pairs(out, y, bins, n_bins, norm, grid, dts)
    return out


def _add_mirror_pairs(
    out: dict[str, npt.NDArray[np.float64]],
    y: dict[str, npt.NDArray[np.float64]],
    bins: dict[str, npt.NDArray[np.int64]],
    n_bins: dict[str, int],
    norm: _Norm,
    grid: UVGrid,
    dts: list[int],
) -> None:
    """The pseudo-covariance E[G_i G_j] of cells near the v = 0 axis.

    Each visibility is gridded at u_k and (conjugated) at -u_k, so a cell near the axis and
    one near its mirror (u_i + u_j ~ 0) hold the same noise, one conjugated:
    ``E[G_i G_j] = exp(-|u_i + u_j|^2 / 4 s^2) Q((u_i - u_j) / 2)``, and after the delay
    transform it pairs tau with -tau: the transform of Q along frequency at tau_i + tau_j.
    Every ordered pair is met once.
    """
    s = grid.kernel_sigma_lambda
    n = grid.n
    n_f = next(iter(y.values())).shape[0]
    # |u_i + u_j| within the reach of two valid cells' shared noise (see _pair_reach)
    reach = _pair_reach(grid)
    steps = max(1, math.ceil(reach / grid.du))
    cols = np.arange(n)
    for dx in range(-steps, steps + 1):
        for dy in range(0, steps + 1):
            if math.hypot(dx, dy) * grid.du > reach:
                continue
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
                for fine in (norm.fine_e, norm.fine_o):
                    qi = fine_at(fine, 2 * a, np.full(len(a), 2 * b))
                    qj = fine_at(fine, 2 * a2, np.full(len(a), 2 * b2))
                    denoms.append(np.sqrt(np.clip(qi * qj, 0.0, None)))
                for dt in dts:
                    rs = []
                    for fine_t, denom in zip((norm.fine_t_e, norm.fine_t_o), denoms, strict=True):
                        mid = fine_at(fine_t[abs(dt)], 2 * a - dx, np.full(len(a), 2 * b - dy))
                        with np.errstate(divide="ignore", invalid="ignore"):
                            r = np.where(denom > 0, math.sqrt(gauss2) * mid / denom, 0.0)
                        rs.append(_clip_unit(r))
                    rr = (rs[0] * np.conj(rs[1])).real / 2.0
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
                        out[name] += np.bincount(
                            here_b[same], weights=term[same], minlength=n_bins[name]
                        )


def spherical_edges(
    k_min: float, k_max: float, n_bins: int, *, min_width: float
) -> npt.NDArray[np.float64]:
    """At most ``n_bins`` logarithmic |k| bins, none narrower than ``min_width``.

    k_par is sampled every ``min_width``: a narrower bin would hold a sliver of one k_par
    plane (a few correlated cells), whose scatter says nothing about P(k).
    """
    raw = np.geomspace(k_min, k_max, n_bins + 1)
    edges = [float(raw[0])]
    for edge in raw[1:]:
        if edge - edges[-1] >= min_width:
            edges.append(float(edge))
    if edges[-1] < k_max:
        if len(edges) > 1:
            edges[-1] = float(k_max)
        else:
            edges.append(float(k_max))
    return np.asarray(edges)


@dataclass(frozen=True)
class DriftSegment:
    """A stretch of an observation gridded on its own: its uv cube (even and odd time
    samples of the stretch), where the beam sat during it (None: tracking the phase centre)
    and how long it lasted (s). See :mod:`payload.drift`."""

    cube: UVCube
    frame: BeamFrame | None
    seconds: float


def _segments_of(
    cube: UVCube | Sequence[DriftSegment], frame: BeamFrame | None
) -> list[DriftSegment]:
    if isinstance(cube, UVCube):
        return [DriftSegment(cube, frame, frame.duration_s if frame is not None else math.nan)]
    segments = list(cube)
    if not segments:
        raise InvalidInputError("a power spectrum needs at least one segment of data")
    first = segments[0].cube
    for i, seg in enumerate(segments[1:], start=1):
        other = seg.cube
        if (
            other.grid != first.grid
            or other.polarizations != first.polarizations
            or other.primary_beam != first.primary_beam
            or other.freq_hz.shape != first.freq_hz.shape
            or not np.allclose(other.freq_hz, first.freq_hz, rtol=0, atol=1.0)
        ):
            raise InvalidInputError(
                f"segment {i} differs from segment 0 in grid, band, polarizations or beam"
            )
    return segments


def _describe_segments(segments: Sequence[DriftSegment]) -> str:
    """The segmentation as written in powerspec.h5 (``drift_segments``)."""
    return json.dumps(
        {
            "n_segments": len(segments),
            "seconds": [
                round(seg.seconds, 3) if math.isfinite(seg.seconds) else None for seg in segments
            ],
            "hour_angle_deg": [
                None if seg.frame is None else round(math.degrees(seg.frame.hour_angle_rad), 6)
                for seg in segments
            ],
            "max_drift_sigma": MAX_DRIFT_SIGMA,
        },
        sort_keys=True,
    )


def compute_power_spectrum(
    cube: UVCube | Sequence[DriftSegment],
    *,
    n_k_bins: int = 16,
    beam: PrimaryBeam | None = None,
    frame: BeamFrame | None = None,
) -> PowerSpectrum:
    """Cylindrical (k_perp, k_par) and spherical power spectra of a uv cube, or of the
    segments of a drift scan.

    ``beam`` defaults to the one the cube records; ``frame`` places it on the sky (None: the
    beam tracks the phase centre). Refuses, with InvalidInputError, a beam that reaches
    beyond the uv grid's field or that the sky drifts through by more than
    MAX_DRIFT_SIGMA of its width during one cube (:func:`payload.psnorm.check_drift`).

    Given segments (:class:`DriftSegment`, each with its own frame), every segment's even x
    odd cross power is formed on its own and the segments are averaged in power, each cell
    weighted by its normalisation (``docs/imaging.md``, *Drift scans*):
    ``P = X^2 Y sum_s Re[Vt_0s Vt_1s^*] / (B_pp sum_s N_01s)``; ``frame``, if given, is the
    whole observation's (for the header).
    """
    segments = _segments_of(cube, frame)
    cube = segments[0].cube
    if frame is None:
        frame = segments[len(segments) // 2].frame
    beam = parse_beam(cube.primary_beam) if beam is None else beam
    grid = cube.grid
    freq = cube.freq_hz
    df = _channel_width(freq)
    n_f = len(freq)
    scales = CosmoScales.at(float(freq.mean()))
    x2y = scales.x_mpc_per_rad**2 * scales.y_mpc_per_hz
    window = blackman_harris(n_f)
    b_pp = df * float((window**2).sum())
    to_mk = np.asarray([jy_to_mk_sr(f) for f in freq])
    taper_to = (window * to_mk * df)[:, None, None]

    uu, vv = np.meshgrid(grid.u_lambda, grid.v_lambda, indexing="ij")
    # The v = 0 row holds each u < 0 cell's conjugate at +u: count it once.
    unique = ~((vv == 0) & (uu < 0))
    k_perp_cell = 2 * math.pi * np.hypot(uu, vv) / scales.x_mpc_per_rad
    n_par = n_f // 2 + 1
    k_par = np.asarray(2 * math.pi * np.arange(n_par) / (n_f * df) / scales.y_mpc_per_hz, float)
    fold = np.abs(np.rint(np.fft.fftfreq(n_f, df) * n_f * df)).astype(np.int64)
    fold_count = np.bincount(fold, minlength=n_par)
    k_perp_max = 2 * math.pi * (grid.n // 2) * grid.du / scales.x_mpc_per_rad
    k_perp_edges = np.linspace(0.0, k_perp_max, n_k_bins + 1)
    slope = scales.horizon_slope
    kernel_reach = 3.0 * grid.kernel_sigma_lambda / scales.freq_hz
    buffer = 2 * math.pi * (BH_MAIN_LOBE_BINS / (n_f * df) + kernel_reach) / scales.y_mpc_per_hz
    # k_par takes discrete values: the first bin is centred on the first one.
    k_min = max(float(k_par[1]) / 2 if n_par > 1 else 1e-3, float(k_perp_edges[1]) / 2)
    k_max = math.hypot(k_perp_max, float(k_par[-1]))
    k_edges = spherical_edges(
        k_min, k_max, n_k_bins, min_width=float(k_par[1]) if n_par > 1 else 0.0
    )
    n_sph = len(k_edges) - 1
    kbin_cell = np.clip(np.digitize(k_perp_cell, k_perp_edges) - 1, 0, n_k_bins - 1)
    k3 = np.hypot(k_perp_cell[None], k_par[fold][:, None, None])  # (delay, u, v)
    sbin_all = np.digitize(k3, k_edges) - 1
    above = k_par[fold][:, None, None] > slope * k_perp_cell[None] + buffer

    n_pol = len(cube.polarizations)
    cyl_shape = (n_pol, n_k_bins, n_par)
    sph_shape = (n_pol, n_sph)
    out = {
        name: np.full(shape, np.nan)
        for name, shape in (
            ("p_cyl", cyl_shape),
            ("sigma_cyl", cyl_shape),
            ("p_cyl_auto", cyl_shape),
            ("noise_cyl", cyl_shape),
            ("p_sph", sph_shape),
            ("sigma_sph", sph_shape),
            ("p_sph_window", sph_shape),
            ("sigma_sph_window", sph_shape),
            ("p_sph_auto", sph_shape),
            ("noise_sph", sph_shape),
        )
    }
    counts_cyl = np.zeros(n_k_bins, dtype=np.int64)
    counts_sph = np.zeros(n_sph, dtype=np.int64)
    counts_sph_window = np.zeros(n_sph, dtype=np.int64)
    leakage = np.zeros(n_pol)
    sigma0 = np.zeros(n_pol)
    elements: list[dict[str, npt.NDArray[Any]]] = []
    f_top = float(freq.max())
    # Each segment's beam is where that segment's frame puts it; segments whose frames
    # differ only in duration (rephased to their own zenith) share the sky integrals.
    fits: dict[Any, tuple[list[float], float]] = {}
    lattices: list[BeamLattice] = []
    for seg in segments:
        geometry = None if seg.frame is None else dataclasses.replace(seg.frame, duration_s=0.0)
        if geometry not in fits:
            fits[geometry] = beam_sky_fit(beam, (float(freq[0]), f_top), grid, frame=seg.frame)
        edges_pp, sigma_rad = fits[geometry]
        check_drift(beam, seg.frame, sigma_rad)
        lattice_all = beam_lattice(grid, omega_pp=min(edges_pp))
        reach_a2 = np.maximum(
            beam.power(lattice_all.l_dir, lattice_all.m_dir, float(freq[0]), "I", frame=seg.frame)
            ** 2,
            beam.power(lattice_all.l_dir, lattice_all.m_dir, f_top, "I", frame=seg.frame) ** 2,
        )
        lattices.append(lattice_all.select(reach_a2 > BEAM_FLOOR * float(reach_a2.max())))
    single = len(segments) == 1
    norms: dict[tuple[int, int], _Norm] = {}
    # The error sums of one set of normalisations at sigma0 = 1: twins scale them by sigma0^2.
    unit_variances: dict[tuple[int, ...], dict[str, npt.NDArray[np.float64]]] = {}
    for p in range(n_pol):
        for s, seg in enumerate(segments):
            sampling = seg.cube.sampling
            # Polarizations with the same sampling and the same beam share the normalisation.
            twin = next(
                (
                    q
                    for q in range(p)
                    if np.array_equal(sampling[:, q], sampling[:, p])
                    and (beam.kind != "mwa" or cube.polarizations[q] == cube.polarizations[p])
                ),
                None,
            )
            same_sampling = next(
                (q for q in range(p) if np.array_equal(sampling[:, q], sampling[:, p])), None
            )
            norms[s, p] = (
                norms[s, twin]
                if twin is not None
                else _normalisation(
                    seg.cube,
                    p,
                    beam,
                    window,
                    to_mk,
                    lattices[s],
                    df,
                    frame=seg.frame,
                    noise_of=None if same_sampling is None else norms[s, same_sampling],
                    # several segments: the big delay maps are made one segment at a time
                    delay_maps=single,
                )
            )
        seg_norms = [norms[s, p] for s in range(len(segments))]
        n_ee = _total([norm.n_ee for norm in seg_norms])
        n_oo = _total([norm.n_oo for norm in seg_norms])
        n_eo = _total([norm.n_eo for norm in seg_norms])
        peak = float(n_eo.max())
        valid = unique & (n_eo > VALID_NORM_FRACTION * peak) if peak > 0 else unique & False
        valid &= (n_ee > 0) & (n_oo > 0)
        n_tot = n_ee + n_oo + 2 * n_eo
        safe_eo = np.where(valid, n_eo, 1.0)
        safe_tot = np.where(valid, n_tot, 1.0)

        # Noise: the even-odd difference, with the odd half scaled to the even one's
        # weights so that the sky cancels, sets sigma0; the sampling sets the rest.
        # Segment by segment: the sky of one segment is not the sky of another.
        cross_raw = np.zeros((n_f, grid.n, grid.n // 2 + 1))
        auto_raw = np.zeros_like(cross_raw)
        diff = np.zeros_like(cross_raw)
        model = np.zeros((grid.n, grid.n // 2 + 1))
        q_sum = np.zeros_like(model)
        for seg, norm in zip(segments, seg_norms, strict=True):
            vt_e = np.fft.fft(seg.cube.vis_halves[0, p] * taper_to, axis=0)
            vt_o = np.fft.fft(seg.cube.vis_halves[1, p] * taper_to, axis=0)
            cross_raw += (vt_e * np.conj(vt_o)).real
            auto_raw += np.abs(vt_e + vt_o) ** 2
            w_e = seg.cube.weights_halves[0, p].mean(axis=0)
            w_o = seg.cube.weights_halves[1, p].mean(axis=0)
            both = valid & (w_o > 0) & (w_e > 0)
            alpha = np.where(both, w_e / np.where(w_o > 0, w_o, 1.0), 0.0)
            diff += np.where(both[None], np.abs(vt_e - alpha * vt_o) ** 2, 0.0)
            model += np.where(both, norm.q_e[0, 0] + alpha**2 * norm.q_o[0, 0], 0.0)
            q_sum += norm.q_e[0, 0] + norm.q_o[0, 0]
        cross = cross_raw * x2y / (b_pp * safe_eo)
        auto = auto_raw * x2y / (b_pp * safe_tot)
        fit = valid[None] & above & (model[None] > 0)
        if not fit.any():
            fit = np.broadcast_to(valid[None] & (model[None] > 0), diff.shape)
        var0 = (
            float(diff[fit].sum() / np.broadcast_to(model, diff.shape)[fit].sum())
            if fit.any()
            else 0.0
        )
        sigma0[p] = math.sqrt(var0) if var0 > 0 else 0.0
        noise_auto = np.where(valid, var0 * q_sum * x2y / (b_pp * safe_tot), 0.0)

        # Bins: every (delay, cell) element carries a weight, so that a bin's value is the
        # mean over its cells of the mean of +tau and -tau (as the spectra were defined).
        valid3 = np.broadcast_to(valid[None], cross.shape)
        fold3 = np.broadcast_to(fold[:, None, None], cross.shape)
        cyl_bin = np.where(valid3, kbin_cell[None] * n_par + fold3, -1)
        cells_per_kbin = np.bincount(kbin_cell[valid], minlength=n_k_bins)
        cyl_w = np.where(
            valid3, 1.0 / (fold_count[fold3] * np.maximum(cells_per_kbin[kbin_cell][None], 1)), 0.0
        )
        sph_bins = {}
        sph_w = {}
        for name, mask in (("sph", valid3), ("win", valid3 & above)):
            b = np.where(mask & (sbin_all >= 0) & (sbin_all < n_sph), sbin_all, -1)
            # number of (cell, |k_par|) pairs per bin, each +-tau pair counted once
            pairs = np.bincount(b[b >= 0], weights=1.0 / fold_count[fold3[b >= 0]], minlength=n_sph)
            sph_bins[name] = b
            sph_w[name] = np.where(
                b >= 0,
                1.0 / (fold_count[fold3] * np.maximum(pairs[np.clip(b, 0, None)], 1e-300)),
                0.0,
            )
            if name == "sph":
                counts_sph[:] = np.rint(pairs).astype(np.int64)
            else:
                counts_sph_window[:] = np.rint(pairs).astype(np.int64)
        counts_cyl[:] = cells_per_kbin

        def mean(
            values: npt.NDArray[np.float64],
            b: npt.NDArray[np.int64],
            w: npt.NDArray[np.float64],
            n: int,
        ) -> npt.NDArray[np.float64]:
            use = b >= 0
            sums = np.bincount(b[use], weights=(values * w)[use], minlength=n)
            have = np.bincount(b[use], minlength=n) > 0
            return np.where(have, sums, np.nan)

        n_cyl = n_k_bins * n_par
        out["p_cyl"][p] = mean(cross, cyl_bin, cyl_w, n_cyl).reshape(n_k_bins, n_par)
        out["p_cyl_auto"][p] = mean(auto, cyl_bin, cyl_w, n_cyl).reshape(n_k_bins, n_par)
        out["noise_cyl"][p] = mean(
            np.broadcast_to(noise_auto, cross.shape), cyl_bin, cyl_w, n_cyl
        ).reshape(n_k_bins, n_par)
        out["p_sph"][p] = mean(cross, sph_bins["sph"], sph_w["sph"], n_sph)
        out["p_sph_window"][p] = mean(cross, sph_bins["win"], sph_w["win"], n_sph)
        out["p_sph_auto"][p] = mean(auto, sph_bins["sph"], sph_w["sph"], n_sph)
        out["noise_sph"][p] = mean(
            np.broadcast_to(noise_auto, cross.shape), sph_bins["sph"], sph_w["sph"], n_sph
        )
        norm_key = tuple(id(norm) for norm in seg_norms)
        if norm_key not in unit_variances:
            # per-cell noise scale of the cross power at sigma0 = 1; valid cells and bins
            # depend on the normalisations only, so twins share these sums. Segments have
            # independent noise: their variances add.
            sums: dict[str, npt.NDArray[np.float64]] = {}
            for s, (seg, norm) in enumerate(zip(segments, seg_norms, strict=True)):
                q_eo = np.clip(norm.q_e[0, 0] * norm.q_o[0, 0], 0, None)
                z = np.where(valid, np.sqrt(q_eo) * x2y / (b_pp * safe_eo), 0.0)
                z3 = np.broadcast_to(z[None], cross.shape)
                part = _binned_variance(
                    {"cyl": cyl_w * z3, "sph": sph_w["sph"] * z3, "win": sph_w["win"] * z3},
                    {"cyl": cyl_bin, "sph": sph_bins["sph"], "win": sph_bins["win"]},
                    {"cyl": n_cyl, "sph": n_sph, "win": n_sph},
                    _with_delay_maps(norm, seg.cube, p, window, to_mk, df),
                    grid,
                )
                sums = part if s == 0 else {name: sums[name] + part[name] for name in sums}
            unit_variances[norm_key] = sums
        variance = {name: var0**2 * v for name, v in unit_variances[norm_key].items()}
        for name, key, shape in (
            ("cyl", "sigma_cyl", (n_k_bins, n_par)),
            ("sph", "sigma_sph", (n_sph,)),
            ("win", "sigma_sph_window", (n_sph,)),
        ):
            sigma = np.sqrt(np.clip(variance[name], 0.0, None)).reshape(shape)
            value_key = {"cyl": "p_cyl", "sph": "p_sph", "win": "p_sph_window"}[name]
            out[key][p] = np.where(np.isfinite(out[value_key][p]), sigma, np.nan)
        elements.append(
            {
                "sph_bin": sph_bins["sph"],
                "sph_weight": sph_w["sph"],
                "win_bin": sph_bins["win"],
                "win_weight": sph_w["win"],
                "k_perp_cell": k_perp_cell,
            }
        )
        folded_auto = np.where(valid3, auto, 0.0)
        total = float(folded_auto.sum())
        leakage[p] = float(folded_auto[above & valid3].sum()) / total if total > 0 else 0.0

    return PowerSpectrum(
        polarizations=cube.polarizations,
        k_perp_edges=k_perp_edges,
        k_par=k_par,
        p_cyl=out["p_cyl"],
        sigma_cyl=out["sigma_cyl"],
        p_cyl_auto=out["p_cyl_auto"],
        noise_cyl=out["noise_cyl"],
        counts_cyl=counts_cyl,
        k_edges=k_edges,
        p_sph=out["p_sph"],
        sigma_sph=out["sigma_sph"],
        p_sph_window=out["p_sph_window"],
        sigma_sph_window=out["sigma_sph_window"],
        p_sph_auto=out["p_sph_auto"],
        noise_sph=out["noise_sph"],
        counts_sph=counts_sph,
        counts_sph_window=counts_sph_window,
        wedge_leakage=leakage,
        noise_sigma0_jy=sigma0,
        scales=scales,
        horizon_slope=slope,
        wedge_buffer=buffer,
        primary_beam=beam.spec,
        omega_pp=beam_omega_pp(beam, grid, scales.freq_hz, "I", frame=frame),
        bandwidth_pp_hz=b_pp,
        beam_frame=_describe(frame),
        segments=_describe_segments(segments),
        elements=elements,
    )
