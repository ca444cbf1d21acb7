"""The content hash of an image: the one place that decides whether a rebake is needed.

Every input that shapes the image is hashed: the Ansible roles, the Packer template, the
payload source (the wheel is built from ``contract/``, ``payload/``, ``spotcube/`` and
``infra/`` with the metadata of ``pyproject.toml``), the constraints file and the base image
selector. The local target, the AWS target and Packer's tags all use :func:`content_hash`, so
an AMI and a local image baked from the same tree carry the same hash.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from spotcube.bake.variant import PIPELINES_ROLE, TOOLCHAIN_ROLES, ImageVariant

# Bump when the hashing scheme itself changes, so old images never match by accident.
HASH_SCHEME = "spotcube-image-v1"
# What the image is built on. The AMI filter and the mmdebstrap suite both follow it; a change
# of Debian release must change the hash even if no file here changed.
BASE_IMAGE_SELECTOR = "debian-12-bookworm-amd64"
# Paths (relative to the repository root) whose content goes into the image.
IMAGE_INPUTS = (
    "ansible",
    "packer",
    "contract",
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
# Toolchain roles reach an image only through a variant that names them (see content_hash).
_VARIANT_ONLY = frozenset(
    Path("ansible/roles") / name for name in (*TOOLCHAIN_ROLES, PIPELINES_ROLE)
)


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
    if relative in _VARIANT_ONLY:
        return True
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


def _tree(top: Path) -> list[Path]:
    """Files under ``top``, relative to it, without caches and dot-files, in a stable order."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(top):
        base = Path(dirpath).relative_to(top)
        dirnames[:] = [d for d in dirnames if not _skipped(base / d)]
        found.extend(base / f for f in filenames if not _skipped(base / f))
    return sorted(found, key=lambda p: p.as_posix())


def _add(digest: hashlib._Hash, name: str, path: Path) -> None:
    executable = os.access(path, os.X_OK)
    with path.open("rb") as stream:
        file_digest = hashlib.file_digest(stream, "sha256").hexdigest()
    digest.update(f"{name}\0{int(executable)}\0{file_digest}\n".encode())


def content_hash(root: Path, variant: ImageVariant | None = None) -> ContentHash:
    """Hash every image input under ``root`` (names, executable bits and bytes).

    With a variant, also its file, each toolchain role it names and each of the group's own
    roles (by role directory name and content, so moving the checkout does not rebake).
    The default image's hash does not depend on any toolchain role.
    """
    digest = hashlib.sha256()
    digest.update(f"{HASH_SCHEME}\0{BASE_IMAGE_SELECTOR}\0".encode())
    files = input_files(root)
    for relative in files:
        _add(digest, relative.as_posix(), root / relative)
    count = len(files)
    if variant is not None:
        digest.update(f"variant\0{variant.name}\0".encode())
        _add(digest, "variant-config", variant.path)
        count += 1
        tops = [("toolchain/" + n, root / "ansible" / "roles" / n) for n in variant.toolchains]
        tops += [("role/" + r.name, r) for r in variant.roles]
        if variant.pipelines:
            tops.append(("role/" + PIPELINES_ROLE, root / "ansible" / "roles" / PIPELINES_ROLE))
        tops += [("pipeline/" + p.name, p) for p in variant.pipelines]
        for label, top in tops:
            if not top.is_dir():
                raise FileNotFoundError(f"role {label} of variant {variant.name} is missing: {top}")
            for relative in _tree(top):
                _add(digest, f"{label}/{relative.as_posix()}", top / relative)
                count += 1
    return ContentHash(hexdigest=digest.hexdigest(), files=count)


def image_name(payload_version: str, digest: str) -> str:
    """``spotcube-payload-<version>-<hash12>``: the name of an AMI or a local image.

    Packer builds the same string in ``packer/locals.pkr.hcl``; tests/bake checks they agree.
    """
    return f"{IMAGE_NAME_PREFIX}-{payload_version}-{digest[:12]}"
