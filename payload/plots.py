"""PNG figures of the products: the power spectra and a dirty image.

Figures are byte-deterministic: the Agg backend, fixed size and DPI, and PNG metadata set
explicitly (no software version string or timestamp that could differ between runs).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from payload.powerspec import PowerSpectrum

PNG_METADATA = {"Software": "spotcube"}


def _save(fig: plt.Figure, path: Path) -> None:
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    plt.close(fig)


def plot_power_spectrum(ps: PowerSpectrum, path: Path, *, pol_index: int = 0) -> None:
    """Cylindrical spectrum with the horizon line, and the spherical spectrum."""
    fig, (ax_cyl, ax_sph) = plt.subplots(1, 2, figsize=(11, 4.5))
    pol = ps.polarizations[pol_index]
    cyl = ps.p_cyl[pol_index].T  # (k_par, k_perp)
    positive = cyl[np.isfinite(cyl) & (cyl > 0)]
    if positive.size:
        with np.errstate(divide="ignore", invalid="ignore"):
            shown = np.log10(np.where(np.isfinite(cyl) & (cyl > 0), cyl, np.nan))
        k_par_edges = _edges(ps.k_par)
        mesh = ax_cyl.pcolormesh(
            ps.k_perp_edges, k_par_edges, shown, shading="flat", cmap="viridis"
        )
        fig.colorbar(mesh, ax=ax_cyl, label="log10 P [mK$^2$ Mpc$^3$]")
    kp = np.linspace(0, float(ps.k_perp_edges[-1]), 50)
    ax_cyl.plot(kp, ps.horizon_slope * kp, "w-", lw=1.5, label="horizon")
    ax_cyl.plot(kp, ps.horizon_slope * kp + ps.wedge_buffer, "w--", lw=1, label="horizon + buffer")
    ax_cyl.set_xlim(0, float(ps.k_perp_edges[-1]))
    ax_cyl.set_ylim(0, float(ps.k_par[-1]))
    ax_cyl.set_xlabel("$k_\\perp$ [Mpc$^{-1}$]")
    ax_cyl.set_ylabel("$k_\\parallel$ [Mpc$^{-1}$]")
    ax_cyl.set_title(f"Cylindrical power, {pol}, z = {ps.scales.z:.2f}")
    ax_cyl.legend(loc="upper left", fontsize=8)
    centres = np.sqrt(ps.k_edges[:-1] * ps.k_edges[1:])
    for values, sigma, label, colour in (
        (ps.p_sph[pol_index], ps.sigma_sph[pol_index], "cross, all modes", "C0"),
        (ps.p_sph_window[pol_index], ps.sigma_sph_window[pol_index], "cross, outside wedge", "C1"),
    ):
        _plot_with_errors(ax_sph, centres, values, sigma, label=label, colour=colour)
    auto = ps.p_sph_auto[pol_index]
    good = np.isfinite(auto) & (auto > 0)
    if good.any():
        ax_sph.loglog(
            centres[good], auto[good], "-", color="0.5", lw=1, label="auto (noise-biased)"
        )
    noise = ps.noise_sph[pol_index]
    good = np.isfinite(noise) & (noise > 0)
    if good.any():
        ax_sph.loglog(centres[good], noise[good], ":", color="0.3", lw=1, label="auto noise bias")
    ax_sph.set_xscale("log")
    ax_sph.set_yscale("log")
    limits = spherical_ylim(
        ps.p_sph[pol_index], ps.p_sph_window[pol_index], auto, noise,
        upper=(ps.p_sph[pol_index] + ps.sigma_sph[pol_index],
               ps.p_sph_window[pol_index] + ps.sigma_sph_window[pol_index]),
    )  # fmt: skip
    if limits is not None:
        ax_sph.set_ylim(*limits)
    ax_sph.set_xlabel("$k$ [Mpc$^{-1}$]")
    ax_sph.set_ylabel("P(k) [mK$^2$ Mpc$^3$]")
    ax_sph.set_title(
        wrapped_title(f"Spherical power, 1$\\sigma$ thermal noise; beam {ps.primary_beam}"),
        fontsize=9,
    )
    ax_sph.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


# Characters per title line at fontsize 9 on one of the figure's two panels.
TITLE_WIDTH = 62
# Decades shown below the smallest / above the largest plotted value on the log axis.
Y_MARGIN = 3.0


def wrapped_title(text: str, width: int = TITLE_WIDTH) -> str:
    """A title broken into lines that fit one panel (an MWA beam names 16 dipole delays)."""
    return textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False)


def spherical_ylim(
    *series: npt.NDArray[np.float64], upper: Sequence[npt.NDArray[np.float64]] = ()
) -> tuple[float, float] | None:
    """Log-axis limits that show every plotted value (|P| of negatives too) and error top.

    Lower error bars are left out: on a log axis a bar reaching towards zero dragged the axis
    down to 1e-4 when the power is 1e8, leaving the data a thin line at the top.
    """
    magnitudes = [np.abs(np.asarray(a, dtype=float)) for a in series]
    tops = [np.asarray(a, dtype=float) for a in upper]
    values = np.concatenate([m[np.isfinite(m) & (m > 0)] for m in magnitudes] or [np.empty(0)])
    if values.size == 0:
        return None
    highs = np.concatenate([t[np.isfinite(t) & (t > 0)] for t in tops] or [np.empty(0)])
    high = max(float(values.max()), float(highs.max()) if highs.size else 0.0)
    return float(values.min()) / Y_MARGIN, high * Y_MARGIN


def _plot_with_errors(
    ax: plt.Axes,
    k: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    sigma: npt.NDArray[np.float64],
    *,
    label: str,
    colour: str,
) -> None:
    """Cross power with 1 sigma bars on log axes: negative values as open markers at |P|."""
    finite = np.isfinite(values) & np.isfinite(sigma)
    positive = finite & (values > 0)
    negative = finite & (values <= 0)
    if positive.any():
        low = np.minimum(sigma[positive], values[positive] * (1 - 1e-3))
        ax.errorbar(
            k[positive],
            values[positive],
            yerr=np.vstack([low, sigma[positive]]),
            fmt="o",
            color=colour,
            ms=4,
            capsize=2,
            label=label,
        )
    if negative.any():
        ax.errorbar(
            k[negative],
            np.abs(values[negative]) + 1e-30,
            yerr=np.vstack([np.zeros(int(negative.sum())), sigma[negative]]),
            fmt="o",
            mfc="none",
            color=colour,
            ms=4,
            capsize=2,
            label=f"{label} (< 0, shown as |P|)",
        )


def _edges(centres: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    step = float(centres[1] - centres[0]) if len(centres) > 1 else 1.0
    return np.concatenate([centres - step / 2, [centres[-1] + step / 2]]).clip(min=0)


def plot_image(
    image_fits_order: npt.NDArray[np.float32],
    path: Path,
    *,
    title: str,
    pixsize_deg: float,
) -> None:
    """One image plane (FITS (y, x) order), east to the left, offsets in degrees."""
    n = image_fits_order.shape[-1]
    half = n * pixsize_deg / 2
    fig, ax = plt.subplots(figsize=(6, 5.2))
    finite = image_fits_order[np.isfinite(image_fits_order)]
    vmax = float(np.abs(finite).max()) if finite.size else 1.0
    vmax = vmax if vmax > 0 and math.isfinite(vmax) else 1.0
    im = ax.imshow(
        image_fits_order,
        origin="lower",
        cmap="magma",
        vmin=-0.05 * vmax,
        vmax=vmax,
        extent=(half, -half, -half, half),
    )
    fig.colorbar(im, ax=ax, label="Jy/beam")
    ax.set_xlabel("RA offset [deg] (east left)")
    ax.set_ylabel("Dec offset [deg]")
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)
