"""spotcube's dirty images and PSFs against WSClean's, on a real MWA Measurement Set.

The same Measurement Set (tests/mwa_ms.py: MWA 1102865728, Fornax A, 121 tiles, 10 channels
from 171.13 to 198.76 MHz, one time) is imaged by ``python -m payload image`` and by WSClean
(the Debian package, 3.1.0 here; ``scripts/system-deps.sh radio-tools`` installs it), and
every channel's dirty image (XX, YY, pseudo-Stokes I) and PSF are compared pixel by pixel, on
three grids:

* ``fine``, 256 pixels of 50″, natural weighting: the grid's Nyquist limit 1 / (2 pixel) =
  2,063 λ lies beyond every baseline (the longest |u| or |v| is 1,883 λ, at the top
  channel), so nothing is left out;
* ``coarse``, 256 pixels of 100″, natural weighting: Nyquist 1,031 λ; 73–171 visibilities
  per channel, 1.0–2.4 % of the weight, lie beyond it;
* ``coarse-uniform``, 254 pixels of 100″, uniform weighting;
* ``fine-unequal-I``, as ``fine`` but pseudo-Stokes I alone, from a copy of the file whose
  YY weights and flags were made to differ from XX's: how I combines the two.

WSClean's options, and why:

* ``-niter 0 -make-psf``: the dirty image and the PSF, nothing deconvolved.
* ``-weight natural`` (spotcube's default) or ``-weight uniform``. Uniform weights divide a
  weight by the weight sum of its uv cell, and the cells must be the same in both: WSClean's
  are those of its padded image's Fourier grid (N x 1.2, rounded up to a multiple of 4),
  counted with floor() after folding v < 0 onto its mirror (structures/imageweights.h), which
  spotcube now uses (``payload.imaging.uniform_weights``). With spotcube's former cells (the
  unpadded grid, rounded to the nearest cell) the images correlated at 0.86–0.89 only.
* ``-use-wgridder -wgridder-accuracy 1e-6``: ducc0's w-gridder, the one spotcube calls, at
  spotcube's default accuracy (``--epsilon 1e-6``). WSClean's default w-stacking gridder
  (Kaiser–Bessel kernel, 1.2× padding) puts the peaks within 0.1 % but differs by up to
  7–14 % of the peak elsewhere (correlation 0.9955–0.997, on both grids alike): a property
  of that gridder.
* ``-no-small-inversion``: by default WSClean grids at the Nyquist resolution of the longest
  baseline it images and Fourier-interpolates to the pixels asked for when those are finer
  (the fine grid: 50″ < 54.8″), which "makes aliasing slightly worse" (its ``--help``);
  measured: differences up to 3 % of the peak. spotcube grids on the pixels asked for. On
  the coarse grid small inversion does not apply (WSClean says so in its log).
* ``-pol xx,yy,i`` (or ``i``) ``-channels-out 10``: one image per channel and polarization,
  as spotcube. (With YY's weights unlike XX's, WSClean's XX image is not XX imaged with its
  own flags and weights, which spotcube's is: 1.5–2 % of the peak apart, and no rule tried —
  either's flags, the smaller, mean or harmonic weight — reproduced WSClean's; XX and YY
  are therefore compared on the file as it is, where their weights are equal.)
* ``-j 1``: one thread, so the images do not depend on the order threads add grids in.

Pixels: WSClean puts the phase centre on pixel N/2 (0-based) of both axes (CRPIX = N/2 + 1);
spotcube's is pixel N/2 of its l axis, which FITS order mirrors (east left) to x = N/2 − 1.
Same sky, same SIN projection, one pixel apart: the images are compared on their common
pixels after checking that reference values, increments and channel frequencies agree.

Visibilities beyond the grid: WSClean gives a visibility an imaging weight of 0 when its
(u, v) falls outside the uv grid of the image (``ImageWeights::sampleGridValue`` returns 0
unless ``isWithinLimits``, i.e. |u|, |v| < 1 / (2 pixel); structures/imageweights.h), and
multiplies the visibility weight by it before adding to the weight sum that normalises the
image (``MSGridderBase::GetInstrumentalVisibilities``, gridding/msgridderbase.cpp) — read in
kernsuite-debian/wsclean at commit 521d8fd; what the installed 3.1 does is what this module
measures. spotcube's convention (``payload.imaging.beyond_grid``) is the same: left out of
image, PSF and weight sum, so a coarse grid lowers the resolution and keeps the flux scale.
WSClean writes how many visibilities it gridded (``WSCNVIS``) and its normalisation
(``WSCNORMF``, the kept weight under natural weighting) into every FITS header, which is an
independent count to hold spotcube's ``beyond_grid`` report to.

Tolerances: both tools grid the same visibilities with ducc0 at accuracy 1e-6 (WSClean from
float32 visibilities, spotcube from float64; both images stored as float32). Measured
(2026-11-27): max |spotcube − WSClean| ≤ 2.8e-6 of the image's peak, peak ratios within
7e-7 of 1, 1 − correlation ≤ 3e-13, PSFs within 6e-7. The tests allow 1e-5 of the peak
(ten times the gridding accuracy) and 1 − correlation ≤ 1e-9. An aliasing gridder (every
visibility kept and in the weight sum, what spotcube did before its convention) is 1–2.5 %
dimmer than WSClean on the coarse grid (peak ratio 0.990 at 171 MHz to 0.975 at 199 MHz,
PSF correlation 0.9966–0.9989: the numbers of issue 14), so the coarse comparison tells the
two conventions apart by three orders of magnitude.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from astropy.io import fits

pytestmark = pytest.mark.slow

POLARIZATIONS = ("XX", "YY", "I")  # spotcube's HDU order
N_CHANNELS = 10  # every channel of the Measurement Set, one image each


@dataclass(frozen=True)
class Grid:
    """One comparison: pixel size and count, weighting, polarizations, and the data."""

    pixel_arcsec: float
    npix: int
    weighting: str = "natural"
    polarizations: tuple[str, ...] = POLARIZATIONS
    # YY's weights and flags made to differ from XX's (see _unequal_weights)
    unequal_weights: bool = False


GRIDS = {
    "fine": Grid(50.0, 256),
    "coarse": Grid(100.0, 256),
    # 254 pixels: WSClean's weight grid is 254 x 1.2 = 304.8, rounded up to 305 and then to
    # a multiple of 4, 308; a cell definition off by either rounding fails by percents
    "coarse-uniform": Grid(100.0, 254, "uniform"),
    "fine-unequal-I": Grid(50.0, 256, polarizations=("I",), unequal_weights=True),
}
ACCURACY = 1e-6  # both gridders; spotcube's default
TOLERANCE = 1e-5  # of the image's peak: ten times the gridding accuracy
CORRELATION = 1.0 - 1e-9
WSCLEAN_HINT = "install it with `sudo bash scripts/system-deps.sh radio-tools` (Debian wsclean)"


@dataclass(frozen=True)
class Images:
    """One grid imaged by both tools: spotcube's products and WSClean's image prefix."""

    grid: Grid
    spotcube: Path
    wsclean: Path

    def wsclean_file(self, channel: int, kind: str, pol: str | None = None) -> Path:
        # WSClean names the polarization only when it images more than one
        tag = f"-{pol}" if pol and len(self.grid.polarizations) > 1 else ""
        return self.wsclean.parent / f"{self.wsclean.name}-{channel:04d}{tag}-{kind}.fits"

    def provenance(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.spotcube / "provenance.json").read_text())
        return data


@pytest.fixture(scope="session")
def wsclean_exe() -> str:
    exe = shutil.which("wsclean")
    if exe is None:
        pytest.skip(f"wsclean not found: {WSCLEAN_HINT}")
    return exe


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"{command[:3]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )


def _unequal_weights(ms: Path) -> None:
    """YY's weights times 0.3–3 (seeded) and 5 % more flags on YY alone.

    The real file's XX and YY weights and flags are equal, which hides how pseudo-Stokes I
    combines them; here they differ. WSClean flags I where either is flagged and weighs it
    by the smaller weight (measured: the mean or the harmonic mean of the two would differ
    from its images by 3–7 % of the peak), as spotcube documents (docs/imaging.md).
    """
    from casacore.tables import table

    rng = np.random.default_rng(14)
    with table(str(ms), readonly=False, ack=False) as main:
        weights = main.getcol("WEIGHT_SPECTRUM")
        flags = main.getcol("FLAG")
        weights[..., 3] = weights[..., 0] * rng.uniform(0.3, 3.0, weights.shape[:2])
        flags[..., 3] |= rng.random(flags.shape[:2]) < 0.05
        main.putcol("WEIGHT_SPECTRUM", weights)
        main.putcol("FLAG", flags)


@pytest.fixture(scope="module")
def imaged(
    mwa_ms: Path, wsclean_exe: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Images]:
    """``imaged(grid)``: the Measurement Set imaged on that grid by both tools, once."""
    work = tmp_path_factory.mktemp("wsclean-comparison")
    # One spotcube output folder for every grid, as an operator re-imaging an input would:
    # each Measurement Set is converted once (the conversion cache is keyed by content).
    out = work / "spotcube-out"
    done: dict[str, Images] = {}

    def measurement_set(unequal: bool) -> Path:
        # The tools get copies: whatever WSClean writes into a Measurement Set (model data,
        # for one) never reaches the cached copy other tests use.
        ms = work / ("unequal" if unequal else "as-is") / mwa_ms.name
        if not ms.exists():
            shutil.copytree(mwa_ms, ms)
            if unequal:
                _unequal_weights(ms)
        return ms

    def image(grid: str) -> Images:
        if grid in done:
            return done[grid]
        spec = GRIDS[grid]
        ms = measurement_set(spec.unequal_weights)
        size, scale = str(spec.npix), str(spec.pixel_arcsec)
        folder = work / grid
        folder.mkdir()
        # fmt: off
        _run([sys.executable, "-m", "payload", "image", str(ms), "--out", str(out),
              "--image-size", size, "--pixel-scale", scale, "--weighting", spec.weighting,
              "--polarizations", ",".join(spec.polarizations), "--epsilon", str(ACCURACY),
              "--quiet"], cwd=folder)
        _run([wsclean_exe, "-quiet", "-niter", "0", "-make-psf", "-weight", spec.weighting,
              "-use-wgridder", "-wgridder-accuracy", str(ACCURACY), "-no-small-inversion",
              "-pol", ",".join(spec.polarizations).lower(), "-channels-out", str(N_CHANNELS),
              "-size", size, size, "-scale", f"{scale}asec", "-j", "1", "-name", "wsc",
              str(ms)], cwd=folder)
        # fmt: on
        (folder / "spotcube").mkdir()
        for product in ("image_cube.fits", "psf_cube.fits", "provenance.json"):
            shutil.copy2(out / product, folder / "spotcube" / product)
        done[grid] = Images(spec, spotcube=folder / "spotcube", wsclean=folder / "wsc")
        return done[grid]

    return image


def _spotcube_planes(
    images: Images, product: str, pol: str
) -> tuple[npt.NDArray[np.float64], fits.Header]:
    """One polarization's cube (channel, y, x) and header; HDUs in the order imaged."""
    with fits.open(images.spotcube / product) as hdus:
        hdu = hdus[images.grid.polarizations.index(pol)]
        data = np.asarray(hdu.data, dtype=np.float64)
        data = data.reshape(-1, *data.shape[-2:])
        return data, hdu.header.copy()


def _plane_header(header: fits.Header, channel: int) -> fits.Header:
    """The header of one channel: CRVAL3 its frequency (WSClean writes one file per channel)."""
    plane = header.copy()
    plane["CRVAL3"] = header["CRVAL3"] + (channel + 1 - header["CRPIX3"]) * header["CDELT3"]
    return plane


def _common(
    ours: npt.NDArray[np.float64], header: fits.Header, theirs_path: Path
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Both images on the pixels they share (the same sky, with the same WCS but CRPIX1)."""
    with fits.open(theirs_path) as hdus:
        theirs = np.asarray(hdus[0].data, dtype=np.float64).squeeze()
        other = hdus[0].header
    for key in ("CTYPE1", "CTYPE2"):
        assert header[key] == other[key], key
    for key in ("CRVAL1", "CRVAL2", "CDELT1", "CDELT2", "CRVAL3"):
        assert header[key] == pytest.approx(other[key], rel=1e-12, abs=1e-12), key
    # the phase centre: WSClean's pixel N/2 on both axes, spotcube's N/2 - 1 in x (see above)
    shift = (other["CRPIX1"] - header["CRPIX1"], other["CRPIX2"] - header["CRPIX2"])
    assert shift == (1.0, 0.0)
    return ours[:, :-1], theirs[:, 1:]


@pytest.mark.parametrize(
    ("grid", "pol"), [(grid, pol) for grid, spec in GRIDS.items() for pol in spec.polarizations]
)
def test_dirty_images_equal_wscleans(imaged: Callable[[str], Images], grid: str, pol: str) -> None:
    """Every channel, on a grid that resolves every baseline and on one that does not: the
    same pixels and the same flux scale (peak ratio), within the gridders' accuracy."""
    images = imaged(grid)
    cube, header = _spotcube_planes(images, "image_cube.fits", pol)
    assert cube.shape[0] == N_CHANNELS
    for channel in range(N_CHANNELS):
        plane = _plane_header(header, channel)
        ours, theirs = _common(cube[channel], plane, images.wsclean_file(channel, "dirty", pol))
        peak = float(np.abs(theirs).max())
        where = f"{grid} {pol} channel {channel}"
        assert np.abs(ours - theirs).max() <= TOLERANCE * peak, where
        assert ours.max() / theirs.max() == pytest.approx(1.0, abs=TOLERANCE), where
        assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] >= CORRELATION, where


@pytest.mark.parametrize("grid", list(GRIDS))
def test_psfs_equal_wscleans(imaged: Callable[[str], Images], grid: str) -> None:
    """WSClean makes one PSF per channel: every polarization imaged has the same weights
    (with XX's and YY's made unequal, only I is imaged)."""
    images = imaged(grid)
    for pol in images.grid.polarizations:
        cube, header = _spotcube_planes(images, "psf_cube.fits", pol)
        for channel in range(N_CHANNELS):
            plane = _plane_header(header, channel)
            ours, theirs = _common(cube[channel], plane, images.wsclean_file(channel, "psf"))
            where = f"{grid} {pol} channel {channel}"
            assert theirs.max() == pytest.approx(1.0, abs=TOLERANCE), where
            assert np.abs(ours - theirs).max() <= TOLERANCE, where
            assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] >= CORRELATION, where


def _wsclean_kept(images: Images, pol: str) -> tuple[int, float]:
    """Visibilities WSClean gridded and their weight, summed over channels (its headers)."""
    count, weight = 0, 0.0
    for channel in range(N_CHANNELS):
        header = fits.getheader(images.wsclean_file(channel, "dirty", pol))
        assert header["WSCWEIGH"] == "natural"
        count += int(header["WSCNVIS"])
        weight += float(header["WSCNORMF"])  # natural weighting: the sum of kept weights
    return count, weight


def test_beyond_grid_report_equals_what_wsclean_left_out(imaged: Callable[[str], Images]) -> None:
    """spotcube's ``beyond_grid.image`` report: what WSClean gridded on the fine grid and
    not on the coarse one, for the polarization with most left out (XX and YY here)."""
    fine, coarse = imaged("fine"), imaged("coarse")
    fine_report = fine.provenance()["beyond_grid"]["image"]
    assert fine_report["visibilities"] == 0
    assert fine_report["weight_fraction"] == 0.0
    left_out = {}
    for pol in ("XX", "YY"):
        (n_all, w_all), (n_kept, w_kept) = _wsclean_kept(fine, pol), _wsclean_kept(coarse, pol)
        left_out[pol] = (n_all - n_kept, (w_all - w_kept) / w_all)
    count, fraction = max(left_out.values(), key=lambda item: item[1])
    report = coarse.provenance()["beyond_grid"]["image"]
    assert count > 0  # the coarse grid does leave visibilities out, or this proves nothing
    assert report["visibilities"] == count
    assert report["weight_fraction"] == pytest.approx(fraction, rel=1e-9)
