"""21 cm power spectra of a uv cube: delay transform, cylindrical and spherical averages.

Estimator, per polarization and uv cell (units in brackets)::

    Vn(u, f)  = G(u, f) / mean_f W(u, f) * lambda_f^2 / (2 k_B)          [mK sr]
    Vt(u, tau) = sum_f B(f) Vn(u, f) exp(-2 pi i f tau) df                [mK sr Hz]
    P(k)      = |Vt|^2 X^2 Y / (Omega_pp B_pp)                            [mK^2 Mpc^3]

with B the 4-term Blackman-Harris window, ``B_pp = df sum B^2`` its effective bandwidth,
``Omega_pp`` the sky integral of the squared image-plane taper (the beam of the uv cube, see
:mod:`payload.uvcube`), X (Mpc/rad) and Y (Mpc/Hz) from astropy's Planck18 at the band
centre, ``k_perp = 2 pi |u| / X`` and ``k_par = 2 pi |tau| / Y`` in Mpc^-1 (no h).

Each cell is normalised by its band-mean weight, not channel by channel: dividing by W(f)
would imprint the passage of baselines through the cell on the spectrum and throw
foreground power out of the wedge. A white-noise sky of variance sigma_T^2 per voxel gives
``P = sigma_T^2 X^2 Omega_pix Y df`` (the voxel volume), which the tests check.

The horizon line is ``k_par = k_perp X / (Y nu)`` (delay |b|/c); ``wedge_buffer`` adds the
window's main lobe (4 delay bins) and the gridding kernel's reach (3 sigma).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from payload.cosmology import CosmoScales, jy_to_mk_sr
from payload.errors import InvalidInputError
from payload.uvcube import UVCube

SCHEMA = 1
BH_COEFFS = (0.35875, 0.48829, 0.14128, 0.01168)
BH_MAIN_LOBE_BINS = 4
VALID_WEIGHT_FRACTION = 1e-3


def blackman_harris(n: int) -> npt.NDArray[np.float64]:
    """Symmetric 4-term Blackman-Harris window of ``n`` samples."""
    if n == 1:
        return np.ones(1)
    x = 2.0 * np.pi * np.arange(n) / (n - 1)
    a0, a1, a2, a3 = BH_COEFFS
    return np.asarray(a0 - a1 * np.cos(x) + a2 * np.cos(2 * x) - a3 * np.cos(3 * x))


@dataclass
class PowerSpectrum:
    """Cylindrical and spherical power spectra of every polarization of a uv cube."""

    polarizations: tuple[str, ...]
    k_perp_edges: npt.NDArray[np.float64]
    k_par: npt.NDArray[np.float64]
    p_cyl: npt.NDArray[np.float64]  # (pol, k_perp bin, k_par), mK^2 Mpc^3; NaN where empty
    counts_cyl: npt.NDArray[np.int64]  # (k_perp bin,) cells per bin
    k_edges: npt.NDArray[np.float64]
    p_sph: npt.NDArray[np.float64]  # (pol, k bin): every mode
    p_sph_window: npt.NDArray[np.float64]  # (pol, k bin): modes above the wedge buffer only
    counts_sph: npt.NDArray[np.int64]
    counts_sph_window: npt.NDArray[np.int64]
    wedge_leakage: npt.NDArray[np.float64]  # (pol,) fraction of power above horizon + buffer
    scales: CosmoScales
    horizon_slope: float
    wedge_buffer: float
    omega_pp: float
    bandwidth_pp_hz: float

    def write(self, path: Path, *, attrs: Mapping[str, Any]) -> None:
        """Write to HDF5 byte-deterministically."""
        with h5py.File(path, "w", track_order=True) as handle:
            kw: dict[str, Any] = {"track_times": False}
            for name in (
                "k_perp_edges",
                "k_par",
                "p_cyl",
                "counts_cyl",
                "k_edges",
                "p_sph",
                "p_sph_window",
                "counts_sph",
                "counts_sph_window",
                "wedge_leakage",
            ):
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
            handle.attrs["window"] = "blackman-harris (4-term, symmetric)"
            handle.attrs["redshift"] = self.scales.z
            handle.attrs["band_centre_hz"] = self.scales.freq_hz
            handle.attrs["x_mpc_per_rad"] = self.scales.x_mpc_per_rad
            handle.attrs["y_mpc_per_hz"] = self.scales.y_mpc_per_hz
            handle.attrs["horizon_slope"] = self.horizon_slope
            handle.attrs["wedge_buffer_per_mpc"] = self.wedge_buffer
            handle.attrs["omega_pp_sr"] = self.omega_pp
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


def delay_power(
    vis: npt.NDArray[np.complex128],
    weights: npt.NDArray[np.float64],
    freq_hz: npt.NDArray[np.float64],
    *,
    omega_pp: float,
    scales: CosmoScales,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], float]:
    """Power (mK^2 Mpc^3) per cell and delay for one polarization.

    ``vis`` and ``weights`` have shape (freq, ...cells); returns ``(P, valid, B_pp)`` with P
    of shape (delay, ...cells) in ``numpy.fft.fftfreq`` order and ``valid`` the cells whose
    band-mean weight is above a small fraction of the largest.
    """
    df = _channel_width(freq_hz)
    mean_w = weights.mean(axis=0)
    peak = float(mean_w.max()) if mean_w.size else 0.0
    valid = mean_w > VALID_WEIGHT_FRACTION * peak if peak > 0 else np.zeros(mean_w.shape, bool)
    safe = np.where(valid, mean_w, 1.0)
    to_mk = np.asarray([jy_to_mk_sr(f) for f in freq_hz]).reshape((-1,) + (1,) * (vis.ndim - 1))
    window = blackman_harris(len(freq_hz)).reshape(to_mk.shape)
    spectrum = np.fft.fft(vis / safe * to_mk * window, axis=0) * df
    b_pp = df * float((window**2).sum())
    power = (
        np.abs(spectrum) ** 2 * scales.x_mpc_per_rad**2 * scales.y_mpc_per_hz / (omega_pp * b_pp)
    )
    return np.where(valid, power, 0.0), np.asarray(valid), b_pp


def compute_power_spectrum(cube: UVCube, *, n_k_bins: int = 16) -> PowerSpectrum:
    """Cylindrical (k_perp, k_par) and spherical power spectra of a uv cube."""
    freq = cube.freq_hz
    df = _channel_width(freq)
    n_f = len(freq)
    scales = CosmoScales.at(float(freq.mean()))
    omega_pp = cube.grid.omega_pp()
    uu, vv = np.meshgrid(cube.grid.u_lambda, cube.grid.v_lambda, indexing="ij")
    # The v = 0 row holds each u < 0 cell's conjugate at +u: count it once.
    unique = ~((vv == 0) & (uu < 0))
    k_perp_cell = 2 * math.pi * np.hypot(uu, vv) / scales.x_mpc_per_rad
    delays = np.fft.fftfreq(n_f, df)
    n_par = n_f // 2 + 1
    k_par = np.asarray(2 * math.pi * np.arange(n_par) / (n_f * df) / scales.y_mpc_per_hz, float)
    fold = np.abs(np.rint(delays * n_f * df)).astype(np.int64)  # |delay| bin of each fft bin
    k_perp_max = 2 * math.pi * (cube.grid.n // 2) * cube.grid.du / scales.x_mpc_per_rad
    k_perp_edges = np.linspace(0.0, k_perp_max, n_k_bins + 1)
    slope = scales.horizon_slope
    kernel_reach = 3.0 * cube.grid.kernel_sigma_lambda / scales.freq_hz
    buffer = 2 * math.pi * (BH_MAIN_LOBE_BINS / (n_f * df) + kernel_reach) / scales.y_mpc_per_hz
    k_min = max(float(k_par[1]) if n_par > 1 else 1e-3, float(k_perp_edges[1]) / 2)
    k_max = math.hypot(k_perp_max, float(k_par[-1]))
    k_edges = np.geomspace(k_min, k_max, n_k_bins + 1)

    n_pol = len(cube.polarizations)
    p_cyl = np.full((n_pol, n_k_bins, n_par), np.nan)
    p_sph = np.full((n_pol, n_k_bins), np.nan)
    p_sph_window = np.full((n_pol, n_k_bins), np.nan)
    counts_cyl = np.zeros(n_k_bins, dtype=np.int64)
    counts_sph = np.zeros(n_k_bins, dtype=np.int64)
    counts_sph_window = np.zeros(n_k_bins, dtype=np.int64)
    leakage = np.zeros(n_pol)
    for p in range(n_pol):
        power, valid, b_pp = delay_power(
            cube.vis[p], cube.weights[p], freq, omega_pp=omega_pp, scales=scales
        )
        use = valid & unique
        kp = k_perp_cell[use]  # (cells,)
        cells = power[:, use]  # (delay, cells)
        # Fold +tau and -tau into |k_par| bins (mean of the two).
        folded = np.zeros((n_par, cells.shape[1]))
        np.add.at(folded, fold, cells)
        folded /= np.bincount(fold, minlength=n_par)[:, None]
        above = k_par[:, None] > slope * kp[None, :] + buffer
        total = float(folded.sum())
        leakage[p] = float(folded[above].sum()) / total if total > 0 else 0.0
        kbin = np.clip(np.digitize(kp, k_perp_edges) - 1, 0, n_k_bins - 1)
        counts = np.bincount(kbin, minlength=n_k_bins)
        for j in range(n_par):
            sums = np.bincount(kbin, weights=folded[j], minlength=n_k_bins)
            p_cyl[p, :, j] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        k3 = np.hypot(kp[None, :], k_par[:, None])
        sbin = np.digitize(k3, k_edges) - 1
        inside = (sbin >= 0) & (sbin < n_k_bins)
        for mask, out, cnt in (
            (inside, p_sph, counts_sph),
            (inside & above, p_sph_window, counts_sph_window),
        ):
            sums = np.bincount(sbin[mask], weights=folded[mask], minlength=n_k_bins)
            num = np.bincount(sbin[mask], minlength=n_k_bins)
            out[p] = np.where(num > 0, sums / np.maximum(num, 1), np.nan)
            cnt[:] = num
        counts_cyl[:] = counts
    return PowerSpectrum(
        polarizations=cube.polarizations,
        k_perp_edges=k_perp_edges,
        k_par=k_par,
        p_cyl=p_cyl,
        counts_cyl=counts_cyl,
        k_edges=k_edges,
        p_sph=p_sph,
        p_sph_window=p_sph_window,
        counts_sph=counts_sph,
        counts_sph_window=counts_sph_window,
        wedge_leakage=leakage,
        scales=scales,
        horizon_slope=slope,
        wedge_buffer=buffer,
        omega_pp=omega_pp,
        bandwidth_pp_hz=b_pp if n_pol else 0.0,
    )
