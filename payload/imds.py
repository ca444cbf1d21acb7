"""A small IMDSv2 client: session tokens, refresh on expiry or 401, 404 as "absent".

No boto3 here: the spot watcher polls every two seconds for the whole life of an instance,
and a plain ``urllib`` request with a short timeout is cheaper and easier to reason about.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://169.254.169.254"
TOKEN_PATH = "/latest/api/token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TTL = 21600


class ImdsError(Exception):
    """IMDS answered something other than 2xx or 404, or could not be reached."""


def endpoint_from_env() -> str | None:
    """The IMDS endpoint to use, or ``None`` when metadata is disabled for this process.

    ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (the emulator's URL on the local cloud) wins;
    otherwise ``AWS_EC2_METADATA_DISABLED=true`` turns IMDS off, as it does for botocore.
    """
    endpoint = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
    if endpoint:
        return endpoint.rstrip("/")
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return None
    return DEFAULT_ENDPOINT


@dataclass
class _Token:
    value: str
    expires: float  # time.monotonic()


class ImdsClient:
    """IMDSv2 session: fetches a token, refreshes it before expiry or after a 401.

    Parameters
    ----------
    endpoint : str
        Base URL, e.g. ``http://169.254.169.254``.
    ttl_seconds : int
        Token lifetime asked for (1..21600).
    timeout : float
        Per-request timeout; IMDS is link-local, so anything slow is a failure.
    """

    def __init__(self, endpoint: str, *, ttl_seconds: int = MAX_TTL, timeout: float = 1.0):
        if not 1 <= ttl_seconds <= MAX_TTL:
            raise ValueError(f"IMDS token TTL {ttl_seconds} is outside 1..{MAX_TTL}")
        self.endpoint = endpoint.rstrip("/")
        self.ttl_seconds = ttl_seconds
        self.timeout = timeout
        self._token: _Token | None = None
        self._lock = threading.Lock()

    def _request(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(
            f"{self.endpoint}{path}",
            method=method,
            headers=headers,
            data=b"" if method == "PUT" else None,
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return int(response.status), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), ""
        except (OSError, ValueError) as exc:
            raise ImdsError(f"IMDS at {self.endpoint} unreachable: {exc}") from exc

    def token(self, *, force: bool = False) -> str:
        """A valid session token, fetched anew when forced or within 10% of expiry."""
        with self._lock:
            now = time.monotonic()
            if self._token and not force and now < self._token.expires:
                return self._token.value
            status, body = self._request("PUT", TOKEN_PATH, {TTL_HEADER: str(self.ttl_seconds)})
            if status != 200 or not body:
                raise ImdsError(f"IMDS token PUT answered {status}")
            # Refresh early so a token never expires between our check and IMDS's.
            self._token = _Token(body, now + 0.9 * self.ttl_seconds)
            return body

    def get(self, path: str) -> str | None:
        """GET ``/latest/meta-data/<path>``: the text, or ``None`` on 404.

        Raises
        ------
        ImdsError
            Any other status (after one token refresh on 401) or no connection.
        """
        url_path = f"/latest/meta-data/{path.lstrip('/')}"
        status, body = self._request("GET", url_path, {TOKEN_HEADER: self.token()})
        if status == 401:
            log.info("IMDS token rejected (expired?); fetching a new one")
            status, body = self._request("GET", url_path, {TOKEN_HEADER: self.token(force=True)})
        if status == 200:
            return body
        if status == 404:
            return None
        raise ImdsError(f"IMDS GET {url_path} answered {status}")

    def reachable(self) -> bool:
        """True if a token can be fetched now (one try)."""
        try:
            self.token()
        except ImdsError as exc:
            log.debug("IMDS probe failed: %s", exc)
            return False
        return True

    def probe(self, window_s: float) -> bool:
        """True once a token can be fetched, trying for up to ``window_s`` seconds.

        One failed try is not "no metadata service": IMDS can be throttled (HTTP 429) or slow
        while an instance boots, and on a loaded machine the local cloud's emulator answers
        late. Judged on one try, a worker would run its whole life without spot notices and
        lose its checkpoint at the first reclaim. Off EC2 (no IMDS at all) this costs
        ``window_s`` at start; ``AWS_EC2_METADATA_DISABLED=true`` skips it.
        """
        deadline = time.monotonic() + window_s
        pause = 0.25
        while True:
            if self.reachable():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(2 * pause, 2.0)


@dataclass(frozen=True)
class InstanceIdentity:
    """Where this worker runs, for attempt records and ASG calls."""

    instance_id: str
    instance_type: str = "unknown"
    availability_zone: str = "unknown"
    asg_name: str | None = None
    ami_id: str | None = None

    @classmethod
    def from_imds(cls, client: ImdsClient) -> InstanceIdentity:
        """Read identity from IMDS; missing optional fields become ``unknown``/``None``."""

        def optional(path: str) -> str | None:
            try:
                return client.get(path)
            except ImdsError as exc:
                log.debug("IMDS %s unavailable: %s", path, exc)
                return None

        instance_id = client.get("instance-id")
        if not instance_id:
            raise ImdsError("IMDS has no instance-id")
        return cls(
            instance_id=instance_id,
            instance_type=optional("instance-type") or "unknown",
            availability_zone=optional("placement/availability-zone") or "unknown",
            # Needs "instance metadata tags" enabled in the launch template.
            asg_name=optional("tags/instance/aws:autoscaling:groupName"),
            ami_id=optional("ami-id"),
        )
