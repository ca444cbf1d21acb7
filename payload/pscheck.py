"""Warnings on a power spectrum that was estimated but that the estimator cannot vouch for.

spotcube's P(k) is right (issue 19: within 5 % of the input and of hera_pspec) for
calibrated visibilities whose noise is the radiometer's. Three kinds of input break that
without making anything fail, so each is said in one line — in the log, in
``powerspec.h5`` (attribute ``warnings``, a JSON list), in ``provenance.json``
(``power_spectrum_warnings``) and in the CLI's summary — instead of a silent factor:

* **Uncalibrated visibilities** (the file's ``vis_units`` is ``uncalib``). Visibilities
  that share a uv cell are added coherently, which is right only when their gains are
  calibrated: on HERA's uncalibrated test file the redundant baselines of a group cohere to
  0.14 (XX) and 0.26 (YY), and spotcube's P(k) with every baseline is 0.2-0.4 of
  hera_pspec's per-baseline delay spectrum (docs/imaging.md, "Real data").
* **An RFI-dominated band.** Per channel c, s_c is the median over uv cells (both halves
  sampled) of |G_e/W_e - G_o/W_o|^2 / (1/W_e + 1/W_o): the even - odd difference, where
  the sky cancels and noise and time-variable RFI remain, on one scale for every cell.
  Its reference r_c is the median of s over the channel and its 4 neighbours on each side,
  so a smooth change of the noise across the band (T_sky ~ nu^-2.55: a factor 34 in noise
  power over an octave) is not taken for RFI. The band is RFI-dominated when
  ``sum_c s_c > RFI_POWER_RATIO x sum_c r_c``: channels standing above their neighbours
  hold more noise power than the whole band's smooth noise, so the noise of the delay
  transform, spotcube's one fitted sigma_0 per polarization and the auto power's noise
  bias are set by them. Measured (``tests/payload/test_pscheck.py``, 2026-12-07): HERA's
  ``zen.2458098.45361.HH_downselected.uvh5``, 100-198 MHz with FM and ORBCOMM unflagged
  (which raised spotcube's fitted noise 42x over the clean band's): ratio 1,350 (XX) and
  6,680 (YY), worst channel 137.5 MHz (ORBCOMM); its clean channels 26-49 (140.6-176.6
  MHz): 1.01-1.09, with all baselines or one per redundant group. The threshold 2 is the
  definition of "dominated" (the excess over the local levels exceeds the band's smooth
  noise), between the two by a factor ~2 on the clean side and ~700 on the RFI side.
* **Too few channels for a spectrum.** Fewer than 2 spherical bins with an estimate (a
  4-channel file gives one bin), or no delay outside the Blackman-Harris window's main
  lobe around zero delay (n_channels / 2 <= ``WINDOW_LOBE_BINS``): every k_par then holds
  the window's leakage of the k_par = 0 plane, foregrounds included.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from payload.uvh5 import H5Input, open_h5

# More noise power in channels above their neighbours than in the band's smooth noise.
RFI_POWER_RATIO = 2.0
# Channels on each side of a channel in its reference (the running median's half-width).
RFI_NEIGHBOURS = 4
# Cells whose weight in either half is below this share of the channel's 90th-percentile
# weight are left out of s_c (a kernel's tail: G/W there is a single far baseline's value).
MIN_CELL_WEIGHT = 0.1
# The Blackman-Harris window's main lobe, in delay bins either side of zero (as the wedge
# buffer of payload.powerspec takes it).
WINDOW_LOBE_BINS = 4

UNCALIBRATED = (
    "input vis_units is 'uncalib': baselines that share a uv cell add coherently only "
    "with calibrated gains, so P(k) is low by an unknown factor (0.2-0.4 of hera_pspec's "
    "on HERA's uncalibrated test file); calibrate before estimating P(k)"
)
RFI_DOMINATED = (
    "{pol}: RFI-dominated band: the even - odd difference holds {ratio:.3g} x the noise "
    "power of the channels' local levels (worst {worst_mhz:.2f} MHz, {worst:.3g} x its "
    "neighbours; more than {limit:g} x: RFI-dominated); sigma_0, the error bars and the "
    "auto power are set by those channels; flag them or select a clean band"
)
ONE_BIN = (
    "{n_bins} spherical k bin(s) estimated from {n_chan} channels: no spectral shape; "
    "use more channels"
)
IN_LOBE = (
    "{n_chan} channels: every delay lies within the window's main lobe of zero delay "
    "({lobe} bins), so every k_par holds leakage of the k_par = 0 plane (foregrounds)"
)


log = logging.getLogger(__name__)


def channel_noise(
    vis: npt.NDArray[np.complexfloating[Any, Any]], weights: npt.NDArray[np.floating[Any]]
) -> npt.NDArray[np.float64]:
    """s_c per (pol, channel) from uv planes of shape (segment, half, pol, chan, ...);
    NaN where no cell holds both halves. Segments are pooled (their cells concatenated)."""
    n_seg, n_half, n_pol, n_chan = vis.shape[:4]
    out = np.full((n_pol, n_chan), np.nan)
    if n_half < 2:
        return out
    for p in range(n_pol):
        for c in range(n_chan):
            values = []
            for s in range(n_seg):
                w_e = np.asarray(weights[s, 0, p, c], dtype=np.float64).ravel()
                w_o = np.asarray(weights[s, 1, p, c], dtype=np.float64).ravel()
                both = (w_e > 0) & (w_o > 0)
                if not both.any():
                    continue
                floor = MIN_CELL_WEIGHT * np.percentile(np.minimum(w_e, w_o)[both], 90)
                keep = both & (w_e >= floor) & (w_o >= floor)
                g_e = np.asarray(vis[s, 0, p, c]).ravel()[keep] / w_e[keep]
                g_o = np.asarray(vis[s, 1, p, c]).ravel()[keep] / w_o[keep]
                values.append(np.abs(g_e - g_o) ** 2 / (1 / w_e[keep] + 1 / w_o[keep]))
            if values:
                out[p, c] = float(np.median(np.concatenate(values)))
    return out


def rfi_ratio(noise: npt.NDArray[np.float64]) -> tuple[float, int, float]:
    """For one polarization's s_c: (sum of s over sum of its running-median reference,
    the channel standing highest above its reference, by how much). Channels without an
    estimate (NaN) or with none at all (0: nothing left in the difference) are left out."""
    s = np.asarray(noise, dtype=np.float64)
    good = np.flatnonzero(np.isfinite(s) & (s > 0))
    if len(good) < 2 * RFI_NEIGHBOURS + 1:
        return float("nan"), -1, float("nan")
    values = s[good]
    ref = np.asarray(
        [
            np.median(values[max(0, i - RFI_NEIGHBOURS) : i + RFI_NEIGHBOURS + 1])
            for i in range(len(values))
        ]
    )
    worst = int(np.argmax(values / ref))
    return float(values.sum() / ref.sum()), int(good[worst]), float(values[worst] / ref[worst])


def check(
    *,
    vis_units: str | None,
    n_channels: int,
    n_bins_estimated: int,
    estimated: bool,
    noise: npt.NDArray[np.float64] | None = None,
    polarizations: Sequence[str] = (),
    freq_hz: npt.NDArray[np.float64] | None = None,
) -> list[str]:
    """The warnings (one line each) for a power spectrum; empty when it can be vouched for.

    ``estimated``: whether the power spectrum was estimated at all (a "not estimated" one
    says why already, and only the calibration warning is added to it).
    """
    warnings: list[str] = []
    if (vis_units or "").strip().lower() == "uncalib":
        warnings.append(UNCALIBRATED)
    if not estimated:
        return warnings
    if noise is not None and freq_hz is not None:
        for p, pol in enumerate(polarizations):
            ratio, worst, excess = rfi_ratio(noise[p])
            if np.isfinite(ratio) and ratio > RFI_POWER_RATIO:
                warnings.append(
                    RFI_DOMINATED.format(
                        pol=pol,
                        ratio=ratio,
                        worst_mhz=freq_hz[worst] / 1e6,
                        worst=excess,
                        limit=RFI_POWER_RATIO,
                    )
                )
    if n_bins_estimated < 2:
        warnings.append(ONE_BIN.format(n_bins=n_bins_estimated, n_chan=n_channels))
    if n_channels // 2 <= WINDOW_LOBE_BINS:
        warnings.append(IN_LOBE.format(n_chan=n_channels, lobe=WINDOW_LOBE_BINS))
    return warnings


def vis_units_of(path: H5Input) -> str | None:
    """``vis_units`` from a uvh5 header (None when the file does not say)."""
    try:
        with open_h5(path) as handle:
            value = handle["Header/vis_units"][()]
    except (OSError, KeyError, ValueError, TypeError):
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def check_products(
    powerspec: Path, data: Mapping[str, npt.NDArray[Any]], *, input_uvh5: H5Input
) -> list[str]:
    """Check a written ``powerspec.h5`` (and the uv planes it was made from); log each
    warning, record them in the file's ``warnings`` attribute and return them (for
    ``provenance.json`` and the summary). The file is left unchanged when all is well."""
    with h5py.File(powerspec, "r") as handle:
        pols = list(json.loads(handle.attrs["polarizations"]))
        p_sph = np.asarray(handle["p_sph"][()])
        estimated = "not_estimated" not in handle.attrs
    freq = np.asarray(data["freq_hz"], dtype=np.float64)
    noise = channel_noise(data["uv_vis"], data["uv_weights"]) if estimated else None
    warnings = check(
        vis_units=vis_units_of(input_uvh5),
        n_channels=len(freq),
        n_bins_estimated=int(np.isfinite(p_sph).any(axis=0).sum()),
        estimated=estimated,
        noise=noise,
        polarizations=pols,
        freq_hz=freq,
    )
    for line in warnings:
        log.warning("power spectrum: %s", line)
    if warnings:
        with h5py.File(powerspec, "r+") as handle:
            handle.attrs["warnings"] = json.dumps(warnings)
    return warnings


def provenance_entry(warnings: Sequence[str]) -> dict[str, str]:
    """``power_spectrum_warnings`` for provenance.json (nothing when there are none)."""
    return {"power_spectrum_warnings": json.dumps(list(warnings))} if warnings else {}
