"""S3 access for the work plane: verified uploads, write-once markers, bounded retries.

Every write carries a checksum of its bytes that S3 checks on arrival and echoes, and that
we compare: a SHA-256 for a single PUT; a CRC32 per part for multipart uploads (S3 rejects a
part damaged in transit; the assembled object's composite CRC32 is compared too), whose
whole-file SHA-256 (computed in the same read) goes into the manifest that every download
verifies. Where a server echoes no checksum, the ETag (the MD5 of the body) is compared.
Markers that are written once (``DONE``) use ``If-None-Match: *``.

Throttling, 5xx answers and dropped connections are retried with jittered exponential
backoff a bounded number of times; after that the caller gets a :class:`TransientError`,
which the worker turns into a ``transient`` outcome.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import random
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from contract.layout import CHECKPOINT_TAG, is_checkpoint_key
from contract.settings import DEFAULT_PART_SIZE_MIB, FAULTPOINT_ENV
from payload.errors import InvalidInputError, TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")

MIB = 1024 * 1024
DEFAULT_PART_SIZE = DEFAULT_PART_SIZE_MIB * MIB  # the worker's setting (why 8: contract.settings)
DEFAULT_CONCURRENCY = 8
_READ_BLOCK = MIB
_MAX_PAGES = 10_000  # ten million keys: far beyond one observation's prefix

_RETRYABLE_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "BadDigest",  # a part damaged in transit: sending it again is the cure
        "XAmzContentSHA256Mismatch",
        "IncompleteBody",
    }
)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff ("full jitter"), bounded in attempts.

    Parameters
    ----------
    attempts : int
        Total tries of one request, the first included.
    base_seconds, cap_seconds : float
        Sleep before try ``n`` (n >= 1) is uniform in ``[0, min(cap, base * 2**n)]``.
    """

    attempts: int = 6
    base_seconds: float = 0.1
    cap_seconds: float = 5.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to sleep before retry number ``attempt`` (1-based)."""
        return rng.uniform(0.0, min(self.cap_seconds, self.base_seconds * 2**attempt))


def is_retryable(exc: BaseException) -> bool:
    """True for throttling, 5xx answers and connection failures; False for everything else."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return code in _RETRYABLE_CODES or status >= 500 or status == 429
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ReadTimeoutError):
        return True
    # Other botocore transport errors (a response cut mid-body, a proxy error) are
    # connection-level too; a ParamValidationError is not and carries no "connection" word.
    if isinstance(exc, BotoCoreError):
        name = type(exc).__name__
        return any(word in name for word in ("Connection", "Timeout", "Streaming", "Proxy"))
    return isinstance(exc, ConnectionError | TimeoutError)


def error_code(exc: BaseException) -> str:
    """The S3 error code of a ``ClientError`` (``""`` for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def with_retries(
    call: Callable[[], T],
    what: str,
    *,
    policy: RetryPolicy = RetryPolicy(),
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; retry retryable failures per ``policy``; then raise ``TransientError``.

    Non-retryable errors propagate unchanged so the caller can classify them (a 404, a 412).
    """
    rng = rng or random.Random()
    last: BaseException | None = None
    for attempt in range(policy.attempts):
        if attempt:
            pause = policy.delay(attempt, rng)
            log.warning("%s failed (%s); retry %d in %.2fs", what, last, attempt, pause)
            sleep(pause)
        try:
            return call()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            last = exc
    raise TransientError(f"{what} still failing after {policy.attempts} tries: {last}")


def s3_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 S3 client tuned for the work plane.

    botocore's own retries are off so that :func:`with_retries` is the one bounded policy;
    checksums are computed by us (SHA-256, sent explicitly) rather than botocore's default
    CRC32 trailers, so every request has a plain ``Content-Length`` body.
    """
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=DEFAULT_CONCURRENCY * 2,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # Integrity comes from the x-amz-checksum-sha256 header S3 verifies; signing the
        # body too would hash every byte once more (botocore does so over plain HTTP).
        s3={"addressing_style": "path", "payload_signing_enabled": False},
    )
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


@dataclass(frozen=True)
class StoredObject:
    """What was written: key, byte size, hex SHA-256 and the ETag S3 gave it.

    The ETag pins later ranged reads (``If-Match``): an object rewritten with other bytes
    has another ETag, so a reader that cannot hash the whole object still refuses it.
    """

    key: str
    size: int
    sha256: str
    etag: str = ""


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class UploadedPart:
    number: int
    etag: str
    crc32: str  # base64 of the big-endian CRC32, as S3 wants it
    size: int


def _crc32_b64(data: bytes) -> str:
    return _b64(zlib.crc32(data).to_bytes(4, "big"))


def _check_echo(
    response: Mapping[str, Any],
    checksum_b64: str,
    etag: str | Callable[[], str],
    what: str,
    *,
    algorithm: str = "SHA256",
) -> None:
    """Compare what S3 says it received with what we sent.

    S3 answers a write with the checksum (``algorithm``: SHA256, CRC32) it computed when
    we sent one (and rejects a mismatch itself); where a server does not echo checksums,
    the ETag is the MD5 of the body (true without SSE-KMS, which is why the checksum is
    preferred).
    """
    echoed = response.get(f"Checksum{algorithm}")
    if echoed:
        if echoed != checksum_b64:
            raise TransientError(
                f"{what}: S3 computed {algorithm} {echoed}, we sent {checksum_b64}"
            )
        return
    expected = etag() if callable(etag) else etag
    if response.get("ETag") != expected:
        raise TransientError(f"{what}: S3 reports ETag {response.get('ETag')}, expected {expected}")


def _iter_parts(path: Path, part_size: int) -> Iterator[tuple[int, int, int]]:
    """``(part_number, offset, length)`` of each part of ``path``."""
    size = path.stat().st_size
    count = max(1, -(-size // part_size))
    for index in range(count):
        offset = index * part_size
        yield index + 1, offset, min(part_size, size - offset)


def file_digests(path: Path) -> tuple[int, str, str]:
    """Size, hex SHA-256 and hex MD5 of a file, read once."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(_READ_BLOCK), b""):
            sha.update(block)
            md5.update(block)
            size += len(block)
    return size, sha.hexdigest(), md5.hexdigest()


def faultpoint(name: str) -> None:
    """Pause at a named point when ``SPOTCUBE_FAULTPOINT`` names it.

    The variable holds comma-separated ``name:seconds:markerfile[:nth]`` entries; the worker
    pauses at the ``nth`` time (default: every time) it reaches ``name``, after writing
    ``name:arrival`` to the marker file, for ``seconds`` or until the test deletes the marker,
    whichever comes first. Fault-injection tests and ``bench/soak.py``
    use it to SIGKILL a worker exactly inside a multipart upload, a manifest write or after
    a chunk: counting arrivals makes the kill land at the same work on a slow machine as on
    a fast one. Unset (always, in production) it costs one dictionary lookup.
    """
    spec = os.environ.get(FAULTPOINT_ENV)
    if not spec:
        return
    with _FAULTPOINT_LOCK:
        arrivals = _FAULTPOINT_ARRIVALS[name] = _FAULTPOINT_ARRIVALS.get(name, 0) + 1
    for entry in spec.split(","):
        wanted, _, rest = entry.partition(":")
        if wanted != name:
            continue
        seconds, _, rest = rest.partition(":")
        marker, _, nth = rest.partition(":")
        if nth and int(nth) != arrivals:
            continue
        until = time.monotonic() + float(seconds or 0)
        if marker:
            Path(marker).write_text(f"{name}:{arrivals}")
        while time.monotonic() < until and (not marker or Path(marker).exists()):
            time.sleep(0.01)


_FAULTPOINT_LOCK = threading.Lock()  # parts of one upload reach a point from several threads
_FAULTPOINT_ARRIVALS: dict[str, int] = {}


def _tagging(key: str) -> dict[str, str]:
    """Object tags for ``key``: checkpoints are tagged so the bucket's lifecycle expires them."""
    if is_checkpoint_key(key):
        name, value = CHECKPOINT_TAG
        return {"Tagging": f"{name}={value}"}
    return {}


class ObjectStore:
    """One bucket, reached through one boto3 S3 client, with verified writes.

    Parameters
    ----------
    client : botocore S3 client
        From :func:`s3_client` (or any boto3 S3 client).
    bucket : str
        Bucket name.
    policy : RetryPolicy, optional
        Retry bounds for every request.
    part_size, concurrency : int, optional
        Multipart part size and parallel parts.
    single_put_max : int, optional
        Files up to this size go up in one PUT (default two parts), larger ones multipart.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        policy: RetryPolicy = RetryPolicy(),
        part_size: int = DEFAULT_PART_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        single_put_max: int | None = None,
    ) -> None:
        if part_size < 5 * MIB:
            raise ValueError(f"part_size {part_size} is below S3's 5 MiB minimum")
        self.client = client
        self.bucket = bucket
        self.policy = policy
        self.part_size = part_size
        self.concurrency = concurrency
        # Two parts by default: a multipart upload of two parts takes four requests (create,
        # two parts, complete) where one PUT takes one, and their parallelism does not win
        # those round trips back (docs/benchmarks.md, checkpoint rows). S3 takes up to
        # 5 GiB in one PUT.
        self.single_put_max = 2 * part_size if single_put_max is None else single_put_max
        self._rng = random.Random()

    def _retry(self, call: Callable[[], T], what: str) -> T:
        return with_retries(call, what, policy=self.policy, rng=self._rng)

    # --- reads -------------------------------------------------------------------------

    def head(self, key: str) -> dict[str, Any] | None:
        """HEAD of ``key``, or ``None`` when it does not exist."""
        try:
            result: dict[str, Any] = self._retry(
                lambda: self.client.head_object(Bucket=self.bucket, Key=key), f"HEAD {key}"
            )
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise
        return result

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def get_bytes(self, key: str) -> bytes | None:
        """The whole object, or ``None`` when it does not exist."""
        found = self.get_versioned(key)
        return None if found is None else found[0]

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The whole object and its ETag, or ``None`` when it does not exist."""

        def call() -> tuple[bytes, str]:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read(), str(response["ETag"])

        try:
            return self._retry(call, f"GET {key}")
        except (ClientError, TransientError) as exc:
            if error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise

    def download_file(
        self,
        key: str,
        dest: Path,
        *,
        sha256: str | None = None,
        if_match: str | None = None,
        is_input: bool = False,
    ) -> Path:
        """Download ``key`` to ``dest`` through a temporary name; verify ``sha256`` if given.

        A digest mismatch is retried like a dropped connection (the bytes were damaged on
        the way). For a job's input (``is_input``), the same wrong digest twice is not damage
        on the way but what the store holds, an input overwritten after submit: that is
        :class:`InvalidInputError` at once. With ``if_match`` the object must still have that
        ETag (S3 answers 412 otherwise): it was replaced, also ``invalid``.
        """
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        wrong: set[str] = set()
        extra = {"IfMatch": if_match} if if_match else {}

        def call() -> Path:
            response = self.client.get_object(Bucket=self.bucket, Key=key, **extra)
            digest = hashlib.sha256()
            with tmp.open("wb") as out:
                for block in response["Body"].iter_chunks(_READ_BLOCK):
                    digest.update(block)
                    out.write(block)
            got = digest.hexdigest()
            if sha256 is not None and got != sha256:
                if is_input and got in wrong:
                    raise InvalidInputError(
                        f"s3://{self.bucket}/{key} holds bytes with sha256 {got[:12]}, not the "
                        f"{sha256[:12]} it should (read twice): it was overwritten"
                    )
                wrong.add(got)
                raise ConnectionError(
                    f"s3://{self.bucket}/{key} has sha256 {got}, expected {sha256}"
                )
            tmp.replace(dest)
            return dest

        try:
            return self._retry(call, f"GET {key}")
        except ClientError as exc:
            if if_match and error_code(exc) in {"PreconditionFailed", "412"}:
                raise InvalidInputError(
                    f"s3://{self.bucket}/{key} was replaced while this attempt read it (its ETag "
                    f"is no longer {if_match}); submit it again under a new run id"
                ) from None
            raise

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (paginated, bounded by the bucket's size)."""
        keys: list[str] = []
        token: str | None = None

        def page_after(token: str | None) -> dict[str, Any]:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            result: dict[str, Any] = self.client.list_objects_v2(**kwargs)
            return result

        for _ in range(_MAX_PAGES):
            page = self._retry(functools.partial(page_after, token), f"LIST {prefix}")
            keys.extend(item["Key"] for item in page.get("Contents", []))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return keys
        raise TransientError(f"more than {_MAX_PAGES} pages of keys under {prefix}")

    # --- writes ------------------------------------------------------------------------

    def put_bytes(
        self, key: str, data: bytes, *, if_none_match: bool = False, content_type: str = ""
    ) -> bool:
        """Write ``data`` to ``key`` and verify it; return False if ``if_none_match`` lost.

        With ``if_none_match`` the object is created only if no object has the key. A
        retry after a connection cut may find the object our first try created: the
        caller treats False as "someone (maybe us) wrote it first".
        """
        return (
            self.put_conditional(key, data, if_none_match=if_none_match, content_type=content_type)
            is not None
        )

    def put_conditional(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        content_type: str = "",
        sha: Any = None,
    ) -> str | None:
        """Write ``data`` if the precondition holds; return the new ETag, or None if not.
        ``sha``: ``hashlib.sha256(data)`` if the caller has it already.

        ``if_match`` is an ETag the current object must have (optimistic concurrency for
        the manifest); ``if_none_match`` requires that no object exists. The write is
        verified from S3's answer: the SHA-256 it computed over the bytes it received
        (or, where it does not echo checksums, the MD5 ETag).
        """
        sha = sha or hashlib.sha256(data)
        extra: dict[str, Any] = {}
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        if if_match:
            extra["IfMatch"] = if_match
        if content_type:
            extra["ContentType"] = content_type

        def call() -> dict[str, Any]:
            result: dict[str, Any] = self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ChecksumSHA256=_b64(sha.digest()),
                Metadata={"sha256": sha.hexdigest()},
                **_tagging(key),
                **extra,
            )
            return result

        try:
            response = self._retry(call, f"PUT {key}")
        except ClientError as exc:
            if error_code(exc) in {"PreconditionFailed", "412"}:
                return None
            raise
        # The MD5 is computed only for a server that does not echo the checksum.
        _check_echo(
            response,
            _b64(sha.digest()),
            lambda: f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"',
            f"s3://{self.bucket}/{key}",
        )
        return str(response["ETag"])

    def put_file(self, key: str, path: Path, *, if_none_match: bool = False) -> StoredObject:
        """Upload ``path`` to ``key`` (one PUT up to ``single_put_max``, else multipart) and
        verify it.

        Raises
        ------
        TransientError
            The upload or its verification kept failing within the retry bounds.
        """
        size = path.stat().st_size
        if size <= self.single_put_max:
            data = path.read_bytes()
            sha = hashlib.sha256(data)  # hashed once: the PUT's checksum and the record's
            etag = self.put_conditional(key, data, if_none_match=if_none_match, sha=sha)
            if etag is None:
                raise FileExistsError(f"s3://{self.bucket}/{key} exists (If-None-Match)")
            return StoredObject(key, size, sha.hexdigest(), etag)
        # Every part was checked against S3's answer and so was the completed object's
        # composite checksum (or ETag): no extra HEAD is needed to know what S3 holds.
        sha_hex, etag = self._multipart(key, path, if_none_match=if_none_match)
        return StoredObject(key, size, sha_hex, etag)

    def _multipart(self, key: str, path: Path, *, if_none_match: bool) -> tuple[str, str]:
        """Upload ``path`` in parts, verified; return its hex SHA-256 and ETag.

        The file is read once: each part is hashed into the whole-file SHA-256 while the
        parts before it are on the wire. S3 checks each part against its ``ChecksumCRC32``
        and answers with the checksum it computed, which we compare; the whole-file digest
        goes into the manifest (which every download verifies) rather than object
        metadata, which would have to be known before the first part leaves.

        Why CRC32 per part and not SHA-256: a notice leaves two minutes, and the bytes are
        hashed once for the manifest anyway. A second SHA-256 per part (and S3's own SHA-256
        of every part) cost 1.37x a plain ``upload_file`` at 100 MB on a busy 2-core
        machine (docs/benchmarks.md); CRC32 is what boto3's ``upload_file`` sends by
        default, detects damage in transit as well, and the end-to-end identity stays the
        whole file's SHA-256.
        """
        upload_id = self.create_multipart(key)
        whole = hashlib.sha256()
        # At most `concurrency` parts in memory: the reader waits for a free slot.
        slots = threading.BoundedSemaphore(self.concurrency)

        def send(number: int, data: bytes) -> UploadedPart:
            try:
                return self.upload_part(key, upload_id, number, data)
            finally:
                slots.release()

        try:
            with (
                ThreadPoolExecutor(max_workers=self.concurrency) as pool,
                path.open("rb") as stream,
            ):
                futures = []
                for number, _offset, length in _iter_parts(path, self.part_size):
                    slots.acquire()
                    data = stream.read(length)
                    futures.append(pool.submit(send, number, data))
                    whole.update(data)
                parts = [future.result() for future in futures]
            etag = self.complete_multipart(key, upload_id, parts, if_none_match=if_none_match)
        except BaseException:
            self.abort_multipart(key, upload_id)
            raise
        return whole.hexdigest(), etag

    def create_multipart(self, key: str) -> str:
        """Start a multipart upload of ``key`` (CRC32 per part); return its upload id."""
        created = self._retry(
            lambda: self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32", **_tagging(key)
            ),
            f"CREATE-MPU {key}",
        )
        return str(created["UploadId"])

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[UploadedPart], *, if_none_match: bool = False
    ) -> str:
        """Assemble ``parts`` and verify the object; return its ETag."""
        faultpoint("multipart-complete")
        response = self._complete(key, upload_id, parts, if_none_match=if_none_match)
        self._check_completed(key, response, parts)
        etag = response.get("ETag")
        if not etag:  # a retried complete found the upload gone: ask what was stored
            head = self.head(key)
            etag = None if head is None else head.get("ETag")
        if not etag:
            raise TransientError(f"s3://{self.bucket}/{key}: completed upload has no ETag")
        return str(etag)

    def _complete(
        self, key: str, upload_id: str, parts: list[UploadedPart], *, if_none_match: bool
    ) -> dict[str, Any]:
        extra = {"IfNoneMatch": "*"} if if_none_match else {}
        listing = [
            {"PartNumber": p.number, "ETag": p.etag, "ChecksumCRC32": p.crc32} for p in parts
        ]
        try:
            response: dict[str, Any] = self._retry(
                lambda: self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": listing},
                    **extra,
                ),
                f"COMPLETE-MPU {key}",
            )
        except ClientError as exc:
            # A retry after a cut answer: the first try may have completed the upload.
            if error_code(exc) != "NoSuchUpload":
                raise
            return {}
        return response

    def _check_completed(
        self, key: str, response: Mapping[str, Any], parts: list[UploadedPart]
    ) -> None:
        """Verify the assembled object from S3's answer, or a HEAD when it said nothing."""
        what = f"s3://{self.bucket}/{key}"
        # S3's composite checksum: CRC32 of the concatenated part CRC32s, then "-N".
        joined = b"".join(base64.b64decode(p.crc32) for p in parts)
        composite = f"{_crc32_b64(joined)}-{len(parts)}"
        accepted = {composite, composite.split("-")[0]}
        echoed = response.get("ChecksumCRC32")
        if not echoed:
            head = self._retry(
                lambda: self.client.head_object(
                    Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"
                ),
                f"HEAD {key}",
            )
            echoed = head.get("ChecksumCRC32")
            size = sum(p.size for p in parts)
            if head.get("ContentLength") != size:
                raise TransientError(f"{what} has {head.get('ContentLength')} bytes, sent {size}")
            if not echoed:
                return  # every part was verified on arrival and the size is right
        if echoed not in accepted:
            raise TransientError(f"{what}: S3 reports checksum {echoed}, expected {composite}")

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> UploadedPart:
        crc = _crc32_b64(data)
        faultpoint("multipart-part")
        result = self._retry(
            lambda: self.client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                ChecksumAlgorithm="CRC32",
                ChecksumCRC32=crc,
            ),
            f"PART {number} {key}",
        )
        # The MD5 is computed only for a server that does not echo the checksum.
        _check_echo(
            result,
            crc,
            lambda: f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"',
            f"part {number} of s3://{self.bucket}/{key}",
            algorithm="CRC32",
        )
        return UploadedPart(number, str(result["ETag"]), crc, len(data))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        # Best effort: an unfinished upload costs storage until the bucket's lifecycle
        # rule (AbortIncompleteMultipartUpload) removes it, so a failed abort is harmless.
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as exc:
            log.warning("abort of multipart upload %s of %s failed: %s", upload_id, key, exc)

    def delete(self, key: str) -> None:
        self._retry(lambda: self.client.delete_object(Bucket=self.bucket, Key=key), f"DEL {key}")
