"""A white sky drifting through a fixed beam over an hour, simulated by matvis.

Nothing here is spotcube's: the visibilities are matvis's (Kittiwisit et al. 2023; the sky as
point sources at ICRS positions, converted to each time's azimuth and zenith angle by matvis
with astropy, the antenna beams pyuvdata's ``AiryBeam`` / ``GaussianBeam`` fixed at zenith),
phased as the reader phases drift data (pyuvdata's ``phase_to_time``, to the zenith of the
middle time), and the expected power is the input constant with the cosmology taken from
astropy directly.

* Array: 24 dishes placed at random (seeded) within 45 m of the centre, at least 14.6 m (a
  HERA dish) apart, at HERA's site: non-redundant, baselines up to ~90 m (50 wavelengths at
  167 MHz). matvis evaluates each dish's beam fixed at zenith as the sky turns.
* Sky: an isotropic white field, P = ``AMPLITUDE`` mK^2 Mpc^3 at every k: independent
  Gaussian brightness in each pixel and channel with variance ``P / (X^2 Y df dOmega)``,
  dOmega the pixel's solid angle (``dl dm / n`` on a tangent-plane grid around the middle
  time's zenith), flux ``T dOmega / c(f)`` with ``c = lambda^2 / (2 k_B)`` (mK sr per Jy).
  Pixels cover every direction within ``SKY_RADIUS`` of the beam's track, where the beam's
  A^2 falls to ~1e-5 of its peak; the share of int A^2 beyond is reported by
  :func:`missing_share`.
* Beam amplitude: matvis's response to a 1 Jy source at zenith sets the scale, so the beam
  is 1 at zenith as spotcube's beams are.
* MWA tiles (``beam_kind="mwa"``, ``delays``): at the MWA's site, the tile's pseudo-Stokes I
  power pattern 0.5 (|J_x|^2 + |J_y|^2) from mwa_hyperbeam's own ``AnalyticBeam`` (as its
  API gives it: Jones rows X, Y; azimuth from north through east), divided by the
  zenith-pointed tile's zenith value, tabulated on a 0.5 deg azimuth / zenith-angle grid at
  every channel as a pyuvdata ``UVBeam`` (power, ``xx``; pyuvdata's azimuth runs from east
  through north) that matvis interpolates (:func:`mwa_uvbeam`). matvis's scale is set by the
  zenith-pointed tile's response to 1 Jy at zenith, so a pointed tile peaks below 1 as in
  spotcube's convention. The sky is centred on the pointed beam's peak and reaches
  ``MWA_SKY_RADIUS`` from it (the share of int A^2 left out: :func:`mwa_missing_share`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

HERA_LAT_DEG = -30.72152612068925
HERA_LON_DEG = 21.42830382686301
HERA_ALT_M = 1051.69
JD_MIDDLE = 2459845.25
SKY_RADIUS = 0.30  # rad around the beam's track
PIXSIZE = 0.01  # rad: C's aliases at 100 wavelengths, beyond any pair a cell couples
# The MWA's site (the array centre of the MWA's metafits files)
MWA_LAT_DEG = -26.703319
MWA_LON_DEG = 116.67081
MWA_ALT_M = 377.83
MWA_SKY_RADIUS = 0.55  # rad around the pointed beam's peak
MWA_BEAM_STEP_DEG = 0.5
K_B = 1.380649e-23
C_M_S = 299_792_458.0


def compact_array(
    n_dishes: int = 24, radius_m: float = 45.0, spacing_m: float = 14.6, seed: int = 3
) -> npt.NDArray[np.float64]:
    """ENU positions (m) of ``n_dishes`` dishes placed at random within ``radius_m``, at least
    ``spacing_m`` apart: non-redundant, so every baseline samples its own uv cells and a
    realisation holds as many independent modes as the baselines allow (a hexagon's
    redundant baselines repeat the same cells)."""
    rng = np.random.default_rng(seed)
    placed: list[tuple[float, float]] = []
    while len(placed) < n_dishes:
        east, north = rng.uniform(-radius_m, radius_m, size=2)
        if math.hypot(east, north) > radius_m:
            continue
        if all(math.hypot(east - e, north - n) >= spacing_m for e, n in placed):
            placed.append((float(east), float(north)))
    return np.asarray([(e, n, 0.0) for e, n in placed])


def cosmology(freq_hz: float) -> tuple[float, float]:
    """X (Mpc / rad) and Y (Mpc / Hz) of 21 cm at ``freq_hz`` from astropy's Planck18."""
    from astropy import constants, units
    from astropy.cosmology import Planck18

    z = 1420.405751768e6 / freq_hz - 1.0
    x = Planck18.comoving_transverse_distance(z).to_value(units.Mpc)
    c_km_s = constants.c.to_value(units.km / units.s)
    hz = Planck18.H(z).to_value(units.km / units.s / units.Mpc)
    y = c_km_s * (1 + z) ** 2 / (hz * 1420.405751768e6)
    return float(x), float(y)


def mk_sr_per_jy(freq_hz: float) -> float:
    """Brightness temperature (mK) x solid angle (sr) of 1 Jy: lambda^2 / (2 k_B)."""
    lam = C_M_S / freq_hz
    return lam**2 / (2 * K_B) * 1e-26 * 1e3


@dataclass(frozen=True)
class DriftObservation:
    """Visibilities of a drift scan, phased to the middle time's zenith (as the reader does)."""

    uvw_m: npt.NDArray[np.float64]  # (rows, 3), rows time-major
    time_index: npt.NDArray[np.int64]  # (rows,)
    times_jd: npt.NDArray[np.float64]  # (n_times,)
    lst_rad: npt.NDArray[np.float64]  # (n_times,)
    vis: dict[str, npt.NDArray[np.complex128]]  # per sky: (rows, freq) Jy
    freq_hz: npt.NDArray[np.float64]
    phase_ra_rad: float  # ICRS of the middle time's zenith
    phase_dec_rad: float
    integration_s: float
    latitude_deg: float = HERA_LAT_DEG


def analytic_beam(kind: str, size: float) -> Any:
    from pyuvdata.analytic_beam import AiryBeam, GaussianBeam

    if kind == "airy":
        return AiryBeam(diameter=size)
    # A power beam of FWHM ``size``, given as its E-field (sigma sqrt(2) times the power
    # beam's): matvis evaluates a GaussianBeam given with sigma_type="power" as the square
    # root of that power pattern (measured: 2.6 x too wide at 10 deg), an efield one right.
    sigma_power = math.radians(size) / (2 * math.sqrt(2 * math.log(2)))
    return GaussianBeam(sigma=sigma_power * math.sqrt(2), sigma_type="efield")


def _sky_pixels(
    ra0: float,
    dec0: float,
    half_track: float,
    pixsize: float = PIXSIZE,
    radius: float = SKY_RADIUS,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """RA, Dec (rad) and solid angle of tangent-plane pixels about (ra0, dec0) within
    ``radius`` of the track |l| <= half_track, m = 0."""
    reach = half_track + radius
    axis_l = np.arange(-reach, reach + pixsize / 2, pixsize)
    axis_m = np.arange(-radius, radius + pixsize / 2, pixsize)
    ll, mm = np.meshgrid(axis_l, axis_m, indexing="ij")
    gap = np.hypot(np.clip(np.abs(ll) - half_track, 0.0, None), mm)
    keep = (gap <= radius) & (ll**2 + mm**2 < 1.0)
    l_dir, m_dir = ll[keep], mm[keep]
    n_dir = np.sqrt(1.0 - l_dir**2 - m_dir**2)
    # SIN projection inverse: direction = l e_l + m e_m + n s0
    sd, cd = math.sin(dec0), math.cos(dec0)
    sa, ca = math.sin(ra0), math.cos(ra0)
    x = -l_dir * sa - m_dir * sd * ca + n_dir * cd * ca
    y = l_dir * ca - m_dir * sd * sa + n_dir * cd * sa
    z = m_dir * cd + n_dir * sd
    ra = np.arctan2(y, x) % (2 * math.pi)
    dec = np.arcsin(np.clip(z, -1, 1))
    return ra, dec, pixsize**2 / n_dir


def simulate(
    beam_kind: str,
    beam_size: float,
    freq_hz: npt.NDArray[np.float64],
    *,
    n_times: int,
    step_s: float,
    amplitude: float,
    seeds: tuple[int, ...],
    enu: npt.NDArray[np.float64] | None = None,
    pixsize: float = PIXSIZE,
    delays: tuple[int, ...] | None = None,
) -> DriftObservation:
    """One drift scan of ``n_times`` x ``step_s`` centred on JD_MIDDLE, one white sky per seed
    (``vis`` keyed ``r00``, ``r01``, ...), seen by the dishes at ``enu`` (default
    :func:`compact_array`). ``beam_kind="mwa"``: MWA tiles pointed with ``delays`` at the
    MWA's site (``beam_size`` unused)."""
    from astropy import units
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time
    from matvis import simulate_vis
    from pyuvdata import UVData

    from payload.sites import install_offline_sites

    install_offline_sites()
    mwa = beam_kind == "mwa"
    lat_deg = MWA_LAT_DEG if mwa else HERA_LAT_DEG
    location = (
        EarthLocation.from_geodetic(MWA_LON_DEG, MWA_LAT_DEG, MWA_ALT_M)
        if mwa
        else EarthLocation.from_geodetic(HERA_LON_DEG, HERA_LAT_DEG, HERA_ALT_M)
    )
    offsets = (np.arange(n_times) - (n_times - 1) / 2) * step_s / 86400.0
    times = Time(JD_MIDDLE + offsets, format="jd", scale="utc")
    middle = n_times // 2
    zenith = SkyCoord(
        alt=90 * units.deg, az=0 * units.deg, frame=AltAz(obstime=times[middle], location=location)
    ).icrs
    ra0, dec0 = float(zenith.ra.rad), float(zenith.dec.rad)
    half_track = 0.5 * n_times * step_s * 2 * math.pi / 86164.0905 * math.cos(dec0)
    if mwa:
        delays = (0,) * 16 if delays is None else tuple(delays)
        beam: Any = mwa_uvbeam(delays, freq_hz)
        unit_beam: Any = beam if not any(delays) else mwa_uvbeam((0,) * 16, freq_hz)
        az_p, za_p = mwa_peak(delays, float(freq_hz.mean()))
        peak = SkyCoord(
            alt=(math.pi / 2 - za_p) * units.rad,
            az=az_p * units.rad,
            frame=AltAz(obstime=times[middle], location=location),
        ).icrs
        ra, dec, solid = _sky_pixels(
            float(peak.ra.rad), float(peak.dec.rad), half_track, pixsize, MWA_SKY_RADIUS
        )
    else:
        beam = unit_beam = analytic_beam(beam_kind, beam_size)
        ra, dec, solid = _sky_pixels(ra0, dec0, half_track, pixsize)
    # a tabulated beam is interpolated linearly: a cubic spline's undershoot near the
    # pattern's nulls would give matvis negative powers (it takes their square root)
    spline = {"order": 1} if mwa else None
    enu = compact_array() if enu is None else enu
    ants = {i: enu[i] for i in range(len(enu))}
    i_idx, j_idx = np.triu_indices(len(enu), k=1)
    antpairs = np.stack([i_idx, j_idx], axis=1)
    x_mpc, y_mpc = cosmology(float(freq_hz.mean()))
    df = float(freq_hz[1] - freq_hz[0])
    # matvis's response to 1 Jy at zenith: the beam's scale (pyuvdata's analytic beams
    # split an unpolarised source between two feeds)
    unit = simulate_vis(
        {0: np.zeros(3), 1: np.asarray([1.0, 0.0, 0.0])},
        np.ones((1, len(freq_hz))),
        np.asarray([ra0]),
        np.asarray([dec0]),
        freq_hz,
        times[middle : middle + 1],
        [unit_beam],
        location,
        precision=2,
        antpairs=np.asarray([[0, 0]]),
        beam_spline_opts=spline,
    )
    scale = np.abs(np.asarray(unit)[:, 0, 0])  # (freq,)
    to_jy = solid[:, None] / np.asarray([mk_sr_per_jy(f) for f in freq_hz])[None]
    sigma_jy = np.sqrt(amplitude / (x_mpc**2 * y_mpc * df * solid))[:, None] * to_jy
    # matvis takes the square root of each flux: the zero-mean field is simulated as the
    # field plus a constant flux (10 of its largest sigma, positive throughout), less the
    # visibilities of that constant (matvis is linear in the fluxes).
    offset = 10.0 * float(sigma_jy.max())

    def run(flux: npt.NDArray[np.float64]) -> npt.NDArray[np.complex128]:
        raw = simulate_vis(
            ants,
            flux,
            ra,
            dec,
            freq_hz,
            times,
            [beam],
            location,
            precision=1,
            antpairs=antpairs,
            beam_spline_opts=spline,
        )
        return np.asarray(raw) / scale[:, None, None]  # (freq, time, baseline)

    base = run(np.full(sigma_jy.shape, offset))
    skies = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        flux = rng.normal(size=sigma_jy.shape) * sigma_jy
        if (flux + offset <= 0).any():
            raise AssertionError("the offset does not keep every flux positive")
        skies[seed] = run(flux + offset) - base
    # The reader's phasing: pyuvdata's phase_to_time, to the middle time's zenith.
    n_bl = len(antpairs)
    uvd = UVData.new(
        freq_array=freq_hz,
        polarization_array=np.asarray([-5]),
        antpairs=[(int(a), int(b)) for a, b in antpairs],
        times=times.jd,
        telescope=_telescope(location, enu, lat_deg),
        integration_time=step_s,
        channel_width=df,
        do_blt_outer=True,
        time_axis_faster_than_bls=False,
    )
    vis: dict[str, npt.NDArray[np.complex128]] = {}
    uvw = None
    for r, seed in enumerate(seeds):
        name = f"r{r:02d}"
        data = np.transpose(skies[seed], (1, 2, 0)).reshape(n_times * n_bl, len(freq_hz))
        copy = uvd.copy()
        copy.data_array = data[:, :, None].astype(np.complex128)
        copy.flag_array = np.zeros(copy.data_array.shape, bool)
        copy.nsample_array = np.ones(copy.data_array.shape, np.float32)
        copy.phase_to_time(times[middle])
        vis[name] = np.asarray(copy.data_array[:, :, 0])
        uvw = np.asarray(copy.uvw_array)
        phase = next(iter(copy.phase_center_catalog.values()))
    assert uvw is not None
    time_index = np.repeat(np.arange(n_times), n_bl)
    return DriftObservation(
        uvw_m=uvw,
        time_index=time_index,
        times_jd=times.jd,
        lst_rad=_lsts(uvd, n_times, n_bl),
        vis=vis,
        freq_hz=freq_hz,
        phase_ra_rad=float(phase["cat_lon"]),
        phase_dec_rad=float(phase["cat_lat"]),
        integration_s=step_s,
        latitude_deg=lat_deg,
    )


def _lsts(uvd: Any, n_times: int, n_bl: int) -> npt.NDArray[np.float64]:
    return np.asarray(uvd.lst_array).reshape(n_times, n_bl)[:, 0]


def _telescope(location: Any, enu: npt.NDArray[np.float64], lat_deg: float = HERA_LAT_DEG) -> Any:
    from pyuvdata import Telescope
    from pyuvdata.utils import ECEF_from_ENU, XYZ_from_LatLonAlt

    names = [f"d{i}" for i in range(len(enu))]
    lat = math.radians(float(location.lat.deg))
    lon, alt = math.radians(float(location.lon.deg)), float(location.height.value)
    ecef = ECEF_from_ENU(enu, latitude=lat, longitude=lon, altitude=alt)
    centre = XYZ_from_LatLonAlt(lat, lon, alt)
    return Telescope.new(
        name="HERA-like compact array",
        location=location,
        antenna_positions=ecef - centre,
        antenna_names=names,
        antenna_numbers=np.arange(len(enu)),
        mount_type="fixed",
        instrument="HERA-like compact array",
    )


def missing_share(beam_kind: str, beam_size: float, freq_hz: float) -> float:
    """The share of the beam's int A^2 dOmega (above the horizon) beyond SKY_RADIUS of its
    centre: how much of the beam-weighted sky the simulation leaves out (spotcube and the
    delay spectrum, normalised by the whole beam, read 1 - share of the input where exact)."""
    beam = analytic_beam(beam_kind, beam_size)
    # a midpoint grid: no direction on the horizon itself, where 1 / n is infinite
    step = 2 / 1200
    axis = np.arange(-1 + step / 2, 1, step)
    ll, mm = np.meshgrid(axis, axis, indexing="ij")
    rho = np.hypot(ll, mm)
    inside = rho < 1
    za = np.arcsin(np.clip(rho[inside], 0, 1))
    az = np.arctan2(ll[inside], mm[inside])
    power = np.asarray(beam.power_eval(az_array=az, za_array=za, freq_array=np.asarray([freq_hz])))
    a2 = power.real[0, 0, 0] ** 2 / np.sqrt(1 - rho[inside] ** 2)  # per dl dm: A^2 / n
    return float(a2[rho[inside] > SKY_RADIUS].sum() / a2.sum())


def spotcube_spectrum(
    obs: DriftObservation,
    beam_spec: str,
    *,
    segmented: bool = True,
    extra_params: dict[str, Any] | None = None,
    n_k_bins: int = 16,
) -> Any:
    """spotcube's power spectrum of the drift scan (one "polarization" per realisation, as
    ``test_pspec_noise.py`` does), made as the image job makes it: segments planned from the
    beam and the times (:func:`payload.drift.plan_drift`), each phased to its own zenith
    and gridded apart (:func:`payload.drift.grid_segments`). ``segmented=False`` is the
    estimator before segments: every time sample gridded into one cube, the beam placed at
    the middle time."""
    from dataclasses import replace

    from payload.beamframe import BeamFrame
    from payload.beams import parse_beam
    from payload.drift import grid_segments, plan_drift
    from payload.params import ImagingParams
    from payload.powerspec import DriftSegment, compute_power_spectrum
    from payload.reading import VisChunk
    from payload.uvcube import UVCube, UVGrid, time_halves

    names = tuple(obs.vis)
    params = ImagingParams.from_mapping(
        {"uv_max_lambda": 70.0, "polarizations": ["XX", "YY"], **(extra_params or {})}
    )
    grid = UVGrid.from_params(params)
    beam = parse_beam(beam_spec)
    middle = len(obs.times_jd) // 2
    hour_angle = (float(obs.lst_rad[middle]) - obs.phase_ra_rad + math.pi) % (2 * math.pi) - math.pi
    duration = float(obs.times_jd[-1] - obs.times_jd[0]) * 86400.0 + obs.integration_s
    frame = BeamFrame(math.radians(obs.latitude_deg), hour_angle, obs.phase_dec_rad, duration)
    halves = time_halves(obs.time_index)
    band = (float(obs.freq_hz[0]), float(obs.freq_hz[-1]))
    if segmented:
        plan = plan_drift(
            beam,
            band,
            grid,
            frame,
            times_jd=obs.times_jd,
            lst_rad=obs.lst_rad,
            integration_s=obs.integration_s,
            projected=False,
        )
        frames = plan.frames
        shifts = None if plan.shifts_ra_rad is None else list(plan.shifts_ra_rad)
        segment_of_row = plan.segments.segment_of_time(len(obs.times_jd))[obs.time_index]
        seconds = plan.segments.seconds
    else:
        # the whole drift in one cube; the frame's duration is cut so that the drift check
        # (which now refuses this) lets the old estimator through
        frames = (replace(frame, duration_s=obs.integration_s),)
        shifts = None
        segment_of_row = np.zeros(len(obs.time_index), dtype=np.int64)
        seconds = (duration,)
    # two realisations per gridding call (as XX and YY: they share the weights)
    pairs = []
    for first in range(0, len(names), 2):
        two = names[first : first + 2]
        vis = {"XX": obs.vis[two[0]], "YY": obs.vis[two[-1]]}
        chunk = VisChunk(
            uvw_m=obs.uvw_m,
            freq_hz=obs.freq_hz,
            vis=vis,
            weights={p: np.ones(v.shape) for p, v in vis.items()},
        )
        gridded = grid_segments(
            chunk,
            grid,
            params,
            max_freq_hz=float(obs.freq_hz.max()),
            halves=halves,
            segment_of_row=segment_of_row,
            n_segments=len(frames),
            shifts_ra_rad=shifts,
            dec_rad=obs.phase_dec_rad,
        )
        pairs.append([(g, len(two)) for g in gridded])
    segments = []
    for s, (f, secs) in enumerate(zip(frames, seconds, strict=True)):
        parts = [pair[s] for pair in pairs]
        cube = UVCube(
            np.concatenate([g.vis[:, :n] for g, n in parts], axis=1),
            np.concatenate([g.weights[:, :n] for g, n in parts], axis=1),
            np.concatenate([g.sampling[:, :n] for g, n in parts], axis=1),
            obs.freq_hz,
            names,
            grid,
            params.stack_params(),
            beam.spec,
        )
        segments.append(DriftSegment(cube, f, secs))
    return compute_power_spectrum(segments, n_k_bins=n_k_bins, beam=beam, frame=frame)


def omega_pp(beam_kind: str, beam_size: float, freq_hz: float) -> float:
    """int A^2 dOmega = int A^2 / n dl dm over the sky above the horizon of the simulated
    beam (pyuvdata's power pattern on a 0.0025 grid), for the delay spectrum's normalisation:
    the expectation of |V|^2 for a sky white per solid angle, as :func:`simulate` makes it."""
    beam = analytic_beam(beam_kind, beam_size)
    step = 0.0025
    axis = np.arange(-1 + step / 2, 1, step)
    ll, mm = np.meshgrid(axis, axis, indexing="ij")
    rho = np.hypot(ll, mm)
    inside = rho < 1
    za = np.arcsin(rho[inside])
    az = np.arctan2(ll[inside], mm[inside])
    power = np.asarray(beam.power_eval(az_array=az, za_array=za, freq_array=np.asarray([freq_hz])))
    measure = 1 / np.sqrt(1 - rho[inside] ** 2)
    return float((power.real[0, 0, 0] ** 2 * measure).sum()) * step**2


def delay_ratios(
    obs: DriftObservation, ps: Any, k_min: float, beam_kind: str, beam_size: float
) -> npt.NDArray[np.float64]:
    """The per-baseline delay spectrum (:mod:`.delay_spectrum`, Parsons et al. 2012) of each
    realisation on ``ps``'s k bins above ``k_min``: (realisation, bin) [mK^2 Mpc^3]."""
    from . import delay_spectrum

    centres = np.sqrt(ps.k_edges[:-1] * ps.k_edges[1:])
    tested = centres > k_min
    opp = omega_pp(beam_kind, beam_size, float(obs.freq_hz.mean()))
    n_times = len(obs.times_jd)
    return np.asarray(
        [
            delay_spectrum.spherical_power(
                obs.vis[name], obs.uvw_m, n_times, obs.freq_hz, opp, ps.k_edges
            )[tested]
            for name in obs.vis
        ]
    )


def mwa_power(
    delays: tuple[int, ...],
    az_rad: npt.NDArray[np.float64],
    za_rad: npt.NDArray[np.float64],
    freq_hz: float,
) -> npt.NDArray[np.float64]:
    """The MWA tile's pseudo-Stokes I power 0.5 (|J_x|^2 + |J_y|^2) from mwa_hyperbeam's
    ``AnalyticBeam`` (azimuth from north through east), over the zenith-pointed tile's value
    at zenith."""
    import mwa_hyperbeam

    model = mwa_hyperbeam.AnalyticBeam()

    def power(d: list[int], az: npt.NDArray[np.float64], za: npt.NDArray[np.float64]) -> Any:
        jones = np.asarray(model.calc_jones_array(az, za, freq_hz, d, [1.0] * 16, True))
        return 0.5 * (np.abs(jones) ** 2).sum(axis=1)

    zenith = float(power([0] * 16, np.zeros(1), np.zeros(1))[0])
    az = np.asarray(az_rad, dtype=np.float64).ravel()
    za = np.asarray(za_rad, dtype=np.float64).ravel()
    return np.asarray(power(list(delays), az, za) / zenith).reshape(np.shape(az_rad))


def mwa_uvbeam(delays: tuple[int, ...], freq_hz: npt.NDArray[np.float64]) -> Any:
    """:func:`mwa_power` as a pyuvdata power ``UVBeam`` (``xx``) on an az/za grid at each of
    ``freq_hz``; pyuvdata's azimuth runs from east through north, hyperbeam's from north
    through east (az_hyperbeam = pi/2 - az_pyuvdata)."""
    from pyuvdata import UVBeam

    step = math.radians(MWA_BEAM_STEP_DEG)
    az = np.arange(0.0, 2 * math.pi - step / 2, step)
    za = np.arange(0.0, math.pi / 2 + step / 2, step)
    grid_az, grid_za = np.meshgrid(az, za)  # (za, az): pyuvdata's (Naxes2, Naxes1)
    north_east = (math.pi / 2 - grid_az) % (2 * math.pi)
    data = np.stack([mwa_power(delays, north_east, grid_za, float(f)) for f in np.asarray(freq_hz)])
    return UVBeam.new(
        telescope_name="MWA",
        data_normalization="physical",
        freq_array=np.asarray(freq_hz, dtype=np.float64),
        beam_type="power",
        polarization_array=np.asarray([-5]),
        x_orientation="east",
        pixel_coordinate_system="az_za",
        axis1_array=az,
        axis2_array=za,
        data_array=data[None, None],
        model_name="mwa_hyperbeam AnalyticBeam",
        model_version="delays " + ",".join(str(d) for d in delays),
    )


def mwa_peak(delays: tuple[int, ...], freq_hz: float) -> tuple[float, float]:
    """Azimuth (from north through east) and zenith angle (rad) of the tile's peak: a
    1 deg x 0.1 deg search."""
    az = np.radians(np.arange(0.0, 360.0, 1.0))
    za = np.radians(np.arange(0.0, 45.0, 0.1))
    grid_az, grid_za = np.meshgrid(az, za)
    power = mwa_power(delays, grid_az, grid_za, freq_hz)
    i = np.unravel_index(int(np.argmax(power)), power.shape)
    return float(grid_az[i]), float(grid_za[i])


def mwa_omega_pp(
    delays: tuple[int, ...], freq_hz: float, step: float = 0.0025, *, solid_angle: bool = True
) -> float:
    """int A^2 dOmega = int A^2 / n dl dm over the sky above the horizon of the tile
    (zenith-centred l east, m north; :func:`mwa_power`), for the delay spectrum's
    normalisation: the expectation of |V|^2 for a sky white per solid angle (as the 21 cm sky
    is, and as :func:`simulate` makes it; hera_pspec's Omega_pp). ``solid_angle=False``: the
    flat-sky int A^2 dl dm instead, 1.2 % smaller for the zenith-pointed tile, 4.0 % pointed
    12.8 deg and 7.8 % pointed 19.4 deg from this zenith phase centre (167 MHz)."""
    axis = np.arange(-1 + step / 2, 1, step)
    ll, mm = np.meshgrid(axis, axis, indexing="ij")
    rho = np.hypot(ll, mm)
    inside = rho < 1
    power = mwa_power(delays, np.arctan2(ll[inside], mm[inside]), np.arcsin(rho[inside]), freq_hz)
    measure = 1 / np.sqrt(1 - rho[inside] ** 2) if solid_angle else 1.0
    return float((power**2 * measure).sum()) * step**2


def mwa_missing_share(delays: tuple[int, ...], freq_hz: float, step: float = 0.005) -> float:
    """The share of the tile's int A^2 dOmega more than ``MWA_SKY_RADIUS`` from its peak."""
    axis = np.arange(-1 + step / 2, 1, step)
    ll, mm = np.meshgrid(axis, axis, indexing="ij")
    rho = np.hypot(ll, mm)
    inside = rho < 1
    l_dir, m_dir = ll[inside], mm[inside]
    n_dir = np.sqrt(1 - rho[inside] ** 2)
    a2 = mwa_power(delays, np.arctan2(l_dir, m_dir), np.arcsin(rho[inside]), freq_hz) ** 2
    az_p, za_p = mwa_peak(delays, freq_hz)
    peak = np.asarray(
        [math.sin(za_p) * math.sin(az_p), math.sin(za_p) * math.cos(az_p), math.cos(za_p)]
    )
    apart = np.arccos(np.clip(l_dir * peak[0] + m_dir * peak[1] + n_dir * peak[2], -1, 1))
    weight = a2 / n_dir  # dOmega = dl dm / n
    return float(weight[apart > MWA_SKY_RADIUS].sum() / weight.sum())
