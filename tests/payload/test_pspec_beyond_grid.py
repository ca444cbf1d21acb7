"""Visibilities beyond the image grid: left out, counted, and the image is then exact.

Convention (payload.imaging.beyond_grid): a visibility whose |u| or |v| exceeds the image
grid's Nyquist limit 1 / (2 pixel) at its channel is left out of the dirty image, the weight
sum and the PSF; the number left out and their share of the weight are reported
(provenance.json ``beyond_grid``, and the CLI summary). The expected images here are direct
Fourier sums in numpy over the visibilities the test itself keeps.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from payload.imaging import FLIPS, ImageGeometry, image_chunk
from payload.params import ImagingParams
from payload.reading import C_M_S, VisChunk


def _chunk(seed: int) -> tuple[VisChunk, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 300
    uvw = np.zeros((n, 3))
    uvw[:, :2] = rng.uniform(-400, 400, (n, 2))  # metres
    freqs = np.asarray([150e6, 180e6])
    source_lm = np.asarray([0.0123, -0.0071])
    vis = np.empty((n, 2), dtype=complex)
    for c, f in enumerate(freqs):
        u = uvw[:, :2] * f / C_M_S
        vis[:, c] = 2.0 * np.exp(2j * np.pi * (u @ source_lm))
    weights = rng.uniform(0.5, 1.5, (n, 2))
    chunk = VisChunk(uvw, freqs, {"XX": vis}, {"XX": weights})
    return chunk, source_lm


def test_visibilities_beyond_the_grid_are_left_out_and_counted() -> None:
    chunk, _ = _chunk(1)
    # 0.003 rad pixels: Nyquist 167 wavelengths, below the longest |u| (~240 at 180 MHz)
    geometry = ImageGeometry(npix=64, pixsize_rad=0.003)
    params = ImagingParams.from_mapping({"polarizations": ["XX"], "wgridding": False})
    images = image_chunk(chunk, geometry, params)
    limit = 0.5 / geometry.pixsize_rad
    lm = (np.arange(64) - 32) * geometry.pixsize_rad
    for c, f in enumerate(chunk.freq_hz):
        u = chunk.uvw_m[:, :2] * f / C_M_S
        outside = (np.abs(u) > limit).any(axis=1)
        w = chunk.weights["XX"][:, c]
        assert 0 < outside.sum() < len(u)
        assert images.beyond_count[0, c] == outside.sum()
        assert images.beyond_weight[0, c] == pytest.approx(w[outside].sum())
        assert images.given_weight[0, c] == pytest.approx(w.sum())
        assert images.weight_sum[0, c] == pytest.approx(w[~outside].sum())
        # the image is the direct Fourier sum of the kept visibilities, by their weight
        keep = ~outside
        v = chunk.vis["XX"][keep, c] * w[keep]
        for i, j in ((32, 32), (36, 30), (10, 50)):
            expected = (v * np.exp(-2j * np.pi * (u[keep, 0] * lm[i] + u[keep, 1] * lm[j]))).sum()
            expected = expected.real / w[keep].sum()
            # FITS order (payload.fitsio): dirty[p, c, y, x] with x = N - 1 - i, y = j
            assert float(images.dirty[0, c, j, 63 - i]) == pytest.approx(expected, abs=1e-4)
    assert FLIPS["flip_u"]  # the sign convention the direct sum above assumes


def test_a_coarse_grid_keeps_the_flux_of_a_source_between_pixels() -> None:
    """The same off-pixel source on a grid that resolves every baseline and on one that
    does not: with beyond-grid visibilities left out, the coarse image's peak (the source
    between pixels) loses less flux than it does when they alias into the image."""
    chunk, source_lm = _chunk(2)
    params = ImagingParams.from_mapping({"polarizations": ["XX"], "wgridding": False})
    coarse = ImageGeometry(npix=64, pixsize_rad=0.003)
    images = image_chunk(chunk, coarse, params)
    peak = float(np.max(images.dirty[0, 0]))
    # what an aliasing gridder would give: every visibility, normalised by all weights
    lm = (np.arange(64) - 32) * coarse.pixsize_rad
    u = chunk.uvw_m[:, :2] * chunk.freq_hz[0] / C_M_S
    w = chunk.weights["XX"][:, 0]
    v = chunk.vis["XX"][:, 0] * w
    i = int(np.argmin(np.abs(lm - source_lm[0])))
    j = int(np.argmin(np.abs(lm - source_lm[1])))
    aliased = max(
        float((v * np.exp(-2j * np.pi * (u[:, 0] * lm[a] + u[:, 1] * lm[b]))).sum().real / w.sum())
        for a in (i - 1, i, i + 1)
        for b in (j - 1, j, j + 1)
    )
    assert peak > aliased
    assert peak > 0.7 * 2.0  # within ~half a pixel of a 2 Jy source at this resolution
    assert math.isfinite(peak)


def test_products_report_the_beyond_grid_visibilities(tiny_products: dict[str, Path]) -> None:
    provenance = json.loads(tiny_products["provenance.json"].read_text())
    report = provenance["beyond_grid"]  # a JSON object, not JSON text in a string
    for part in ("image", "uv"):
        assert report[part]["visibilities"] >= 0
        assert 0.0 <= report[part]["weight_fraction"] < 1.0
    # the pixel scale chosen from the longest baseline resolves every baseline
    assert report["image"]["visibilities"] == 0
