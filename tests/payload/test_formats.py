"""Formats other than uvh5 are read once, converted, and image like the uvh5 original."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from payload.jobs.image import ImageJob
from payload.reading import UVData
from payload.sites import install_offline_sites

from .conftest import Observation, make_context, run_job


def _write(source: Path, target: Path, kind: str) -> None:
    uvd = UVData()
    uvd.read(str(source))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "uvfits":
            uvd.write_uvfits(str(target))
        else:
            pytest.importorskip("casacore.tables", reason="python-casacore writes the MS")
            uvd.write_ms(str(target))


@pytest.mark.parametrize("kind", ["uvfits", "ms"])
def test_other_formats_image_like_uvh5(
    tiny_obs: Observation, tiny_products: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    path = tmp_path / f"tiny.{kind}"
    _write(tiny_obs.path, path, kind)
    job = ImageJob(make_context(path, tiny_obs.params, tmp_path / "work"))
    products = {p.name: p for p in run_job(job, tmp_path / "chunks", tmp_path / "out")}
    with (
        fits.open(products["image_cube.fits"]) as ours,
        fits.open(tiny_products["image_cube.fits"]) as ref,
    ):
        for a, b in zip(ours, ref, strict=True):
            scale = np.abs(b.data).max()
            np.testing.assert_allclose(a.data, b.data, atol=1e-4 * scale)
            assert a.header["CRVAL1"] == pytest.approx(b.header["CRVAL1"], abs=1e-6)
    # converted once into the job's cache, then split into chunks from there
    assert len(list((tmp_path / "work" / "input-cache").glob("*.uvh5"))) == 1


def test_mwa_site_is_known_offline() -> None:
    from astropy.coordinates import EarthLocation

    install_offline_sites()
    site = EarthLocation.of_site("mwa")
    assert site.lat.deg == pytest.approx(-26.703, abs=1e-3)


def test_drift_scan_data_are_imaged_at_zenith(tiny_obs: Observation, tmp_path: Path) -> None:
    uvd = UVData()
    uvd.read(str(tiny_obs.path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd.unproject_phase()
        uvd.write_uvh5(str(tmp_path / "drift.uvh5"))
    job = ImageJob(make_context(tmp_path / "drift.uvh5", tiny_obs.params, tmp_path / "work"))
    assert not job.info.projected
    products = {p.name: p for p in run_job(job, tmp_path / "chunks", tmp_path / "out")}
    with fits.open(products["image_cube.fits"]) as hdul:
        # the MWA is at latitude -26.7: the zenith's declination, to precession
        assert hdul[0].header["CRVAL2"] == pytest.approx(-26.7, abs=0.3)
