"""The demo's default job kind, ``image``, on the tiny synthetic preset: real imaging products.

Checks what the selftest run cannot: products of the imaging job compare equal across runs
once provenance.json's instance and run fields are set aside, and the figures are copied.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spotcube.cli import main

pytestmark = pytest.mark.slow


def test_image_demo_on_the_tiny_preset(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--preset", "tiny", "--observations", "1"]
    argv += ["--workers", "1", "--reference-workers", "1", "--interrupt-rate", "0%/h"]
    assert main([*argv, "--timeout", "240"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert (report["kind"], report["done"], report["instances_reclaimed"]) == ("image", 1, 0)
    assert report["verified_identical"] is True
    (obs,) = report["per_observation"]
    assert {"image_cube.fits", "powerspec.h5", "provenance.json"} <= set(obs["products"])
    provenance = json.loads((out / "products" / obs["obs_id"] / "provenance.json").read_text())
    # the products do record where they ran; only the comparison sets that aside
    assert provenance["instance_id"] == obs["instances"][0]
    for figure in ("timeline.png", "image.png", "powerspec.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"
