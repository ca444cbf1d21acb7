"""A per-baseline delay spectrum (Parsons et al. 2012, ApJ 756, 165), written from the paper.

The independent estimator the power-spectrum tests compare spotcube with, sharing nothing of
spotcube but the visibilities: no gridding, no per-cell normalisation, its own cosmology
(astropy's Planck18 directly) and unit conversion (scipy.constants)::

    P(k) = Re[Vt_e(tau) Vt_o(tau)^*] X^2 Y / (Omega_pp B_pp)
    Vt(tau) = sum_f df W(f) c(f) V(f) exp(-2 pi i f tau),   c = lambda^2 / (2 k_B) [mK sr / Jy]

per baseline and pair of adjacent time samples (even x odd: no noise bias), with W the
4-term Blackman-Harris window, ``B_pp = df sum W^2``, ``Omega_pp = int A^2 dl dm`` of the
beam the visibilities were made with, ``k_perp = 2 pi |b| / (lambda X)`` at the band centre
and ``k_par = 2 pi tau / Y``. Each bin is the mean over its (baseline, time pair, +-tau)
elements.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import scipy.constants as const
from astropy import units
from astropy.cosmology import Planck18
from scipy.signal import windows

F21_HZ = 1_420_405_751.768


def _scales(freq_hz: float) -> tuple[float, float]:
    """X (Mpc / rad) and Y (Mpc / Hz) at the 21 cm line observed at ``freq_hz``."""
    z = F21_HZ / freq_hz - 1.0
    x = float(Planck18.comoving_transverse_distance(z).to(units.Mpc).value)
    hubble = float(Planck18.H(z).to(units.km / units.s / units.Mpc).value)
    y = const.c / 1e3 * (1.0 + z) ** 2 / (hubble * F21_HZ)
    return x, y


def spherical_power(
    vis: npt.NDArray[np.complex128],
    uvw_m: npt.NDArray[np.float64],
    n_times: int,
    freq_hz: npt.NDArray[np.float64],
    omega_pp: float,
    k_edges: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Binned even x odd delay power [mK^2 Mpc^3] of ``vis`` (rows time-major, Jy).

    ``uvw_m`` are the rows' baselines (m); times 2i and 2i + 1 make one pair.
    """
    n_f = len(freq_hz)
    df = float(freq_hz[1] - freq_hz[0])
    centre = float(freq_hz.mean())
    x, y = _scales(centre)
    window = windows.blackmanharris(n_f, sym=True)
    b_pp = df * float((window**2).sum())
    to_mk_sr = (const.c / freq_hz) ** 2 / (2.0 * const.k) * 1e-26 * 1e3
    rows = vis.reshape(n_times, -1, n_f)
    uv = uvw_m.reshape(n_times, -1, 3)
    tilde = np.fft.fft(rows * (window * to_mk_sr * df), axis=-1)
    pairs = n_times // 2
    cross = (tilde[0 : 2 * pairs : 2] * np.conj(tilde[1 : 2 * pairs : 2])).real
    power = cross * x**2 * y / (omega_pp * b_pp)  # (pair, baseline, delay)
    baseline_m = np.hypot(uv[0 : 2 * pairs : 2, :, 0], uv[0 : 2 * pairs : 2, :, 1])
    k_perp = 2 * math.pi * baseline_m * centre / const.c / x
    k_par = 2 * math.pi * np.abs(np.fft.fftfreq(n_f, df)) / y
    k = np.hypot(k_perp[..., None], k_par)
    which = np.digitize(k, k_edges) - 1
    inside = (which >= 0) & (which < len(k_edges) - 1)
    sums = np.bincount(which[inside], weights=power[inside], minlength=len(k_edges) - 1)
    counts = np.bincount(which[inside], minlength=len(k_edges) - 1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
