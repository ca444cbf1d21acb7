"""Find a stack's resources: from ``pulumi stack output``, an outputs file, or the local cloud.

``spotcube submit/status/report/down`` all take the same three options, so a command works the
same against a user's AWS stack and against the embedded local cloud of ``spotcube demo``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from botocore.config import Config

from contract.localcloud import LOCAL_CREDENTIALS, LOCAL_REGION
from contract.names import LOCAL_NAMES
from spotcube.awssession import aws_session
from spotcube.errors import CloudUnreachableError, UsageError

# A loopback endpoint that refuses a connection is down, not busy: botocore's legacy retries
# (5 attempts, backoff up to ~15 s) would only delay the one-line "cannot reach" message.
LOCAL_CLIENT_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 2})


@dataclass(frozen=True)
class StackOutputs:
    """The stack outputs the operator CLI relies on (``contract.names.OUTPUT_KEYS``)."""

    region: str
    raw_bucket: str
    products_bucket: str
    job_queue_url: str
    dead_letter_queue_url: str
    raw_prefix: str = ""
    asg_name: str = ""
    ami_id: str = ""
    budget_name: str = ""
    alerts_topic_arn: str = ""
    launch_guard_policy_arn: str = ""  # infra.stack.EXTRA_OUTPUT_KEYS; read by `spotcube check`
    endpoint_url: str | None = None  # set only for the local cloud
    # Not stack outputs: how this command reaches the stack. One session (spotcube.awssession)
    # and one client per service for the whole command.
    profile: str | None = field(default=None, compare=False)
    _clients: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def client(self, service: str) -> Any:
        """The command's boto3 client for this stack (local credentials on the local cloud)."""
        if service in self._clients:
            return self._clients[service]
        extra: dict[str, Any] = {}
        if self.endpoint_url:
            extra = {
                "endpoint_url": self.endpoint_url,
                "config": LOCAL_CLIENT_CONFIG,
                **LOCAL_CREDENTIALS,
            }
        # the local cloud takes its own credentials whatever the profile says
        session = aws_session(None if self.endpoint_url else self.profile)
        client = session.client(service, region_name=self.region, **extra)
        if self.endpoint_url:
            client.meta.events.register("after-call", _answered_like_aws(self.endpoint_url))
        self._clients[service] = client
        return client

    def to_json(self) -> str:
        return json.dumps({name: getattr(self, name) for name in _output_names()}, indent=1)

    @classmethod
    def from_mapping(cls, doc: dict[str, Any], *, source: str) -> StackOutputs:
        missing = [k for k in ("region", "products_bucket", "job_queue_url") if not doc.get(k)]
        if missing:
            raise CloudUnreachableError(
                f"{source} lacks stack output(s) {', '.join(missing)}; is this a spotcube "
                "stack, and has `pulumi up` finished?"
            )
        known = _output_names()
        values = {k: v for k, v in doc.items() if k in known and v is not None}
        values.setdefault("raw_bucket", "")
        values.setdefault("dead_letter_queue_url", "")
        return cls(**values)


def _output_names() -> list[str]:
    """The fields of :class:`StackOutputs` that are stack outputs (not how to reach them)."""
    return [f.name for f in fields(StackOutputs) if f.name not in ("profile", "_clients")]


# S3 answers every request with x-amz-request-id, the other services with x-amzn-RequestId;
# moto does the same. botocore parses an HTML page served with 200 as an empty answer, so
# without this check a wrong --endpoint would "accept" a submit.
_REQUEST_ID_HEADERS = ("x-amz-request-id", "x-amzn-requestid")


def _answered_like_aws(endpoint: str) -> Callable[..., None]:
    def check(http_response: Any, model: Any, **_: Any) -> None:
        headers = {k.lower() for k in http_response.headers}
        if http_response.status_code < 300 and not headers & set(_REQUEST_ID_HEADERS):
            raise CloudUnreachableError(
                f"{endpoint} answered {model.name} without an AWS request id: it is not the "
                "local cloud; pass the --endpoint that `spotcube demo --hold` printed"
            )

    return check


def local_outputs(endpoint: str) -> StackOutputs:
    """Outputs of the embedded local cloud at ``endpoint`` (names from ``contract.names``)."""
    base = endpoint.rstrip("/")
    # moto's SQS serves queue URLs as <endpoint>/<account>/<name>; 123456789012 is its account.
    account = "123456789012"
    return StackOutputs(
        region=LOCAL_REGION,
        raw_bucket=LOCAL_NAMES.raw_bucket,
        products_bucket=LOCAL_NAMES.products_bucket,
        job_queue_url=f"{base}/{account}/{LOCAL_NAMES.job_queue}",
        dead_letter_queue_url=f"{base}/{account}/{LOCAL_NAMES.dead_letter_queue}",
        asg_name=LOCAL_NAMES.asg,
        endpoint_url=base,
    )


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--stack``, ``--outputs`` and ``--endpoint`` to a subcommand."""
    group = parser.add_argument_group("which stack")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--stack", help="Pulumi stack name (default: the selected stack)")
    where.add_argument(
        "--outputs", type=Path, metavar="FILE", help="JSON of `pulumi stack output --json`"
    )
    where.add_argument(
        "--endpoint",
        type=endpoint_url,
        metavar="URL",
        help="the embedded local cloud (printed by `spotcube demo`)",
    )
    group.add_argument(
        "--profile", help="AWS profile (default: AWS_PROFILE, else the default credential chain)"
    )


def endpoint_url(text: str) -> str:
    """``--endpoint``'s value: an http(s) URL with a host, or a usage error naming the fix."""
    parts = urllib.parse.urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http(s) URL; pass the one `spotcube demo --hold` printed, "
            "e.g. http://127.0.0.1:5000"
        )
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has no valid port number") from None
    return text.strip()


def add_deployed_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The stack options, plus the stack's config file (check, resume)."""
    add_stack_arguments(parser)
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the stack's Pulumi.<stack>.yaml (default: `pulumi config` of --stack)",
    )


def resolve_outputs(args: argparse.Namespace) -> StackOutputs:
    """Stack outputs for the options added by :func:`add_stack_arguments`."""
    outputs = _outputs(args)
    return replace(outputs, profile=getattr(args, "profile", None))


def _outputs(args: argparse.Namespace) -> StackOutputs:
    if getattr(args, "endpoint", None):
        return local_outputs(args.endpoint)
    if getattr(args, "outputs", None):
        path: Path = args.outputs
        try:
            doc = json.loads(path.read_text())
        except OSError as exc:
            raise UsageError(f"cannot read --outputs {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise UsageError(f"--outputs {path} is not JSON: {exc}") from None
        return StackOutputs.from_mapping(doc, source=str(path))
    return _pulumi_outputs(getattr(args, "stack", None))


def _pulumi_outputs(stack: str | None) -> StackOutputs:
    if shutil.which("pulumi") is None:
        raise CloudUnreachableError(
            "the pulumi CLI is not installed; install it (https://www.pulumi.com/docs/install/), "
            "or pass --outputs FILE, or --endpoint URL for the local cloud"
        )
    command = ["pulumi", "stack", "output", "--json"]
    if stack:
        command += ["--stack", stack]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise CloudUnreachableError(f"`{' '.join(command)}` failed: {detail[0]}")
    return StackOutputs.from_mapping(json.loads(result.stdout), source="pulumi stack output")
