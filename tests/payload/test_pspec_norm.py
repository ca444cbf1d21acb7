"""The per-cell normalisation against its closed form, and the beam specs.

For a flat-sky Gaussian power beam ``A(l) = exp(-|l|^2 / (2 s^2))`` the transform of A^2 is
``C(d) = pi s^2 exp(-pi^2 s^2 |d|^2)``, and the grid's kernel is the taper's transform
``K(x) = sum_l T(l) exp(2 pi i x.l)`` over the field's pixels. The normalisation is
then the double sum over visibilities (each gridded half at u_k and half, conjugated, at
-u_k) ``N(u) = sum_jk a_j a_k C(u_j - u_k)``, computed here pair by pair; the sampling image
is a direct DFT in numpy, not ducc0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from payload.beams import PrimaryBeam, parse_beam, resolve_beam
from payload.errors import InvalidInputError
from payload.jobs.image import ImageJob
from payload.psnorm import beam_lattice, cell_normalisation
from payload.uvcube import UVGrid

from .conftest import Observation, make_context


@pytest.mark.parametrize("beam_sigma", [0.05, 0.12, 0.2], ids=["narrow", "mid", "wide"])
def test_normalisation_is_the_pair_sum(beam_sigma: float) -> None:
    grid = UVGrid(du=1.0, n=64, taper_sigma_l=math.sin(math.radians(20.0)) / 2.3548)
    rng = np.random.default_rng(5)
    n_vis = 40
    u_k = rng.uniform(-20, 20, (n_vis, 2))
    w_k = rng.uniform(0.5, 2.0, n_vis)
    # half at u_k, half at -u_k
    points = np.concatenate([u_k, -u_k])
    weights = np.concatenate([w_k, w_k]) / 2
    # the sampling image on twice the field, as the uv cube keeps it
    lm = (np.arange(2 * grid.n) - grid.n) * grid.pixsize
    phase = np.exp(-2j * np.pi * (points[:, 0, None] * lm[None, :]))
    phase_m = np.exp(-2j * np.pi * (points[:, 1, None] * lm[None, :]))
    sampling = np.einsum("k,ki,kj->ij", weights, phase, phase_m).real
    omega = math.pi * beam_sigma**2
    lattice = beam_lattice(grid, omega_pp=omega)
    r2 = lattice.l_dir**2 + lattice.m_dir**2
    # cell_normalisation weighs A^2 by the solid angle, dl dm / n: A^2 n given to it is the
    # flat-sky Gaussian whose closed form is below (the measure is tested end to end by the
    # power-spectrum tests, and against quadrature in test_pspec_beam_sky.py)
    a2 = np.exp(-r2 / beam_sigma**2) * np.sqrt(np.clip(1.0 - r2, 0.0, None))
    n_ee, n_oo, n_eo = cell_normalisation((sampling, sampling), grid, lattice, a2)

    # the gridder's kernel: the taper on the field's pixels, transformed pixel by pixel
    field = (np.arange(grid.n) - grid.n // 2) * grid.pixsize
    taper_1d = np.exp(-0.5 * field**2 / grid.taper_sigma_l**2)

    def kernel_1d(x: np.ndarray) -> np.ndarray:
        return np.asarray((taper_1d * np.exp(2j * np.pi * x[:, None] * field)).sum(axis=1).real)

    # the cells nearest to some of the visibilities (on the stored half plane v >= 0)
    near = [p if p[1] >= 0 else -p for p in points[:8]]
    cells = [
        (round(float(p[0]) / grid.du) + grid.n // 2, round(float(p[1]) / grid.du)) for p in near
    ]
    checked = 0
    for a, b in cells:
        u = np.asarray([grid.u_lambda[a], grid.v_lambda[b]])
        amp = weights * kernel_1d(points[:, 0] - u[0]) * kernel_1d(points[:, 1] - u[1])
        d2 = ((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)
        c = math.pi * beam_sigma**2 * np.exp(-(math.pi**2) * beam_sigma**2 * d2)
        expected = float(amp @ c @ amp)
        assert expected > 1e-3 * float(n_ee.max())
        # 1 %: the lattice sums A^2 |g|^2 at discrete directions and drops A^2 < 1e-6
        assert n_ee[a, b] == pytest.approx(expected, rel=0.01)
        assert n_eo[a, b] == pytest.approx(expected, rel=0.01)
        assert n_oo[a, b] == pytest.approx(expected, rel=0.01)
        checked += 1
    assert checked == len(cells)


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("gaussian:25", "gaussian:25"),
        ("Gaussian:12.5@150", "gaussian:12.5@150"),
        ("airy:14", "airy:14"),
        ("mwa", "mwa:" + ",".join(["0"] * 16)),
        ("mwa:" + ",".join(str(i % 4) for i in range(16)), None),
    ],
)
def test_beam_specs_parse(spec: str, canonical: str | None) -> None:
    beam = parse_beam(spec)
    assert beam.spec == (canonical or spec)
    assert parse_beam(beam.spec) == beam


@pytest.mark.parametrize(
    "spec", ["gaussian", "gaussian:-3", "gaussian:0", "airy:", "mwa:1,2", "mwa:" + "40," * 15 + "0"]
)
def test_bad_beam_specs_say_what_is_accepted(spec: str) -> None:
    with pytest.raises(InvalidInputError, match="gaussian:FWHM_DEG"):
        parse_beam(spec)


def test_default_beam_follows_the_telescope() -> None:
    assert resolve_beam(None, telescope="MWA").kind == "mwa"
    assert resolve_beam(None, telescope="HERA").spec == "airy:14"
    assert resolve_beam("gaussian:20", telescope="LOFAR").spec == "gaussian:20"
    with pytest.raises(InvalidInputError, match=r"LOFAR.*--primary-beam"):
        resolve_beam(None, telescope="LOFAR")


def test_gaussian_beam_is_half_power_at_half_the_fwhm() -> None:
    """pyuvdata's GaussianBeam as wrapped: A = 1/2 at za = FWHM / 2, scaling as 1/nu."""
    half = math.sin(math.radians(12.5))
    fixed = parse_beam("gaussian:25")
    assert fixed.power(np.asarray([half]), np.asarray([0.0]), 150e6)[0] == pytest.approx(0.5)
    assert fixed.power(np.asarray([0.0]), np.asarray([half]), 200e6)[0] == pytest.approx(0.5)
    scaled = parse_beam("gaussian:25@150")
    at_300 = math.sin(math.radians(6.25))
    assert scaled.power(np.asarray([at_300]), np.asarray([0.0]), 300e6)[0] == pytest.approx(0.5)


def test_mwa_beam_comes_from_hyperbeam_and_narrows_with_frequency() -> None:
    """mwa-hyperbeam's analytic tile beam: 1 at zenith, below 1 off it, narrower at higher
    frequency (a 4 x 4 dipole tile ~4.4 m across), zero below the horizon."""
    beam: PrimaryBeam = parse_beam("mwa")
    l_dir = np.asarray([0.0, 0.3, 1.2])
    m_dir = np.zeros(3)
    low = beam.power(l_dir, m_dir, 140e6, "I")
    high = beam.power(l_dir, m_dir, 200e6, "I")
    assert low[0] == pytest.approx(1.0)
    assert high[0] == pytest.approx(1.0)
    assert 0 < high[1] < low[1] < 1
    assert low[2] == 0.0


def test_unknown_telescope_needs_a_beam_and_fails_on_the_first_chunk(
    tiny_obs: Observation, copy_of: Callable[[Path], Path], tmp_path: Path
) -> None:
    path = copy_of(tiny_obs.path)
    with h5py.File(path, "r+") as handle:
        del handle["Header/telescope_name"]
        handle["Header/telescope_name"] = np.bytes_("OTHER")
    job = ImageJob(make_context(path, tiny_obs.params, tmp_path / "w"))
    with pytest.raises(InvalidInputError, match=r"'OTHER' has no default primary beam.*--primary"):
        job.run_chunk(job.chunk_ids()[0], tmp_path / "c.h5")
    given = ImageJob(
        make_context(path, {**tiny_obs.params, "primary_beam": "airy:4"}, tmp_path / "w2")
    )
    assert given.beam.spec == "airy:4"
