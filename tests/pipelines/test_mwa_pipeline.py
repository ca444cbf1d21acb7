"""The example flag–calibrate–image pipeline on a real MWA Measurement Set, through reclamation.

``examples/mwa-pipeline`` runs AOFlagger (mwa-default strategy), DP3 (average, DDECal gain
solutions against a Fornax A model, applycal) and WSClean as a ``command`` job. Run by
``spotcube demo --job`` on the local cloud with spot notices and SIGKILLs at the deadlines,
its FITS images must equal, byte for byte, those of the same Makefile run once in a plain
folder with no cloud at all. Byte equality is possible because every tool runs with one
thread (``-j 1``, ``numthreads=1``, ``OPENBLAS_NUM_THREADS=1``): with threads WSClean's
gridding and DP3's solver sum in an order that changes from run to run. The FITS headers
carry WSClean's command line as HISTORY; it is the same in both runs (relative names only).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from spotcube.demo import DemoOptions, run_demo
from spotcube.spotsim import hazard_from_percent
from tests.pipelines.conftest import tool_path

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "examples" / "mwa-pipeline"
IMAGES = ("mwa-dirty.fits", "mwa-image.fits", "mwa-model.fits", "mwa-psf.fits", "mwa-residual.fits")


def run_make(workdir: Path, ms: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(PIPELINE / "Makefile"), f"INPUT={ms}", *targets],
        cwd=workdir,
        env={**os.environ, "PATH": tool_path()},
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def uninterrupted(
    radio_tools: dict[str, str], mwa_ms: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The pipeline run once, start to end, in a plain folder: the reference products."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    result = run_make(workdir, mwa_ms)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_pipeline_images_fornax_a(uninterrupted: Path) -> None:
    """A science sanity check: the brightest pixel of the restored image is Fornax A.

    Fornax A is the phase centre of 1102865728 and the only source of the calibration model;
    at 10' pixels it falls within a few pixels of the image centre. The image must also be
    finite and not a copy of the model (the residual is not zero).
    """
    from astropy.io import fits

    image = fits.getdata(uninterrupted / "products" / "mwa-image.fits").squeeze()
    residual = fits.getdata(uninterrupted / "products" / "mwa-residual.fits").squeeze()
    assert np.isfinite(image).all()
    peak = np.unravel_index(np.argmax(image), image.shape)
    centre = np.array(image.shape) // 2
    assert np.abs(np.array(peak) - centre).max() <= 3, (peak, centre)
    assert np.abs(residual).max() > 0


@pytest.mark.slow
def test_steps_with_complete_outputs_are_skipped(uninterrupted: Path) -> None:
    """A second make in the finished folder runs nothing; a missing stamp reruns that step only."""
    again = run_make(uninterrupted, Path("/nonexistent.ms"), "-n")
    assert again.returncode == 0
    assert again.stdout.strip() == "", again.stdout
    (uninterrupted / "image.done").unlink()
    rerun = run_make(uninterrupted, Path("/nonexistent.ms"), "-n")
    assert "wsclean" in rerun.stdout
    assert "DP3" not in rerun.stdout
    assert "aoflagger" not in rerun.stdout
    (uninterrupted / "image.done").touch()


@pytest.mark.slow
def test_pipeline_survives_reclamation_with_identical_images(
    uninterrupted: Path, mwa_ms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``spotcube demo --job``: notices and SIGKILLs while the tools run; same FITS bytes.

    One worker at 60 %/h on a clock 2400 times faster than the wall clock: an instance
    lives about 1.5 s of wall clock on average before its notice, and the seeded draws
    notice the first instance while its pipeline runs. The job is interrupted, resumed on
    replacements from the synced stamps, and finishes; the demo's own uninterrupted run on
    the local cloud and the plain run above must agree with it byte for byte.
    """
    out = tmp_path / "demo"
    options = DemoOptions(
        out=out,
        workers=1,
        inputs=(mwa_ms,),
        kind="command",
        job=PIPELINE / "job.json",
        interrupt_rate=hazard_from_percent(60.0),
        speedup=2400.0,
        seed=3,
        min_notice_real=3.0,
        reference_workers=1,
        timeout=900.0,
    )
    monkeypatch.setenv("PATH", tool_path())  # the local instances find DP3.py in this venv
    report = run_demo(options)
    assert report["done"] == report["observations"] == 1, json.dumps(report, indent=1)[:3000]
    assert report["verified_identical"]
    obs = report["per_observation"][0]
    assert obs["interruptions"] >= 1, obs  # the job itself was interrupted, not an idle worker
    reasons = obs["attempts"]
    products = out / "products" / obs["obs_id"]
    for name in IMAGES:
        assert (products / name).read_bytes() == (uninterrupted / "products" / name).read_bytes(), (
            name,
            reasons,
        )
