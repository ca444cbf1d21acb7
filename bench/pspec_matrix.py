"""Validation matrix of spotcube's power spectrum: beams x observing modes x uv grids (issue 19).

Every cell simulates two white-sky realisations (powerbox, P = 1e4 mK^2 Mpc^3) through a beam
evaluated by its field package's own API (pyuvdata's ``GaussianBeam`` / ``AiryBeam``,
mwa_hyperbeam's ``AnalyticBeam`` with the pointing's delays, sky pixels placed by astropy for
pointed tiles), visibilities by ducc0's ``dirty2vis`` for MWA Phase I baselines under 110 m,
32 x 200 kHz at 167 MHz. Per spherical bin above k = 0.18 Mpc^-1 it prints spotcube / input
and spotcube / the per-baseline delay spectrum of the same visibilities
(``tests/payload/delay_spectrum.py``, Parsons et al. 2012), their means, and whether the cell
meets the issue's bounds (mean within 0.95-1.05, every bin within 0.8-1.2); or the one-line
reason spotcube refuses the cell.

Modes: ``snapshot`` (8 x 8 s), ``track-1h`` (60 x 60 s, a dish that tracks the phase centre;
an MWA tile cannot, its delays fix the beam on the ground, and this mode hands spotcube one
coherent cube of the hour, which it refuses), ``drift-1h`` (an hour of drift scan: the beam
fixed at zenith at HERA's site and a white sky drifting through it, simulated by matvis
for a compact non-redundant array of 24 dishes, ``tests/payload/drift_sim.py``, phased by
pyuvdata to the middle time's zenith as the reader does; spotcube cuts the hour into
segments and averages them in power, ``payload/drift.py``; the delay spectrum takes the
same visibilities. MWA rows: 24 tiles placed at random at least 5 m apart within 45 m of
the MWA's centre, at its site, the tile's pseudo-Stokes I pattern from mwa_hyperbeam's own
``AnalyticBeam`` at the row's delays tabulated as a pyuvdata ``UVBeam`` for matvis
(``drift_sim.mwa_uvbeam``), the sky centred on the pointed beam's peak; one simulation per
beam serves every grid).
Grids: ``default`` (uv cell 1, 70 wavelengths), ``uv-cell-2``, ``coarse`` (40 wavelengths,
pixels of 1/80 rad), ``uv-cell-0.8`` (a field of |l|, |m| < 0.625: for a tile pointed 19 deg
from the zenith phase centre of drift data).

Usage (about 20 minutes on one core; a Markdown table on stdout)::

    PYTHONPATH=. .venv/bin/python bench/pspec_matrix.py [--quick] [--modes drift-1h]
        [--beams airy:14 gaussian:12] [--grids default]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from payload.beamframe import BeamFrame
from payload.errors import InvalidInputError
from tests.payload import delay_spectrum
from tests.payload import pspec_sim as sim

BAND = sim.Band(32, 167e6 - 16 * 200e3, 200e3)
AMPLITUDE = 1e4
K_MIN = 0.18
NPIX, PIXSIZE = 400, 0.005
BEAMS: dict[str, tuple[str, Any]] = {
    "gaussian:25": ("gaussian", 25.0),
    "gaussian:12": ("gaussian", 12.0),
    "airy:4": ("airy", 4.0),
    "airy:14": ("airy", 14.0),
    "mwa (zenith)": ("mwa", (0,) * 16),
    "mwa (13 deg E-W)": ("mwa", (6, 4, 2, 0) * 4),
    "mwa (19 deg E-W)": ("mwa", (9, 6, 3, 0) * 4),
}
MODES = {"snapshot": (8, 8.0), "track-1h": (60, 60.0), "drift-1h": (30, 120.0)}
# drift-1h: realisations per cell (skies, each its own matvis run; --drift-realisations),
# and matvis's sky pixels (rad; C's aliases at 67 wavelengths, beyond any pair a cell couples)
DRIFT_REALISATIONS = 4
DRIFT_PIXSIZE = 0.015
# MWA drift rows: 24 tiles (4.4 m) at least 5 m apart within 45 m (drift_sim.compact_array)
MWA_DRIFT_ARRAY = (24, 45.0, 5.0, 3)
GRIDS = {
    "default": {},
    "uv-cell-2": {"uv_cell_lambda": 2.0},
    "coarse": {"uv_max_lambda": 40.0},
    # a finer cell, whose field (|l|, |m| < 0.625) holds a tile pointed 19 deg off the
    # zenith phase centre of drift data (refused on the default grid: 5.6 % outside)
    "uv-cell-0.8": {"uv_cell_lambda": 0.8},
}
LATITUDE_RAD = sim.MWA_LATITUDE_RAD


def analytic_beam(kind: str, size: float, freq_hz: float) -> dict[str, npt.NDArray[np.float64]]:
    """pyuvdata's analytic power beam centred on the sky grid (XX and YY the same)."""
    from pyuvdata.analytic_beam import AiryBeam, GaussianBeam

    lm = (np.arange(NPIX) - NPIX // 2) * PIXSIZE
    ll, mm = np.meshgrid(lm, lm, indexing="ij")
    rho = np.hypot(ll, mm)
    za = np.arcsin(np.clip(rho, 0, 1))
    az = np.arctan2(ll, mm)
    if kind == "airy":
        model: Any = AiryBeam(diameter=size)
    else:
        model = GaussianBeam(
            sigma=math.radians(size) / (2 * math.sqrt(2 * math.log(2))), sigma_type="power"
        )
    power = model.power_eval(
        az_array=az.ravel(), za_array=za.ravel(), freq_array=np.asarray([freq_hz])
    )
    beam = np.where(rho < 1, power.real[0, 0, 0].reshape(ll.shape), 0.0)
    return {"XX": beam, "YY": beam}


def run_drift_cell(
    beam_name: str, grid: str, seed: int, realisations: int = DRIFT_REALISATIONS
) -> dict[str, Any]:
    """An hour of drift scan simulated by matvis (see the module docstring)."""
    from tests.payload import drift_sim

    kind, size = BEAMS[beam_name]
    n_times = MODES["drift-1h"][0]
    obs = _drift_observation(beam_name, seed, realisations)
    if kind == "mwa":
        beam_spec = "mwa:" + ",".join(str(d) for d in size)
        # int A^2 dOmega: the sky is white per solid angle
        omega_pp = drift_sim.mwa_omega_pp(tuple(size), float(BAND.freq_hz.mean()))
    else:
        beam_spec = beam_name
        beam = analytic_beam(kind, float(size), float(BAND.freq_hz.mean()))["XX"]
        omega_pp = sim.omega_pp(beam, PIXSIZE)
    try:
        ps = drift_sim.spotcube_spectrum(obs, beam_spec, extra_params=GRIDS[grid])
    except InvalidInputError as exc:
        return {"refused": str(exc)}
    centres = np.sqrt(ps.k_edges[:-1] * ps.k_edges[1:])
    tested = centres > K_MIN
    ours = np.asarray(ps.p_sph[:, tested]) / AMPLITUDE
    theirs = (
        np.asarray(
            [
                delay_spectrum.spherical_power(
                    obs.vis[name], obs.uvw_m, n_times, BAND.freq_hz, omega_pp, ps.k_edges
                )[tested]
                for name in obs.vis
            ]
        )
        / AMPLITUDE
    )
    segments = json.loads(ps.segments)
    missing = (
        drift_sim.mwa_missing_share(tuple(size), float(BAND.freq_hz.mean()))
        if kind == "mwa"
        else drift_sim.missing_share(kind, float(size), float(BAND.freq_hz.mean()))
    )
    return {
        "k": centres[tested],
        "input": ours.mean(axis=0),
        "delay": (ours / theirs).mean(axis=0),
        "note": f"{segments['n_segments']} segments of {max(segments['seconds']):.0f} s; "
        f"{len(obs.vis)} skies; the sky leaves out {missing:.1%} of int A^2 dOmega",
    }


@functools.cache
def _drift_observation(beam_name: str, seed: int, realisations: int) -> Any:
    """matvis's drift scan of ``beam_name``'s row (one per beam and skies: the grids share it)."""
    from tests.payload import drift_sim

    kind, size = BEAMS[beam_name]
    n_times, step_s = MODES["drift-1h"]
    mwa = kind == "mwa"
    return drift_sim.simulate(
        kind,
        0.0 if mwa else float(size),
        BAND.freq_hz,
        n_times=n_times,
        step_s=step_s,
        amplitude=AMPLITUDE,
        seeds=tuple(range(seed, seed + realisations)),
        pixsize=DRIFT_PIXSIZE,
        delays=tuple(size) if mwa else None,
        enu=drift_sim.compact_array(*MWA_DRIFT_ARRAY) if mwa else None,
    )


def run_cell(
    beam_name: str,
    mode: str,
    grid: str,
    seed: int,
    drift_realisations: int = DRIFT_REALISATIONS,
    sky_pairs: int = 1,
) -> dict[str, Any]:
    if mode == "drift-1h":
        return run_drift_cell(beam_name, grid, seed, drift_realisations)
    kind, size = BEAMS[beam_name]
    n_times, step_s = MODES[mode]
    freq = float(BAND.freq_hz.mean())
    if kind == "mwa":
        sky = sim.pointed_mwa_snapshot(
            size, freq, n_times=n_times, step_s=step_s, npix=NPIX, pixsize=PIXSIZE
        )
        uvw, times, beams = sky.uvw_m, sky.times, sky.beams
        frame = BeamFrame(LATITUDE_RAD, sky.hour_angle_rad, sky.dec_rad, n_times * step_s)
        spec = "mwa:" + ",".join(str(d) for d in size)
    else:
        uvw, times = sim.track_uvw(sim.short_baselines_enu(110.0), n_times, step_s)
        beams = analytic_beam(kind, float(size), freq)
        frame = BeamFrame(LATITUDE_RAD, 0.0, LATITUDE_RAD, n_times * step_s, fixed=False)
        spec = f"{kind}:{size:g}"
    ours_all, theirs_all = [], []
    for pair in range(sky_pairs):
        first = seed + 1000 * pair  # pair 0: the seeds of the rows measured before pairs
        vis = {
            pol: sim.predict(
                uvw,
                BAND,
                sim.sky_cube(
                    lambda k: AMPLITUDE * np.ones_like(k),
                    BAND,
                    npix=NPIX,
                    pixsize=PIXSIZE,
                    seed=first + p,
                ),
                beams[pol],
                PIXSIZE,
            )
            for p, pol in enumerate(("XX", "YY"))
        }
        try:
            ps = sim.spectrum_of(
                uvw, times, BAND, vis, 0.0, beam_spec=spec, frame=frame, extra_params=GRIDS[grid]
            )
        except InvalidInputError as exc:
            return {"refused": str(exc)}
        centres = np.sqrt(ps.k_edges[:-1] * ps.k_edges[1:])
        tested = centres > K_MIN
        ours_all.append(np.asarray([ps.p_sph[p][tested] for p in range(2)]) / AMPLITUDE)
        theirs_all.append(
            np.asarray(
                [
                    delay_spectrum.spherical_power(
                        vis[pol],
                        uvw,
                        n_times,
                        BAND.freq_hz,
                        sim.omega_pp(beams[pol], PIXSIZE),
                        ps.k_edges,
                    )[tested]
                    for pol in ("XX", "YY")
                ]
            )
            / AMPLITUDE
        )
    ours, theirs = np.concatenate(ours_all), np.concatenate(theirs_all)
    result = {
        "k": centres[tested],
        "input": ours.mean(axis=0),
        "delay": (ours / theirs).mean(axis=0),
    }
    if sky_pairs > 1:
        result["note"] = f"{2 * sky_pairs} skies"
    return result


def verdict(per_bin: npt.NDArray[np.float64]) -> str:
    mean = float(np.mean(per_bin))
    ok = 0.95 <= mean <= 1.05 and bool(np.all((per_bin >= 0.8) & (per_bin <= 1.2)))
    return f"{mean:.3f} ({per_bin.min():.2f}-{per_bin.max():.2f}){'' if ok else ' FAIL'}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="snapshot, default grid only")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), help="only these modes")
    parser.add_argument("--grids", nargs="+", choices=list(GRIDS), help="only these grids")
    parser.add_argument("--beams", nargs="+", choices=list(BEAMS), help="only these beams")
    parser.add_argument(
        "--drift-realisations", type=int, default=DRIFT_REALISATIONS, help="skies per drift cell"
    )
    parser.add_argument(
        "--sky-pairs",
        type=int,
        default=1,
        help="pairs of skies (XX, YY) per snapshot or track cell: a narrow beam's bins hold "
        "few independent modes, and its mean over the input carries that sample variance",
    )
    args = parser.parse_args(argv)
    modes = ["snapshot"] if args.quick else (args.modes or list(MODES))
    grids = ["default"] if args.quick else (args.grids or list(GRIDS))
    beams = args.beams or list(BEAMS)
    print("| beam | mode | grid | spotcube / input: mean (bins) | spotcube / delay spectrum |")
    print("|---|---|---|---|---|")
    # mode by mode, grid by grid: the cheap snapshots first
    for mode in modes:
        for grid in grids:
            for b, beam_name in enumerate(BEAMS):
                if beam_name not in beams:
                    continue
                start = time.perf_counter()
                cell = run_cell(
                    beam_name,
                    mode,
                    grid,
                    seed=500 + 10 * b,
                    drift_realisations=args.drift_realisations,
                    sky_pairs=args.sky_pairs,
                )
                took = time.perf_counter() - start
                if "refused" in cell:
                    reason = cell["refused"].replace("|", "\\|")  # a Markdown cell
                    row = f"refused: {reason} | -"
                else:
                    row = f"{verdict(cell['input'])} | {verdict(cell['delay'])}"
                    if "note" in cell:
                        row += f" ({cell['note']})"
                print(
                    f"| {beam_name} | {mode} | {grid} | {row} |  <!-- {took:.0f} s -->", flush=True
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
