"""What ``python -m payload image`` says while it writes the products, and when the power
spectrum cannot be estimated (issue 23's silent "writing products 1/1"; issue 19's NaN bins
for a one-integration file, reported by the real-data comparison)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from payload.cli import main
from payload.jobs.image import COMBINE_STEPS, ImageJob
from payload.synth import write_synthetic_observation

from .conftest import Observation

SMALL = ["--image-size", "64", "--chunk-channels", "4"]


def test_every_step_of_combine_is_reported_once(
    tiny_obs: Observation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step of COMBINE_STEPS reaches ``on_step`` once, whichever thread finishes it."""
    seen: list[str] = []
    real_combine = ImageJob.combine

    def recording_combine(self: ImageJob, chunk_paths: object, out_dir: Path) -> list[Path]:
        chained = self.on_step

        def both(step: str) -> None:
            seen.append(step)
            chained(step)

        self.on_step = both
        return real_combine(self, chunk_paths, out_dir)  # type: ignore[arg-type]

    monkeypatch.setattr(ImageJob, "combine", recording_combine)
    assert main(["image", str(tiny_obs.path), "--out", str(tmp_path), *SMALL]) == 0
    assert sorted(seen) == sorted(COMBINE_STEPS)
    assert seen[0] == "chunks read"
    assert seen[-1] == "provenance"


def test_one_time_sample_gives_images_and_says_why_there_is_no_power_spectrum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A snapshot of one integration (pyuvdata's MWA Measurement Set is one) images as any
    other, but has no odd half: the power spectrum says it was not estimated, in the
    summary, provenance.json and powerspec.h5, instead of a file of NaN bins and silence."""
    path = tmp_path / "snapshot.uvh5"
    write_synthetic_observation(path, n_tiles=16, n_freqs=8, n_times=1, noise_jy=1.0)
    out = tmp_path / "products"
    assert main(["image", str(path), "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed[printed.index("{\n") :])
    assert summary["power_spectrum"].startswith("not estimated")
    assert "1 time sample" in summary["power_spectrum"]
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["power_spectrum"] == summary["power_spectrum"]
    with h5py.File(out / "powerspec.h5", "r") as handle:
        assert handle.attrs["not_estimated"] == summary["power_spectrum"]
        assert not np.isfinite(handle["p_sph"][()]).any()
    assert (out / "image_cube.fits").stat().st_size > 0  # the images are there


def test_a_power_spectrum_that_was_estimated_says_nothing(
    tiny_obs: Observation, tmp_path: Path
) -> None:
    assert main(["image", str(tiny_obs.path), "--out", str(tmp_path), "--quiet", *SMALL]) == 0
    assert "power_spectrum" not in json.loads((tmp_path / "provenance.json").read_text())
    with h5py.File(tmp_path / "powerspec.h5", "r") as handle:
        assert "not_estimated" not in handle.attrs
