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

:func:`compute_power_spectrum` takes named steps, each returning a frozen record (listed above
:class:`DelayBand`); the error sums are :mod:`payload.pserrors`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
from scipy.signal import windows

from payload.beamframe import BeamFrame
from payload.beams import PrimaryBeam, parse_beam
from payload.cosmology import CosmoScales, jy_to_mk_sr
from payload.errors import InvalidInputError
from payload.pserrors import (
    NoiseMaps,
    binned_variance,
    default_workers,
    noise_maps,
    with_delay_maps,
)
from payload.psnorm import (
    BEAM_FLOOR,
    MAX_DRIFT_SIGMA,
    VALID_NORM_FRACTION,
    BeamLattice,
    SkyIntegrals,
    beam_lattice,
    beam_sky_fit,
    cell_normalisation,
    check_drift,
    whole_sky_integrals,
)
from payload.uvcube import UVCube, UVGrid

SCHEMA = 2
BH_MAIN_LOBE_BINS = 4


BEAM_NORMALISATION = (
    "A is the power pattern; a dish is 1 at its pointing centre; an MWA tile is "
    "mwa_hyperbeam's pattern over the zenith response of the zenith-pointed tile; "
    "omega_pp_sr = int A^2 dOmega over the sky above the horizon"
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
    """``int A^2 dOmega`` (sr) over the whole sky above the horizon (see :mod:`payload.psnorm`)."""
    return _sky_integrals(beam, grid, freq_hz, pol, frame=frame).omega_pp


def _sky_integrals(
    beam: PrimaryBeam, grid: UVGrid, freq_hz: float, pol: str, *, frame: BeamFrame | None = None
) -> SkyIntegrals:
    half_field = grid.n // 2 * grid.pixsize
    return whole_sky_integrals(beam, freq_hz, pol, half_field=half_field, frame=frame)


# The steps of compute_power_spectrum, in the order it takes them:
#   delay_band, geometry           the band's window and scales; k of every element, bins
#   beam_lattices, normalisations  the beam where each segment saw it; N_ee, N_oo, N_eo per
#                                  segment and polarization, with the noise maps
#   cell_weights                   the valid cells and the N that divides their power
#   delay_power                    cross and auto power of every element, sigma0
#   binning                        every element's bin and weight
#   unit_variance                  the error sums at sigma0 = 1 (payload.pserrors)
#   bin_power                      the binned spectra of one polarization


@dataclass(frozen=True)
class DelayBand:
    """The band as the delay transform sees it: channel width, the window, each channel's
    Jy-to-mK factor, the cosmological scales at the band centre, ``B_pp = df sum B^2`` and
    ``X^2 Y``."""

    freq_hz: npt.NDArray[np.float64]
    df: float
    window: npt.NDArray[np.float64]
    to_mk: npt.NDArray[np.float64]
    scales: CosmoScales
    b_pp: float
    x2y: float

    @property
    def n_f(self) -> int:
        return len(self.freq_hz)

    @property
    def taper_to(self) -> npt.NDArray[np.float64]:
        """What the delay transform multiplies a gridded cube by: window x mK sr / Jy x df."""
        return (self.window * self.to_mk * self.df)[:, None, None]

    def to_power(
        self, raw: npt.NDArray[np.float64], norm: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """``raw X^2 Y / (B_pp N)``: a product of two delay transforms in mK^2 Mpc^3."""
        return np.asarray(raw * self.x2y / (self.b_pp * norm))


def delay_band(freq_hz: npt.NDArray[np.float64]) -> DelayBand:
    """The band of a uv cube (refuses fewer than 4 or unevenly spaced channels)."""
    df = _channel_width(freq_hz)
    scales = CosmoScales.at(float(freq_hz.mean()))
    window = blackman_harris(len(freq_hz))
    return DelayBand(
        freq_hz=freq_hz,
        df=df,
        window=window,
        to_mk=np.asarray([jy_to_mk_sr(f) for f in freq_hz]),
        scales=scales,
        b_pp=df * float((window**2).sum()),
        x2y=scales.x_mpc_per_rad**2 * scales.y_mpc_per_hz,
    )


@dataclass(frozen=True)
class Geometry:
    """Where every (delay in FFT order, u, v) element of the half-plane uv cube lies in k,
    and the bins: cylindrical (k_perp bin, |k_par|) and spherical (|k|); ``above`` is the
    window above the wedge buffer line (``k_par > horizon_slope k_perp + wedge_buffer``)."""

    k_perp_cell: npt.NDArray[np.float64]  # (u, v)
    unique: npt.NDArray[np.bool_]  # (u, v): the v = 0 row's u < 0 cells are their mirrors
    k_perp_edges: npt.NDArray[np.float64]
    kbin_cell: npt.NDArray[np.int64]  # (u, v) k_perp bin of each cell
    k_par: npt.NDArray[np.float64]  # (n_f // 2 + 1,) |k_par| of each delay offset
    fold: npt.NDArray[np.int64]  # (delay,) index into k_par of each delay
    fold_count: npt.NDArray[np.int64]  # delays per |k_par| (2, or 1 at 0 and Nyquist)
    k_edges: npt.NDArray[np.float64]
    sph_bin: npt.NDArray[np.int64]  # (delay, u, v) |k| bin, unclipped
    above: npt.NDArray[np.bool_]  # (delay, u, v)
    horizon_slope: float
    wedge_buffer: float

    @property
    def n_k_bins(self) -> int:
        return len(self.k_perp_edges) - 1

    @property
    def n_par(self) -> int:
        return len(self.k_par)

    @property
    def n_sph(self) -> int:
        return len(self.k_edges) - 1


def geometry(grid: UVGrid, band: DelayBand, n_k_bins: int) -> Geometry:
    """k axes, the bins and the wedge of a uv grid over ``band``."""
    scales, df, n_f = band.scales, band.df, band.n_f
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
    k3 = np.hypot(k_perp_cell[None], k_par[fold][:, None, None])  # (delay, u, v)
    return Geometry(
        k_perp_cell=k_perp_cell,
        unique=unique,
        k_perp_edges=k_perp_edges,
        kbin_cell=np.clip(np.digitize(k_perp_cell, k_perp_edges) - 1, 0, n_k_bins - 1),
        k_par=k_par,
        fold=fold,
        fold_count=fold_count,
        k_edges=k_edges,
        sph_bin=np.digitize(k3, k_edges) - 1,
        above=k_par[fold][:, None, None] > slope * k_perp_cell[None] + buffer,
        horizon_slope=slope,
        wedge_buffer=buffer,
    )


def beam_lattices(
    segments: Sequence[DriftSegment], beam: PrimaryBeam, band: DelayBand, *, refuse: bool = True
) -> list[BeamLattice]:
    """The beam directions each segment's normalisation sums over, where that segment's
    frame puts the beam; refuses a beam the sky drifts through too far during a segment
    (:func:`payload.psnorm.check_drift`). Segments whose frames differ only in duration
    (rephased to their own zenith) share the sky integrals."""
    grid = segments[0].cube.grid
    f_bottom, f_top = float(band.freq_hz[0]), float(band.freq_hz.max())
    fits: dict[Any, tuple[list[float], float]] = {}
    lattices: list[BeamLattice] = []
    for seg in segments:
        geometry = None if seg.frame is None else dataclasses.replace(seg.frame, duration_s=0.0)
        if geometry not in fits:
            fits[geometry] = beam_sky_fit(
                beam, (f_bottom, f_top), grid, frame=seg.frame, refuse=refuse
            )
        edges_pp, sigma_rad = fits[geometry]
        if refuse:
            check_drift(beam, seg.frame, sigma_rad)
        lattice_all = beam_lattice(grid, omega_pp=min(edges_pp))
        reach_a2 = np.maximum(
            beam.power(lattice_all.l_dir, lattice_all.m_dir, f_bottom, "I", frame=seg.frame) ** 2,
            beam.power(lattice_all.l_dir, lattice_all.m_dir, f_top, "I", frame=seg.frame) ** 2,
        )
        lattices.append(lattice_all.select(reach_a2 > BEAM_FLOOR * float(reach_a2.max())))
    return lattices


@dataclass(frozen=True)
class CellNorm:
    """One polarization of one segment: the band-averaged per-cell normalisations of the
    even x even, odd x odd and even x odd products (:func:`payload.psnorm.cell_normalisation`,
    each channel weighted by its share of the window's B^2), on the half-plane grid, and the
    noise maps of its sampling (:class:`payload.pserrors.NoiseMaps`)."""

    n_ee: npt.NDArray[np.float64]
    n_oo: npt.NDArray[np.float64]
    n_eo: npt.NDArray[np.float64]
    noise: NoiseMaps


def cell_norm(
    cube: UVCube,
    p: int,
    beam: PrimaryBeam,
    band: DelayBand,
    lattice: BeamLattice,
    *,
    frame: BeamFrame | None,
    noise: NoiseMaps,
    workers: int | None = None,
) -> CellNorm:
    """The band-averaged normalisation of polarization ``p`` of ``cube`` (with ``noise``).

    The channels' normalisations are independent: they are made on ``workers`` threads
    (numpy's products and sums and scipy's transforms run without the GIL) and added in
    channel order, so the result is the same, bit for bit, for any number of threads. The
    beam is evaluated beforehand, in this thread (a beam library need not be thread-safe).
    """
    grid, pol = cube.grid, cube.polarizations[p]
    shape = (grid.n, grid.n // 2 + 1)
    w2 = band.window**2
    total = float(w2.sum())
    n_ee, n_oo, n_eo = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    taper = grid.taper()
    channels = [
        c
        for c in range(len(band.freq_hz))
        if cube.sampling[0, p, c].any() or cube.sampling[1, p, c].any()
    ]
    a2 = {
        c: beam.power(lattice.l_dir, lattice.m_dir, float(band.freq_hz[c]), pol, frame=frame) ** 2
        for c in channels
    }

    def one(c: int) -> tuple[npt.NDArray[np.float64], ...]:
        sampling = (cube.sampling[0, p, c], cube.sampling[1, p, c])
        return cell_normalisation(sampling, grid, lattice, a2[c], taper=taper)

    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        for c, (ee, oo, eo) in zip(channels, pool.map(one, channels), strict=True):
            share = w2[c] / total
            n_ee += share * ee
            n_oo += share * oo
            n_eo += share * eo
    return CellNorm(n_ee, n_oo, n_eo, noise)


def normalisations(
    segments: Sequence[DriftSegment],
    beam: PrimaryBeam,
    band: DelayBand,
    lattices: Sequence[BeamLattice],
    *,
    workers: int | None = None,
) -> list[list[CellNorm]]:
    """Every polarization's normalisation in every segment: ``[pol][segment]``.

    Polarizations with the same sampling and the same beam share the normalisation (the
    same object: their error sums are shared too); with the same sampling only (an MWA
    tile's XX and YY) they share the noise maps. With several segments the noise maps'
    big transforms along frequency are left out here and made one segment at a time by the
    error sums (:func:`payload.pserrors.with_delay_maps`).
    """
    first = segments[0].cube
    kind = beam.kind
    single = len(segments) == 1
    out: list[list[CellNorm]] = []
    for p in range(len(first.polarizations)):
        row: list[CellNorm] = []
        for s, seg in enumerate(segments):
            sampling = seg.cube.sampling
            same_sampling = [q for q in range(p) if np.array_equal(sampling[:, q], sampling[:, p])]
            twin = next(
                (
                    q
                    for q in same_sampling
                    if kind != "mwa" or first.polarizations[q] == first.polarizations[p]
                ),
                None,
            )
            if twin is not None:
                row.append(out[twin][s])
                continue
            noise = (
                out[same_sampling[0]][s].noise
                if same_sampling
                else noise_maps(seg.cube, p, band.window, band.to_mk, band.df, delay_maps=single)
            )
            row.append(
                cell_norm(
                    seg.cube,
                    p,
                    beam,
                    band,
                    lattices[s],
                    frame=seg.frame,
                    noise=noise,
                    workers=workers,
                )
            )
        out.append(row)
    return out


@dataclass(frozen=True)
class CellWeights:
    """One polarization, segments summed: the cells that enter its spectra (``valid``) and
    the normalisations that divide their cross power (``n_eo``) and auto power (``n_tot``),
    1 where a cell is not valid."""

    valid: npt.NDArray[np.bool_]
    n_eo: npt.NDArray[np.float64]
    n_tot: npt.NDArray[np.float64]


def cell_weights(norms: Sequence[CellNorm], geometry: Geometry) -> CellWeights:
    """Valid cells: unique, both halves sampled, and an even x odd normalisation above
    VALID_NORM_FRACTION of the largest."""
    n_ee = _total([norm.n_ee for norm in norms])
    n_oo = _total([norm.n_oo for norm in norms])
    n_eo = _total([norm.n_eo for norm in norms])
    unique = geometry.unique
    peak = float(n_eo.max())
    valid = unique & (n_eo > VALID_NORM_FRACTION * peak) if peak > 0 else unique & False
    valid &= (n_ee > 0) & (n_oo > 0)
    n_tot = n_ee + n_oo + 2 * n_eo
    return CellWeights(valid, np.where(valid, n_eo, 1.0), np.where(valid, n_tot, 1.0))


@dataclass(frozen=True)
class DelayPower:
    """One polarization's power on the (delay in FFT order, u, v) grid, mK^2 Mpc^3: even x
    odd ``cross`` (segments summed before the normalisation divides), ``auto`` of all data,
    and the auto power's expected noise bias per cell (``noise_auto``); ``var0`` is the
    variance of one visibility of nsamples 1 (Jy^2), fitted on the even-odd difference."""

    cross: npt.NDArray[np.float64]
    auto: npt.NDArray[np.float64]
    noise_auto: npt.NDArray[np.float64]
    var0: float

    @property
    def sigma0(self) -> float:
        return math.sqrt(self.var0) if self.var0 > 0 else 0.0


def delay_power(
    segments: Sequence[DriftSegment],
    p: int,
    norms: Sequence[CellNorm],
    cells: CellWeights,
    band: DelayBand,
    geometry: Geometry,
) -> DelayPower:
    """Delay-transform polarization ``p`` of every segment and form its power."""
    grid = segments[0].cube.grid
    taper_to = band.taper_to
    valid = cells.valid
    # Noise: the even-odd difference, with the odd half scaled to the even one's
    # weights so that the sky cancels, sets sigma0; the sampling sets the rest.
    # Segment by segment: the sky of one segment is not the sky of another.
    cross_raw = np.zeros((band.n_f, grid.n, grid.n // 2 + 1))
    auto_raw = np.zeros_like(cross_raw)
    diff = np.zeros_like(cross_raw)
    model = np.zeros((grid.n, grid.n // 2 + 1))
    q_sum = np.zeros_like(model)
    for seg, norm in zip(segments, norms, strict=True):
        vt_e = np.fft.fft(seg.cube.vis_halves[0, p] * taper_to, axis=0)
        vt_o = np.fft.fft(seg.cube.vis_halves[1, p] * taper_to, axis=0)
        cross_raw += (vt_e * np.conj(vt_o)).real
        auto_raw += np.abs(vt_e + vt_o) ** 2
        w_e = seg.cube.weights_halves[0, p].mean(axis=0)
        w_o = seg.cube.weights_halves[1, p].mean(axis=0)
        both = valid & (w_o > 0) & (w_e > 0)
        alpha = np.where(both, w_e / np.where(w_o > 0, w_o, 1.0), 0.0)
        diff += np.where(both[None], np.abs(vt_e - alpha * vt_o) ** 2, 0.0)
        q_e, q_o = norm.noise.q_e[0, 0], norm.noise.q_o[0, 0]
        model += np.where(both, q_e + alpha**2 * q_o, 0.0)
        q_sum += q_e + q_o
    fit = valid[None] & geometry.above & (model[None] > 0)
    if not fit.any():
        fit = np.broadcast_to(valid[None] & (model[None] > 0), diff.shape)
    var0 = (
        float(diff[fit].sum() / np.broadcast_to(model, diff.shape)[fit].sum()) if fit.any() else 0.0
    )
    return DelayPower(
        cross=band.to_power(cross_raw, cells.n_eo),
        auto=band.to_power(auto_raw, cells.n_tot),
        noise_auto=np.where(valid, band.to_power(var0 * q_sum, cells.n_tot), 0.0),
        var0=var0,
    )


BINNINGS = ("cyl", "sph", "win")  # cylindrical, spherical, spherical above the buffer


@dataclass(frozen=True)
class Binning:
    """Every (delay, u, v) element's bin (-1: in none) and weight in each of BINNINGS, so
    that a bin's value is the mean over its cells of the mean of +tau and -tau (as the
    spectra are defined); and how many cells (cyl) or (cell, |k_par|) pairs (sph, win) each
    bin holds."""

    bins: Mapping[str, npt.NDArray[np.int64]]
    weights: Mapping[str, npt.NDArray[np.float64]]
    n_bins: Mapping[str, int]
    counts: Mapping[str, npt.NDArray[np.int64]]

    def mean(self, name: str, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The binned values in binning ``name`` (NaN where a bin is empty)."""
        b, w, n = self.bins[name], self.weights[name], self.n_bins[name]
        use = b >= 0
        sums = np.bincount(b[use], weights=(values * w)[use], minlength=n)
        have = np.bincount(b[use], minlength=n) > 0
        return np.where(have, sums, np.nan)


def binning(geometry: Geometry, valid: npt.NDArray[np.bool_]) -> Binning:
    """The bins of the valid cells' elements."""
    fold, fold_count, n_par = geometry.fold, geometry.fold_count, geometry.n_par
    kbin_cell, n_k_bins, n_sph = geometry.kbin_cell, geometry.n_k_bins, geometry.n_sph
    shape = (len(fold), *valid.shape)
    valid3 = np.broadcast_to(valid[None], shape)
    fold3 = np.broadcast_to(fold[:, None, None], shape)
    cells_per_kbin = np.bincount(kbin_cell[valid], minlength=n_k_bins)
    bins = {"cyl": np.where(valid3, kbin_cell[None] * n_par + fold3, -1)}
    weights = {
        "cyl": np.where(
            valid3, 1.0 / (fold_count[fold3] * np.maximum(cells_per_kbin[kbin_cell][None], 1)), 0.0
        )
    }
    counts = {"cyl": cells_per_kbin}
    for name, mask in (("sph", valid3), ("win", valid3 & geometry.above)):
        sbin = geometry.sph_bin
        b = np.where(mask & (sbin >= 0) & (sbin < n_sph), sbin, -1)
        # number of (cell, |k_par|) pairs per bin, each +-tau pair counted once
        pairs = np.bincount(b[b >= 0], weights=1.0 / fold_count[fold3[b >= 0]], minlength=n_sph)
        bins[name] = b
        weights[name] = np.where(
            b >= 0, 1.0 / (fold_count[fold3] * np.maximum(pairs[np.clip(b, 0, None)], 1e-300)), 0.0
        )
        counts[name] = np.rint(pairs).astype(np.int64)
    return Binning(bins, weights, {"cyl": n_k_bins * n_par, "sph": n_sph, "win": n_sph}, counts)


def unit_variance(
    segments: Sequence[DriftSegment],
    p: int,
    norms: Sequence[CellNorm],
    cells: CellWeights,
    bins: Binning,
    band: DelayBand,
    *,
    workers: int | None = None,
) -> dict[str, npt.NDArray[np.float64]]:
    """The variance of every bin of polarization ``p``'s cross power at sigma0 = 1, per
    binning (:func:`payload.pserrors.binned_variance`, on ``workers`` threads). Segments
    have independent noise: their variances add."""
    sums: dict[str, npt.NDArray[np.float64]] = {}
    shape = next(iter(bins.weights.values())).shape
    for s, (seg, norm) in enumerate(zip(segments, norms, strict=True)):
        noise = norm.noise
        q_eo = np.clip(noise.q_e[0, 0] * noise.q_o[0, 0], 0, None)
        # per-cell noise scale of the cross power at sigma0 = 1
        z = np.where(cells.valid, band.to_power(np.sqrt(q_eo), cells.n_eo), 0.0)
        z3 = np.broadcast_to(z[None], shape)
        part = binned_variance(
            {name: bins.weights[name] * z3 for name in BINNINGS},
            dict(bins.bins),
            dict(bins.n_bins),
            with_delay_maps(noise, seg.cube, p, band.window, band.to_mk, band.df),
            seg.cube.grid,
            workers=workers,
        )
        sums = part if s == 0 else {name: sums[name] + part[name] for name in sums}
    return sums


@dataclass(frozen=True)
class PolarizationSpectrum:
    """The binned spectra of one polarization (:class:`PowerSpectrum` stacks them)."""

    p_cyl: npt.NDArray[np.float64]
    sigma_cyl: npt.NDArray[np.float64]
    p_cyl_auto: npt.NDArray[np.float64]
    noise_cyl: npt.NDArray[np.float64]
    p_sph: npt.NDArray[np.float64]
    sigma_sph: npt.NDArray[np.float64]
    p_sph_window: npt.NDArray[np.float64]
    sigma_sph_window: npt.NDArray[np.float64]
    p_sph_auto: npt.NDArray[np.float64]
    noise_sph: npt.NDArray[np.float64]
    wedge_leakage: float
    noise_sigma0_jy: float
    elements: dict[str, npt.NDArray[Any]]


def bin_power(
    power: DelayPower,
    bins: Binning,
    geometry: Geometry,
    unit: Mapping[str, npt.NDArray[np.float64]],
) -> PolarizationSpectrum:
    """Bin one polarization's power; ``unit`` is its :func:`unit_variance`."""
    cyl_shape = (geometry.n_k_bins, geometry.n_par)
    noise_auto = np.broadcast_to(power.noise_auto, power.cross.shape)
    values = {
        "cyl": bins.mean("cyl", power.cross).reshape(cyl_shape),
        "sph": bins.mean("sph", power.cross),
        "win": bins.mean("win", power.cross),
    }
    sigma = {}
    for name, value in values.items():
        sd = np.sqrt(np.clip(power.var0**2 * unit[name], 0.0, None)).reshape(value.shape)
        sigma[name] = np.where(np.isfinite(value), sd, np.nan)
    valid3 = bins.bins["cyl"] >= 0
    folded_auto = np.where(valid3, power.auto, 0.0)
    total = float(folded_auto.sum())
    return PolarizationSpectrum(
        p_cyl=values["cyl"],
        sigma_cyl=sigma["cyl"],
        p_cyl_auto=bins.mean("cyl", power.auto).reshape(cyl_shape),
        noise_cyl=bins.mean("cyl", noise_auto).reshape(cyl_shape),
        p_sph=values["sph"],
        sigma_sph=sigma["sph"],
        p_sph_window=values["win"],
        sigma_sph_window=sigma["win"],
        p_sph_auto=bins.mean("sph", power.auto),
        noise_sph=bins.mean("sph", noise_auto),
        wedge_leakage=(
            float(folded_auto[geometry.above & valid3].sum()) / total if total > 0 else 0.0
        ),
        noise_sigma0_jy=power.sigma0,
        elements={
            "sph_bin": bins.bins["sph"],
            "sph_weight": bins.weights["sph"],
            "win_bin": bins.bins["win"],
            "win_weight": bins.weights["win"],
            "k_perp_cell": geometry.k_perp_cell,
        },
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
    workers: int | None = None,
    refuse: bool = True,
) -> PowerSpectrum:
    """Cylindrical (k_perp, k_par) and spherical power spectra of a uv cube, or of the
    segments of a drift scan.

    ``refuse=False`` is for data with no even x odd pair at all (one time sample), whose
    spectrum is "not estimated" anyway: the beam is then not refused, and the lattice sums
    what of it the grid's field holds.

    ``beam`` defaults to the one the cube records; ``frame`` places it on the sky (None: the
    beam tracks the phase centre). Refuses, with InvalidInputError, a beam that reaches
    beyond the uv grid's field or that the sky drifts through by more than
    MAX_DRIFT_SIGMA of its width during one cube (:func:`payload.psnorm.check_drift`).

    Given segments (:class:`DriftSegment`, each with its own frame), every segment's even x
    odd cross power is formed on its own and the segments are averaged in power, each cell
    weighted by its normalisation (``docs/imaging.md``, *Drift scans*):
    ``P = X^2 Y sum_s Re[Vt_0s Vt_1s^*] / (B_pp sum_s N_01s)``; ``frame``, if given, is the
    whole observation's (for the header). A single cube is the one segment of that sum: both
    take the same steps.

    ``workers``: threads for the per-channel normalisations and the error sums (default
    every core this process may use); the result is the same, bit for bit, for any number.
    """
    segments = _segments_of(cube, frame)
    first = segments[0].cube
    if frame is None:
        frame = segments[len(segments) // 2].frame
    beam = parse_beam(first.primary_beam) if beam is None else beam
    band = delay_band(first.freq_hz)
    geo = geometry(first.grid, band, n_k_bins)
    norms = normalisations(
        segments, beam, band, beam_lattices(segments, beam, band, refuse=refuse), workers=workers
    )
    # The error sums depend on the normalisations only (which cells are valid, the noise
    # maps): polarizations sharing them share the sums, which scale with sigma0^2.
    unit_variances: dict[tuple[int, ...], dict[str, npt.NDArray[np.float64]]] = {}
    spectra: list[PolarizationSpectrum] = []
    for p, pol_norms in enumerate(norms):
        cells = cell_weights(pol_norms, geo)
        bins = binning(geo, cells.valid)
        key = tuple(id(norm) for norm in pol_norms)
        if key not in unit_variances:
            unit_variances[key] = unit_variance(
                segments, p, pol_norms, cells, bins, band, workers=workers
            )
        power = delay_power(segments, p, pol_norms, cells, band, geo)
        spectra.append(bin_power(power, bins, geo, unit_variances[key]))
    last_counts = bins.counts

    def stacked(name: str) -> npt.NDArray[np.float64]:
        return np.stack([getattr(spectrum, name) for spectrum in spectra])

    sky = _sky_integrals(beam, first.grid, band.scales.freq_hz, "I", frame=frame)
    return PowerSpectrum(
        polarizations=first.polarizations,
        k_perp_edges=geo.k_perp_edges,
        k_par=geo.k_par,
        p_cyl=stacked("p_cyl"),
        sigma_cyl=stacked("sigma_cyl"),
        p_cyl_auto=stacked("p_cyl_auto"),
        noise_cyl=stacked("noise_cyl"),
        counts_cyl=last_counts["cyl"],
        k_edges=geo.k_edges,
        p_sph=stacked("p_sph"),
        sigma_sph=stacked("sigma_sph"),
        p_sph_window=stacked("p_sph_window"),
        sigma_sph_window=stacked("sigma_sph_window"),
        p_sph_auto=stacked("p_sph_auto"),
        noise_sph=stacked("noise_sph"),
        counts_sph=last_counts["sph"],
        counts_sph_window=last_counts["win"],
        wedge_leakage=np.asarray([s.wedge_leakage for s in spectra], dtype=np.float64),
        noise_sigma0_jy=np.asarray([s.noise_sigma0_jy for s in spectra], dtype=np.float64),
        scales=band.scales,
        horizon_slope=geo.horizon_slope,
        wedge_buffer=geo.wedge_buffer,
        primary_beam=beam.spec,
        omega_pp=sky.omega_pp,
        bandwidth_pp_hz=band.b_pp,
        beam_frame=_describe(frame),
        segments=_describe_segments(segments),
        elements=[spectrum.elements for spectrum in spectra],
    )
