"""The byte layout that lets ``combine`` copy chunk images into the FITS products."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from payload.fitsio import (
    FileSegment,
    Segment,
    celestial_header,
    image_to_fits_order,
    write_cube,
)
from payload.imaging import ImageGeometry, image_chunk
from payload.jobs.image import ImageJob
from payload.params import ImagingParams
from payload.reading import read_chunk, read_info

from .conftest import Observation, make_context

FREQ = np.asarray([150e6, 151e6, 152e6])
COMMON: dict[str, Any] = {
    "npix": 8,
    "pixsize_rad": 1e-3,
    "ra_deg": 10.0,
    "dec_deg": -27.0,
    "freq_hz": FREQ,
    "frame": "icrs",
}


def test_write_cube_equals_astropy_writeto(tmp_path: Path) -> None:
    """Header, data and padding from file ranges and arrays equal astropy's own writer."""
    rng = np.random.default_rng(1)
    cubes = {pol: rng.normal(size=(3, 8, 8)).astype(np.float32) for pol in ("XX", "I")}
    # The XX cube lies in another file after 5 bytes of something else, like a chunk file.
    source = tmp_path / "source.bin"
    xx = image_to_fits_order(cubes["XX"], dtype=">f4")
    source.write_bytes(b"head!" + xx[:2].tobytes() + xx[2:].tobytes())
    per_channel = 8 * 8 * 4

    def segments(pol: str) -> list[Segment]:
        if pol == "XX":
            return [
                FileSegment(source, 5, 2 * per_channel),
                FileSegment(source, 5 + 2 * per_channel, per_channel),
            ]
        return [image_to_fits_order(cubes[pol])]

    extra = {"PARAMHSH": "abc"}
    ours = tmp_path / "ours.fits"
    write_cube(ours, segments, order=("XX", "I"), bunit="Jy/beam", extra=extra, **COMMON)

    # The previous writer: astropy writes the primary HDU, then appends each extension.
    reference = tmp_path / "astropy.fits"
    for k, pol in enumerate(("XX", "I")):
        header = celestial_header(polarization=pol, bunit="Jy/beam", **COMMON)
        header["PARAMHSH"] = "abc"
        data = image_to_fits_order(cubes[pol], dtype=">f4")[None]
        if k == 0:
            fits.PrimaryHDU(data=data, header=header).writeto(reference)
        else:
            with fits.open(reference, mode="append") as hdul:
                hdul.append(fits.ImageHDU(data=data, header=header, name=pol))
    assert ours.read_bytes() == reference.read_bytes()


def test_psf_stored_once_when_weights_agree(tiny_obs: Observation) -> None:
    """Equal weights in every polarization: one PSF row; unequal: one row each, all right."""
    info = read_info(tiny_obs.path)
    params = ImagingParams.from_mapping({"image_size": 32, "chunk_channels": 2})
    geometry = ImageGeometry(npix=32, pixsize_rad=np.radians(0.5))
    chunk = read_chunk(info, range(0, 2), params.polarizations)
    shared = image_chunk(chunk, geometry, params)
    assert shared.psf_rows == (0, 0, 0)
    assert shared.psf.shape[0] == 1

    # Flag half the XX rows: XX's PSF now differs from YY's (and from I's).
    weights = dict(chunk.weights)
    weights["XX"] = weights["XX"].copy()
    weights["XX"][::2] = 0.0
    uneven = image_chunk(dataclasses.replace(chunk, weights=weights), geometry, params)
    assert uneven.psf_rows == (0, 1, 2)
    psf_xx, psf_yy = uneven.psf[0], uneven.psf[1]
    assert not np.array_equal(psf_xx, psf_yy)
    np.testing.assert_array_equal(psf_yy, shared.psf[0])
    # Every PSF peaks at 1 at the phase centre (FITS y = N/2, x = N/2 - 1).
    for row in range(3):
        assert np.allclose(uneven.psf[row][:, 16, 15].astype(np.float32), 1.0, atol=1e-5)


def test_chunk_bytes_do_not_depend_on_the_order_chunks_run(
    tiny_obs: Observation, tmp_path: Path
) -> None:
    """In order (each chunk's visibilities prefetched) or reversed (never): same files."""
    ids = ImageJob(make_context(tiny_obs.path, tiny_obs.params, tmp_path / "w0")).chunk_ids()
    made: dict[str, dict[str, bytes]] = {}
    for name, order in (("forward", ids), ("reverse", ids[::-1])):
        job = ImageJob(make_context(tiny_obs.path, tiny_obs.params, tmp_path / name))
        for chunk_id in order:
            job.run_chunk(chunk_id, tmp_path / name / f"{chunk_id}.h5")
        made[name] = {c: (tmp_path / name / f"{c}.h5").read_bytes() for c in ids}
    assert made["forward"] == made["reverse"]
