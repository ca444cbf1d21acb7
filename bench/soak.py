"""Soak the work plane: many small jobs, 1,000 interruptions, nothing lost, nothing wrong.

Runs the local cloud (moto in its own process, an IMDSv2 emulator per instance, the S3 fault
proxy in front of moto) and a fleet of real ``python -m payload worker`` processes. The
fleet interrupts instances on a schedule counted in work done (``WorkSchedule``): most are
SIGKILLed while held inside a multipart part upload, a multipart completion, a manifest
write or right after a computed chunk; the rest get a spot notice and are SIGKILLed at its
deadline if still up. The proxy (``bench/killproxy.py``) holds one in ``--proxy-hold-every``
product PUTs, ``DONE`` PUTs and message deletes and the soak kills the sender there: halfway
through a product's body, between the products and ``DONE``, between ``DONE`` and the delete;
or it SIGSTOPs the sender at a product PUT and SIGCONTs it ``--late-seconds`` later, after
another worker took the job (a late worker). Meanwhile the proxy answers a fraction of S3
requests with 500/503 or cuts the connection before or after forwarding, some instances'
IMDS answers 500 for a while or forgets its tokens, and some jobs are delivered twice. Jobs
are fed until the target number of interruptions has happened, however long that takes (a
``--max-seconds`` cap, if given and hit, fails the soak); then the fleet drains the queue
without further interruptions.

What the work plane claims is not trusted. At the end every job's products are downloaded
and compared by sha256 with an uninterrupted reference computed outside the work plane:
selftest products by running the job's own chunks and combine in this process; image
products (``--image-jobs`` over ``--image-inputs`` observations and three parameter sets) by
``python -m payload image`` on the same file, compared by their arrays (HDF5 datasets, FITS
data). ``DONE`` markers are read when they first appear and again at the end: one that changed
was written twice; a ``DONE`` whose listing disagrees with the stored bytes is corrupt.

The last line printed is one JSON object: ``interruptions``, ``jobs``, ``done``, ``lost``
(jobs without DONE at the end), ``corrupt`` (a product that differs from its reference, or a
DONE whose listing disagrees with the stored bytes), ``duplicate_done``, ``identical`` (jobs
whose every product equals the reference), and the details (kills by work point, proxy
holds, late workers, faults, wall time). Exit status 0 when the target was reached and
nothing was lost, corrupt or done twice and every job is identical.

    python bench/soak.py                       # 1,000 interruptions
    python bench/soak.py --interruptions 30    # the short version tests/work/test_soak.py runs
    python bench/soak.py --interruptions 30 --negative-control   # must report 1, 1, 1
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.killproxy import HOLDS, KillingProxy, pid_of_client  # noqa: E402
from contract.layout import ObsLayout  # noqa: E402
from payload.jobs.base import JobContext  # noqa: E402
from payload.jobs.selftest import SelfTestJob  # noqa: E402
from payload.records import JobMessage  # noqa: E402
from spotcube.compare import product_digest  # noqa: E402
from spotcube.local.cloud import local_cloud  # noqa: E402
from spotcube.local.fleet import Fleet, InterruptionModel, WorkerSpec, WorkSchedule  # noqa: E402
from spotcube.local.imds import ImdsEmulator  # noqa: E402
from spotcube.stack import StackOutputs  # noqa: E402

RUN = "soak"
REFERENCE_RUN = "soak-reference"
MIB = 1024 * 1024
# Two parts at the workers' 5 MiB part size: these chunks and their products go multipart.
BIG_CHUNK_BYTES = 5 * MIB + 1024
# Kill points, repeated to weight the draw: chunk and manifest points come up in every job,
# multipart ones only in the few big jobs (the backstop below covers an instance that
# drew a multipart point and then got only small jobs).
POINTS = (
    ("chunk-computed",) * 3
    + ("manifest-write",) * 3
    + ("multipart-part",) * 2
    + ("multipart-complete",) * 2
)
# Image jobs cycle through the inputs, then through these parameter sets (on the tiny preset's).
IMAGE_PARAM_SETS: tuple[dict[str, Any], ...] = (
    {},
    {"weighting": "uniform", "chunk_channels": 8},
    {"polarizations": ["XX", "I"], "chunk_channels": 2},
)
# Worker options on a fast clock (as tests/work/conftest.py gives its workers).
# The IMDS is polled every 0.5 s, not 0.1 s: that spares the two cores 4 workers x 3 paths x
# 10 polls a second, and 0.5 s is still well inside a notice's 3 s.
WORKER_ARGS = [
    "--poll-wait", "1",
    "--visibility-timeout", "2",
    "--idle-exit", "900",
    "--checkpoint-interval", "0.3",
    "--safety-margin", "0.3",
    "--spot-poll-interval", "0.5",
    "--retry-base", "0.2",
    "--part-size-mib", "5",
    "--preload", "",
]  # fmt: skip


@dataclasses.dataclass
class Job:
    message: JobMessage
    data: bytes
    expected: dict[str, str] | None = None  # product name -> sha256 (selftest: known at once)


class FaultyImds:
    """IMDS faults of one instance: 500s for a while, or tokens forgotten now and then."""

    def __init__(self, emulator: ImdsEmulator, mode: str) -> None:
        self.emulator = emulator
        self.mode = mode
        self.started = time.monotonic()

    def tick(self, rng: random.Random) -> None:
        if self.mode == "errors" and time.monotonic() - self.started > 2.0:
            self.emulator.fail_with(None)  # recovered: later notices get through
            self.mode = "recovered"
        elif self.mode == "expiry" and rng.random() < 0.05:
            self.emulator.expire_tokens()


def imds_factory(
    rng: random.Random, faulty: dict[str, FaultyImds], fraction: float, modes: Counter[str]
) -> Any:
    def make(instance_id: str, instance_type: str, zone: str) -> ImdsEmulator:
        emulator = ImdsEmulator(
            instance_id=instance_id, instance_type=instance_type, availability_zone=zone
        )
        if rng.random() < fraction:
            mode = rng.choice(("errors", "expiry"))
            if mode == "errors":
                emulator.fail_with(rng.choice((500, 503)))
            faulty[instance_id] = FaultyImds(emulator, mode)
            modes[mode] += 1
        return emulator

    return make


def selftest_reference(message: JobMessage, data: bytes, tmp: Path) -> dict[str, str]:
    """sha256 of each selftest product computed here, uninterrupted, outside the work plane."""
    folder = Path(tempfile.mkdtemp(dir=tmp))
    source = folder / "input"
    source.write_bytes(data)
    job = SelfTestJob(JobContext(message=message, workdir=folder, fetch=lambda _uri: source))
    job.chunk_seconds = 0.0  # only the bytes matter
    paths = {}
    for cid in job.chunk_ids():
        paths[cid] = folder / f"{cid}.bin"
        job.run_chunk(cid, paths[cid])
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in job.combine(paths, folder / "products")
    }


class Feeder:
    """Makes and submits jobs: small and big selftests, a few tiny image jobs, duplicates."""

    def __init__(self, outputs: StackOutputs, args: argparse.Namespace, tmp: Path) -> None:
        self.outputs = outputs
        self.args = args
        self.tmp = tmp
        self.rng = random.Random(args.seed)
        self.s3 = outputs.client("s3")
        self.sqs = outputs.client("sqs")
        self.jobs: dict[str, Job] = {}
        self.duplicates = 0
        self.big = 0
        self.images = 0
        self._image_inputs: dict[int, Path] = {}

    def _send(self, message: JobMessage) -> None:
        self.sqs.send_message(QueueUrl=self.outputs.job_queue_url, MessageBody=message.to_json())

    def _image_file(self, which: int) -> Path:
        """One of ``--image-inputs`` different tiny observations (seeded skies and noise)."""
        if which not in self._image_inputs:
            from payload import synth

            path = self.tmp / f"tiny-{which}.uvh5"
            synth.write_preset(path, "tiny", noise_jy=0.05, seed=self.args.seed * 100 + which)
            self._image_inputs[which] = path
        return self._image_inputs[which]

    def image_job(self) -> tuple[bytes, dict[str, Any], str]:
        """The next image job's input bytes, params and input name: inputs x parameter sets."""
        from payload import synth

        n = self.images
        which = n % self.args.image_inputs
        params = (
            dict(synth.preset_params("tiny"))
            | IMAGE_PARAM_SETS[(n // self.args.image_inputs) % len(IMAGE_PARAM_SETS)]
        )
        return self._image_file(which).read_bytes(), params, f"tiny-{which}"

    def submit(self, count: int) -> None:
        for _ in range(count):
            index = len(self.jobs)
            obs_id = f"obs-{index:05d}"
            # Image and big jobs at fixed places in the stream, so a short soak has them too.
            if self.images < self.args.image_jobs and index % 12 == 5:
                data, params, name = self.image_job()
                self.images += 1
                kind, key = "image", f"soak/{name}.uvh5"
            else:
                kind, data, key = "selftest", self.rng.randbytes(256), f"soak/{obs_id}.dat"
                if self.big < self.args.big_jobs and index % 8 == 3:
                    self.big += 1
                    params = {"chunks": 2, "chunk_seconds": 0.0, "chunk_bytes": BIG_CHUNK_BYTES}
                else:
                    params = {
                        "chunks": self.rng.randint(3, 6),
                        "chunk_seconds": 0.02,
                        "chunk_bytes": self.rng.choice((1024, 4096, 16384, 65536)),
                    }
            self.s3.put_object(Bucket=self.outputs.raw_bucket, Key=key, Body=data)
            message = JobMessage.create(
                run_id=RUN,
                obs_id=obs_id,
                input=f"s3://{self.outputs.raw_bucket}/{key}",
                kind=kind,
                params=params,
            )
            expected = selftest_reference(message, data, self.tmp) if kind == "selftest" else None
            self.jobs[obs_id] = Job(message, data, expected)
            self._send(message)
            if self.rng.random() < self.args.duplicate_fraction:
                self._send(message)  # SQS delivers at least once
                self.duplicates += 1

    def redeliver_done(self, obs_ids: list[str]) -> None:
        """A late duplicate of a job already done: it must be dropped, not redone."""
        for obs_id in obs_ids:
            if self.rng.random() < self.args.duplicate_fraction:
                self._send(self.jobs[obs_id].message)
                self.duplicates += 1


def queue_backlog(outputs: StackOutputs) -> int:
    attrs = outputs.client("sqs").get_queue_attributes(
        QueueUrl=outputs.job_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def done_markers(s3: Any, bucket: str, run_id: str, obs_ids: Any) -> dict[str, str]:
    """obs_id -> ETag of its DONE marker, for those of ``obs_ids`` that have one."""
    found = {}
    for obs_id in obs_ids:
        try:
            head = s3.head_object(Bucket=bucket, Key=ObsLayout(run_id, obs_id).done)
        except s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                continue
            raise
        found[obs_id] = head["ETag"]
    return found


def run_fleet_until(fleet: Fleet, stop: Any, timeout: float, between: Any = None) -> bool:
    """Tick ``fleet`` until ``stop()`` is true or ``timeout`` s pass; True if it stopped."""
    deadline = time.monotonic() + timeout
    next_check = 0.0
    while time.monotonic() < deadline:  # bounded by the timeout
        fleet.tick()
        if between is not None:
            between()
        if time.monotonic() >= next_check:
            if stop():
                return True
            next_check = time.monotonic() + 0.5
        time.sleep(min(0.02, fleet.seconds_to_next_event()))
    return False


def get_bytes(s3: Any, bucket: str, key: str) -> bytes | None:
    try:
        data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return data


def product_key(s3: Any, bucket: str, layout: ObsLayout, name: str) -> str:
    """The key DONE lists for product ``name`` (products live under attempts/; issue 18)."""
    listing = json.loads(get_bytes(s3, bucket, layout.done) or b"{}").get("products", {})
    return str(listing.get(name, {}).get("key") or layout.product(name))


def verify(
    outputs: StackOutputs,
    jobs: dict[str, Job],
    first_seen: dict[str, str],
    out: Path | None = None,
) -> dict[str, Any]:
    """Download every product and compare it with the reference; count DONE rewrites."""
    s3 = outputs.client("s3")
    bucket = outputs.products_bucket
    final = done_markers(s3, bucket, RUN, jobs)
    done = lost = corrupt = identical = duplicate_done = 0
    problems: list[str] = []
    for obs_id, job in jobs.items():
        layout = ObsLayout(RUN, obs_id)
        if obs_id not in final:
            lost += 1
            problems.append(f"{obs_id}: no DONE")
            continue
        done += 1
        if first_seen.get(obs_id, final[obs_id]) != final[obs_id]:
            duplicate_done += 1
            problems.append(f"{obs_id}: DONE rewritten")
        listing = json.loads(get_bytes(s3, bucket, layout.done) or b"{}").get("products", {})
        expected = job.expected or {}
        ours = {}
        for name in sorted(set(expected) | set(listing)):
            data = get_bytes(s3, bucket, product_key(s3, bucket, layout, name))
            if data is not None:
                ours[name] = data
        if job.message.kind == "image":
            digests = {
                name: d
                for name, data in ours.items()
                if (d := science_digest(name, data)) is not None
            }
        else:
            digests = {name: product_digest(name, data) for name, data in ours.items()}
        # The work plane's own claim (DONE's listing) must agree with the stored bytes...
        claims_ok = all(
            name in ours and hashlib.sha256(ours[name]).hexdigest() == entry.get("sha256")
            for name, entry in listing.items()
        )
        # ...and the stored bytes with the reference, which the work plane never saw.
        same = (
            bool(expected)
            and set(digests) == set(expected)
            and all(digests[name] == expected[name] for name in expected)
        )
        if same and claims_ok:
            identical += 1
        else:
            corrupt += 1
            detail = []
            for name in sorted(set(expected) | set(ours) | set(listing)):
                data = ours.get(name)
                if data is not None and out is not None:
                    kept = out / "mismatch" / obs_id / name
                    kept.parent.mkdir(parents=True, exist_ok=True)
                    kept.write_bytes(data)
                raw = hashlib.sha256(data).hexdigest()[:10] if data is not None else "missing"
                compared = digests[name][:10] if name in digests else "missing"
                detail.append(
                    f"{name} stored {raw} compared {compared} "
                    f"reference {expected.get(name, 'none')[:10]} "
                    f"DONE {listing.get(name, {}).get('sha256', 'none')[:10]}"
                )
            problems.append(f"{obs_id}: " + "; ".join(detail))
    return {
        "done": done,
        "lost": lost,
        "corrupt": corrupt,
        "duplicate_done": duplicate_done,
        "identical": identical,
        "problems": problems[:20],
    }


def damage(s3: Any, bucket: str, jobs: dict[str, Job]) -> None:
    """The negative control: break three done jobs the way a faulty work plane would.

    One product gets a flipped byte (its DONE listing left alone), one DONE is written a
    second time, one DONE is deleted. The verification must count exactly one corrupt,
    one duplicate_done and one lost job, or it could not have seen the real thing either.
    """
    first, second, third = sorted(jobs)[:3]
    layout = ObsLayout(RUN, first)
    name = sorted(jobs[first].expected or {"selftest.bin": ""})[0]
    key = product_key(s3, bucket, layout, name)
    data = bytearray(get_bytes(s3, bucket, key) or b"\0")
    data[len(data) // 2] ^= 0x01
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    done = ObsLayout(RUN, second).done
    s3.put_object(Bucket=bucket, Key=done, Body=(get_bytes(s3, bucket, done) or b"") + b" ")
    s3.delete_object(Bucket=bucket, Key=ObsLayout(RUN, third).done)


# Image params as ``python -m payload image`` options (the params the soak uses).
_CLI_OPTIONS = {
    "chunk_channels": "--chunk-channels",
    "image_size": "--image-size",
    "weighting": "--weighting",
    "polarizations": "--polarizations",
    "nthreads": "--threads",
}


def science_digest(name: str, data: bytes) -> str | None:
    """sha256 of a product's numbers: HDF5 datasets, FITS data; None for what is not compared.

    The reference is made by ``python -m payload image`` on a local file, so its headers and
    provenance name another input path and identity than the worker's; the arrays must be
    the same bits. ``image.png`` draws those arrays; provenance is checked by DONE's listing.
    """
    import io

    if name.endswith(".h5"):
        import h5py

        parts: list[bytes] = []
        with h5py.File(io.BytesIO(data), "r") as handle:
            handle.visititems(
                lambda key, obj: (
                    parts.append(key.encode() + obj[()].tobytes())
                    if isinstance(obj, h5py.Dataset)
                    else None
                )
            )
        return hashlib.sha256(b"".join(parts)).hexdigest()
    if name.endswith(".fits"):
        from astropy.io import fits

        with fits.open(io.BytesIO(data)) as hdul:
            arrays = b"".join(h.data.tobytes() for h in hdul if h.data is not None)
        return hashlib.sha256(arrays).hexdigest()
    return None


def image_references(feeder: Feeder, root: Path) -> dict[str, float]:
    """Image each (input, params) of the soak with ``python -m payload image``, uninterrupted.

    Outside the work plane: no queue, no S3, no worker; the CLI's own chunk loop on the very
    file the soak uploaded. Fills in every image job's expected science digests.
    """
    images = {o: j for o, j in feeder.jobs.items() if j.message.kind == "image"}
    started = time.monotonic()
    made: dict[tuple[str, str], dict[str, str]] = {}
    for job in images.values():
        identity = (
            hashlib.sha256(job.data).hexdigest(),
            json.dumps(job.message.params, sort_keys=True),
        )
        if identity not in made:
            folder = root / f"ref-{len(made)}"
            folder.mkdir(parents=True, exist_ok=True)
            source = folder / "input.uvh5"
            source.write_bytes(job.data)
            command = [
                sys.executable,
                "-m",
                "payload",
                "image",
                str(source),
                "--out",
                str(folder / "products"),
                "--quiet",
            ]
            for key, value in job.message.params.items():
                if key not in _CLI_OPTIONS:
                    raise SystemExit(f"soak: image param {key!r} has no CLI option in _CLI_OPTIONS")
                shown = ",".join(value) if isinstance(value, list) else str(value)
                command += [_CLI_OPTIONS[key], shown]
            env = dict(os.environ, PYTHONPATH=str(REPO))
            run = subprocess.run(
                command, cwd=REPO, env=env, capture_output=True, text=True, check=False
            )
            if run.returncode != 0:
                raise SystemExit(f"soak: the image reference failed: {run.stderr.strip()[-300:]}")
            made[identity] = {
                p.name: digest
                for p in sorted((folder / "products").iterdir())
                if p.is_file() and (digest := science_digest(p.name, p.read_bytes())) is not None
            }
        job.expected = made[identity]
    return {"seconds": round(time.monotonic() - started, 1), "references": len(made)}


def soak(args: argparse.Namespace) -> dict[str, Any]:
    from payload.provenance import local_git_commit

    # Image products record the payload's git commit: a commit made while the soak runs
    # makes them differ from the reference run afterwards (seen in run A, docs/benchmarks.md).
    commit_at_start = local_git_commit()
    started = time.monotonic()
    out = Path(args.out or tempfile.mkdtemp(prefix="spotcube-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    with local_cloud(
        max_receive_count=1000, visibility_timeout=2, log_path=out / "moto.log"
    ) as outputs:
        feeder = Feeder(outputs, args, out)
        s3 = outputs.client("s3")
        faulty: dict[str, FaultyImds] = {}
        imds_modes: Counter[str] = Counter()
        with KillingProxy(
            outputs.endpoint_url or "",
            rate=args.s3_fault_rate,
            seed=args.seed,
            every=args.proxy_hold_every,
            holds=HOLDS,
        ) as proxy:
            proxy_port = int(proxy.endpoint.rsplit(":", 1)[-1])
            through_proxy = dataclasses.replace(outputs, endpoint_url=proxy.endpoint)
            fleet = Fleet(
                spec=WorkerSpec(
                    outputs=through_proxy, root=out / "instances", extra_args=WORKER_ARGS
                ),
                size=args.workers,
                # Notices give the worker 3 s; a replacement launches 0.2 s after a kill.
                model=InterruptionModel(
                    rate_per_hour=0.0,
                    seed=args.seed,
                    notice_seconds=3.0,
                    min_notice_real=3.0,
                    replacement_delay=0.2,
                    min_replacement_real=0.2,
                ),
                schedule=WorkSchedule(
                    points=POINTS,
                    arrivals=(1, 3),
                    notice_fraction=args.notice_fraction,
                    backstop_chunks=6,
                ),
                imds_factory=imds_factory(rng, faulty, args.imds_fault_fraction, imds_modes),
            )
            next_list = [0.0]  # when to list the DONE markers next
            first_seen: dict[str, str] = {}

            stopped: list[tuple[Any, float]] = []  # (instance, when to SIGCONT it)
            late = Counter[str]()

            def handle_holds() -> None:
                """Kill the sender of each held request, or stop it for a late wake-up."""
                now = time.monotonic()
                for inst, wake in list(stopped):
                    if now >= wake:
                        stopped.remove((inst, wake))
                        if inst.process.poll() is None:
                            os.kill(inst.process.pid, signal.SIGCONT)
                            late["woken"] += 1
                while True:
                    try:
                        held = proxy.held.get_nowait()
                    except queue.Empty:
                        return
                    workers = {i.process.pid: i for i in fleet.running}
                    pid = pid_of_client(held.client_port, proxy_port, workers)
                    inst = workers.get(pid) if pid is not None else None
                    if inst is None:  # the sender is gone already (killed, exited)
                        held.released.set()
                        continue
                    if held.kind == "late":
                        os.kill(inst.process.pid, signal.SIGSTOP)
                        # Longer than the visibility timeout: another worker takes the job.
                        stopped.append((inst, time.monotonic() + args.late_seconds))
                        late["stopped"] += 1
                    else:
                        fleet.timeline.add(
                            fleet.now(), "kill", inst.instance_id, f"at proxy-{held.kind}:1"
                        )
                        fleet._end(inst, "reclaimed", fleet.now(), record=False)
                    held.released.set()

            def between() -> None:
                handle_holds()
                for instance_id, imds in list(faulty.items()):
                    imds.tick(rng)
                    if imds.mode == "recovered":
                        del faulty[instance_id]

            def feed_or_stop() -> bool:
                if fleet.interruptions() >= args.interruptions:
                    return True
                if time.monotonic() >= next_list[0]:
                    # Only jobs not seen done yet: a rewrite shows in the final comparison.
                    pending = [o for o in feeder.jobs if o not in first_seen]
                    new = done_markers(s3, outputs.products_bucket, RUN, pending)
                    first_seen.update(new)
                    feeder.redeliver_done(list(new))
                    next_list[0] = time.monotonic() + 2.0
                if queue_backlog(outputs) < 2 * args.workers:
                    feeder.submit(2 * args.workers)
                return False

            feeder.submit(2 * args.workers)
            with fleet:
                # Interruptions are counted in work: the soak ends at the target however long
                # that takes. A --max-seconds cap, if given and hit, fails the soak.
                cap = args.max_seconds if args.max_seconds > 0 else math.inf
                reached = run_fleet_until(fleet, feed_or_stop, cap, between)
                soak_seconds = time.monotonic() - started
                # Drain: replacements run without a schedule or held requests; S3 faults stay on,
                # stopped workers are woken on time.
                fleet.schedule = None
                proxy.enabled = False

                def all_done() -> bool:
                    pending = [o for o in feeder.jobs if o not in first_seen]
                    first_seen.update(done_markers(s3, outputs.products_bucket, RUN, pending))
                    return len(first_seen) == len(feeder.jobs) and queue_backlog(outputs) == 0

                drained = run_fleet_until(fleet, all_done, args.drain_seconds, between)
            injected = dict(proxy.injected)
            holds = dict(proxy.counts)
        reference = image_references(feeder, out / "reference")
        if args.negative_control:
            damage(s3, outputs.products_bucket, feeder.jobs)
        result = verify(outputs, feeder.jobs, first_seen, out)
    kills = Counter(
        e.detail.split()[-1].split(":")[0]
        for e in fleet.timeline.of_kind("kill")
        if e.detail.startswith("at ")
    )
    return {
        "interruptions": fleet.interruptions(),
        "jobs": len(feeder.jobs),
        "done": result["done"],
        "lost": result["lost"],
        "corrupt": result["corrupt"],
        "duplicate_done": result["duplicate_done"],
        "identical": result["identical"],
        "target_reached": reached,
        "wall_clock_cap_hit": not reached and args.max_seconds > 0,
        "drained": drained,
        "sigkilled_in_work_point": dict(sorted(kills.items())),
        "proxy_holds": holds,
        "late_workers": dict(late),
        "noticed": len(fleet.timeline.of_kind("notice")),
        "sigkilled_at_notice_deadline": fleet.sigkilled() - sum(kills.values()),
        "instances": len(fleet.instances),
        "jobs_by_kind": dict(Counter(j.message.kind for j in feeder.jobs.values())),
        "big_jobs": feeder.big,
        "duplicate_deliveries": feeder.duplicates,
        "s3_faults": injected,
        "imds_faulty_instances": dict(imds_modes),
        "image_reference_seconds": reference["seconds"],
        "image_references": reference.get("references", 0),
        "image_inputs": len(feeder._image_inputs),
        "soak_seconds": round(soak_seconds, 1),
        "wall_seconds": round(time.monotonic() - started, 1),
        "seed": args.seed,
        "workers": args.workers,
        "problems": result["problems"]
        + (
            ["the git commit of the payload changed during the soak: image products differ"]
            if local_git_commit() != commit_at_start
            else []
        ),
        "out": str(out),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interruptions", type=int, default=1000, help="target (default 1000)")
    parser.add_argument("--workers", type=int, default=4, help="fleet size (default 4)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--s3-fault-rate", type=float, default=0.03)
    parser.add_argument("--imds-fault-fraction", type=float, default=0.2)
    parser.add_argument("--notice-fraction", type=float, default=0.15)
    parser.add_argument("--duplicate-fraction", type=float, default=0.1)
    parser.add_argument("--big-jobs", type=int, default=24, help="multipart-sized jobs")
    parser.add_argument("--image-jobs", type=int, default=9, help="tiny image jobs")
    parser.add_argument(
        "--image-inputs", type=int, default=3, help="different observations the image jobs use"
    )
    parser.add_argument(
        "--proxy-hold-every",
        type=int,
        default=4,
        help="hold one in N product PUTs, DONE PUTs and message deletes at the proxy and kill "
        "(or stop, for a late wake-up) the worker that sent it (default 4)",
    )
    parser.add_argument(
        "--late-seconds", type=float, default=6.0, help="how long a late worker stays stopped"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=0.0,
        help="wall-clock cap of the soak phase (default none); hitting it fails the soak",
    )
    parser.add_argument("--drain-seconds", type=float, default=240.0)
    parser.add_argument("--out", type=Path, help="work folder (default: a new temp folder)")
    parser.add_argument(
        "--negative-control",
        action="store_true",
        help="damage three done jobs before verifying: expect corrupt, duplicate_done and "
        "lost of exactly 1 (proves the check can fail)",
    )
    args = parser.parse_args(argv)
    if args.interruptions < 1 or args.workers < 1:
        parser.error("--interruptions and --workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = soak(args)
    print(json.dumps(summary, sort_keys=False))
    ok = (
        summary["target_reached"]
        and summary["lost"] == summary["corrupt"] == summary["duplicate_done"] == 0
        and summary["identical"] == summary["jobs"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
