"""``spotcube`` console script: discovers the subcommands in :mod:`spotcube.commands`.

This module is the one place where an exception becomes a one-line message and an
:class:`~spotcube.errors.ExitStatus` (httpie's ``core.main`` pattern). Library code raises
:mod:`spotcube.errors` classes, or lets botocore's errors through: they are translated here,
naming the endpoint or profile at fault and what to do. ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
import urllib.parse
from collections.abc import Sequence
from typing import NoReturn

from spotcube import __version__, commands
from spotcube.awserrors import BAD_CREDENTIALS, BUSY, DENIED, MISSING_RESOURCE
from spotcube.didyoumean import SuggestingParser
from spotcube.errors import ExitStatus, SpotcubeError


class _Parser(SuggestingParser):
    """argparse, with a usage error as one line like every other error (subparsers inherit),
    ending with the closest valid spelling of a misspelt option or choice."""

    def error(self, message: str) -> NoReturn:
        message = self.suggest(message)
        self.exit(ExitStatus.USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with the full options of the one subcommand ``argv`` names.

    Every other subcommand is a stub with its one-line help (read from its source, not
    imported): ``spotcube --help`` and ``spotcube status`` import no other command's module.
    Without ``argv`` (or when it names no command) only the stubs are built.
    """
    parser = _Parser(
        prog="spotcube",
        description="Process interferometric observations on AWS spot instances.",
        epilog="Exit status: 0 ok, 1 internal error (a bug; --debug shows it), 2 usage, "
        "3 refused, 4 observations failed, 5 cloud unreachable (endpoint, credentials or "
        "profile), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"spotcube {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback behind an error message"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen_command(argv)
    for name, summary in commands.summaries().items():
        if name == chosen:
            importlib.import_module(f"{commands.__name__}.{name}").register(subparsers)
        else:
            subparsers.add_parser(name, help=summary, add_help=False)
    for sub in subparsers.choices.values():
        # Accepted after the subcommand too (`spotcube status --debug`); SUPPRESS keeps a
        # subcommand without it from resetting a `spotcube --debug status`.
        sub.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _chosen_command(argv: Sequence[str] | None) -> str | None:
    """The subcommand ``argv`` names: its first word that is not an option (the top-level
    options take no values), if that word is a command."""
    for word in argv or ():
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in commands.names() else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand (each sets ``func(args) -> int``) and return its exit status.

    Never raises: argparse's own exits become their status (2 for usage, 0 for ``--help``),
    and any exception becomes one line on stderr and a status from :func:`describe`.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage or help already
        return exc.code if isinstance(exc.code, int) else ExitStatus.USAGE
    try:
        return int(args.func(args))
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        try:
            status, message = describe(exc, args)
        except Exception as inner:  # describing must not be what crashes
            status, message = ExitStatus.INTERNAL_ERROR, f"internal error: {inner!r} ({exc!r})"
        if args.debug and status != ExitStatus.INTERRUPTED:
            traceback.print_exc(file=sys.stderr)
        elif status == ExitStatus.INTERNAL_ERROR:
            message += " (a bug: rerun with --debug and report the traceback)"
        # One line, always: a library message with line breaks is joined, not wrapped.
        message = "; ".join(part.strip() for part in message.splitlines() if part.strip())
        print(f"spotcube {args.command}: {message}", file=sys.stderr)
        return int(status)


def describe(exc: BaseException, args: argparse.Namespace) -> tuple[ExitStatus, str]:
    """The exit status and the one-line message for ``exc`` raised by a command."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED, "interrupted"
    if isinstance(exc, SpotcubeError):
        return exc.status, str(exc)
    cloud = _cloud_error(exc, args)
    if cloud is not None:
        return ExitStatus.UNREACHABLE, cloud
    return ExitStatus.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}"


def _cloud_error(exc: BaseException, args: argparse.Namespace) -> str | None:
    """A message for a botocore error anywhere in ``exc``'s chain, else ``None``."""
    from botocore import exceptions as bce
    from botocore.parsers import ResponseParserError

    for err in _chain(exc):
        where = _where(args)
        profile = os.environ.get("AWS_PROFILE")
        who = f"the credentials of profile {profile!r}" if profile else "the credentials"
        if isinstance(err, (bce.ConnectionError, bce.HTTPClientError)):
            url = err.kwargs.get("endpoint_url") or err.kwargs.get("proxy_url")
            return f"cannot reach {_origin(url) or where}: {_reason(err)}; {_reach_hint(args)}"
        if isinstance(err, bce.ProfileNotFound):
            name = err.kwargs.get("profile", profile)
            return (
                f"AWS profile {name!r} is not in ~/.aws/config or ~/.aws/credentials: set "
                f"AWS_PROFILE to one that is, or create it with `aws configure --profile {name}`"
            )
        if isinstance(err, bce.NoCredentialsError):
            return (
                "no AWS credentials found: run `aws configure` or `aws sso login`, set "
                "AWS_PROFILE, or pass --endpoint URL for the local cloud"
            )
        if isinstance(err, (bce.PartialCredentialsError, bce.CredentialRetrievalError)):
            return f"{who} could not be loaded ({err}): fix the profile or environment"
        if isinstance(err, (bce.SSOError, bce.TokenRetrievalError)):
            return f"{who} need a fresh login ({err}): run `aws sso login`"
        if isinstance(err, bce.NoRegionError):
            return "no AWS region: set AWS_REGION, or `region` in your AWS profile"
        if isinstance(err, bce.ClientError):
            return _client_error(err, where, who)
        if isinstance(err, ResponseParserError):
            return (
                f"{where} did not answer like AWS ({type(err).__name__}); is that URL the "
                "local cloud `spotcube demo --hold` printed?"
            )
        if isinstance(err, bce.BotoCoreError):
            return f"{where}: {type(err).__name__}: {err}; {_reach_hint(args)}"
    return None


def _client_error(err: Exception, where: str, who: str) -> str:
    response = getattr(err, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    text = str(response.get("Error", {}).get("Message", "")) or str(err)
    operation = getattr(err, "operation_name", "a request")
    if code in BAD_CREDENTIALS:
        return (
            f"{where} rejected {who} ({code}): refresh them (`aws sso login`, `aws configure`) "
            "or choose another AWS_PROFILE"
        )
    if code in DENIED:
        return (
            f"{where} denied {operation} to {who} ({code}): they lack the permission, or the "
            "stack's brake or key-quarantine policy is attached to them"
        )
    if code in MISSING_RESOURCE or code in ("404", "NotFound"):
        return (
            f"{where} has no such resource for {operation} ({code}: {text}): check --stack, "
            "--outputs or --endpoint, and that the stack is deployed (`pulumi up`) or the "
            "local cloud is the one `spotcube demo --hold` printed"
        )
    if code in BUSY:
        return f"{where} is busy or failing ({code} on {operation}); try again in a minute"
    return f"{where} refused {operation} ({code or 'no code'}: {text})"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during, without cycles."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _where(args: argparse.Namespace) -> str:
    """The cloud the command talked to, as the user named it."""
    if getattr(args, "endpoint", None):
        return f"the local cloud at --endpoint {args.endpoint}"
    if getattr(args, "endpoint_url", None):
        return f"--endpoint-url {args.endpoint_url}"
    if getattr(args, "outputs", None):
        return f"AWS (the stack in --outputs {args.outputs})"
    if getattr(args, "stack", None):
        return f"AWS (Pulumi stack {args.stack})"
    return "AWS"


def _origin(url: str | None) -> str:
    """``scheme://host:port`` of a request URL: the endpoint, without the request's path."""
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def _reach_hint(args: argparse.Namespace) -> str:
    if getattr(args, "endpoint", None) or getattr(args, "endpoint_url", None):
        return "is the local cloud running? `spotcube demo --hold` starts one and prints its URL"
    return "check the network, HTTPS_PROXY and the region, or pass --endpoint for the local cloud"


def _reason(err: BaseException) -> str:
    text = str(err.kwargs.get("error", "")) if hasattr(err, "kwargs") else ""
    for marker in ("Connection refused", "timed out", "Name or service not known", "SSL"):
        if marker.lower() in (text or str(err)).lower():
            return marker.lower()
    return type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
