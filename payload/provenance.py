"""Provenance recorded in every product.

FITS headers and HDF5 attributes carry job-level facts only (payload version, params hash,
input identity, git commit, AMI id), so products of an interrupted and resumed job are
byte-identical to an uninterrupted run. The instance id differs between attempts and goes
only into ``provenance.json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from payload import __version__
from payload.codeid import current_code_identity

_UNKNOWN = "unknown"
CODE_ID = current_code_identity()


def local_git_commit() -> str:
    """Commit of the payload's source tree when it is a git checkout, else ``unknown``."""
    root = Path(__file__).resolve().parent.parent
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return _UNKNOWN
    return result.stdout.strip() if result.returncode == 0 else _UNKNOWN


IMAGE_METADATA = Path("/etc/spotcube/image.json")  # written by the ansible payload role


@functools.cache
def payload_git_commit() -> str:
    """Commit the running payload was built from: the baked image's record, else git."""
    try:
        commit = json.loads(IMAGE_METADATA.read_text()).get("git_commit")
    except (OSError, ValueError, AttributeError):
        commit = None
    return commit if isinstance(commit, str) and commit else local_git_commit()


def file_identity(path: Path) -> dict[str, Any]:
    """sha256 and size of a file, or of a directory's files (a Measurement Set)."""
    digest = hashlib.sha256()
    size = 0
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            # file_digest feeds the running digest (it calls the factory once), so a
            # folder's identity stays one hash over its names and bytes, as before.
            hashlib.file_digest(handle, lambda: digest)
            size += handle.tell()
    return {"name": path.name, "size": size, "sha256": digest.hexdigest()}


def job_provenance(
    context_provenance: Mapping[str, str], *, params_hash: str, kind: str
) -> dict[str, str]:
    """Job-level provenance: the same for every attempt at a job."""
    return {
        "payload_version": __version__,
        # What tells two codes apart (payload.codeid); the version string alone does not.
        "code_id": CODE_ID,
        "job_kind": kind,
        "params_hash": params_hash,
        "input_identity": context_provenance.get("input_identity", _UNKNOWN),
        "git_commit": context_provenance.get("git_commit", _UNKNOWN),
        "ami_id": context_provenance.get("ami_id", _UNKNOWN),
    }


def fits_cards(provenance: Mapping[str, str]) -> dict[str, Any]:
    """FITS cards for provenance (long strings become CONTINUE cards)."""
    return {
        "ORIGIN": "spotcube",
        "PAYLVER": provenance["payload_version"],
        "PARAMHSH": provenance["params_hash"],
        "GITCOMMT": provenance["git_commit"],
        "AMI_ID": provenance["ami_id"],
        "INPUTID": provenance["input_identity"],
    }


def hdf5_attrs(provenance: Mapping[str, str]) -> dict[str, str]:
    """HDF5 attributes for provenance (prefixed so they cannot clash)."""
    return {f"provenance_{key}": value for key, value in provenance.items()}


def write_provenance_json(
    path: Path,
    provenance: Mapping[str, str],
    *,
    instance_id: str,
    params: Mapping[str, Any],
    products: list[str],
    flagged: Mapping[str, int] | None = None,
) -> None:
    """``provenance.json``: job provenance, params, products, and the instance id.

    ``flagged`` counts the visibilities the rule for values flagged (docs/imaging.md,
    "Values"), by reason.
    """
    doc = {
        # FITS cards and HDF5 attributes need strings; JSON keeps JSON values as values
        **{key: _json_value(value) for key, value in provenance.items()},
        "params": dict(params),
        "products": products,
        "instance_id": instance_id,
        **({"flagged_by_value_rule": dict(flagged)} if flagged is not None else {}),
    }
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def _json_value(value: Any) -> Any:
    """A provenance string that holds a JSON object or list, as that object or list."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
