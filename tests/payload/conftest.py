"""Session fixtures of the payload science tests: synthetic data and products, built once.

Each fixture writes into its own session directory; tests that modify files copy them first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.wcs import WCS

from payload.fitsio import celestial_header
from payload.jobs.base import JobContext
from payload.jobs.image import ImageJob
from payload.records import JobMessage
from payload.synth import PointSource, SynthMetadata, field_center, write_preset
from payload.synth import write_synthetic_observation as write_obs

LOCAL = "s3://local/"
PROVENANCE = {
    "input_identity": '{"name":"test","sha256":"0"}',
    "git_commit": "test-commit",
    "ami_id": "ami-test",
    "instance_id": "i-0instanceonly",
}

# The science observation: 128 MWA Phase I tiles, 30 degrees from zenith (|w| ~ 600
# wavelengths), imaged on a fixed grid so sources can sit on known pixels.
SCIENCE_NPIX = 512
SCIENCE_PIXEL_ARCSEC = 40.0
SCIENCE_FREQ = dict(n_freqs=4, start_freq_hz=167.035e6, channel_width_hz=1.0e6)
# (x, y) FITS pixels (0-based) of the sources and their fluxes: on pixel centres, up to
# ~2.8 degrees out where a wrong w term costs more than 1% of the flux.
SCIENCE_PIXELS = ((130, 210, 2.0), (400, 330, 3.0), (250, 470, 1.5), (60, 60, 2.5))


def fetch_local(uri: str) -> Path:
    return Path("/" + uri[len(LOCAL) :])


def make_context(
    path: Path,
    params: Mapping[str, Any],
    workdir: Path,
    *,
    kind: str = "image",
    provenance: Mapping[str, str] = PROVENANCE,
) -> JobContext:
    """A job context for a local file, with fixed provenance."""
    message = JobMessage.create(
        run_id="test", obs_id="obs", input=LOCAL + str(path).lstrip("/"), kind=kind, params=params
    )
    return JobContext(message=message, workdir=workdir, fetch=fetch_local, provenance=provenance)


def run_job(job: Any, chunk_dir: Path, out_dir: Path) -> list[Path]:
    """Run every chunk of ``job`` into ``chunk_dir`` and combine into ``out_dir``."""
    paths = {c: chunk_dir / f"{c}.{job.chunk_suffix}" for c in job.chunk_ids()}
    for chunk_id, path in paths.items():
        job.run_chunk(chunk_id, path)
    products: list[Path] = job.combine(paths, out_dir)
    return products


@dataclass(frozen=True)
class Observation:
    path: Path
    meta: SynthMetadata
    params: dict[str, Any]


def science_wcs(ra0: float, dec0: float) -> WCS:
    header = celestial_header(
        npix=SCIENCE_NPIX,
        pixsize_rad=math.radians(SCIENCE_PIXEL_ARCSEC / 3600),
        ra_deg=ra0,
        dec_deg=dec0,
        freq_hz=np.asarray([167.035e6, 168.035e6]),
        polarization="I",
        bunit="Jy/beam",
    )
    return WCS(header).celestial


@pytest.fixture(scope="session")
def tiny_obs(tmp_path_factory: pytest.TempPathFactory) -> Observation:
    path = tmp_path_factory.mktemp("tiny") / "tiny.uvh5"
    meta = write_preset(path, "tiny", noise_jy=0.05, seed=3)
    return Observation(path, meta, {"chunk_channels": 4, "image_size": 64})


@pytest.fixture(scope="session")
def science_obs(tmp_path_factory: pytest.TempPathFactory) -> Observation:
    ra0, dec0 = field_center()
    wcs = science_wcs(ra0, dec0)
    sources = []
    for x, y, flux in SCIENCE_PIXELS:
        ra, dec = wcs.all_pix2world(x, y, 0)
        sources.append(PointSource(float(ra), float(dec), flux))
    path = tmp_path_factory.mktemp("science") / "science.uvh5"
    meta = write_obs(path, n_tiles=128, n_times=2, sources=sources, **SCIENCE_FREQ)  # type: ignore[arg-type]
    params = {
        "chunk_channels": 2,
        "image_size": SCIENCE_NPIX,
        "pixel_scale_arcsec": SCIENCE_PIXEL_ARCSEC,
    }
    return Observation(path, meta, params)


@pytest.fixture(scope="session")
def science_products(
    science_obs: Observation, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("science-products")
    job = ImageJob(make_context(science_obs.path, science_obs.params, root / "work"))
    products = run_job(job, root / "chunks", root / "out")
    return {p.name: p for p in products}


@pytest.fixture(scope="session")
def tiny_products(
    tiny_obs: Observation, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-products")
    job = ImageJob(make_context(tiny_obs.path, tiny_obs.params, root / "work"))
    products = run_job(job, root / "chunks", root / "out")
    return {p.name: p for p in products}


@pytest.fixture(scope="session")
def wideband_obs(tmp_path_factory: pytest.TempPathFactory) -> Observation:
    """32 tiles over 32 MHz: long enough a band for the wedge to be many delay bins deep."""
    path = tmp_path_factory.mktemp("wide") / "wide.uvh5"
    meta = write_obs(
        path, n_tiles=32, n_freqs=32, n_times=2, channel_width_hz=1.0e6, start_freq_hz=150e6
    )
    return Observation(path, meta, {"chunk_channels": 16, "image_size": 64, "polarizations": ["I"]})


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    """Copy a session file into the test's own directory."""

    def copy(path: Path) -> Path:
        target = tmp_path / path.name
        target.write_bytes(path.read_bytes())
        return target

    return copy
