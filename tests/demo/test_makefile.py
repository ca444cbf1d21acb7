"""``make demo`` on a first run: the Python version is checked first, a failed install leaves
no ``.venv`` behind.

Each case runs the real Makefile (a copy, with pyproject.toml and constraints.txt) with
``PYTHON`` pointing to a stand-in interpreter: one that is 3.10 (what issue 23 met), and one
that passes the check but whose venv's pip fails, as a resolver error or a lost network would.
Nothing is installed.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _project(tmp: Path) -> Path:
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp / name)
    return tmp


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _make(project: Path, python: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "-C", str(project), f"PYTHON={python}", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_old_python_is_named_before_anything_is_installed(tmp_path: Path) -> None:
    project = _project(tmp_path)
    # a Python 3.10: fails the version check (-c), says its version (--version)
    old = _script(
        tmp_path / "python3.10",
        'case "$1" in --version) echo "Python 3.10.12";; -c) exit 1;; *) touch ran-more;; esac\n',
    )
    result = _make(project, old)
    assert result.returncode != 0
    ours = [line for line in result.stdout.splitlines() if line.strip()]
    assert ours == [
        f"spotcube needs Python 3.11 or newer; PYTHON={old} is Python 3.10.12. "
        "Install python3.11+ and run: make PYTHON=python3.11 demo"
    ]
    assert not (project / ".venv").exists()
    assert not (project / "ran-more").exists()  # neither venv nor pip was tried


def test_a_failed_install_leaves_no_venv(tmp_path: Path) -> None:
    project = _project(tmp_path)
    # passes the check; `-m venv DIR` makes a venv whose python (pip) always fails
    good = _script(
        tmp_path / "python3.12",
        'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin"; '
        "printf '#!/bin/sh\\necho ResolutionImpossible >&2\\nexit 1\\n' > \"$3/bin/python\"; "
        'chmod +x "$3/bin/python"; fi\nexit 0\n',
    )
    result = _make(project, good)
    assert result.returncode != 0
    assert "ResolutionImpossible" in result.stderr
    assert "install failed: .venv removed" in result.stdout
    assert not (project / ".venv").exists()
