"""Fixtures of the work-plane tests: a products bucket, a job queue with a DLQ, and real
worker processes (``python -m payload worker``) each with its own IMDS emulator."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from contract.layout import ObsLayout
from payload.jobs.base import JobContext
from payload.jobs.selftest import SelfTestJob
from payload.records import DoneRecord, JobMessage
from spotcube.local.imds import ImdsEmulator
from spotcube.local.motoserver import local_client

REPO = Path(__file__).resolve().parents[2]
RAW = "work-raw"
PRODUCTS = "work-products"
RUN = "run1"


@pytest.fixture(autouse=True)
def _no_log_handler_outlives_its_test() -> Iterator[None]:
    """Every attempt log handler a test's workers add comes off the root logger by its end.

    A leaked one writes later jobs' lines into a finished attempt's file and, once that file's
    directory is gone, raises into the next test that logs: the failure then shows far from
    its cause (it did, in CI).
    """
    before = list(logging.getLogger().handlers)
    yield
    leaked = [h for h in logging.getLogger().handlers if h not in before]
    for handler in leaked:
        logging.getLogger().removeHandler(handler)
    assert not leaked, f"log handlers left on the root logger: {leaked}"


@dataclass
class Plane:
    """One test's slice of the local cloud plus helpers to drive workers against it."""

    endpoint: str
    tmp: Path
    s3: Any
    sqs: Any
    queue_url: str
    dlq_url: str
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def put_input(self, name: str, data: bytes) -> str:
        self.s3.put_object(Bucket=RAW, Key=name, Body=data)
        return f"s3://{RAW}/{name}"

    def submit(
        self, obs_id: str, params: Mapping[str, Any], *, data: bytes = b"", kind: str = "selftest"
    ) -> JobMessage:
        uri = self.put_input(f"{obs_id}.dat", data or obs_id.encode() * 100)
        message = JobMessage.create(run_id=RUN, obs_id=obs_id, input=uri, kind=kind, params=params)
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message.to_json())
        return message

    def start_worker(
        self,
        *args: str,
        imds: ImdsEmulator | None = None,
        endpoint: str | None = None,
        env: Mapping[str, str] | None = None,
        name: str = "w",
    ) -> subprocess.Popen[bytes]:
        environ = dict(os.environ)
        environ.pop("AWS_EC2_METADATA_SERVICE_ENDPOINT", None)
        if imds is not None:
            environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.endpoint
        environ.update(env or {})
        command = [
            sys.executable,
            "-m",
            "payload",
            "worker",
            "--queue-url",
            self.queue_url,
            "--products-bucket",
            PRODUCTS,
            "--dlq-url",
            self.dlq_url,
            "--endpoint-url",
            endpoint or self.endpoint,
            "--region",
            "us-east-1",
            "--workdir",
            str(self.tmp / f"work-{name}"),
            "--poll-wait",
            "1",
            "--visibility-timeout",
            "2",
            "--idle-exit",
            "3",
            "--checkpoint-interval",
            "0.3",
            "--safety-margin",
            "0.3",
            "--spot-poll-interval",
            "0.1",
            "--retry-base",
            "0.2",
            "--part-size-mib",
            "5",
            "--preload",  # selftest jobs only: skip importing the imaging stack in each worker
            "",
            # Tests read what a worker did from its log's event fields (Plane.events), never
            # from its prose, which is for people and may be reworded.
            "--log-json",
            *args,
        ]
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(command, cwd=REPO, env=environ, stdout=log, stderr=log)
        self.workers.append(proc)
        return proc

    def log_of(self, name: str = "w") -> str:
        return (self.tmp / f"{name}.log").read_text()

    def events(self, name: str = "w", event: str | None = None) -> list[dict[str, Any]]:
        """Worker ``name``'s structured log events so far, oldest first (all, or one kind).

        Lines that are not JSON (a crashing interpreter's traceback) are skipped; a log with
        no event at all fails, so a negative check cannot pass on a log it could not read.
        """
        path = self.tmp / f"{name}.log"
        docs = []
        for line in path.read_text().splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and "event" in doc:
                docs.append(doc)
        if not docs:
            raise AssertionError(f"no structured event in {path} yet (is it --log-json?)")
        return [d for d in docs if event is None or d["event"] == event]

    def has_event(self, name: str, event: str, **fields: Any) -> bool:
        """Whether worker ``name`` has logged ``event`` with these field values (for waits)."""
        try:
            found = self.events(name, event)
        except AssertionError:
            return False  # started, not yet at its first event
        return any(all(d.get(k) == v for k, v in fields.items()) for d in found)

    def get(self, key: str) -> bytes | None:
        try:
            body: bytes = self.s3.get_object(Bucket=PRODUCTS, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return body

    def product(self, layout: ObsLayout, name: str) -> bytes | None:
        """Product ``name`` of an observation, found the one way readers may: through DONE."""
        raw = self.get(layout.done)
        if raw is None:
            return None
        key = DoneRecord.from_json(raw).product_key(name)
        return None if key is None else self.get(key)

    def manifest(self, obs_id: str) -> dict[str, Any] | None:
        raw = self.get(ObsLayout(RUN, obs_id).manifest)
        return None if raw is None else json.loads(raw)

    def list_keys(self, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=PRODUCTS, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def queue_depth(self, url: str | None = None) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )


def wait_for(predicate: Any, timeout: float, what: str, step: float = 0.05) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def reference_products(message: JobMessage, data: bytes, tmp: Path) -> dict[str, bytes]:
    """The selftest products computed in-process, uninterrupted: the bit-exact reference."""
    source = tmp / "ref-input"
    source.write_bytes(data)
    job = SelfTestJob(JobContext(message=message, workdir=tmp, fetch=lambda _uri: source))
    chunk_paths = {}
    for cid in job.chunk_ids():
        path = tmp / f"ref-{cid}.bin"
        # Skip the per-chunk sleep: only the bytes matter for the reference.
        object.__setattr__(job, "chunk_seconds", 0.0)
        job.run_chunk(cid, path)
        chunk_paths[cid] = path
    return {p.name: p.read_bytes() for p in job.combine(chunk_paths, tmp / "ref-products")}


@pytest.fixture
def plane(cloud: str, tmp_path: Path) -> Iterator[Plane]:
    s3 = local_client("s3", cloud)
    sqs = local_client("sqs", cloud)
    s3.create_bucket(Bucket=RAW)
    s3.create_bucket(Bucket=PRODUCTS)
    dlq_url = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    queue_url = sqs.create_queue(QueueName="work-jobs", Attributes={"VisibilityTimeout": "2"})[
        "QueueUrl"
    ]
    state = Plane(cloud, tmp_path, s3, sqs, queue_url, dlq_url)
    yield state
    for proc in state.workers:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def imds() -> Iterator[ImdsEmulator]:
    with ImdsEmulator(instance_id="i-0test000000000001") as emulator:
        yield emulator
