"""What one full MWA Phase I observation costs: time, memory, dollars on spot.

The full shape is 768 channels x 8,128 cross-correlation baselines x 56 times x 4
polarizations (~1.4e9 visibilities, ~20 GB with flags and nsamples), more than this 2-vCPU
development machine can hold next to its other work. Every cost of the image job but
``combine`` is per channel (chunks are independent frequency ranges), so this runs the full
baseline, time and polarization shape over ``--channels`` channels (default 16, two chunks
of 8), end to end with ``python -m payload image`` in a subprocess (wall time and peak RSS
from ``/usr/bin/time -v``), even/odd halves, sampling images and the power spectrum's
normalisation and errors included, and projects:

* time: (wall - combine) x 768 / channels + combine x 768 / channels (the combine's work,
  the power-spectrum normalisation above all, is per channel too), on this machine's cores,
  then scaled by cores to a 16-vCPU m5.4xlarge and an 8-vCPU r5.2xlarge (the gridding runs
  one ducc0 thread per channel, so it scales with cores; stated as an assumption);
* memory: the largest of a chunk's peak (measured) and the combine's arrays for 768
  channels (uv cube halves, sampling images, computed from their shapes);
* dollars: hours x spot price (m5.4xlarge $0.432/h, the figure spotcube embeds; r5.2xlarge
  is not embedded: $0.504/h on demand in us-east-1, and the same 56 % spot ratio assumed).

Usage::

    .venv/bin/python bench/fullobs.py [--channels 16] [--workdir bench-fullobs]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FULL_CHANNELS = 768
N_TILES = 128
N_TIMES = 56
SPOT = {"m5.4xlarge": (16, 0.432), "r5.2xlarge": (8, 0.504 * 0.432 / 0.768)}


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (GiB) and stdout of a command under /usr/bin/time -v."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    rss = int(match.group(1)) / 2**20 if match else float("nan")
    return wall, rss, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--workdir", type=Path, default=Path("bench-fullobs"))
    args = parser.parse_args()
    from payload.synth import write_synthetic_observation

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"fullshape-{args.channels}ch.uvh5"  # reused only for the same shape
    if not data.exists():
        started = time.perf_counter()
        write_synthetic_observation(
            data, n_tiles=N_TILES, n_freqs=args.channels, n_times=N_TIMES, noise_jy=1.0
        )
        print(f"wrote {data} in {time.perf_counter() - started:.0f} s", flush=True)
    out = work / "products"
    shutil.rmtree(out, ignore_errors=True)
    load_before = os.getloadavg()
    wall, rss, stdout = _timed(
        [
            sys.executable,
            "-m",
            "payload",
            "image",
            str(data),
            "--out",
            str(out),
            "--chunk-channels",
            "8",
            "--quiet",
        ]
    )
    load_after = os.getloadavg()
    with open(out / "provenance.json") as handle:
        beyond = json.loads(json.load(handle)["beyond_grid"])
    n = 128  # default uv grid (uv_max 64, cell 1)
    pols = 3
    halves_bytes = FULL_CHANNELS * pols * 2 * n * (n // 2 + 1) * (16 + 8)
    sampling_bytes = FULL_CHANNELS * pols * 2 * (2 * n) ** 2 * 4
    # the error model's noise maps, per channel (float32) and their frequency transform
    # (complex64), both halves, shared by polarizations with the same sampling (one set)
    noise_map_bytes = 2 * (2 * n) * (n + 1) * (FULL_CHANNELS * 4 + (FULL_CHANNELS // 2 + 1) * 8)
    combine_gib = (halves_bytes * 1.5 + sampling_bytes + noise_map_bytes) / 2**30
    cores_here = os.cpu_count() or 2
    hours_here = wall * FULL_CHANNELS / args.channels / 3600
    print(f"\n{args.channels} channels x {N_TILES} tiles x {N_TIMES} times x 4 pols:")
    print(f"  wall {wall:.1f} s, peak RSS {rss:.2f} GiB, load {load_before} -> {load_after}")
    print(f"  beyond grid: {beyond}")
    print(f"  projected to {FULL_CHANNELS} channels on this machine ({cores_here} cores): ")
    print(f"  {hours_here:.2f} h; combine arrays ~{combine_gib:.1f} GiB")
    print("| instance | vCPU | hours (scaled by cores) | spot $/h | $ per observation |")
    print("|---|---|---|---|---|")
    for name, (vcpus, price) in SPOT.items():
        hours = hours_here * cores_here / vcpus
        print(f"| {name} | {vcpus} | {hours:.2f} | {price:.3f} | {hours * price:.2f} |")
    print(stdout[-400:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
