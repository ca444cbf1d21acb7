"""Real HERA and MWA data of pyuvdata's test files: spotcube's P(k) against hera_pspec's.

Fetches the pyuvdata 3.2.3 wheel once (``pip download``; its test data are cached in
``$SPOTCUBE_REALDATA_CACHE``, default ``~/.cache/spotcube-realdata``) and

* runs ``python -m payload image`` on the HERA drift scan
  ``zen.2458098.45361.HH_downselected.uvh5`` and hera_pspec on the same visibilities
  (:mod:`tests.payload.realdata`), three ways: the file as it is (64 channels, 100-198 MHz,
  FM and ORBCOMM unflagged), its channels 26-49 (140.6-176.6 MHz, clean), and those channels
  with one baseline per redundant group; per |k| bin and polarization it prints spotcube's
  and hera_pspec's auto power, even x odd cross power and the cross power's thermal 1 sigma,
  and their ratios;
* runs ``python -m payload image`` on the MWA files (``1102865728_small.ms``,
  ``1133866760.uvfits``, ``1061316296.uvfits``) and prints what spotcube makes of them;
  lists every MWA data set of the wheel (Ntimes, Nfreqs, Nbls, flags, vis_units;
  :func:`tests.payload.realdata.mwa_shapes`) and how coherent the one-integration
  snapshot's nearly coincident baselines are (:func:`~tests.payload.realdata.baseline_coherence`).

What the numbers mean and why they differ: docs/imaging.md, "Real data". The test
``tests/payload/test_pspec_realdata.py`` pins the clean, non-redundant case.

With ``--noise N`` it also replaces the clean, non-redundant file's cross-correlations by N
seeds of radiometer noise (from its autocorrelations) and sets each estimator's sigma
against the scatter of its own cross power.

Usage::

    .venv/bin/python bench/pspec_realdata.py [--noise 24]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.payload import realdata as rd

MWA_FILES = ("1102865728_small.ms", "1133866760.uvfits", "1061316296.uvfits")
HERA_POLS = ("xx", "yy")


def _cache() -> Path:
    default = Path.home() / ".cache" / "spotcube-realdata"
    cache = Path(os.environ.get("SPOTCUBE_REALDATA_CACHE", default))
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _fmt(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.3g}"


def _ratio(a: float, b: float) -> str:
    return "-" if not (np.isfinite(a) and np.isfinite(b) and b != 0) else f"{a / b:.2f}"


def hera_table(name: str, file: Path) -> None:
    started = time.perf_counter()
    ours, theirs = rd.compare(file, HERA_POLS)
    print(f"\n### {name}\n")
    attrs = ours.attrs
    print(
        f"`{file.name}`: band centre {attrs['band_centre_hz'] / 1e6:.1f} MHz, beam "
        f"{attrs['primary_beam']}, spotcube {ours.seconds:.0f} s, both "
        f"{time.perf_counter() - started:.0f} s; spotcube's sigma0 "
        + ", ".join(f"{p} {s:.4g} Jy" for p, s in ours.sigma0_jy.items())
    )
    for pol in HERA_POLS:
        a, b = ours.spectra[pol], theirs[pol]
        print(f"\n{pol} (mK^2 Mpc^3; 'above' = share of the bin's modes above the wedge buffer)\n")
        print(
            "| k (Mpc^-1) | above | spotcube auto | hera_pspec auto | ratio | spotcube cross "
            "| hera_pspec cross | ratio | spotcube sigma | hera_pspec sigma | ratio |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for i, k in enumerate(a.centres):
            print(
                f"| {k:.3f} | {ours.above_buffer[i]:.2f} | {_fmt(a.auto[i])} | "
                f"{_fmt(b.auto[i])} | {_ratio(a.auto[i], b.auto[i])} | {_fmt(a.cross[i])} | "
                f"{_fmt(b.cross[i])} | {_ratio(a.cross[i], b.cross[i])} | "
                f"{_fmt(a.sigma[i])} | {_fmt(b.sigma[i])} | {_ratio(a.sigma[i], b.sigma[i])} |"
            )
        strong = np.isfinite(a.cross) & np.isfinite(b.cross) & (np.abs(b.cross) > 5 * b.sigma)
        if strong.any():
            r = a.cross[strong] / b.cross[strong]
            print(
                f"\ncross, bins where hera_pspec's P > 5 sigma ({int(strong.sum())}): "
                f"spotcube / hera_pspec mean {r.mean():.3f}, range {r.min():.3f}-{r.max():.3f}"
            )


def beam_measure(freq_hz: float) -> None:
    """How much hera_pspec's solid-angle Omega_pp differs from spotcube's dl dm measure."""
    _, pp_sky = rd.solid_angles(np.asarray([freq_hz]), rd.HERA_DISH_M)
    _, pp_lm = rd.solid_angles(np.asarray([freq_hz]), rd.HERA_DISH_M, dl_dm=True)
    print(
        f"\nairy:14 at {freq_hz / 1e6:.0f} MHz: int A^2 dOmega / int A^2 dl dm = "
        f"{float(pp_sky[0] / pp_lm[0]):.4f}"
    )


def noise_table(clean_single: Path, cache: Path, n_seeds: int) -> None:
    """Both sigmas against the scatter of their cross power over radiometer-noise seeds."""
    started = time.perf_counter()
    ours, theirs, sigma0 = [], [], []
    for seed in range(n_seeds):
        noisy = rd.noise_copy(clean_single, cache / f"noise-{seed}.uvh5", seed)
        mine, hers = rd.compare(noisy, ("xx",))
        ours.append((mine.spectra["xx"].cross, mine.spectra["xx"].sigma))
        theirs.append((hers["xx"].cross, hers["xx"].sigma))
        sigma0.append(mine.sigma0_jy["xx"])
        noisy.unlink()
    p_ours, s_ours = (np.asarray(x) for x in zip(*ours, strict=True))
    p_hers, s_hers = (np.asarray(x) for x in zip(*theirs, strict=True))
    rms = rd.radiometer_rms(clean_single, "xx")
    centres = 0.5 * (mine.spectra["xx"].k_edges[:-1] + mine.spectra["xx"].k_edges[1:])
    seconds = time.perf_counter() - started
    print(
        f"\n### noise only: {n_seeds} seeds of radiometer noise in place of the XX "
        f"cross-correlations of the clean, non-redundant file ({seconds:.0f} s)\n"
    )
    print(
        f"spotcube's sigma0 {np.mean(sigma0):.5f} +- {np.std(sigma0, ddof=1):.5f} Jy over the "
        f"seeds; radiometer rms of the baselines {rms:.5f} Jy\n"
    )
    print(
        "| k (Mpc^-1) | spotcube scatter / its sigma | hera_pspec scatter / its sigma "
        "| spotcube sigma / hera_pspec sigma | spotcube scatter / hera_pspec scatter |"
    )
    print("|---|---|---|---|---|")
    sd_ours, sd_hers = p_ours.std(axis=0, ddof=1), p_hers.std(axis=0, ddof=1)
    for i, k in enumerate(centres):
        print(
            f"| {k:.3f} | {sd_ours[i] / s_ours[:, i].mean():.2f} | "
            f"{sd_hers[i] / s_hers[:, i].mean():.2f} | "
            f"{s_ours[:, i].mean() / s_hers[:, i].mean():.2f} | {sd_ours[i] / sd_hers[i]:.2f} |"
        )
    pooled = [
        float(np.sqrt(np.mean((sd / s.mean(axis=0)) ** 2)))
        for sd, s in ((sd_ours, s_ours), (sd_hers, s_hers))
    ]
    print(f"\npooled scatter / sigma: spotcube {pooled[0]:.2f}, hera_pspec {pooled[1]:.2f}")


def mwa_outcome(file: Path, out: Path) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "payload", "image", str(file), "--out", str(out), "--quiet",
         "--threads", "1", "--fresh"],
        capture_output=True, text=True, cwd=rd.REPO,
    )  # fmt: skip
    if run.returncode != 0:
        return f"refused (exit {run.returncode}): {run.stderr.strip().splitlines()[-1]}"
    with h5py.File(out / "powerspec.h5", "r") as handle:
        finite = int(np.isfinite(handle["p_sph"][()]).sum())
        auto = int(np.isfinite(handle["p_sph_auto"][()]).sum())
        size = handle["p_sph"].size
    return (
        f"exit 0, powerspec.h5 written with {finite} of {size} finite cross-power bins and "
        f"{auto} finite auto-power bins"
    )


def mwa_tables(cache: Path, snapshot: Path) -> None:
    """Every MWA data set of the wheel (shape, flags, units), and how coherent the nearly
    coincident baselines of the one-integration snapshot are (why it is not split by
    baselines: docs/imaging.md, "Real data")."""
    print("\n## MWA data sets of the wheel (pyuvdata)\n")
    print("| set | Ntimes | Nfreqs (kHz) | Nbls | flagged | nsamples <= 0 | vis_units |")
    print("|---|---|---|---|---|---|---|")
    for row in rd.mwa_shapes(cache):
        print(
            f"| {row['set']} | {row['n_times']} | {row['n_freqs']} ({row['channel_khz']:g}) | "
            f"{row['n_bls']} | {row['flagged']:.3f} | {row['nsamples_le_0']:.3f} | "
            f"{row['vis_units']} |"
        )
    print(f"\n`{snapshot.name}`: Re sum V_i V_j* / sum |V_i||V_j| of baselines < 0.3 lambda apart")
    for (pol, channel), value in sorted(rd.baseline_coherence(snapshot).items()):
        print(f"- {pol} channel {channel}: {value:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--noise", type=int, default=0, metavar="N",
        help="also N seeds of radiometer noise through both (~30 s each)",
    )  # fmt: skip
    args = parser.parse_args()
    started = time.perf_counter()
    cache = _cache()
    try:
        hera_file = rd.unpack(rd.HERA_FILE, cache)
        mwa = {name: rd.unpack(name, cache) for name in MWA_FILES}
    except rd.WheelUnavailableError as exc:
        print(f"skipped: {exc}")
        return 1
    clean = rd.selected_copy(hera_file, cache / "hera-clean.uvh5", channels=rd.CLEAN_CHANNELS)
    single = rd.selected_copy(
        hera_file, cache / "hera-clean-one-per-group.uvh5", channels=rd.CLEAN_CHANNELS,
        one_per_group=True,
    )  # fmt: skip
    print("## HERA: spotcube against hera_pspec, per |k| bin")
    hera_table("the file as it is (100-198 MHz, RFI unflagged)", hera_file)
    hera_table("channels 26-49 (140.6-176.6 MHz), all 28 baselines", clean)
    hera_table("channels 26-49, one baseline per redundant group (11)", single)
    beam_measure(158.6e6)
    if args.noise:
        noise_table(single, cache, args.noise)
    print("\n## MWA: what spotcube makes of pyuvdata's MWA files\n")
    with tempfile.TemporaryDirectory(prefix="pspec-realdata-mwa-") as tmp:
        for name, file in mwa.items():
            print(f"- `{name}`: {mwa_outcome(file, Path(tmp) / name)}")
    mwa_tables(cache, mwa["1102865728_small.ms"])
    print(f"\n# {math.ceil(time.perf_counter() - started)} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
