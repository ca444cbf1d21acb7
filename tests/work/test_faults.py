"""Worker processes against poison input, duplicate delivery, faulty S3 and faulty IMDS."""

from __future__ import annotations

import json
import signal
import socket
import urllib.parse

from contract.layout import ObsLayout
from payload.records import InputIdentity, JobMessage, Manifest
from spotcube.local.faultproxy import FaultProxy
from spotcube.local.imds import ImdsEmulator
from spotcube.local.motoserver import local_client
from tests.work.conftest import PRODUCTS, RUN, Plane, reference_products, wait_for

PARAMS = {"chunks": 4, "chunk_seconds": 0.1, "chunk_bytes": 4096}


def assert_done_like_reference(plane: Plane, message: JobMessage, data: bytes) -> None:
    layout = ObsLayout(RUN, message.obs_id)
    done = json.loads(plane.get(layout.done) or b"{}")
    for name, expected in reference_products(message, data, plane.tmp).items():
        assert plane.product(layout, name) == expected, name
        assert done["products"][name]["size"] == len(expected)


def test_poison_goes_to_dlq_once_with_failed_json(plane: Plane) -> None:
    plane.submit("bad-params", {"chunks": 0})
    empty_input = JobMessage.create(
        run_id=RUN,
        obs_id="empty-input",
        input=plane.put_input("empty.dat", b""),
        kind="selftest",
        params=PARAMS,
    )
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=empty_input.to_json())
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody="{not json")
    # A checkpoint made with other parameters must be refused, not resumed.
    other = JobMessage.create(
        run_id=RUN,
        obs_id="other-params",
        input="s3://work-raw/x",
        kind="selftest",
        params={"chunks": 9},
    )
    plane.s3.put_object(
        Bucket=PRODUCTS,
        Key=ObsLayout(RUN, "other-params").manifest,
        Body=Manifest.new(other, InputIdentity(uri=other.input)).to_json(),
    )
    plane.submit("other-params", PARAMS)
    worker = plane.start_worker("--idle-exit", "2")
    assert worker.wait(timeout=60) == 0, plane.log_of()
    assert plane.queue_depth() == 0
    assert plane.queue_depth(plane.dlq_url) == 4
    for obs_id, match in [
        ("bad-params", "chunks=0"),
        ("empty-input", "empty"),
        ("other-params", "params_hash"),
    ]:
        failed = json.loads(plane.get(ObsLayout(RUN, obs_id).failed) or b"{}")
        assert failed["error_class"] == "InvalidInputError", obs_id
        assert failed["outcome"] == "invalid"
        assert match in failed["message"]
        assert plane.get(ObsLayout(RUN, obs_id).done) is None
    # Each poison message was attempted exactly once: no retry loop.
    invalid = sorted(e["obs"] for e in plane.events(event="job.invalid"))
    assert invalid == ["bad-params", "empty-input", "other-params"]
    assert len(plane.events(event="message.poison")) == 1
    # The refused checkpoint was left as it was.
    kept = json.loads(plane.get(ObsLayout(RUN, "other-params").manifest) or b"{}")
    assert kept["params_hash"] == other.params_hash


def test_duplicate_delivery_gives_one_done_and_identical_products(plane: Plane) -> None:
    data = b"twice" * 99
    message = plane.submit(
        "dup", {"chunks": 6, "chunk_seconds": 0.3, "chunk_bytes": 8192}, data=data
    )
    # SQS delivers at least once: the same job twice, taken by two workers at once.
    plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())
    with ImdsEmulator(instance_id="i-0aaaa") as one, ImdsEmulator(instance_id="i-0bbbb") as two:
        first = plane.start_worker("--max-jobs", "1", imds=one, name="a")
        second = plane.start_worker("--max-jobs", "1", imds=two, name="b")
        # One ends done; the other drops the duplicate (0), or finished too and lost the
        # DONE race: superseded, which it says with its exit status (76), never 0.
        statuses = sorted([first.wait(timeout=60), second.wait(timeout=60)])
    logs = plane.log_of("a") + plane.log_of("b")
    assert statuses in ([0, 0], [0, 76]), logs
    assert plane.queue_depth() == 0
    assert_done_like_reference(plane, message, data)
    events = [e["event"] for e in plane.events("a") + plane.events("b")]
    if statuses == [0, 76]:
        assert events.count("attempt.superseded") == 1, logs
    else:
        assert events.count("job.duplicate") == 1, logs
    manifest = plane.manifest("dup")
    assert manifest is not None
    assert {a["instance_id"] for a in manifest["attempts"]} <= {"i-0aaaa", "i-0bbbb"}
    assert [k for k in plane.list_keys() if k.endswith("DONE")] == [ObsLayout(RUN, "dup").done]


def test_faulty_s3_under_the_worker(plane: Plane, imds: ImdsEmulator) -> None:
    jobs = []
    for index in range(2):
        data = f"faulty-{index}".encode() * 40
        jobs.append((plane.submit(f"f{index}", PARAMS, data=data), data))
    with FaultProxy(plane.endpoint, rate=0.2, seed=11) as proxy:
        worker = plane.start_worker("--max-jobs", "2", imds=imds, endpoint=proxy.endpoint)
        assert worker.wait(timeout=120) == 0, plane.log_of()
        assert sum(proxy.injected.values()) >= 3
    for message, data in jobs:
        assert_done_like_reference(plane, message, data)
    assert plane.queue_depth() == 0


def test_imds_answering_500_is_no_notice(plane: Plane, imds: ImdsEmulator) -> None:
    data = b"imds-500" * 10
    message = plane.submit("imds500", PARAMS, data=data)
    imds.fail_with(500)
    worker = plane.start_worker("--max-jobs", "1", imds=imds)
    assert worker.wait(timeout=60) == 0, plane.log_of()
    assert_done_like_reference(plane, message, data)
    # The 500s were seen (the fault was in play) and none was taken for a notice.
    assert plane.events(event="spot.poll_failed")
    assert plane.events(event="spot.notice") == []


def test_imds_slow_to_answer_at_start_still_watches(plane: Plane, imds: ImdsEmulator) -> None:
    """Issue 23: under load, workers judged IMDS absent on one failed token request and ran
    their whole life without spot notices. Refused for the first 2 s, it is still found: the
    worker watches for notices and records the instance IMDS names."""
    data = b"late-imds" * 10
    message = plane.submit("lateimds", PARAMS, data=data)
    imds.refuse_tokens_for(2.0)
    worker = plane.start_worker("--max-jobs", "1", imds=imds)
    assert worker.wait(timeout=60) == 0, plane.log_of()
    assert_done_like_reference(plane, message, data)
    assert plane.events(event="spot.unwatched") == []
    manifest = plane.manifest("lateimds")
    assert manifest is not None
    assert manifest["attempts"][0]["instance_id"] == imds.instance_id


def test_unreachable_imds_runs_without_notices(plane: Plane) -> None:
    data = b"laptop" * 10
    message = plane.submit("laptop", PARAMS, data=data)
    worker = plane.start_worker(
        "--max-jobs",
        "1",
        "--imds-probe-seconds",
        "1",
        env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert worker.wait(timeout=60) == 0, plane.log_of()
    assert_done_like_reference(plane, message, data)
    assert len(plane.events(event="spot.unwatched")) == 1
    manifest = plane.manifest("laptop")
    assert manifest is not None
    assert manifest["attempts"][0]["instance_id"].startswith("local-")


def test_visibility_expiry_two_workers_one_done(plane: Plane) -> None:
    data = b"expiry" * 50
    message = plane.submit(
        "expiry", {"chunks": 8, "chunk_seconds": 0.3, "chunk_bytes": 4096}, data=data
    )
    with ImdsEmulator(instance_id="i-0frozen") as one, ImdsEmulator(instance_id="i-0fresh") as two:
        first = plane.start_worker(
            "--max-jobs", "1", "--visibility-timeout", "1", imds=one, name="a"
        )
        wait_for(lambda: plane.has_event("a", "chunk.computed", chunk="1"), 30, "two chunks")
        # Frozen (a long pause, a partition): its heartbeats stop, the message reappears.
        first.send_signal(signal.SIGSTOP)
        second = plane.start_worker("--max-jobs", "1", imds=two, name="b")
        wait_for(lambda: plane.has_event("b", "attempt.started"), 30, "the second worker's attempt")
        first.send_signal(signal.SIGCONT)
        # Both may finish: the one that loses the DONE race ends superseded (exit 76).
        statuses = sorted([first.wait(timeout=60), second.wait(timeout=60)])
    logs = plane.log_of("a") + plane.log_of("b")
    assert statuses in ([0, 0], [0, 76]), logs
    assert_done_like_reference(plane, message, data)
    assert plane.queue_depth() == 0
    manifest = plane.manifest("expiry")
    assert manifest is not None
    # Both attempts survive the concurrent manifest writes (If-Match, merge, retry).
    assert {a["instance_id"] for a in manifest["attempts"]} == {"i-0frozen", "i-0fresh"}


def test_json_logs(plane: Plane, imds: ImdsEmulator) -> None:
    """Every line one JSON object; an event's name and fields are keys of their own."""
    worker = plane.start_worker("--idle-exit", "1", imds=imds)  # the plane adds --log-json
    assert worker.wait(timeout=30) == 0, plane.log_of()
    lines = plane.log_of().splitlines()
    assert lines
    for line in lines:
        doc = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(doc)
    [started] = plane.events(event="worker.started")
    assert started["instance_id"] == imds.instance_id
    assert [e["event"] for e in plane.events()][-1] == "worker.exit_idle"


def _raw_put(endpoint: str, key: str, declared: int, sent: bytes) -> None:
    """A PUT that declares ``declared`` body bytes, sends ``sent`` and hangs up."""
    url = urllib.parse.urlsplit(endpoint)
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80)) as sock:
        head = f"PUT /cut/{key} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {declared}\r\n"
        sock.sendall(head.encode() + b"Connection: close\r\n\r\n" + sent)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1 << 16)  # the answer, or nothing when the proxy cuts the connection


def test_proxy_never_forwards_a_body_cut_short(cloud: str) -> None:
    """A client killed mid-PUT must not become a stored, truncated object.

    S3 answers ``IncompleteBody`` ("You did not provide the number of bytes specified by the
    Content-Length HTTP header", S3 API Reference, "Error responses") and stores nothing, and
    RFC 9112 section 8 lets a server close on an incomplete request. The fault proxy once
    forwarded what had arrived, and moto stored an empty manifest (bench/soak.py found it:
    a job failed three times on a manifest of zero bytes).
    """
    s3 = local_client("s3", cloud)
    s3.create_bucket(Bucket="cut")
    with FaultProxy(cloud, rate=0.0) as proxy:
        _raw_put(proxy.endpoint, "whole", 5, b"hello")  # the positive control
        _raw_put(proxy.endpoint, "cut", 100, b"x" * 10)
        _raw_put(proxy.endpoint, "empty", 100, b"")
        wait_for(lambda: proxy.incomplete == 2, 10, "the proxy to drop both cut requests")
    assert s3.get_object(Bucket="cut", Key="whole")["Body"].read() == b"hello"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="cut").get("Contents", [])]
    assert keys == ["whole"]
