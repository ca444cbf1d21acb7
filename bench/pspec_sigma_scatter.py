"""Do the power spectrum's error bars match the scatter of many noise realisations, per bin?

Pure thermal noise (complex Gaussian, the same sigma for every visibility) on MWA Phase I
baselines shorter than ``--max-baseline`` m, tracked for ``--times`` x ``--step`` s at the
MWA's latitude, ``--channels`` x ``--channel-khz`` around 167 MHz, gridded into even and odd
halves and turned into power spectra, one "polarization" per realisation (they share the
sampling, so the normalisation and the error sums are computed once). Prints, per bin, the
standard deviation of the cross power over the realisations divided by the quoted sigma (rms
over realisations), and the range and pooled value (sqrt of the mean of ratio^2) for the
cylindrical and spherical binnings. A bin's ratio over N realisations is itself uncertain by
about sqrt((kappa - 1) / N) / 2 (kappa the kurtosis of the bin's values, printed): ~5 % for
200 Gaussian realisations.

The weights and sampling images are gridded once (``grid_chunk``, first realisation); every
other realisation's visibilities go through ``grid_values``, the same gridding call (checked
equal to ``grid_chunk``'s for the first). The tests' case (``test_pspec_noise.py``) is the
default. The results are in docs/imaging.md ("Noise: cross power, auto power, error bars").

Usage::

    .venv/bin/python bench/pspec_sigma_scatter.py [--realisations 200] [--seed 1]
    .venv/bin/python bench/pspec_sigma_scatter.py --times 8 --step 8 --channels 32 \\
        --channel-khz 960            # an 18 % band: sampling changes across the band
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from payload.params import ImagingParams
from payload.powerspec import compute_power_spectrum
from payload.uvcube import UVCube, UVGrid, baseline_mask, grid_chunk, grid_values, time_halves
from tests.payload import pspec_sim as sim

CENTRE_HZ = 167e6


def _ratios(
    values: npt.NDArray[np.float64], sigma: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """scatter / sigma and kurtosis per bin (NaN where a bin is empty)."""
    n = values.shape[0]
    flat, flat_sigma = values.reshape(n, -1), sigma.reshape(n, -1)
    have = np.all(np.isfinite(flat), axis=0) & np.all(flat_sigma > 0, axis=0)
    ratio = np.full(flat.shape[1], np.nan)
    kurt = np.full(flat.shape[1], np.nan)
    kept = flat[:, have]
    ratio[have] = kept.std(axis=0, ddof=1) / np.sqrt((flat_sigma[:, have] ** 2).mean(axis=0))
    kurt[have] = (((kept - kept.mean(axis=0)) / kept.std(axis=0)) ** 4).mean(axis=0)
    return ratio.reshape(values.shape[1:]), kurt.reshape(values.shape[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realisations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--channel-khz", type=float, default=200.0)
    parser.add_argument("--times", type=int, default=16)
    parser.add_argument("--step", type=float, default=60.0, help="seconds between times")
    parser.add_argument("--max-baseline", type=float, default=60.0, help="metres")
    parser.add_argument("--uv-max", type=float, default=40.0, help="wavelengths")
    parser.add_argument("--k-bins", type=int, default=10)
    args = parser.parse_args()

    width = args.channel_khz * 1e3
    band = sim.Band(args.channels, CENTRE_HZ - args.channels // 2 * width, width)
    uvw, times = sim.track_uvw(sim.short_baselines_enu(args.max_baseline), args.times, args.step)
    params = ImagingParams.from_mapping(
        {"uv_max_lambda": args.uv_max, "polarizations": ["I"], "nthreads": 1}
    )
    grid = UVGrid.from_params(params)
    halves = time_halves(times)
    top = float(band.freq_hz.max())
    rng = np.random.default_rng(args.seed)
    shape = (len(uvw), args.channels)

    def noise() -> npt.NDArray[np.complex128]:
        draw = rng.normal(size=shape) + 1j * rng.normal(size=shape)
        return np.asarray(draw / math.sqrt(2), dtype=np.complex128)

    started = time.perf_counter()
    first = grid_chunk(
        sim.chunk_of(uvw, band, noise()), grid, params, max_freq_hz=top, halves=halves
    )
    keep = baseline_mask(uvw, top, grid)
    kept_uvw = np.ascontiguousarray(uvw[keep])
    half_weights = [np.where(halves[keep] == h, 1.0, 0.0) for h in (0, 1)]
    taper = grid.taper()

    def gridded(vis: npt.NDArray[np.complex128]) -> npt.NDArray[np.complex128]:
        out = np.zeros_like(first.vis)
        for h in (0, 1):
            for c, freq in enumerate(band.freq_hz):
                values = np.ascontiguousarray(vis[keep, c])
                out[h, 0, c] = grid_values(
                    kept_uvw, float(freq), values, half_weights[h], grid, taper=taper
                )
        return out

    # the shortcut is the gridder's own call: check it on a realisation gridded both ways
    check_rng = np.random.default_rng(args.seed + 10_000)
    check = check_rng.normal(size=shape) + 1j * check_rng.normal(size=shape)
    reference = grid_chunk(
        sim.chunk_of(uvw, band, check), grid, params, max_freq_hz=top, halves=halves
    )
    assert np.array_equal(gridded(check), reference.vis), "grid_values differs from grid_chunk"
    vis = [first.vis] + [gridded(noise()) for _ in range(args.realisations - 1)]
    n = args.realisations
    cube = UVCube(
        np.concatenate(vis, axis=1),
        # every realisation has the same weights and sampling: views, not copies
        np.broadcast_to(first.weights, (2, n, *first.weights.shape[2:])),
        np.broadcast_to(first.sampling, (2, n, *first.sampling.shape[2:])),
        band.freq_hz,
        tuple(f"r{i:04d}" for i in range(n)),
        grid,
        params.stack_params(),
        "gaussian:25",
    )
    gridded_at = time.perf_counter()
    ps = compute_power_spectrum(cube, n_k_bins=args.k_bins)
    done = time.perf_counter()
    print(
        f"{n} realisations, {args.channels} x {args.channel_khz:g} kHz, {args.times} x "
        f"{args.step:g} s, baselines < {args.max_baseline:g} m ({int(keep.sum()) // args.times}"
        f" kept), uv_max {args.uv_max:g}: gridding {gridded_at - started:.0f} s, power "
        f"spectrum {done - gridded_at:.0f} s"
    )
    np.set_printoptions(precision=2, linewidth=200, suppress=True)
    for name, values, sigma in (
        ("cylindrical (rows k_perp bins, columns k_par)", ps.p_cyl, ps.sigma_cyl),
        ("spherical", ps.p_sph, ps.sigma_sph),
        ("spherical above the wedge", ps.p_sph_window, ps.sigma_sph_window),
    ):
        ratio, kurt = _ratios(values, sigma)
        have = np.isfinite(ratio)
        if not have.any():
            continue
        print(f"\n{name}: scatter / sigma")
        print(ratio)
        print(
            f"range {np.nanmin(ratio):.3f}-{np.nanmax(ratio):.3f}, pooled "
            f"{math.sqrt(float(np.nanmean(ratio**2))):.3f}, kurtosis "
            f"{np.nanmin(kurt):.1f}-{np.nanmax(kurt):.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
