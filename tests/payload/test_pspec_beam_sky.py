"""Where the beam is, its whole-sky integrals, and the regimes spotcube refuses (issue 19).

* Geometry: :class:`payload.beamframe.BeamFrame` turns tangent-plane directions around a
  phase centre into azimuth and zenith angle; checked against astropy (SIN WCS, ``AltAz``) for
  seeded random times, phase centres and offsets.
* ``int A^2 dl dm`` over the sky above the horizon, whatever the uv grid, against scipy
  quadrature of pyuvdata's documented Gaussian and Airy patterns.
* Refusals: a beam reaching beyond the uv grid's field, and a fixed beam the sky drifts
  through, each stop with one line naming what to change.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, special

from payload.beamframe import BeamFrame
from payload.beams import FWHM_TO_SIGMA, parse_beam
from payload.errors import InvalidInputError
from payload.powerspec import beam_omega_pp
from payload.psnorm import check_beam_fits, whole_sky_integrals
from payload.sites import MWA_LATITUDE_DEG, MWA_LONGITUDE_DEG, install_offline_sites
from payload.uvcube import UVGrid

# At the phase centre (hour angle from true-of-date, TETE, coordinates) only aberration and
# nutation's small terms separate the two: under a minute of arc.
CENTRE_TOLERANCE_DEG = 0.02
# Away from it, spotcube takes the tangent plane's axes (ICRS, as pyuvdata phases) to be the
# date's: precession since J2000 (50"/yr) turns them by up to ~0.4 degree, which moves a
# direction 0.5 rad out by up to ~0.3 degree. Documented; it shifts the beam by a small
# fraction of its width and leaves int A^2 alone.
GEOMETRY_TOLERANCE_DEG = 0.35


def _angle_deg(az1, za1, az2, za2):  # type: ignore[no-untyped-def]
    cos = np.sin(za1) * np.sin(za2) * np.cos(az1 - az2) + np.cos(za1) * np.cos(za2)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


@pytest.mark.parametrize("seed", range(6))
def test_frame_matches_astropy(seed: int) -> None:
    from astropy import units
    from astropy.coordinates import TETE, AltAz, EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.wcs import WCS

    install_offline_sites()
    rng = np.random.default_rng(seed)
    location = EarthLocation.from_geodetic(MWA_LONGITUDE_DEG, MWA_LATITUDE_DEG, 377.83)
    when = Time(2459000.5 + rng.uniform(0, 365), format="jd", scale="utc")
    altaz = AltAz(obstime=when, location=location)
    az0, za0 = rng.uniform(0, 360), rng.uniform(0, 50)
    centre = SkyCoord(az=az0 * units.deg, alt=(90 - za0) * units.deg, frame=altaz).icrs
    apparent = centre.transform_to(TETE(obstime=when))
    lst = when.sidereal_time("apparent", longitude=location.lon).rad
    frame = BeamFrame(
        latitude_rad=math.radians(MWA_LATITUDE_DEG),
        hour_angle_rad=lst - float(apparent.ra.rad),
        dec_rad=float(apparent.dec.rad),
        duration_s=0.0,
    )
    offsets = np.concatenate([np.zeros((1, 2)), rng.uniform(-0.5, 0.5, size=(20, 2))])
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [centre.ra.deg, centre.dec.deg]
    wcs.wcs.crpix = [1.0, 1.0]
    wcs.wcs.cdelt = [-1.0, 1.0]  # degrees of l (east) and m per pixel
    ra, dec = wcs.wcs_pix2world(-np.degrees(offsets[:, 0]), np.degrees(offsets[:, 1]), 0)
    truth = SkyCoord(ra=ra * units.deg, dec=dec * units.deg, frame="icrs").transform_to(altaz)
    az, za, above = frame.to_az_za(offsets[:, 0], offsets[:, 1])
    keep = above & (np.asarray(truth.alt.deg) > 0)
    error = _angle_deg(
        az[keep], za[keep], np.radians(truth.az.deg[keep]), np.radians(90 - truth.alt.deg[keep])
    )
    assert keep.sum() > 5
    assert keep[0]
    assert error[0] < CENTRE_TOLERANCE_DEG, error[0]
    assert error.max() < GEOMETRY_TOLERANCE_DEG, error.max()


def _quadrature(power_of_za) -> float:  # type: ignore[no-untyped-def]
    """int A^2 dOmega for an azimuthally symmetric A(za): 2 pi int A^2 sin za dza, in zenith
    angle, a parametrisation the code (a midpoint grid in l, m weighted by 1 / n) does not
    share. The flat-sky measure dl dm = cos za dOmega would miss these by 0.4 % (12 deg
    Gaussian) to 2.5 % (airy:4), beyond every tolerance below but the 12 deg one's."""
    value, _ = integrate.quad(
        lambda za: power_of_za(za) ** 2 * math.sin(za), 0, math.pi / 2, limit=400
    )
    return 2 * math.pi * value


@pytest.mark.parametrize("fwhm_deg", [12.0, 25.0, 60.0])
def test_gaussian_omega_pp_is_the_quadrature(fwhm_deg: float) -> None:
    """pyuvdata's GaussianBeam (power sigma in zenith angle) against scipy's quad."""
    sigma = math.radians(fwhm_deg) * FWHM_TO_SIGMA
    expected = _quadrature(lambda za: math.exp(-0.5 * za**2 / sigma**2))
    beam = parse_beam(f"gaussian:{fwhm_deg:g}")
    got = whole_sky_integrals(beam, 150e6, "I", half_field=0.5).omega_pp
    assert got / expected == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("diameter", [4.0, 14.0])
def test_airy_omega_pp_is_the_quadrature(diameter: float) -> None:
    """An Airy power pattern (2 J1(x) / x)^2, x = pi D sin(za) / lambda, against quad."""
    lam = 299_792_458.0 / 150e6

    def airy(za: float) -> float:
        x = math.pi * diameter * math.sin(za) / lam
        return 1.0 if x == 0 else (2 * special.j1(x) / x) ** 2

    expected = _quadrature(airy)
    got = whole_sky_integrals(parse_beam(f"airy:{diameter:g}"), 150e6, "I", half_field=1.0)
    assert got.omega_pp / expected == pytest.approx(1.0, abs=5e-3)


@pytest.mark.parametrize("spec", ["gaussian:25", "airy:4", "mwa"])
def test_omega_pp_does_not_depend_on_the_grid(spec: str) -> None:
    beam = parse_beam(spec)
    values = [
        beam_omega_pp(beam, UVGrid(du=du, n=n, taper_sigma_l=0.15), 150e6, "I")
        for du, n in ((0.5, 140), (1.0, 140), (2.0, 70), (1.0, 400))
    ]
    assert np.ptp(values) / values[0] < 1e-9


def test_a_beam_wider_than_the_grid_is_refused_in_one_line() -> None:
    """The issue's case: airy:4 at 150 MHz with --uv-cell 2 loses ~17 % of int A^2."""
    grid = UVGrid(du=2.0, n=70, taper_sigma_l=0.15)
    sky = whole_sky_integrals(
        parse_beam("airy:4"), 150e6, "I", half_field=grid.n // 2 * grid.pixsize
    )
    assert 0.10 < sky.outside_fraction < 0.25
    with pytest.raises(InvalidInputError, match=r"uv_cell_lambda <= ") as raised:
        check_beam_fits(parse_beam("airy:4"), (150e6,), grid)
    assert "\n" not in str(raised.value)
    suggested = float(str(raised.value).split("<= ")[1].split()[0])
    smaller = UVGrid(du=suggested * 0.99, n=140, taper_sigma_l=0.15)
    check_beam_fits(parse_beam("airy:4"), (150e6,), smaller)  # the advice works


def _drift_frame(duration_s: float, *, fixed: bool = True) -> BeamFrame:
    lat = math.radians(-30.72)  # HERA
    return BeamFrame(
        latitude_rad=lat, hour_angle_rad=0.0, dec_rad=lat, duration_s=duration_s, fixed=fixed
    )


@pytest.mark.parametrize("spec", ["airy:14", "gaussian:12"])
def test_an_hour_of_drift_is_refused_in_one_line(spec: str) -> None:
    grid = UVGrid(du=1.0, n=140, taper_sigma_l=0.15)
    with pytest.raises(InvalidInputError, match="drifts") as raised:
        check_beam_fits(parse_beam(spec), (150e6, 160e6), grid, frame=_drift_frame(3600.0))
    assert "\n" not in str(raised.value)
    longest = float(str(raised.value).split("at most ")[1].split()[0])
    check_beam_fits(parse_beam(spec), (150e6, 160e6), grid, frame=_drift_frame(longest * 0.99))


def test_a_tracking_beam_over_an_hour_is_accepted() -> None:
    grid = UVGrid(du=1.0, n=140, taper_sigma_l=0.15)
    frame = _drift_frame(3600.0, fixed=False)
    check_beam_fits(parse_beam("gaussian:12"), (150e6,), grid, frame=frame)


def test_powerspec_h5_records_the_beam_convention_and_frame(tmp_path: Path) -> None:
    """A reader can trace omega_pp_sr to its convention and the beam to where it was."""
    import json

    import h5py

    from . import pspec_sim as sim

    band = sim.Band(8, 167e6, 200e3)
    white = {"white": lambda k: 1e4 * np.ones_like(k)}
    uvw, times, vis = sim.observe_skies(white, band, 25.0, 4, 8.0, npix=100, pixsize=0.01)
    frame = _drift_frame(32.0)
    ps = sim.spectrum_of(uvw, times, band, {"XX": vis["white"]}, 25.0, frame=frame)
    ps.write(tmp_path / "powerspec.h5", attrs={})
    with h5py.File(tmp_path / "powerspec.h5", "r") as handle:
        assert "zenith" in handle.attrs["beam_normalisation"]
        recorded = json.loads(handle.attrs["beam_frame"])
        assert handle.attrs["omega_pp_sr"] == pytest.approx(ps.omega_pp)
    assert recorded["fixed_on_ground"] is True
    assert recorded["duration_s"] == pytest.approx(32.0)
    assert recorded["latitude_deg"] == pytest.approx(-30.72)
