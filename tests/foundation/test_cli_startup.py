"""`spotcube --help` imports no command's implementation; a command imports only its own.

The time is measured in bench/cli_startup.py (a timed test would depend on the machine's
load); what makes it fast is checked here, as the import graph: building the parser for
``--help`` loads none of the heavy libraries the commands run on, and building it for one
command loads that command's module and no other's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from spotcube import commands

# What the commands run on; seconds of imports together on a loaded machine (scipy.stats
# alone came to 3.4 s of `spotcube --help` through demo -> demoreport -> estimates).
HEAVY = ("numpy", "scipy", "boto3", "botocore", "matplotlib", "astropy", "pyuvdata", "moto")


def _loaded_after(argv: list[str]) -> set[str]:
    """Modules loaded in a fresh interpreter after building the parser for ``argv``."""
    code = (
        "import json, sys\n"
        "from spotcube.cli import build_parser\n"
        f"build_parser({argv!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(result.stdout))


def _top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_help_imports_no_heavy_library() -> None:
    """`python -X importtime -m spotcube.cli --help`: the real entry point's import list."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "spotcube.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "spotcube.cli" in imported or "argparse" in imported  # the parse really ran
    assert not _top_level(imported) & set(HEAVY), sorted(_top_level(imported) & set(HEAVY))
    assert not {m for m in imported if m.startswith("spotcube.commands.")}


@pytest.mark.parametrize("name", commands.names())
def test_a_command_imports_only_its_own_module(name: str) -> None:
    loaded = {m for m in _loaded_after([name, "--help"]) if m.startswith("spotcube.commands.")}
    assert loaded == {f"spotcube.commands.{name}"}


@pytest.mark.parametrize("name", commands.names())
def test_listed_summary_is_the_commands_own_help(name: str) -> None:
    """The summary read from the source equals the help the module registers when imported."""
    subparsers = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(f"spotcube.commands.{name}").register(subparsers)
    registered = {a.dest: a.help for a in subparsers._choices_actions}
    assert commands.summaries()[name] == registered[name]
