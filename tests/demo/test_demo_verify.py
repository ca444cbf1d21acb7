"""``verified_identical`` is true only for products of the spot phase equal to the reference's.

A generator builds runs in the products bucket as the worker leaves them (DONE records that
list product keys and sha256, written by some instance) and damages them in each way the
issue found or could find: DONE missing, DONE written by an instance the spot fleet never
launched (the reference took the job over), a product that differs, is missing on one side,
or whose bytes do not match its DONE. The property: an observation is verified exactly when
none of these happened, and every unverified one names a reason.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.layout import ObsLayout
from payload.records import DoneRecord, ProductEntry
from spotcube.demoverify import verify_run
from spotcube.local.cloud import provision

_RUNS = itertools.count()
SPOT = {"i-spot1", "i-spot2"}
DAMAGES = (
    "none",
    "no-done",
    "foreign-writer",
    "differs",
    "only-in-ref",
    "only-in-spot",
    "bad-sha",
    "no-ref-done",
)


def _put_run(
    s3: Any, bucket: str, run: str, obs: str, products: dict[str, bytes], writer: str
) -> None:
    listing = {}
    for name, body in products.items():
        key = f"{ObsLayout(run, obs).prefix}attempts/{writer}/products/{name}"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        digest = hashlib.sha256(body).hexdigest()
        listing[name] = ProductEntry(key=key, size=len(body), sha256=digest)
    done = DoneRecord(run, obs, "h", listing, writer, "2026-01-01T00:00:00Z")
    s3.put_object(Bucket=bucket, Key=ObsLayout(run, obs).done, Body=done.to_json())


def _provenance(instance: str, run: str) -> bytes:
    return json.dumps({"instance_id": instance, "run_id": run, "code": "x"}).encode()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(damages=st.lists(st.sampled_from(DAMAGES), min_size=1, max_size=4))
def test_verified_exactly_when_nothing_is_wrong(
    cloud: str, tmp_path: Path, damages: list[str]
) -> None:
    outputs = provision(cloud)
    s3 = outputs.client("s3")
    bucket = outputs.products_bucket
    # the bucket outlives hypothesis's examples: each example writes a run of its own
    run = f"run{next(_RUNS)}"
    ref = f"{run}-reference"
    obs_ids = [f"o{i}" for i in range(len(damages))]
    for obs, damage in zip(obs_ids, damages, strict=True):
        # provenance differs in instance and run by design: it must not count as a difference
        base = {"image.fits": f"pixels {obs}".encode(), "provenance.json": b""}
        ours = base | {"provenance.json": _provenance("i-spot1", run)}
        theirs = base | {"provenance.json": _provenance("i-ref", ref)}
        if damage == "differs":
            ours["image.fits"] += b"!"
        elif damage == "only-in-ref":
            del ours["image.fits"]
        elif damage == "only-in-spot":
            del theirs["image.fits"]
        writer = "i-ref-worker" if damage == "foreign-writer" else "i-spot2"
        if damage != "no-done":
            _put_run(s3, bucket, run, obs, ours, writer)
        if damage != "no-ref-done":
            _put_run(s3, bucket, ref, obs, theirs, "i-ref")
        if damage == "bad-sha":
            key = f"{ObsLayout(run, obs).prefix}attempts/{writer}/products/image.fits"
            s3.put_object(Bucket=bucket, Key=key, Body=b"overwritten after DONE")
    verdicts = verify_run(outputs, run, ref, obs_ids, SPOT, tmp_path / run)
    for verdict, damage in zip(verdicts, damages, strict=True):
        assert verdict.verified == (damage == "none"), (damage, verdict)
        assert bool(verdict.reason) == (damage != "none")
        assert verdict.from_spot_phase == (damage not in ("no-done", "foreign-writer"))
    for verdict, damage in zip(verdicts, damages, strict=True):
        if damage == "none":
            written = tmp_path / run / verdict.obs_id / "image.fits"
            assert written.read_bytes() == f"pixels {verdict.obs_id}".encode()


def test_products_are_read_through_done_not_by_listing(cloud: str, tmp_path: Path) -> None:
    """A stray object under products/ (a losing attempt's leftovers) is not a product."""
    outputs = provision(cloud)
    s3 = outputs.client("s3")
    bucket = outputs.products_bucket
    _put_run(s3, bucket, "r", "o", {"image.fits": b"a"}, "i-spot1")
    _put_run(s3, bucket, "r-ref", "o", {"image.fits": b"a"}, "i-ref")
    s3.put_object(Bucket=bucket, Key=ObsLayout("r", "o").product("stray.fits"), Body=b"zz")
    (verdict,) = verify_run(outputs, "r", "r-ref", ["o"], SPOT, tmp_path)
    assert verdict.verified
    assert set(verdict.products) == {"image.fits"}
