"""What an image records about where it came from, read from the checkout.

The payload version, the pinned versions of the science stack (from the constraints file the
bake installs from), the runtime requirements (``[project.dependencies]``) and the git commit.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from spotcube.bake.contenthash import ContentHash, content_hash, image_name

# Versions that go into image tags and metadata: the ones a scientist asks about first.
TAGGED_PACKAGES = ("numpy", "pyuvdata", "ducc0")


def repo_root() -> Path:
    """The checkout this ``spotcube`` runs from (the directory holding pyproject.toml)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "ansible").is_dir():
        raise FileNotFoundError(
            f"{root} is not a spotcube checkout (no pyproject.toml / ansible/): "
            "`spotcube bake` runs from a clone, not from an installed wheel"
        )
    return root


def normalize(name: str) -> str:
    """PEP 503 name normalisation, so ``PyYAML`` and ``pyyaml`` compare equal."""
    return str(canonicalize_name(name))


def pinned_versions(constraints: Path) -> dict[str, str]:
    """``name -> version`` for every requirement of a constraints file pinned with ``==``.

    Lines are parsed as PEP 508 requirements by ``packaging``; pip options (``-r``,
    ``--hash``) and ranges are not pins and are skipped.
    """
    pins: dict[str, str] = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        exact = [s.version for s in requirement.specifier if s.operator in ("==", "===")]
        if len(exact) == 1 and "*" not in exact[0]:
            pins[normalize(requirement.name)] = exact[0]
    return pins


def runtime_requirements(pyproject: Path) -> list[str]:
    """``[project.dependencies]``: what the payload needs at run time, and nothing else."""
    doc = tomllib.loads(pyproject.read_text())
    requirements = doc.get("project", {}).get("dependencies", [])
    if not isinstance(requirements, list) or not all(isinstance(r, str) for r in requirements):
        raise ValueError(f"{pyproject}: [project.dependencies] must be a list of strings")
    return list(requirements)


def payload_version(root: Path) -> str:
    """``payload.__version__`` read from source, so the checkout's version is the one baked."""
    text = (root / "payload" / "__init__.py").read_text()
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not match:
        raise ValueError('payload/__init__.py has no __version__ = "..." line')
    return match.group(1)


def git_commit(root: Path) -> str:
    """HEAD's commit, with ``-dirty`` when tracked files differ; ``unknown`` outside git."""
    # GIT_OPTIONAL_LOCKS=0 keeps `git status` from rewriting the index of a shared tree.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if status else head


@dataclass(frozen=True)
class BakeInputs:
    """Everything a bake of this checkout needs to know before it starts."""

    root: Path
    digest: ContentHash
    payload_version: str
    git_commit: str
    requirements: list[str]
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def constraints(self) -> Path:
        return self.root / "constraints.txt"

    @property
    def image_name(self) -> str:
        return image_name(self.payload_version, self.digest.hexdigest)

    def provenance(self) -> dict[str, str]:
        """The facts every image records (AMI tags, local metadata, /etc/spotcube/image.json)."""
        facts = {
            "content_hash": self.digest.hexdigest,
            "image_name": self.image_name,
            "git_commit": self.git_commit,
            "payload_version": self.payload_version,
        }
        for package in TAGGED_PACKAGES:
            facts[f"{package}_version"] = self.versions.get(package, "unpinned")
        return facts

    @classmethod
    def read(cls, root: Path) -> BakeInputs:
        return cls(
            root=root,
            digest=content_hash(root),
            payload_version=payload_version(root),
            git_commit=git_commit(root),
            requirements=runtime_requirements(root / "pyproject.toml"),
            versions=pinned_versions(root / "constraints.txt"),
        )
