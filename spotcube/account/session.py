"""boto3 clients for the account checks, and the errors that end a command at once.

An endpoint that cannot be reached or credentials that cannot be used end the whole command
with :class:`~spotcube.errors.CloudUnreachableError` (one line naming the endpoint or
profile): every later check would fail the same way. Any other API error (AccessDenied, a
missing resource) belongs to the one check that met it and becomes its failed result.

Endpoints follow boto3's own configuration (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_<SERVICE>``,
the profile's ``endpoint_url``): the tests point them at moto's server, users at nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    TokenRetrievalError,
)

from contract.localcloud import LOCAL_CREDENTIALS
from spotcube.account.results import CheckResult, failed
from spotcube.awserrors import BAD_CREDENTIALS, DENIED
from spotcube.awssession import aws_session
from spotcube.errors import CloudUnreachableError, RefusedError

T = TypeVar("T")

# Short timeouts and two attempts: a check is a read, and a hung endpoint should be named
# within seconds, not after botocore's default 60 s x 5 attempts.
_CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={"max_attempts": 2})


def _profile_words(profile: str | None) -> str:
    return f"profile {profile!r}" if profile else "the default credential chain"


@dataclass
class Aws:
    """Clients of one account in one region; other regions only where AWS requires them."""

    region: str
    profile: str | None = None
    endpoint_url: str | None = None  # the embedded local cloud of `spotcube demo`
    _session: Any = field(init=False, repr=False)
    _clients: dict[tuple[str, str], Any] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        try:
            self._session = aws_session(self.profile)  # shared with the stack commands
        except ProfileNotFound:
            raise CloudUnreachableError(
                f"AWS profile {self.profile!r} is not in ~/.aws/config; "
                "list them with `aws configure list-profiles`"
            ) from None

    def client(self, service: str, region: str | None = None) -> Any:
        key = (service, region or self.region)
        if key not in self._clients:
            extra: dict[str, Any] = {}
            if self.endpoint_url:
                extra = {"endpoint_url": self.endpoint_url, **LOCAL_CREDENTIALS}
            self._clients[key] = self._session.client(
                service, region_name=key[1], config=_CLIENT_CONFIG, **extra
            )
        return self._clients[key]

    def unreachable(self, exc: Exception) -> CloudUnreachableError | None:
        """The command-ending error ``exc`` stands for, or None if it concerns one check."""
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)):
            endpoint = getattr(exc, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
            hint = (
                "is the local cloud running? `spotcube demo --hold` starts one and prints its URL"
                if self.endpoint_url
                else "check the network, AWS_ENDPOINT_URL and the region"
            )
            return CloudUnreachableError(f"cannot reach {endpoint} ({type(exc).__name__}); {hint}")
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return CloudUnreachableError(
                f"no usable AWS credentials from {_profile_words(self.profile)}; run "
                "`aws configure` or `aws sso login`, or pass --profile NAME"
            )
        if isinstance(exc, TokenRetrievalError):
            return CloudUnreachableError(
                f"the SSO token of {_profile_words(self.profile)} has expired; run "
                f"`aws sso login{' --profile ' + self.profile if self.profile else ''}`"
            )
        if isinstance(exc, NoRegionError):
            return CloudUnreachableError("no AWS region set; pass --region or set AWS_REGION")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code in BAD_CREDENTIALS:  # every call would fail: stop at the first
                return CloudUnreachableError(
                    f"AWS rejected the credentials of {_profile_words(self.profile)} ({code}); "
                    "renew them (`aws sso login`, or a new access key)"
                )
        return None


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def error_message(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Unknown')}: {error.get('Message', '')}".strip().rstrip(":")


def first_call(aws: Aws, call: Callable[[], T]) -> T:
    """A call every later check depends on (who am I?): any error of it ends the command."""
    try:
        return call()
    except (ClientError, BotoCoreError) as exc:
        fatal = aws.unreachable(exc)
        if fatal is not None:
            raise fatal from None
        detail = error_message(exc) if isinstance(exc, ClientError) else str(exc)
        raise CloudUnreachableError(
            f"AWS refused the first call with {_profile_words(aws.profile)}: {detail}"
        ) from None


def refuse_on_error(aws: Aws, call: Callable[[], T]) -> T:
    """A call of a command that changes something: any AWS error refuses it, in one line."""
    try:
        return call()
    except (ClientError, BotoCoreError) as exc:
        fatal = aws.unreachable(exc)
        if fatal is not None:
            raise fatal from None
        if isinstance(exc, ClientError):
            raise RefusedError(f"{exc.operation_name}: {error_message(exc)}") from None
        raise RefusedError(f"{type(exc).__name__}: {exc}") from None


def run_checks(
    aws: Aws, checks: Sequence[tuple[str, Callable[[], CheckResult | list[CheckResult]]]]
) -> list[CheckResult]:
    """Run every check; an API error fails its own check, an unreachable cloud ends them all."""
    results: list[CheckResult] = []
    for name, check in checks:
        try:
            outcome = check()
        except (ClientError, BotoCoreError) as exc:
            fatal = aws.unreachable(exc)
            if fatal is not None:
                raise fatal from None
            if isinstance(exc, ClientError):
                operation = exc.operation_name
                fix = (
                    f"allow the caller {operation} (IAM), or run as an administrator"
                    if error_code(exc) in DENIED
                    else "see the AWS error above"
                )
                outcome = failed(name, f"{operation}: {error_message(exc)}", fix)
            else:
                outcome = failed(name, f"{type(exc).__name__}: {exc}", "see the error above")
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    return results
