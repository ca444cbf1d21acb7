"""Compare the products of two runs of the same observations, byte for byte.

``spotcube demo`` runs its observations twice, once on an interrupted spot fleet and once
uninterrupted, and uses this to prove resumed work gives the same answer: every product's
sha256 must match, except where provenance names the machine or run that made it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from contract.layout import ObsLayout
from payload.records import DoneRecord
from spotcube.stack import StackOutputs

# Keys of provenance.json that name where a product was made rather than what it is; they
# differ between the interrupted run and its reference by design.
VOLATILE_PROVENANCE_KEYS = frozenset(
    {"instance_id", "instance_type", "availability_zone", "ami_id", "hostname", "run_id"}
)
# Products whose JSON is compared without the volatile keys above (all else byte for byte).
PROVENANCE_FILES = frozenset({"provenance.json"})


def _product_keys(s3: Any, bucket: str, layout: ObsLayout) -> dict[str, str]:
    """Product name -> key, as the observation's ``DONE`` lists them (none without ``DONE``).

    Never a listing of a prefix: an attempt that lost the ``DONE`` race, or was killed before
    it, may have left objects that are not the observation's products.
    """
    try:
        raw = s3.get_object(Bucket=bucket, Key=layout.done)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return {}
    done = DoneRecord.from_json(raw, what=f"s3://{bucket}/{layout.done}")
    return {name: key for name in done.products if (key := done.product_key(name)) is not None}


def _strip_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_volatile(v) for k, v in value.items() if k not in VOLATILE_PROVENANCE_KEYS
        }
    if isinstance(value, list):
        return [_strip_volatile(v) for v in value]
    return value


def product_digest(name: str, data: bytes) -> str:
    """sha256 of a product as compared: provenance files without instance/run fields."""
    if name in PROVENANCE_FILES:
        data = json.dumps(_strip_volatile(json.loads(data)), sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()


def download_and_verify(
    outputs: StackOutputs,
    run_id: str,
    reference_run_id: str,
    obs_ids: Sequence[str],
    dest: Path,
) -> dict[str, dict[str, Any]]:
    """Download ``run_id``'s products to ``dest/<obs>/`` and compare them with the reference.

    Returns, per observation, each product's size, sha256 and whether it matches the
    reference product of the same name.
    """
    s3 = outputs.client("s3")
    bucket = outputs.products_bucket
    result: dict[str, dict[str, Any]] = {}
    for obs_id in obs_ids:
        ours = _product_keys(s3, bucket, ObsLayout(run_id, obs_id))
        theirs = _product_keys(s3, bucket, ObsLayout(reference_run_id, obs_id))
        products: dict[str, Any] = {}
        for name in sorted(set(ours) | set(theirs)):
            entry: dict[str, Any] = {"identical": False}
            if name in ours:
                data = s3.get_object(Bucket=bucket, Key=ours[name])["Body"].read()
                path = dest / obs_id / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                entry |= {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                if name in theirs:
                    ref = s3.get_object(Bucket=bucket, Key=theirs[name])["Body"].read()
                    entry["identical"] = product_digest(name, data) == product_digest(name, ref)
            else:
                entry["missing"] = "only in the reference run"
            products[name] = entry
        result[obs_id] = products
    return result
