"""``spotcube`` console script: discovers the subcommands in :mod:`spotcube.commands`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from spotcube import __version__, commands
from spotcube.errors import SpotcubeError


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spotcube",
        description="Process interferometric observations on AWS spot instances.",
    )
    parser.add_argument("--version", action="version", version=f"spotcube {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; each sets ``func(args) -> int`` with ``set_defaults``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except CommandError as exc:
        print(f"spotcube {args.command}: {exc}", file=sys.stderr)
        return 2
    except SpotcubeError as exc:
        print(f"spotcube {args.command}: {exc}", file=sys.stderr)
        return int(exc.status)
    except KeyboardInterrupt:
        print(f"spotcube {args.command}: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
