"""Imaging benchmark: spotcube's image job against ducc0 alone and WSClean, same data.

On one synthetic MWA observation (128 Phase I tiles, 64 channels, 4 polarizations, phase
centre 30 degrees from zenith), in one run:

(a) ``python -m payload image`` end to end (read, image XX/YY/I + PSFs, uv cube, power
    spectrum, plots), in a subprocess, wall time and peak RSS;
(b) the floor: ducc0's ``vis2dirty`` alone on the same visibilities, already in memory, for
    the same images (dirty + PSF per channel and polarization, same size, pixel scale,
    weighting and accuracy), on the same cores: the faster of ducc0's own threading and
    single-threaded calls side by side;
(c) WSClean (``-niter 0 -make-psf``, same size, scale, channels and polarizations) on the same
    data written as a Measurement Set.

The machine this runs on is usually shared and small (2 vCPUs), so (a) and (b) run back to
back with the same thread count, ``--repeat`` times each (default 2), alternating, and the
minimum of each is compared: the minimum is the run least disturbed by other work. The load
average is printed before and after. Each (a) run starts from an empty output directory
(removed before the clock starts), as a job on a fresh instance does.

It also runs one chunk in a subprocess to measure the peak memory of a chunk and projects it
to a full MWA Phase I observation (768 channels x 8256 baselines x 60 times).

Usage::

    .venv/bin/python bench/imaging.py [--workdir bench-imaging] [--n-times 8] [--repeat 2]

WSClean is the Debian package ``wsclean`` (``sudo apt-get install -y wsclean``); without it
step (c) is skipped and says so. Writing the MS needs ``python-casacore``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.recorded import compare_recorded  # noqa: E402
from payload.imaging import FLIPS, ImageGeometry  # noqa: E402
from payload.jobs.image import ImageJob  # noqa: E402
from payload.reading import read_chunk, read_info  # noqa: E402
from payload.synth import write_synthetic_observation  # noqa: E402
from payload.uvcube import UV_EPSILON, UVGrid, baseline_mask  # noqa: E402

PY = sys.executable
CHUNK = 16
# WSClean's default w-gridder accuracy; all three runs use it (ducc0 in single precision).
EPSILON = 1e-4
FULL_MWA = {"channels": 768, "baselines": 8256, "times": 60}


def run_measured(
    command: list[str], *, env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """Run a command; return (wall seconds, peak RSS in MiB of that process tree's max, out)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({proc.returncode}):\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024.0, out


def make_observation(path: Path, n_times: int, n_freqs: int) -> dict[str, Any]:
    if not path.exists():
        print(f"synthesising {path} ...", flush=True)
        write_synthetic_observation(path, n_tiles=128, n_freqs=n_freqs, n_times=n_times)
    info = read_info(path)
    return {"rows": info.n_baselines * info.n_times, "n_baselines": info.n_baselines}


def ours(obs: Path, out: Path, threads: int) -> dict[str, float]:
    """(a): one end-to-end run into an empty ``out`` (emptied before the clock starts).

    Returns the wall time of the process, its peak RSS (MiB) and the seconds it reports in
    its summary for the chunks (reading, imaging, gridding, chunk files) and for combine
    (products, power spectrum with its errors, figures).
    """
    shutil.rmtree(out, ignore_errors=True)
    command = [PY, "-m", "payload", "image", str(obs), "--out", str(out)]
    command += ["--chunk-channels", str(CHUNK), "--epsilon", str(EPSILON)]
    command += ["--threads", str(threads)]
    wall, rss, stdout = run_measured(command, env={**os.environ, "TERM": "dumb"})
    summary = json.loads(stdout[stdout.rindex("\n{") + 1 :])
    return {
        "wall": wall,
        "rss": rss,
        "chunks": float(summary["chunks_seconds"]),
        "combine": float(summary["combine_seconds"]),
    }


CHUNK_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    from pathlib import Path
    from payload.commands.image import local_fetch, LOCAL_PREFIX
    from payload.records import JobMessage
    from payload.jobs.base import JobContext
    from payload.jobs.image import ImageJob
    obs, out = sys.argv[1], Path(sys.argv[2])
    msg = JobMessage.create(run_id="bench", obs_id="obs", input=LOCAL_PREFIX + obs.lstrip("/"),
                            kind="image", params={"chunk_channels": int(sys.argv[3]),
                                                  "epsilon": float(sys.argv[4])})
    job = ImageJob(JobContext(message=msg, workdir=out, fetch=local_fetch))
    first = job.chunk_ids()[0]
    _ = job.geometry

    def rss():
        with open("/proc/self/status") as status:
            line = next(l for l in status if l.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    # Sample the resident set while the chunk runs: ru_maxrss is a high-water mark that
    # start-up (imports, IERS tables) may already have set higher than a chunk needs.
    peak, stop = [0.0], threading.Event()
    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.005)
    base = rss()
    sampler = threading.Thread(target=sample)
    sampler.start()
    job.run_chunk(first, out / "chunk.h5")
    stop.set()
    sampler.join()
    print(json.dumps({"baseline_mib": base, "peak_mib": peak[0], "npix": job.geometry.npix}))
    """
)


def chunk_memory(obs: Path, work: Path) -> dict[str, float]:
    work.mkdir(parents=True, exist_ok=True)
    command = [PY, "-c", CHUNK_SCRIPT, str(obs), str(work), str(CHUNK), str(EPSILON)]
    _, _, out = run_measured(command)
    return dict(json.loads(out.strip().splitlines()[-1]))


@dataclass(frozen=True)
class FloorCall:
    """One ducc0 ``vis2dirty`` call the products need, with its own inputs and accuracy."""

    what: str  # "image" (dirty/PSF images) or "uv" (the uv cube's halves)
    uvw: Any
    freq: Any
    values: Any
    weight: Any
    npix: int
    pixsize: float
    epsilon: float
    wgridding: bool


def floor_calls(obs: Path, epsilon: float, job: ImageJob) -> list[FloorCall]:
    """The floor's gridding calls, on visibilities read once, outside any timing.

    Every pass the products need, each at the accuracy the product uses:

    * the image cube: per channel the XX and YY dirty images and one PSF (the synthetic
      data have the same weights in every polarization, so I = (XX + YY) / 2 and the PSF is
      shared: ours makes the same saving), at ``epsilon``, w-gridded;
    * the uv cube: per channel and even/odd half (only that half's rows of the baselines
      the uv grid keeps) the XX and YY planes, the weights plane and the sampling image on
      twice the field, at the uv cube's accuracy (``UV_EPSILON``, double precision), flat.
    """
    info = read_info(obs)
    chunk = read_chunk(info, range(info.n_freqs), ("XX", "YY"))
    calls = []
    geometry = job.geometry
    single = epsilon > 1e-5
    ctype, ftype = (np.complex64, np.float32) if single else (np.complex128, np.float64)
    for c in range(info.n_freqs):
        freq = chunk.freq_hz[c : c + 1]
        weight = np.ascontiguousarray(chunk.weights["XX"][:, c : c + 1], dtype=ftype)
        for vis in (chunk.vis["XX"], chunk.vis["YY"], None):
            values = np.ones_like(weight, dtype=ctype) if vis is None else vis[:, c : c + 1]
            calls.append(
                FloorCall(
                    "image",
                    chunk.uvw_m,
                    freq,
                    np.ascontiguousarray(values, dtype=ctype),
                    weight,
                    geometry.npix,
                    geometry.pixsize_rad,
                    epsilon,
                    True,
                )
            )
    grid = UVGrid.from_params(job.params)
    keep = baseline_mask(chunk.uvw_m, float(info.freq_hz.max()), grid)
    halves = np.asarray(job.halves)
    for h in (0, 1):
        rows = np.flatnonzero(keep & (halves == h))
        if not rows.size:
            continue
        uvw = np.ascontiguousarray(chunk.uvw_m[rows])
        for c in range(info.n_freqs):
            freq = chunk.freq_hz[c : c + 1]
            weight = np.ascontiguousarray(chunk.weights["XX"][rows, c : c + 1])
            ones = np.ones_like(weight, dtype=np.complex128)
            for values, npix in (
                (chunk.vis["XX"][rows, c : c + 1], grid.n),
                (chunk.vis["YY"][rows, c : c + 1], grid.n),
                (ones, grid.n),
                (ones, 2 * grid.n),
            ):
                calls.append(
                    FloorCall(
                        "uv",
                        uvw,
                        freq,
                        np.ascontiguousarray(values, dtype=np.complex128),
                        weight,
                        npix,
                        grid.pixsize,
                        UV_EPSILON,
                        False,
                    )
                )
    return calls


def floor(calls: list[FloorCall], threads: int, *, side_by_side: bool) -> dict[str, float]:
    """(b): ducc0 alone, the calls of :func:`floor_calls` on ``threads`` cores.

    Two ways to use the cores: one call after another with ducc0's own ``threads``
    threads each, or ``threads`` single-threaded calls side by side (what (a) does, for
    bit-reproducible images). The floor is whichever is faster in a round. Returns the
    seconds of the image passes, of the uv passes and of both.
    """
    import ducc0

    def grid(call: FloorCall, nthreads: int) -> None:
        ducc0.wgridder.experimental.vis2dirty(
            uvw=call.uvw,
            freq=call.freq,
            vis=call.values,
            wgt=call.weight,
            npix_x=call.npix,
            npix_y=call.npix,
            pixsize_x=call.pixsize,
            pixsize_y=call.pixsize,
            epsilon=call.epsilon,
            do_wgridding=call.wgridding,
            nthreads=nthreads,
            divide_by_n=False,
            **FLIPS,
        )

    seconds = {}
    for what in ("image", "uv"):
        part = [call for call in calls if call.what == what]
        start = time.perf_counter()
        if side_by_side:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(lambda call: grid(call, 1), part))
        else:
            for call in part:
                grid(call, threads)
        seconds[what] = time.perf_counter() - start
    seconds["all"] = seconds["image"] + seconds["uv"]
    return seconds


def wsclean(
    obs: Path, work: Path, geometry: ImageGeometry, n_freqs: int, threads: int
) -> float | None:
    exe = shutil.which("wsclean")
    if exe is None:
        print("WSClean not found: sudo apt-get install -y wsclean  (step c skipped)")
        return None
    from payload.reading import UVData

    ms = work / "obs.ms"
    if not ms.exists():
        uvd = UVData()
        uvd.read(str(obs))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            uvd.write_ms(str(ms))
    out = work / "wsclean"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [exe, "-quiet", "-niter", "0", "-make-psf", "-use-wgridder", "-weight", "natural"]
    command += ["-size", str(geometry.npix), str(geometry.npix)]
    command += ["-scale", f"{geometry.pixsize_arcsec}asec", "-channels-out", str(n_freqs)]
    command += ["-pol", "xx,yy,i", "-j", str(threads), "-name", str(out / "wsc"), str(ms)]
    wall, _, _ = run_measured(command)
    return wall


def project_memory(measured: dict[str, float], rows: int, npix: int) -> dict[str, float]:
    """Project one chunk's memory to a full MWA Phase I observation.

    A chunk holds image arrays that do not depend on the number of visibilities (per
    channel: XX, YY and I dirty images and one shared PSF in float32, and the float64
    images of the channels being gridded) and visibility arrays that scale with
    rows x channels; the measured chunk memory minus the first is the second. The combine
    step copies the image cubes from the chunk files to the FITS files inside the kernel,
    so it holds only the uv cube and one image.
    """
    per_chunk = measured["peak_mib"] - measured["baseline_mib"]
    # per channel: 3 dirty images and 1 shared PSF in float32 (mapped chunk-file pages) and
    # the float64 weighted image for image.png; for each of the 2 channels in flight, ducc0's
    # 3 float32 images and the float64 I image
    image_mib = (CHUNK * (4 * 4 + 8) + 2 * (3 * 4 + 8)) * npix * npix / 2**20
    vis_mib = max(per_chunk - image_mib, 0.0)
    full_rows = FULL_MWA["baselines"] * FULL_MWA["times"]
    chunk_full = measured["baseline_mib"] + vis_mib * full_rows / rows + image_mib
    uv_cube = FULL_MWA["channels"] * 3 * 128 * 65 * 24 / 2**20
    combine_full = measured["baseline_mib"] + uv_cube + npix * npix * 8 / 2**20
    return {
        "chunk_mib": chunk_full,
        "combine_mib": combine_full,
        "vis_mib_per_chunk_here": vis_mib,
        "image_mib_per_chunk": image_mib,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-imaging")
    parser.add_argument("--n-times", type=int, default=8)
    parser.add_argument("--n-freqs", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2, help="runs of (a) and (b), min taken")
    parser.add_argument("--threads", type=int, default=2, help="threads for (a), (b) and (c)")
    args = parser.parse_args()
    work: Path = args.workdir.resolve()  # job inputs are URIs of absolute paths
    work.mkdir(parents=True, exist_ok=True)
    obs = work / f"mwa128_{args.n_freqs}ch_{args.n_times}t.uvh5"
    shape = make_observation(obs, args.n_times, args.n_freqs)

    from payload.commands.image import LOCAL_PREFIX, local_fetch
    from payload.jobs.base import JobContext
    from payload.records import JobMessage

    message = JobMessage.create(
        run_id="bench", obs_id="obs", input=LOCAL_PREFIX + str(obs).lstrip("/"), kind="image"
    )
    job = ImageJob(JobContext(message=message, workdir=work / "probe", fetch=local_fetch))
    geometry = job.geometry
    print(
        f"observation: 128 tiles, {shape['n_baselines']} baselines, {args.n_times} times, "
        f"{args.n_freqs} channels, 4 pols; image {geometry.npix}^2 px of "
        f"{geometry.pixsize_arcsec:.1f} arcsec; XX, YY, I dirty + PSF",
        flush=True,
    )
    threads = args.threads
    calls = floor_calls(obs, EPSILON, job)
    load_before = os.getloadavg()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}", flush=True)
    runs_ours: list[dict[str, float]] = []
    runs_floor: list[dict[str, float]] = []
    for k in range(args.repeat):
        runs_ours.append(ours(obs, work / "ours", threads))
        own = floor(calls, threads, side_by_side=False)
        side = floor(calls, threads, side_by_side=True)
        runs_floor.append(min(own, side, key=lambda seconds: seconds["all"]))
        a, b = runs_ours[-1], runs_floor[-1]
        print(
            f"  round {k + 1}: (a) {a['wall']:6.1f} s [chunks {a['chunks']:.1f} s, combine "
            f"{a['combine']:.1f} s]   (b) {b['all']:6.1f} s [image {b['image']:.1f} s, uv "
            f"{b['uv']:.1f} s; ducc0's threads {own['all']:.1f} s, side by side "
            f"{side['all']:.1f} s]   chunks / floor {a['chunks'] / b['all']:4.2f}",
            flush=True,
        )
    del calls
    best = min(runs_ours, key=lambda run: run["wall"])
    fastest_chunks = min(run["chunks"] for run in runs_ours)
    wall_floor = min(run["all"] for run in runs_floor)
    rss_ours = max(run["rss"] for run in runs_ours)
    print(
        f"(a) python -m payload image : {best['wall']:8.1f} s  (min of {args.repeat}, "
        f"{threads} threads, peak RSS {rss_ours:.0f} MiB): chunks {fastest_chunks:.1f} s "
        f"(min), combine {best['combine']:.1f} s"
    )
    print(
        f"(b) ducc0 gridding alone    : {wall_floor:8.1f} s  (min of {args.repeat}, faster way; "
        "every pass: image, PSF, each uv-cube half)"
    )
    wall_wsc = wsclean(obs, work, geometry, args.n_freqs, threads)
    if wall_wsc is not None:
        print(f"(c) WSClean -niter 0        : {wall_wsc:8.1f} s")
    load_after = os.getloadavg()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    ratios = {
        "chunks_over_floor": fastest_chunks / wall_floor,
        "total_over_floor": best["wall"] / wall_floor,
        "combine_share": best["combine"] / best["wall"],
    }
    if wall_wsc is not None:
        ratios["total_over_wsclean"] = best["wall"] / wall_wsc
    print()
    print(f"chunks / floor   = {ratios['chunks_over_floor']:5.2f}   (target <= 1.10)")
    print(f"total / floor    = {ratios['total_over_floor']:5.2f}   (reading, writing, combine too)")
    print(f"combine share    = {ratios['combine_share']:5.2f}   of the total")
    if wall_wsc is not None:
        print(f"total / WSClean  = {ratios['total_over_wsclean']:5.2f}   (target < 0.25)")
    print(compare_recorded(f"imaging_{args.n_times}t", ratios))
    memory = chunk_memory(obs, work / "chunk-mem")
    projection = project_memory(memory, shape["rows"], geometry.npix)
    print(
        f"peak memory of one {CHUNK}-channel chunk: {memory['peak_mib']:.0f} MiB "
        f"({memory['baseline_mib']:.0f} MiB before the chunk; images "
        f"{projection['image_mib_per_chunk']:.0f} MiB, visibilities "
        f"{projection['vis_mib_per_chunk_here']:.0f} MiB)"
    )
    needed = max(projection["chunk_mib"], projection["combine_mib"])
    verdict = "fits" if needed < 60 * 1024 else "DOES NOT FIT"
    print(
        f"projected full MWA Phase I observation (768 ch x 8256 bl x 60 t): chunk "
        f"{projection['chunk_mib'] / 1024:.1f} GiB, combine {projection['combine_mib'] / 1024:.1f} "
        f"GiB (64 GB instance: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
