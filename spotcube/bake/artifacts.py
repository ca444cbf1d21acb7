"""What the Ansible roles install, built on the host: the spotcube wheel and a wheelhouse.

The wheel is built from a copy of the checkout's payload sources, so the bake never writes
``build/`` or ``*.egg-info`` into a tree other people work in. The wheelhouse holds the runtime
dependencies resolved with the constraints file; it is cached by what decides its content, so
only the first bake on a machine downloads it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

# The files a wheel is built from (a subset of the content-hash inputs).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "contract", "payload", "spotcube", "infra")


class BuildError(RuntimeError):
    """A build step failed; the message names the step and the tail of its output."""


def run_logged(command: Sequence[str], *, log: Path, what: str, **kwargs: object) -> None:
    """Run ``command`` with its output appended to ``log``; raise :class:`BuildError` on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as stream:
        stream.write(f"\n$ {' '.join(command)}\n")
        stream.flush()
        result = subprocess.run(
            list(command), stdout=stream, stderr=subprocess.STDOUT, check=False, **kwargs
        )  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise BuildError(
            f"{what} failed (exit {result.returncode}); last lines of {log}:\n" + "\n".join(tail)
        )


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def build_wheel(root: Path, out_dir: Path, *, log: Path) -> Path:
    """Build the spotcube wheel from ``root`` into ``out_dir``; return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("spotcube-*.whl"):
        stale.unlink()
    with tempfile.TemporaryDirectory(prefix="spotcube-wheel-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
        for name in WHEEL_SOURCES:
            path = root / name
            if path.is_dir():
                shutil.copytree(path, source / name, ignore=ignore)
            else:
                shutil.copy2(path, source / name)
        run_logged(
            _pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(out_dir), str(source)),
            log=log,
            what="building the spotcube wheel",
        )
    wheels = sorted(out_dir.glob("spotcube-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one spotcube wheel in {out_dir}, found {len(wheels)}")
    return wheels[0]


def wheelhouse_key(requirements: Sequence[str], constraints: Path) -> str:
    """Cache key of a wheelhouse: the requirements, the pins and the interpreter's tag."""
    digest = hashlib.sha256()
    digest.update("\n".join(sorted(requirements)).encode())
    digest.update(constraints.read_bytes())
    digest.update(f"cp{sys.version_info.major}{sys.version_info.minor}".encode())
    return digest.hexdigest()[:16]


def wheelhouse(
    requirements: Sequence[str], constraints: Path, cache_dir: Path, *, log: Path
) -> Path:
    """A directory of wheels for ``requirements`` pinned by ``constraints`` (cached)."""
    target = cache_dir / "wheelhouse" / wheelhouse_key(requirements, constraints)
    marker = target / ".complete"
    if marker.is_file():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    # Binary wheels only: the image has no compiler, and Debian 12's python3 is 3.11 like the
    # host, so the host's cp311 manylinux wheels are the ones the image can install.
    run_logged(
        _pip(
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--dest",
            str(partial),
            "--constraint",
            str(constraints),
            *requirements,
        ),
        log=log,
        what="downloading the payload wheelhouse",
    )
    (partial / ".complete").write_text("\n".join(requirements) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target
