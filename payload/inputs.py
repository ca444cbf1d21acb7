"""Inputs stored by content: the raw bucket's key scheme, directory archives and their restore.

``spotcube submit`` stores each input once under the SHA-256 of its bytes
(``<raw prefix>inputs/sha256/<hex>``): a later run with another file of the same name cannot
replace it, and the same bytes are never uploaded twice. The original name travels as S3 user
metadata, because readers recognise formats by name (``.uvh5``, ``.ms``). A directory (a
Measurement Set, an MWA raw file set) is stored as one uncompressed tar written
deterministically, so the same directory always has the same digest; the worker restores it
to a directory of the original name before reading.

This module is the one home of that format: the operator side packs with
:func:`pack_directory`, the worker restores with :func:`restore`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.parse
from pathlib import Path
from typing import IO, Any, Protocol

from payload.errors import InvalidInputError

# S3 user metadata (x-amz-meta-*). Values are percent-encoded: S3 carries metadata in HTTP
# headers, which are ASCII (S3 User Guide, "Working with object metadata").
NAME_METADATA = "spotcube-name"
FORM_METADATA = "spotcube-form"
FORM_FILE = "file"
FORM_TAR = "tar"
SHA256_METADATA = "sha256"  # the bytes' digest, as spotcube submit computed it
_KEY_PART = "inputs/sha256/"


class InputStore(Protocol):
    """The two calls of :class:`payload.store.Store` that a restore needs."""

    def head(self, key: str) -> dict[str, Any] | None: ...

    def download_file(
        self,
        key: str,
        dest: Path,
        *,
        sha256: str | None = None,
        if_match: str | None = None,
        is_input: bool = False,
    ) -> Path: ...


def content_key(prefix: str, sha256: str) -> str:
    """The raw-bucket key of the object whose bytes have this SHA-256 (hex)."""
    return f"{prefix}{_KEY_PART}{sha256}"


def sha256_of_key(key: str) -> str | None:
    """The digest a content key names, or ``None`` for a key stored by name."""
    _head, sep, tail = key.rpartition(_KEY_PART)
    if sep and len(tail) == 64 and all(c in "0123456789abcdef" for c in tail):
        return tail
    return None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def metadata_for(name: str, form: str, *, sha256: str | None = None) -> dict[str, str]:
    """User metadata that :func:`restore` reads back: the original name and the form; and the
    SHA-256 of the bytes (``spotcube submit`` knows it: it is the key), which the worker
    checks against the key before it trusts the object without hashing it whole
    (:func:`vouched_by_metadata`)."""
    metadata = {NAME_METADATA: urllib.parse.quote(name, safe=""), FORM_METADATA: form}
    return metadata | ({SHA256_METADATA: sha256} if sha256 else {})


def vouched_by_metadata(head: dict[str, Any], key: str) -> bool:
    """Whether a content-keyed object's metadata says it holds the bytes its key names (an
    object overwritten by another tool carries no such metadata). Keys that name no digest
    (data already in S3) have nothing to vouch for: True."""
    named = sha256_of_key(key)
    if named is None:
        return True
    stored = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}.get(SHA256_METADATA)
    return stored == named


def pack_directory(source: Path, out: IO[bytes]) -> None:
    """Write ``source``'s files to ``out`` as a tar that depends only on names and bytes.

    Members are relative to ``source``, sorted, with times, owners and modes normalised, so
    packing the same directory twice (or a copy of it) gives the same bytes and digest.
    Symbolic links and special files are refused: a Measurement Set or an MWA file set holds
    regular files, and a link would point outside what is uploaded.
    """
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(source.rglob("*"), key=lambda p: p.relative_to(source).as_posix()):
            name = path.relative_to(source).as_posix()
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                raise ValueError(f"{path}: only regular files and folders can be submitted")
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            info.size, info.mode = path.stat().st_size, 0o644
            with path.open("rb") as stream:
                tar.addfile(info, stream)


def restore(
    store: InputStore, key: str, dest_dir: Path, *, uri: str, if_match: str | None = None
) -> Path:
    """Download ``key`` into ``dest_dir`` under its original name; unpack a directory.

    An object without spotcube's metadata (an ``s3://`` URI of data already in S3) keeps the
    last part of its key as its name. A content key is checked against its digest on the
    way down; ``if_match`` (an ETag) refuses an object replaced since it was identified.

    Raises
    ------
    InvalidInputError
        If the object does not exist, or its archive is damaged or tries to write outside
        its directory (never retried: the bytes will not change).
    """
    head = store.head(key)
    if head is None:
        raise InvalidInputError(f"input {uri} does not exist")
    name, form = stored_name_and_form(head, key)
    target = dest_dir / name
    if form != FORM_TAR:
        return store.download_file(
            key, target, sha256=sha256_of_key(key), if_match=if_match, is_input=True
        )
    archive = store.download_file(
        key,
        dest_dir / f".{name}.tar",
        sha256=sha256_of_key(key),
        if_match=if_match,
        is_input=True,
    )
    partial = dest_dir / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with tarfile.open(archive, mode="r:") as tar:
            # The "data" filter refuses absolute names, "..", links leaving the folder and
            # device files (PEP 706): an archive cannot write outside ``partial``.
            tar.extractall(partial, filter="data")
    except tarfile.TarError as exc:  # damaged or hostile; OSError (a full disk) is transient
        shutil.rmtree(partial, ignore_errors=True)
        raise InvalidInputError(f"input {uri} is not a usable folder archive: {exc}") from None
    finally:
        archive.unlink(missing_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return target


def stored_name_and_form(head: dict[str, Any], key: str) -> tuple[str, str]:
    """The original name (a plain file name) and form (file or tar) of a stored input, from
    its HEAD; an object without spotcube's metadata keeps the last part of its key."""
    metadata = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    name = _safe_name(metadata.get(NAME_METADATA), fallback=key.rsplit("/", 1)[-1] or "input")
    return name, FORM_TAR if metadata.get(FORM_METADATA) == FORM_TAR else FORM_FILE


def _safe_name(encoded: str | None, *, fallback: str) -> str:
    """The original name from metadata if it is one plain path component, else ``fallback``."""
    if not encoded:
        return fallback
    name = urllib.parse.unquote(encoded)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return fallback
    return name
