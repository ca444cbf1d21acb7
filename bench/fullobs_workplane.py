"""A full-shape MWA Phase I observation through the work plane: what bounds a worker's disk.

Runs one ``image`` job (8-channel chunks) of a synthetic observation of the full baseline,
time and polarization shape (128 tiles, 56 times, 4 polarizations) over ``--channels``
channels through a real worker process (``python -m payload worker``) on the local cloud
(moto over HTTP), the input stored as ``spotcube submit`` stores it (content key, name
metadata). ``--layout chunked`` stores it in frequency chunks (``payload.rechunk``), so the
worker reads each chunk's channels by range; ``--layout contiguous`` (visdata contiguous, as
most files are) makes it download the whole file first. Measured: wall time and peak RSS of
the worker (``/usr/bin/time -v``), peak disk of its work directory (every file's allocated
blocks, sampled every 0.1 s, by subdirectory: the input, chunk files, products), the bytes
it fetched by range (its ``input.ranged_bytes`` event), and the chunk files' sizes.

Usage::

    .venv/bin/python bench/fullobs_workplane.py --channels 16 --layout chunked
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_TILES = 128
N_TIMES = 56
RAW, PRODUCTS = "bench-raw", "bench-products"


def _write_input(work: Path, channels: int, layout: str) -> Path:
    """The synthetic observation in the layout asked for (kept for the same shape).

    ``chunked`` is written 8 channels at a time, already in frequency chunks (memory holds
    one block: the whole observation would be ~24 GiB at 768 channels); ``contiguous`` is
    the one-piece file pyuvdata writes, as most files are.
    """
    from payload.synth import write_synthetic_observation

    path = work / f"fullshape-{channels}ch-{layout}.uvh5"
    if path.exists():
        return path
    started = time.perf_counter()
    if layout == "chunked":
        write_synthetic_observation(
            path,
            n_tiles=N_TILES,
            n_freqs=channels,
            n_times=N_TIMES,
            noise_jy=1.0,
            block_channels=8,
        )
    else:
        from pyuvdata import UVData

        write_synthetic_observation(
            path, n_tiles=N_TILES, n_freqs=channels, n_times=N_TIMES, noise_jy=1.0
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            UVData.from_file(str(path)).write_uvh5(str(path), chunks=None, clobber=True)
    print(f"wrote {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def _allocated(root: Path) -> dict[str, int]:
    """Allocated bytes under ``root`` by first-level part below the job's directory."""
    sizes: dict[str, int] = {}
    for folder, _dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root).parts
        # workdir/<run>/<obs>/<part>/...: the part (input, chunks, fetched, products, ...)
        part = rel[2] if len(rel) > 2 else "(job dir)"
        for name in files:
            try:
                blocks = os.lstat(os.path.join(folder, name)).st_blocks
            except FileNotFoundError:
                continue
            sizes[part] = sizes.get(part, 0) + blocks * 512
    return sizes


class DiskSampler(threading.Thread):
    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak = 0
        self.peak_parts: dict[str, int] = {}
        self.part_peaks: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            parts = _allocated(self.root) if self.root.exists() else {}
            total = sum(parts.values())
            if total > self.peak:
                self.peak, self.peak_parts = total, parts
            for part, size in parts.items():
                self.part_peaks[part] = max(self.part_peaks.get(part, 0), size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--layout", choices=("chunked", "contiguous"), default="chunked")
    parser.add_argument("--workdir", type=Path, default=Path("bench-fullobs"))
    args = parser.parse_args()
    from payload import inputs
    from payload.records import JobMessage
    from spotcube.local.motoserver import local_client, local_environment, moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = _write_input(work, args.channels, args.layout)
    size = data.stat().st_size
    env = dict(os.environ) | local_environment()
    os.environ.update(local_environment())
    with moto_server() as endpoint:
        s3, sqs = local_client("s3", endpoint), local_client("sqs", endpoint)
        for bucket in (RAW, PRODUCTS):
            s3.create_bucket(Bucket=bucket)
        dlq = sqs.create_queue(QueueName="bench-dlq")["QueueUrl"]
        queue = sqs.create_queue(QueueName="bench-jobs")["QueueUrl"]
        with data.open("rb") as stream:
            digest = hashlib.file_digest(stream, "sha256").hexdigest()
        key = inputs.content_key("", digest)
        s3.upload_file(
            str(data),
            RAW,
            key,
            ExtraArgs={"Metadata": inputs.metadata_for(data.name, "file", sha256=digest)},
        )
        message = JobMessage.create(
            run_id="bench",
            obs_id="fullobs",
            input=f"s3://{RAW}/{key}",
            kind="image",
            params={"chunk_channels": 8},
        )
        sqs.send_message(QueueUrl=queue, MessageBody=message.to_json())
        jobdir = work / "worker"
        log_path = work / f"worker-{args.channels}ch-{args.layout}.log"
        sampler = DiskSampler(jobdir)
        sampler.start()
        load_before = os.getloadavg()
        started = time.perf_counter()
        timing = work / "time-v.txt"
        with log_path.open("wb") as log:
            done = subprocess.run(
                [
                    "/usr/bin/time",
                    "-v",
                    "-o",
                    str(timing),
                    sys.executable,
                    "-m",
                    "payload",
                    "worker",
                    *("--queue-url", queue, "--products-bucket", PRODUCTS, "--dlq-url", dlq),
                    *("--endpoint-url", endpoint, "--region", "us-east-1"),
                    *("--workdir", str(jobdir), "--max-jobs", "1", "--idle-exit", "5"),
                    "--log-json",
                ],
                env=env,
                stdout=log,
                stderr=log,  # the worker's JSON log lines
                check=False,
            )
        wall = time.perf_counter() - started
        load_after = os.getloadavg()
        sampler.stop.set()
        sampler.join()
        manifest = json.loads(
            s3.get_object(Bucket=PRODUCTS, Key="runs/bench/obs/fullobs/checkpoint/manifest.json")[
                "Body"
            ].read()
        )
        has_done = "Contents" in s3.list_objects_v2(
            Bucket=PRODUCTS, Prefix="runs/bench/obs/fullobs/DONE"
        )
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing.read_text())
    rss = int(match.group(1)) / 2**20 if match else float("nan")
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]
    said = {e["event"]: e for e in events if "event" in e}
    chunk_seconds = [
        float(m.group(1))
        for e in events
        if e.get("event") == "chunk.computed"
        and (m := re.search(r"in ([\d.]+) s", e.get("message", "")))
    ]
    chunk_sizes = [int(c["size"]) for c in manifest["chunks"].values()]
    mib = 2**20
    print(f"\n{args.channels} channels x {N_TILES} tiles x {N_TIMES} times x 4 pols, {args.layout}")
    print(f"  input {size / mib:.0f} MiB; worker exit {done.returncode}; DONE {has_done}")
    print(f"  {said.get('input.read', {}).get('message', '(no input.read event)')}")
    if "input.ranged_bytes" in said:
        fetched = said["input.ranged_bytes"]
        print(f"  fetched by range: {fetched['bytes'] / mib:.0f} MiB in {fetched['requests']} GETs")
    print(f"  chunks computed in {', '.join(f'{t:.1f}' for t in chunk_seconds)} s")
    print(f"  wall {wall:.1f} s, worker peak RSS {rss:.2f} GiB, load {load_before} -> {load_after}")
    print(
        f"  peak disk of the job directory {sampler.peak / mib:.0f} MiB: {_mib(sampler.peak_parts)}"
    )
    print(f"  each part's own peak: {_mib(sampler.part_peaks)}")
    per_channel = sum(chunk_sizes) / args.channels
    print(
        f"  chunk files: {len(chunk_sizes)} x {max(chunk_sizes) / mib:.1f} MiB "
        f"({per_channel / mib:.2f} MiB per channel)"
    )
    report: dict[str, Any] = {
        "channels": args.channels,
        "layout": args.layout,
        "input_bytes": size,
        "wall_s": wall,
        "peak_rss_gib": rss,
        "peak_disk_bytes": sampler.peak,
        "peak_disk_parts": sampler.peak_parts,
        "part_peaks": sampler.part_peaks,
        "chunk_bytes": chunk_sizes,
        "chunk_seconds": chunk_seconds,
        "load": [load_before, load_after],
        "done": has_done,
    }
    (work / f"report-{args.channels}ch-{args.layout}.json").write_text(json.dumps(report, indent=1))
    return 0 if has_done else 1


def _mib(parts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in sorted(parts.items()))


if __name__ == "__main__":
    raise SystemExit(main())
