"""Did the interrupted run give the same answer as the reference? Read through ``DONE`` only.

``DONE`` is the commit point (DESIGN.md, Contracts): it names the products of the one attempt
that won, with their keys and sha256, and the instance that wrote it. Products are read only
through it, never by listing a ``products/`` prefix, so a loser's leftovers or a prefix layout
of another payload version cannot be taken for a product.

An observation of the spot run is *verified* when, and only when:

1. its ``DONE`` exists and was written by an instance of the spot phase (an instance the
   interrupted fleet launched), so the claim is about resumed spot work and not about work
   some other fleet finished;
2. the reference run's ``DONE`` exists too;
3. both list the same product names, every product's bytes match the sha256 its ``DONE``
   lists, and each equals the reference's (:func:`spotcube.compare.product_digest`:
   provenance without instance and run fields).

The first failed condition is the observation's ``reason``; an empty reason is the only way
to be verified, so a report cannot say "identical" next to a reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from contract.layout import ObsLayout
from payload.errors import InvalidInputError
from payload.records import OMIT_NONE, DoneRecord, ProductEntry
from spotcube.compare import product_digest
from spotcube.runstate import read_object
from spotcube.stack import StackOutputs


@dataclass(frozen=True)
class ProductComparison:
    """One product of the spot run against the reference's product of the same name.

    ``size`` and ``sha256`` are of the spot run's bytes, when they could be read; ``missing``
    says which run alone has the product. Keys without a value are left out of report.json.
    """

    identical: bool = False
    size: int | None = field(default=None, metadata=OMIT_NONE)
    sha256: str | None = field(default=None, metadata=OMIT_NONE)
    missing: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class ObsVerdict:
    """One observation of the spot run against the reference."""

    obs_id: str
    done_by: str | None  # instance id in the spot run's DONE (None: no DONE)
    from_spot_phase: bool
    products: dict[str, ProductComparison] = field(default_factory=dict)
    reason: str = ""  # empty: verified

    @property
    def verified(self) -> bool:
        return not self.reason


def read_done(s3: Any, bucket: str, run_id: str, obs_id: str) -> DoneRecord | None:
    """The observation's DONE record, or None when it has none (or an unreadable one)."""
    body = read_object(s3, bucket, ObsLayout(run_id, obs_id).done)
    if body is None:
        return None
    try:
        return DoneRecord.from_json(body, what=f"DONE of {run_id}/{obs_id}")
    except InvalidInputError:
        return None


def _product_bytes(s3: Any, bucket: str, entry: ProductEntry) -> bytes | None:
    return read_object(s3, bucket, entry.key)


def verify_observation(
    s3: Any,
    bucket: str,
    run_id: str,
    reference_run_id: str,
    obs_id: str,
    spot_instances: Collection[str],
    dest: Path | None = None,
) -> ObsVerdict:
    """Check one observation (module docstring); write its products to ``dest/<obs>/``."""
    ours = read_done(s3, bucket, run_id, obs_id)
    if ours is None:
        return ObsVerdict(obs_id, None, False, reason="no DONE in the spot run")
    from_spot = ours.instance_id in spot_instances
    products: dict[str, ProductComparison] = {}
    reasons: list[str] = []
    if not from_spot:
        reasons.append(f"DONE written by {ours.instance_id}, not by an instance of the spot phase")
    theirs = read_done(s3, bucket, reference_run_id, obs_id)
    if theirs is None:
        reasons.append("no DONE in the reference run")
    if not ours.products:
        reasons.append("DONE lists no products")
    for name in sorted(set(ours.products) | set(theirs.products if theirs else {})):
        products[name], reason = _compare_product(s3, bucket, name, ours, theirs, obs_id, dest)
        if reason:
            reasons.append(reason)
    return ObsVerdict(obs_id, ours.instance_id, from_spot, products, "; ".join(reasons))


def _compare_product(
    s3: Any,
    bucket: str,
    name: str,
    ours: DoneRecord,
    theirs: DoneRecord | None,
    obs_id: str,
    dest: Path | None,
) -> tuple[ProductComparison, str]:
    """Product ``name`` of the spot run against the reference, and what is wrong ("": nothing)."""
    if name not in ours.products:
        missing = ProductComparison(missing="only in the reference run")
        return missing, f"{name} only in the reference run"
    listed = ours.products[name]
    data = _product_bytes(s3, bucket, listed)
    if data is None:
        return ProductComparison(), f"{name}: its DONE names {listed.key!r}, which is not there"
    digest = hashlib.sha256(data).hexdigest()
    read = ProductComparison(size=len(data), sha256=digest)
    if dest is not None:
        path = dest / obs_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if digest != listed.sha256:
        return read, f"{name}: bytes do not match the sha256 its DONE lists"
    if theirs is None:
        return read, ""
    if name not in theirs.products:
        return replace(read, missing="only in the spot run"), f"{name} only in the spot run"
    ref = _product_bytes(s3, bucket, theirs.products[name])
    identical = ref is not None and product_digest(name, data) == product_digest(name, ref)
    reason = "" if identical else f"{name} differs from the reference"
    return replace(read, identical=identical), reason


def verify_run(
    outputs: StackOutputs,
    run_id: str,
    reference_run_id: str,
    obs_ids: Sequence[str],
    spot_instances: Collection[str],
    dest: Path | None = None,
) -> list[ObsVerdict]:
    """:func:`verify_observation` for every observation, in order."""
    s3 = outputs.client("s3")
    return [
        verify_observation(
            s3, outputs.products_bucket, run_id, reference_run_id, o, spot_instances, dest
        )
        for o in obs_ids
    ]
