"""Lint a variant's own Ansible roles as ``make lint`` lints the project's.

The project's roles are linted from ``ansible/`` with its ``.ansible-lint`` (production
profile, offline). A group's roles live elsewhere (``roles:`` of a variant file, paths
relative to it), and ansible-lint only lints files under its project directory, which a
config file fixes to the config's folder: run with the project's config, a role outside
``ansible/`` is "processed" and passes unread. So each role is linted from its own parent
folder, with the same profile and offline mode given on the command line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from spotcube.bake.variant import ImageVariant

PROFILE = "production"  # the project's (ansible/.ansible-lint)
# Generous: ansible-lint takes ~10 s per role on a loaded 2-core machine.
TIMEOUT_SECONDS = 600


class LintUnavailableError(RuntimeError):
    """ansible-lint is not installed; the message says how to install it."""


@dataclass(frozen=True)
class RoleLint:
    """ansible-lint's verdict on one role: its findings, one per line (``file:line: rule``)."""

    role: Path
    findings: tuple[str, ...]
    failed: bool


def ansible_lint() -> str:
    """The ansible-lint executable: this venv's first, then PATH."""
    here = Path(sys.executable).parent / "ansible-lint"
    found = str(here) if here.is_file() else shutil.which("ansible-lint")
    if found is None:
        raise LintUnavailableError(
            "ansible-lint not found: install the dev extra "
            "(.venv/bin/pip install -c constraints.txt -e '.[dev]')"
        )
    return found


def lint_role(role: Path, executable: str) -> RoleLint:
    """Run ansible-lint on ``role`` from its parent folder; findings in pep8 format."""
    env = {
        **os.environ,
        # ansible-lint runs ansible-playbook --syntax-check: the same venv's, first on PATH.
        "PATH": os.pathsep.join([str(Path(executable).parent), os.environ.get("PATH", "")]),
        "NO_COLOR": "1",
    }
    result = subprocess.run(
        [executable, "--profile", PROFILE, "--offline", "--format", "pep8", "--nocolor",
         role.name],
        cwd=role.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )  # fmt: skip
    findings = tuple(
        f"{role.parent}/{line}" if not line.startswith("/") else line
        for line in result.stdout.splitlines()
        if line.strip()
    )
    if result.returncode != 0 and not findings:
        # Not a finding but a failure of ansible-lint itself (a role it cannot load).
        tail = [line for line in result.stderr.splitlines() if line.strip()][-3:]
        findings = (f"{role}: ansible-lint exited {result.returncode}: {' '.join(tail)}",)
    return RoleLint(role=role, findings=findings, failed=result.returncode != 0)


def lint_variant_roles(variant: ImageVariant) -> list[RoleLint]:
    """Lint every role the variant's ``roles:`` names (the project's toolchains are linted by
    ``make lint``)."""
    if not variant.roles:
        return []
    executable = ansible_lint()
    return [lint_role(role, executable) for role in variant.roles]
