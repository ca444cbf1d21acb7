"""The content hash of an image: the one place that decides whether a rebake is needed.

Every input that shapes the image is hashed: the Ansible roles, the Packer template, the
payload source (the wheel is built from ``payload/``, ``spotcube/`` and ``infra/`` with the
metadata of ``pyproject.toml``), the constraints file and the base image selector. The local
target, the AWS target and Packer's tags all use :func:`content_hash`, so an AMI and a local
image baked from the same tree carry the same hash.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

# Bump when the hashing scheme itself changes, so old images never match by accident.
HASH_SCHEME = "spotcube-image-v1"
# What the image is built on. The AMI filter and the mmdebstrap suite both follow it; a change
# of Debian release must change the hash even if no file here changed.
BASE_IMAGE_SELECTOR = "debian-12-bookworm-amd64"
# Paths (relative to the repository root) whose content goes into the image.
IMAGE_INPUTS = (
    "ansible",
    "packer",
    "payload",
    "spotcube",
    "infra",
    "pyproject.toml",
    "README.md",  # the wheel's METADATA carries it as the long description
    "constraints.txt",
)
# Generated or tool-private files that live next to inputs but never reach an image: caches,
# compiled bytecode, and dot-directories such as ansible-lint's ``.ansible/``.
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
IMAGE_NAME_PREFIX = "spotcube-payload"


@dataclass(frozen=True)
class ContentHash:
    """sha256 over the image inputs, with the file count for the log line."""

    hexdigest: str
    files: int

    @property
    def short(self) -> str:
        """The 12 hex digits used in image names."""
        return self.hexdigest[:12]


def _skipped(relative: Path) -> bool:
    if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
        return True
    return relative.suffix in _SKIPPED_SUFFIXES


def input_files(root: Path) -> list[Path]:
    """The files that go into an image, relative to ``root``, in a stable order."""
    found: list[Path] = []
    for name in IMAGE_INPUTS:
        top = root / name
        if top.is_file():
            found.append(Path(name))
            continue
        if not top.is_dir():
            raise FileNotFoundError(f"image input {name} is missing under {root}")
        for dirpath, dirnames, filenames in os.walk(top):
            base = Path(dirpath).relative_to(root)
            # Prune in place so os.walk does not descend into skipped directories.
            dirnames[:] = [d for d in dirnames if not _skipped(base / d)]
            found.extend(base / f for f in filenames if not _skipped(base / f))
    return sorted(found, key=lambda p: p.as_posix())


def content_hash(root: Path) -> ContentHash:
    """Hash every image input under ``root`` (names, executable bits and bytes)."""
    digest = hashlib.sha256()
    digest.update(f"{HASH_SCHEME}\0{BASE_IMAGE_SELECTOR}\0".encode())
    files = input_files(root)
    for relative in files:
        path = root / relative
        executable = os.access(path, os.X_OK)
        with path.open("rb") as stream:
            file_digest = hashlib.file_digest(stream, "sha256").hexdigest()
        digest.update(f"{relative.as_posix()}\0{int(executable)}\0{file_digest}\n".encode())
    return ContentHash(hexdigest=digest.hexdigest(), files=len(files))


def image_name(payload_version: str, digest: str) -> str:
    """``spotcube-payload-<version>-<hash12>``: the name of an AMI or a local image.

    Packer builds the same string in ``packer/locals.pkr.hcl``; tests/bake checks they agree.
    """
    return f"{IMAGE_NAME_PREFIX}-{payload_version}-{digest[:12]}"
