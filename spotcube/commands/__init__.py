"""One module per ``spotcube`` subcommand, each exposing ``register(subparsers)``.

The CLI lists exactly the modules present here, so a subcommand exists in ``--help`` only
when its implementation does. Listing them imports none of them: a command's module pulls in
what it runs (boto3, numpy, scipy for ``demo``'s report), seconds of imports on a loaded
machine, which ``spotcube --help`` or another command must not pay. :func:`summaries` reads
each module's one-line help from its source instead.
"""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path


def names() -> list[str]:
    """The subcommands: every public module of this package, without importing them."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def summaries() -> dict[str, str]:
    """Each subcommand's ``help=`` of its ``add_parser`` call, read with :mod:`ast` (no import).

    A help that is not a plain string in the source reads as "" (the command is listed
    without a summary); tests/foundation/test_cli_startup.py checks every module's summary
    equals the help its ``register`` gives.
    """
    return {name: _summary(Path(__path__[0]) / f"{name}.py") for name in names()}


def _summary(source: Path) -> str:
    try:
        tree = ast.parse(source.read_text(), filename=str(source))
    except (OSError, SyntaxError):
        return ""  # the import will say what is wrong when the command runs
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_parser"
        ):
            for keyword in node.keywords:
                if keyword.arg == "help" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
    return ""
