"""Notice-to-durable time of a checkpoint, beside a plain boto3 ``upload_file``.

For checkpoint states of 10 MB to 1 GB, against a local moto server in its own process
(so the server does not share this process's GIL), measure:

* **spotcube**: from the notice until the state is durable and verified — the chunk file
  uploaded through :class:`payload.checkpoint.Checkpointer` (SHA-256 per part, checked
  against S3's answer) and the manifest listing it written and verified;
* **plain**: ``boto3`` ``upload_file`` of the same bytes with default settings, no
  verification, no manifest.

Prints the ratio (target: within 1.05x, median of at least 5 runs, both sides alternating in
the same run), the load average before and after, the margin left in a 120-second spot
notice and the comparison with the figures recorded in ``bench/recorded.json``; writes the
table to ``docs/benchmarks-checkpoint.md`` with ``--write``.

Usage: ``python bench/checkpoint.py [--sizes-mb 10,100,1000] [--repeats 5] [--write]``
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.recorded import compare_recorded  # noqa: E402
from contract.layout import ObsLayout  # noqa: E402
from payload import __version__  # noqa: E402
from payload.checkpoint import Checkpointer  # noqa: E402
from payload.records import Attempt, InputIdentity, JobMessage, Manifest, utc_now  # noqa: E402
from payload.store import ObjectStore, s3_client  # noqa: E402

NOTICE_SECONDS = 120.0
BUCKET = "bench-checkpoint"
CREDS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


@contextmanager
def moto_process() -> Iterator[str]:
    """A moto server in a child process on a free port; yields its endpoint."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):  # up to 20 s for the server to answer
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def make_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with path.open("wb") as out:
        remaining = size
        while remaining > 0:  # bounded by size
            out.write(block[: min(len(block), remaining)])
            remaining -= len(block)


def spotcube_checkpoint(endpoint: str, path: Path, index: int) -> float:
    """Seconds from the notice to a durable, verified chunk plus manifest."""
    store = ObjectStore(s3_client(endpoint, "us-east-1"), BUCKET)
    message = JobMessage.create(
        run_id="bench", obs_id=f"obs{index}", input="s3://raw/x", kind="selftest", params={}
    )
    manifest = Manifest.new(message, InputIdentity(uri=message.input))
    attempt = Attempt(instance_id="i-bench", start=utc_now())  # the checkpointer appends it
    ckpt = Checkpointer(
        store,
        ObsLayout("bench", f"obs{index}"),
        manifest,
        attempt,
        chunk_suffix="bin",
        interval=3600,
    ).start()
    ckpt.commit()  # as the worker does when an attempt starts, long before any notice
    notice = time.perf_counter()
    ckpt.submit("0", path, 1.0)  # the state finished at the notice
    ckpt.flush()
    took = time.perf_counter() - notice
    ckpt.stop()
    assert "0" in manifest.chunks
    store.delete(manifest.chunks["0"].key)  # keep the server's storage small between runs
    return took


def plain_upload(endpoint: str, path: Path, index: int) -> float:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **CREDS)
    started = time.perf_counter()
    client.upload_file(str(path), BUCKET, f"plain/{index}.bin")
    took = time.perf_counter() - started
    client.delete_object(Bucket=BUCKET, Key=f"plain/{index}.bin")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="10,100,1000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks-checkpoint.md")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    sizes = [int(s) for s in args.sizes_mb.split(",")]
    rows = []
    load_before = os.getloadavg()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}", flush=True)
    with moto_process() as endpoint, tempfile.TemporaryDirectory() as tmp:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **CREDS).create_bucket(
            Bucket=BUCKET
        )
        counter = 0
        for size_mb in sizes:
            path = Path(tmp) / f"{size_mb}.bin"
            make_file(path, size_mb * 1_000_000)
            ours, plain = [], []
            for repeat in range(args.repeats):
                counter += 1
                # Alternate the order so neither side always runs on a warmer server.
                if repeat % 2:
                    plain.append(plain_upload(endpoint, path, counter))
                    ours.append(spotcube_checkpoint(endpoint, path, counter))
                else:
                    ours.append(spotcube_checkpoint(endpoint, path, counter))
                    plain.append(plain_upload(endpoint, path, counter))
            o, p = statistics.median(ours), statistics.median(plain)
            rows.append((size_mb, o, p, o / p, NOTICE_SECONDS - o))
            print(
                f"{size_mb:>6} MB  spotcube {o:7.2f} s  plain upload_file {p:7.2f} s  "
                f"ratio {o / p:4.2f}x  margin in a 120 s notice {NOTICE_SECONDS - o:6.1f} s",
                flush=True,
            )
            path.unlink()
    load_after = os.getloadavg()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    print(
        compare_recorded("checkpoint", {f"ratio_{size}mb": ratio for size, _, _, ratio, _ in rows})
    )
    if args.write:
        write_doc(rows, args.repeats, load_before[0], load_after[0])
    return 0


def write_doc(
    rows: list[tuple[int, float, float, float, float]],
    repeats: int,
    load_before: float,
    load_after: float,
) -> None:
    lines = [
        "# Benchmark: checkpoint notice-to-durable time",
        "",
        "Produced by `python bench/checkpoint.py --write` (median of "
        f"{repeats} runs per size; payload {__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load_before:.1f} before and {load_after:.1f} "
        "after, moto "
        "server in its own process on 127.0.0.1).",
        "",
        "*spotcube*: from the notice until a finished chunk of that size is uploaded "
        "(8 MiB parts, each with a CRC32 that S3 checks and echoes and we compare, then the "
        "composite checksum of the whole object; the whole file's SHA-256 in the same read) "
        "and the manifest listing it "
        "is written and verified. *plain*: boto3 `upload_file` of the same bytes, default "
        "settings, nothing verified, no manifest. Target: ratio within 1.05x.",
        "",
        "| state | spotcube (s) | plain upload_file (s) | ratio | margin in a 120 s notice (s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size_mb, ours, plain, ratio, margin in rows:
        lines.append(f"| {size_mb} MB | {ours:.2f} | {plain:.2f} | {ratio:.2f}x | {margin:.1f} |")
    lines += [
        "",
        "Against AWS the times scale with the instance's network bandwidth; the ratio is what "
        "this benchmark is for. The margin column says how much of a two-minute notice a "
        "state of that size leaves on this machine.",
        "",
    ]
    (REPO / "docs" / "benchmarks-checkpoint.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
