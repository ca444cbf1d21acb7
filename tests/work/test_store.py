"""ObjectStore against moto over HTTP, directly and through the fault-injecting proxy."""

from __future__ import annotations

import base64
import hashlib
import random
import zlib
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from payload.errors import TransientError
from payload.store import (
    MIB,
    ObjectStore,
    RetryPolicy,
    UploadedPart,
    _check_echo,
    is_retryable,
    s3_client,
    with_retries,
)
from spotcube.local.faultproxy import FaultProxy
from spotcube.local.motoserver import local_client

BUCKET = "store-test"


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
    )


@pytest.fixture
def store(cloud: str) -> ObjectStore:
    local_client("s3", cloud).create_bucket(Bucket=BUCKET)
    # one PUT up to one part here, so that the 6 MiB files below go multipart
    return ObjectStore(
        s3_client(cloud, "us-east-1"), BUCKET, part_size=5 * MIB, single_put_max=5 * MIB
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_client_error("SlowDown", 503), True),
        (_client_error("InternalError", 500), True),
        (_client_error("Whatever", 502), True),
        (_client_error("NoSuchKey", 404), False),
        (_client_error("PreconditionFailed", 412), False),
        (_client_error("AccessDenied", 403), False),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (ConnectionClosedError(endpoint_url="http://x"), True),
        (ValueError("bug"), False),
    ],
    ids=["503", "500", "502", "404", "412", "403", "no-connect", "cut", "bug"],
)
def test_retry_classification(exc: Exception, expected: bool) -> None:
    assert is_retryable(exc) is expected


def test_retries_are_bounded_then_transient() -> None:
    calls: list[float] = []
    sleeps: list[float] = []

    def failing() -> None:
        calls.append(1)
        raise _client_error("SlowDown", 503)

    policy = RetryPolicy(attempts=4, base_seconds=0.5, cap_seconds=2.0)
    with pytest.raises(TransientError, match="after 4 tries"):
        with_retries(failing, "PUT k", policy=policy, rng=random.Random(1), sleep=sleeps.append)
    assert len(calls) == 4
    assert len(sleeps) == 3
    # Full jitter under an exponential cap: 1 s, 2 s, then the 2 s cap.
    assert all(0 <= s <= cap for s, cap in zip(sleeps, [1.0, 2.0, 2.0], strict=True))


def test_non_retryable_errors_pass_through_at_once() -> None:
    calls = []

    def missing() -> None:
        calls.append(1)
        raise _client_error("AccessDenied", 403)

    with pytest.raises(ClientError):
        with_retries(missing, "GET k", sleep=lambda _s: None)
    assert len(calls) == 1


def test_small_put_is_verified_and_conditional(store: ObjectStore) -> None:
    assert store.put_bytes("DONE", b"first", if_none_match=True)
    assert not store.put_bytes("DONE", b"second", if_none_match=True)
    assert store.get_bytes("DONE") == b"first"
    head = store.head("DONE")
    assert head is not None
    assert head["Metadata"]["sha256"] == hashlib.sha256(b"first").hexdigest()
    assert store.get_bytes("absent") is None
    assert store.head("absent") is None


def test_multipart_upload_round_trip(store: ObjectStore, tmp_path: Path) -> None:
    data = random.Random(7).randbytes(12 * MIB + 123)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    stored = store.put_file("big.bin", source)
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    head = store.head("big.bin")
    assert head is not None
    assert head["ETag"].endswith('-3"')  # three parts of 5 MiB, 5 MiB, 2 MiB
    back = store.download_file("big.bin", tmp_path / "back.bin", sha256=stored.sha256)
    assert back.read_bytes() == data


def test_multipart_if_none_match_refuses_overwrite(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * (6 * MIB))
    store.put_file("once", source, if_none_match=True)
    with pytest.raises(ClientError, match=r"Precondition"):
        store.put_file("once", source, if_none_match=True)


def test_download_rejects_wrong_digest(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("k", b"payload")
    fast = ObjectStore(store.client, BUCKET, policy=RetryPolicy(attempts=2, base_seconds=0.01))
    with pytest.raises(TransientError, match="sha256"):
        fast.download_file("k", tmp_path / "k", sha256="0" * 64)
    assert not (tmp_path / "k").exists()


@pytest.mark.parametrize(
    ("response", "ok"),
    [
        ({"ChecksumSHA256": "c2hh", "ETag": '"other"'}, True),  # checksum wins (SSE-KMS)
        ({"ChecksumSHA256": "b3RoZXI=", "ETag": '"md5"'}, False),
        ({"ETag": '"md5"'}, True),
        ({"ETag": '"damaged"'}, False),
        ({}, False),
    ],
    ids=["sha-ok", "sha-bad", "etag-ok", "etag-bad", "nothing"],
)
def test_write_verification_from_s3_answer(response: dict[str, str], ok: bool) -> None:
    if ok:
        _check_echo(response, "c2hh", '"md5"', "k")
    else:
        with pytest.raises(TransientError, match="k: S3"):
            _check_echo(response, "c2hh", '"md5"', "k")


def test_if_match_guards_concurrent_writers(store: ObjectStore) -> None:
    first = store.put_conditional("manifest", b"v1", if_none_match=True)
    assert first is not None
    second = store.put_conditional("manifest", b"v2", if_match=first)
    assert second is not None
    assert store.put_conditional("manifest", b"stale", if_match=first) is None
    assert store.get_versioned("manifest") == (b"v2", second)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_faulty_s3_is_retried_and_nothing_is_corrupt(cloud: str, tmp_path: Path, seed: int) -> None:
    local_client("s3", cloud).create_bucket(Bucket=BUCKET)
    rng = random.Random(seed)
    with FaultProxy(cloud, rate=0.3, seed=seed) as proxy:
        store = ObjectStore(
            s3_client(proxy.endpoint, "us-east-1"),
            BUCKET,
            part_size=5 * MIB,
            single_put_max=5 * MIB,
            policy=RetryPolicy(attempts=10, base_seconds=0.01, cap_seconds=0.1),
        )
        expected = {}
        for index in range(4):
            size = rng.choice([1000, 6 * MIB])
            data = rng.randbytes(size)
            path = tmp_path / f"f{index}"
            path.write_bytes(data)
            store.put_file(f"obj/{index}", path)
            expected[f"obj/{index}"] = data
        assert store.put_bytes("DONE", b"done", if_none_match=True) in {True, False}
        assert sum(proxy.injected.values()) > 0
    direct = local_client("s3", cloud)
    for key, data in expected.items():
        assert direct.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data, key
    assert direct.get_object(Bucket=BUCKET, Key="DONE")["Body"].read() == b"done"


def test_unreachable_s3_becomes_transient() -> None:
    store = ObjectStore(
        s3_client("http://127.0.0.1:9", "us-east-1"),
        BUCKET,
        policy=RetryPolicy(attempts=3, base_seconds=0.01, cap_seconds=0.02),
    )
    with pytest.raises(TransientError, match="after 3 tries"):
        store.put_bytes("k", b"x")


def test_completed_multipart_checksum_must_match(store: ObjectStore) -> None:
    """S3's composite CRC32 of a multipart upload: the CRC32 of the parts' big-endian CRC32s,
    base64, then "-N" (AWS S3 User Guide, "Checking object integrity", multipart uploads)."""
    part_crc = zlib.crc32(b"abc").to_bytes(4, "big")
    parts = [UploadedPart(1, '"e"', base64.b64encode(part_crc).decode(), 3)]
    with pytest.raises(TransientError, match="reports checksum"):
        store._check_completed("k", {"ChecksumCRC32": "bm9wZQ==-1"}, parts)
    composite = base64.b64encode(zlib.crc32(part_crc).to_bytes(4, "big")).decode()
    store._check_completed("k", {"ChecksumCRC32": f"{composite}-1"}, parts)


def test_multipart_parts_are_checked_on_arrival(store: ObjectStore, tmp_path: Path) -> None:
    """What S3 stored for each part is the CRC32 we sent: the server computed it over the
    bytes it received (moto answers ``ChecksumCRC32`` per part, as S3 does)."""
    data = random.Random(7).randbytes(2 * store.part_size + 123)
    source = tmp_path / "f"
    source.write_bytes(data)
    stored = store.put_file("multi", source)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    head = store.client.head_object(Bucket=BUCKET, Key="multi", ChecksumMode="ENABLED")
    crcs = b"".join(
        zlib.crc32(data[i : i + store.part_size]).to_bytes(4, "big")
        for i in range(0, len(data), store.part_size)
    )
    expected = base64.b64encode(zlib.crc32(crcs).to_bytes(4, "big")).decode()
    assert head["ChecksumCRC32"].split("-")[0] == expected


def _tags(store: ObjectStore, key: str) -> dict[str, str]:
    tags = store.client.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    return {t["Key"]: t["Value"] for t in tags}


@pytest.mark.parametrize("size", [100, 6 * MIB], ids=["single-put", "multipart"])
def test_checkpoint_objects_carry_the_lifecycle_tag(
    store: ObjectStore, tmp_path: Path, size: int
) -> None:
    # The stack's checkpoint-expiry rule selects this tag (contract/layout.py CHECKPOINT_TAG).
    path = tmp_path / "chunk.bin"
    path.write_bytes(random.Random(size).randbytes(size))
    chunk_key = "runs/r/obs/o/checkpoint/chunks/c000.bin"
    product_key = "runs/r/obs/o/products/image.bin"
    store.put_file(chunk_key, path)
    store.put_file(product_key, path)
    store.put_bytes("runs/r/obs/o/checkpoint/manifest.json", b"{}")
    assert _tags(store, chunk_key) == {"spotcube-data": "checkpoint"}
    assert _tags(store, "runs/r/obs/o/checkpoint/manifest.json") == {"spotcube-data": "checkpoint"}
    assert _tags(store, product_key) == {}


def test_up_to_two_parts_go_in_one_put(cloud: str, tmp_path: Path) -> None:
    """The rule, read from S3's own ETags (a multipart object's ends in -<parts>): one PUT up
    to two parts (four requests less than a two-part upload), multipart beyond."""
    local_client("s3", cloud).create_bucket(Bucket="single-put")
    store = ObjectStore(s3_client(cloud, "us-east-1"), "single-put", part_size=5 * MIB)
    for size, parts in ((5 * MIB + 1, None), (10 * MIB, None), (10 * MIB + 1, 3)):
        path = tmp_path / f"f{size}"
        path.write_bytes(random.Random(size).randbytes(size))
        stored = store.put_file(f"k{size}", path)
        etag = store.head(f"k{size}")["ETag"].strip('"')  # type: ignore[index]
        assert (etag.rsplit("-", 1)[1] if "-" in etag else None) == (
            None if parts is None else str(parts)
        ), size
        assert stored.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
