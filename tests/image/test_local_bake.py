"""The local bake itself: idempotent roles, a no-op that rebuilds nothing, a tarball whose
metadata is right."""

from __future__ import annotations

import hashlib

import pytest

from spotcube.bake.contenthash import image_name
from spotcube.bake.provenance import BakeInputs, repo_root
from tests.image.conftest import LocalBake

# The first test of a session pays for the bake (minutes on a cold cache).
pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]


def test_second_playbook_run_changes_nothing(local_bake: LocalBake) -> None:
    recap = local_bake.metadata["idempotence"]
    assert recap is not None, "the session bake ran without --check-idempotence"
    assert recap["changed"] == 0
    assert recap["failed"] == 0


def test_noop_bake_says_so_and_rebuilds_nothing(local_bake: LocalBake) -> None:
    if local_bake.noop_output is None or local_bake.noop_rewrote is None:
        pytest.skip("the tree changed during the session, so a rebake was due, not a no-op")
    assert "up to date" in local_bake.noop_output
    assert "nothing to bake" in local_bake.noop_output
    # What made it quick, not how quick it was: no bake log, metadata, tarball or image
    # provenance written (a bake that does work starts by rewriting bake.log).
    assert local_bake.noop_rewrote == []


def test_metadata_carries_the_tree_hash_and_pins(local_bake: LocalBake) -> None:
    inputs = BakeInputs.read(repo_root())
    metadata = local_bake.metadata
    assert metadata["content_hash"] == local_bake.tree_hash
    assert metadata["image_name"] == image_name(inputs.payload_version, local_bake.tree_hash)
    assert metadata["numpy_version"] == inputs.versions["numpy"]
    assert metadata["pyuvdata_version"] == inputs.versions["pyuvdata"]
    assert metadata["ducc0_version"] == inputs.versions["ducc0"]
    assert "python3-venv" in metadata["base"]["packages"]


def test_tarball_matches_metadata(local_bake: LocalBake) -> None:
    tarball = local_bake.rootfs.parent / local_bake.metadata["tarball"]
    digest = hashlib.sha256()
    with tarball.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    assert digest.hexdigest() == local_bake.metadata["tarball_sha256"]
    assert tarball.stat().st_size == local_bake.metadata["tarball_bytes"]
