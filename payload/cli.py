"""``python -m payload``: the instance-side entry points (``image``, ``worker``, ...)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
import traceback
from collections.abc import Sequence

from payload import __version__, commands
from payload.classify import (
    UNEXPECTED_EXIT_CODE,
    is_resource_error,
    last_frames,
    one_line,
    outcome_of,
    reason,
)
from payload.errors import PayloadError
from payload.outcomes import Outcome

_ROLE = re.compile(r":(?:class|func|mod|data|attr|meth|exc|obj|ref):`(~?)([^`<]+?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain_text(text: str | None) -> str | None:
    """A docstring as a terminal shows it: Sphinx roles and literals without their markup.

    The subcommands' descriptions are their modules' docstrings, written for the API docs;
    ``--help`` should say ``ImageJob``, not ``:class:`~payload.jobs.image.ImageJob```.
    """
    if text is None:
        return None

    def role(match: re.Match[str]) -> str:
        target = match.group(2).strip()
        return target.rsplit(".", 1)[-1] if match.group(1) else target

    return _LITERAL.sub(r"\1", _ROLE.sub(role, text))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m payload", description=plain_text(__doc__))
    parser.add_argument("--version", action="version", version=f"spotcube-payload {__version__}")
    # One debug flag, named as spotcube's; --traceback stays as its alias for old scripts.
    parser.add_argument(
        "--debug",
        "--traceback",
        dest="debug",
        action="store_true",
        help="on an error, print the Python traceback too",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").register(subparsers)
    for sub in subparsers.choices.values():
        sub.description = plain_text(sub.description)
        for action in sub._actions:
            action.help = plain_text(action.help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; any exception becomes one line on stderr and an exit status.

    A :class:`PayloadError` exits with its outcome's code (65 invalid, 69 transient, 75
    preempted), as does a failure of the machine (no space, no memory: 69); anything else
    is a bug and exits 70 with its innermost frames on the same line. ``--debug`` (alias
    ``--traceback``) prints the full traceback after the line.
    """
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except KeyboardInterrupt:
        print(f"payload {args.command}: interrupted", file=sys.stderr)
        return 130
    except PayloadError as exc:
        _report(args, one_line(str(exc)))
        return outcome_of(exc).exit_code
    except Exception as exc:
        if is_resource_error(exc):  # the machine, not the input or the code: try again
            _report(args, one_line(f"this machine failed: {reason(exc)}"))
            return Outcome.TRANSIENT.exit_code
        frames = "; ".join(last_frames(exc, 3))
        text = str(exc) or type(exc).__name__
        _report(
            args,
            one_line(
                f"internal error {type(exc).__name__}: {text} (at {frames}); "
                "rerun with --debug and report it"
            ),
        )
        return UNEXPECTED_EXIT_CODE
    return status


def _report(args: argparse.Namespace, line: str) -> None:
    print(f"payload {args.command}: {line}", file=sys.stderr)
    if args.debug:
        traceback.print_exc()
