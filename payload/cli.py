"""``python -m payload``: the instance-side entry points (``image``, ``worker``, ...)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from payload import __version__, commands
from payload.errors import PayloadError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m payload", description=__doc__)
    parser.add_argument("--version", action="version", version=f"spotcube-payload {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a :class:`PayloadError` becomes one line and its outcome's code."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except PayloadError as exc:
        print(f"payload {args.command}: {exc}", file=sys.stderr)
        return exc.outcome.exit_code
    return status
