"""Synthetic MWA observations with point sources at known positions.

Used by the tests, the demo and the benchmarks. The array is the MWA Phase I layout from
pyuvdata's known telescopes (tiles 11-168); the phase centre is put off zenith so that
``|w|`` reaches hundreds of wavelengths and a wrong w sign cannot go unnoticed.

Visibilities follow pyuvdata's convention (uvw = ant2 - ant1)::

    V(u, v, w) = sum_s S_s exp(+2 pi i (u l_s + v m_s + w (n_s - 1)))

with (l, m, n) the SIN direction cosines of each source relative to the phase centre.
Sources are unpolarised with a flat spectrum, so XX = YY = S and XY = YX = 0 (pseudo-Stokes
I = (XX + YY) / 2 = S).
"""

from __future__ import annotations

import csv
import importlib.resources
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from payload.sites import install_offline_sites, mwa_location

install_offline_sites()

import astropy.units as u  # noqa: E402
from astropy.coordinates import Longitude  # noqa: E402
from astropy.time import Time  # noqa: E402
from pyuvdata import Telescope, UVData  # noqa: E402

C_M_S = 299_792_458.0

# 2020-06-01: inside the IERS-B table bundled with astropy, so no download is ever needed.
DEFAULT_JD_START = 2459001.75
MWA_FINE_CHANNEL_HZ = 40_000.0


@dataclass(frozen=True)
class PointSource:
    """A flat-spectrum, unpolarised point source (ICRS degrees, Jy)."""

    ra_deg: float
    dec_deg: float
    flux_jy: float


@dataclass(frozen=True)
class SynthMetadata:
    """What a synthetic observation holds, for tests to compare against."""

    path: str
    n_tiles: int
    n_freqs: int
    n_times: int
    n_baselines: int
    freq_hz: list[float]
    phase_center_ra_deg: float
    phase_center_dec_deg: float
    sources: list[PointSource]
    noise_jy: float
    max_abs_w_lambda: float
    max_uv_lambda: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    """A named size of synthetic observation."""

    n_tiles: int
    n_freqs: int
    n_times: int
    channel_width_hz: float
    chunk_channels: int
    image_size: int | None


# "tiny": the worker fault-injection tests run ~20 of these; each chunk images in well
# under a second. "demo": ~4 observations with 4 chunks each within the demo's budget.
# "bench": the size the benchmark uses (128 tiles, 64 channels, 4 polarisations).
PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        n_tiles=16,
        n_freqs=16,
        n_times=2,
        channel_width_hz=160_000.0,
        chunk_channels=4,
        image_size=64,
    ),
    "demo": Preset(
        n_tiles=32,
        n_freqs=32,
        n_times=4,
        channel_width_hz=160_000.0,
        chunk_channels=8,
        image_size=128,
    ),
    "bench": Preset(
        n_tiles=128,
        n_freqs=64,
        n_times=8,
        channel_width_hz=MWA_FINE_CHANNEL_HZ,
        chunk_channels=16,
        image_size=None,
    ),
}


def mwa_phase1_tiles() -> tuple[list[str], list[int], npt.NDArray[np.float64]]:
    """Names, numbers and ENU-in-ECEF-frame positions (m) of the 128 MWA Phase I tiles."""
    data = importlib.resources.files("pyuvdata") / "data" / "mwa_ant_pos.csv"
    names: list[str] = []
    numbers: list[int] = []
    positions: list[list[float]] = []
    with data.open() as handle:
        for row in csv.DictReader(handle):
            number = int(row["numbers"])
            # Phase I: receivers 1-16, eight tiles each, numbered 11-18, 21-28, ..., 161-168.
            if 11 <= number <= 168 and 1 <= number % 10 <= 8:
                names.append(row["names"])
                numbers.append(number)
                positions.append([float(row["x"]), float(row["y"]), float(row["z"])])
    return names, numbers, np.asarray(positions)


def _select_tiles(n_tiles: int) -> npt.NDArray[np.int64]:
    """Indices of the ``n_tiles`` Phase I tiles closest to the array centre (compact core)."""
    _, _, positions = mwa_phase1_tiles()
    if not 2 <= n_tiles <= len(positions):
        raise ValueError(f"n_tiles must be between 2 and {len(positions)}, got {n_tiles}")
    radius = np.linalg.norm(positions - positions.mean(axis=0), axis=1)
    return np.sort(np.argsort(radius, kind="stable")[:n_tiles])


def _make_telescope(n_tiles: int) -> Telescope:
    names, numbers, positions = mwa_phase1_tiles()
    keep = _select_tiles(n_tiles)
    telescope = Telescope.from_known_telescopes("mwa")
    telescope.antenna_names = [names[i] for i in keep]
    telescope.antenna_numbers = np.asarray([numbers[i] for i in keep])
    telescope.antenna_positions = positions[keep]
    telescope.Nants = len(keep)
    telescope.antenna_diameters = np.full(len(keep), 4.0)  # a 4x4-dipole tile is ~4 m across
    telescope.mount_type = ["phased"] * len(keep)
    telescope.instrument = "MWA"
    # Per-antenna arrays of the known telescope cover all 262 tiles: keep ours.
    if telescope.feed_array is not None:
        telescope.feed_array = telescope.feed_array[: len(keep)]
    if telescope.feed_angle is not None:
        telescope.feed_angle = telescope.feed_angle[: len(keep)]
    return telescope


def field_center(
    *, hour_angle_h: float = 1.5, dec_deg: float = -45.0, jd: float = DEFAULT_JD_START
) -> tuple[float, float]:
    """ICRS (RA, Dec) in degrees of the phase centre of a synthetic observation.

    The centre is ``hour_angle_h`` hours west of the MWA meridian at ``jd``; tests use it to
    place sources (e.g. on pixel centres) before the observation is written.
    """
    time = Time(jd, format="jd", scale="utc", location=mwa_location())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lst_deg = time.sidereal_time("apparent").deg
    return float(Longitude((lst_deg - 15.0 * hour_angle_h) * u.deg).deg), dec_deg


def lmn(
    ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike, ra0_deg: float, dec0_deg: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """SIN direction cosines (l, m, n) of positions relative to a phase centre."""
    ra = np.radians(np.asarray(ra_deg, dtype=float))
    dec = np.radians(np.asarray(dec_deg, dtype=float))
    ra0, dec0 = np.radians(ra0_deg), np.radians(dec0_deg)
    dra = ra - ra0
    l_ = np.cos(dec) * np.sin(dra)
    m_ = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(dra)
    n_ = np.sin(dec) * np.sin(dec0) + np.cos(dec) * np.cos(dec0) * np.cos(dra)
    return l_, m_, n_


def default_sources(
    ra0_deg: float, dec0_deg: float, *, n_sources: int = 5, radius_deg: float = 6.0, seed: int = 1
) -> list[PointSource]:
    """Point sources scattered within ``radius_deg`` of the phase centre, 1-5 Jy."""
    rng = np.random.default_rng(seed)
    sources = []
    for _ in range(n_sources):
        r = radius_deg * np.sqrt(rng.uniform(0.05, 1.0))
        theta = rng.uniform(0.0, 2 * np.pi)
        dec = dec0_deg + r * np.sin(theta)
        ra = ra0_deg + r * np.cos(theta) / np.cos(np.radians(dec))
        sources.append(PointSource(float(ra % 360.0), float(dec), float(rng.uniform(1.0, 5.0))))
    return sources


def write_synthetic_observation(
    path: str | Path,
    *,
    n_tiles: int = 128,
    n_freqs: int = 64,
    n_times: int = 4,
    channel_width_hz: float = MWA_FINE_CHANNEL_HZ,
    start_freq_hz: float = 167.035e6,
    integration_s: float = 8.0,
    hour_angle_h: float = 1.5,
    dec_deg: float = -45.0,
    sources: Sequence[PointSource] | None = None,
    noise_jy: float = 0.0,
    include_autos: bool = True,
    seed: int = 0,
    block_channels: int | None = None,
) -> SynthMetadata:
    """Write a synthetic MWA observation as uvh5 and describe what is in it.

    Parameters
    ----------
    path
        Output ``.uvh5`` file (overwritten).
    n_tiles
        Number of Phase I tiles, taken from the compact core outwards.
    n_freqs, channel_width_hz, start_freq_hz
        Frequency axis.
    n_times, integration_s
        Time axis, starting at :data:`DEFAULT_JD_START`.
    hour_angle_h, dec_deg
        The phase centre: hour angle (at the first time) and declination; the default is
        ~30 degrees from zenith so that ``|w|`` reaches hundreds of wavelengths.
    sources
        Point sources; default: :func:`default_sources` around the phase centre.
    noise_jy
        Standard deviation of complex Gaussian noise per real and imaginary part.
    include_autos
        Write autocorrelations too (as real MWA files do); imaging ignores them.
    seed
        Noise seed.
    block_channels
        Write the file this many channels at a time (pyuvdata's partial writes), stored in
        HDF5 chunks of that many channels (:func:`payload.rechunk.chunk_shape`, so a worker
        reads it by range): memory holds one block, not the observation (a full MWA Phase I
        observation is ~24 GiB in memory). The noise is drawn per block (seeded by ``seed``
        and the block), so it differs from the one-piece file's.

    Returns
    -------
    SynthMetadata
    """
    telescope = _make_telescope(n_tiles)
    freqs = start_freq_hz + channel_width_hz * np.arange(n_freqs)
    times = DEFAULT_JD_START + integration_s / 86400.0 * np.arange(n_times)
    ra0, _ = field_center(hour_angle_h=hour_angle_h, dec_deg=dec_deg, jd=float(times[0]))
    numbers = telescope.antenna_numbers
    antpairs = [
        (int(numbers[i]), int(numbers[j]))
        for i in range(len(numbers))
        for j in range(i if include_autos else i + 1, len(numbers))
    ]
    uvd = UVData.new(
        freq_array=freqs,
        polarization_array=np.array([-5, -6, -7, -8]),
        times=times,
        telescope=telescope,
        antpairs=antpairs,
        do_blt_outer=True,
        integration_time=integration_s,
        channel_width=channel_width_hz,
        vis_units="Jy",
        empty=block_channels is None,  # a block writer holds one block only
        history="spotcube synthetic observation",
        update_telescope_from_known=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd.phase(ra=np.radians(ra0), dec=np.radians(dec_deg), cat_name="spotcube_field")
    sources = list(sources) if sources is not None else default_sources(ra0, dec_deg)
    autos = uvd.ant_1_array == uvd.ant_2_array
    Path(path).parent.mkdir(parents=True, exist_ok=True)

    def block(channels: slice, rng: np.random.Generator) -> npt.NDArray[np.complex64]:
        wavelengths = C_M_S / freqs[channels]
        uvw = uvd.uvw_array
        vis = np.zeros((uvd.Nblts, len(wavelengths)), dtype=np.complex128)
        for source in sources:
            l_, m_, n_ = lmn(source.ra_deg, source.dec_deg, ra0, dec_deg)
            path_m = uvw[:, 0] * l_ + uvw[:, 1] * m_ + uvw[:, 2] * (n_ - 1.0)
            vis += source.flux_jy * np.exp(2j * np.pi * path_m[:, None] / wavelengths[None, :])
        data = np.zeros((*vis.shape, 4), dtype=np.complex64)
        for p in (0, 1):
            data[:, :, p] = vis
            if noise_jy > 0:
                data[:, :, p] += noise_jy * (
                    rng.standard_normal(vis.shape) + 1j * rng.standard_normal(vis.shape)
                )
        data[autos, :, 0:2] = sum(s.flux_jy for s in sources) + 100.0  # a sky-like auto
        return data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if block_channels is None:
            data = block(slice(0, n_freqs), np.random.default_rng(seed))
            uvd.data_array = data
            uvd.flag_array = np.zeros(data.shape, dtype=bool)
            uvd.nsample_array = np.ones(data.shape, dtype=np.float32)
            uvd.write_uvh5(str(path), clobber=True)
        else:
            from payload.rechunk import chunk_shape

            shape = (uvd.Nblts, n_freqs, 4)
            chunks = chunk_shape(shape, np.dtype(np.complex64).itemsize, block_channels)
            uvd.initialize_uvh5_file(
                str(path), clobber=True, chunks=chunks, data_write_dtype=np.dtype("c8")
            )
            for index, start in enumerate(range(0, n_freqs, block_channels)):
                channels = slice(start, min(start + block_channels, n_freqs))
                data = block(channels, np.random.default_rng([seed, index]))
                uvd.write_uvh5_part(
                    str(path),
                    data_array=data,
                    flag_array=np.zeros(data.shape, dtype=bool),
                    nsample_array=np.ones(data.shape, dtype=np.float32),
                    freq_chans=np.arange(channels.start, channels.stop),
                    check_header=False,  # the header on disk is the one just written
                )
    wavelengths = C_M_S / freqs
    uvw = uvd.uvw_array
    cross = ~autos
    return SynthMetadata(
        path=str(path),
        n_tiles=n_tiles,
        n_freqs=n_freqs,
        n_times=n_times,
        n_baselines=uvd.Nbls,
        freq_hz=[float(f) for f in freqs],
        phase_center_ra_deg=ra0,
        phase_center_dec_deg=dec_deg,
        sources=sources,
        noise_jy=noise_jy,
        max_abs_w_lambda=float(np.abs(uvw[cross, 2]).max() / wavelengths.min()),
        max_uv_lambda=float(np.hypot(uvw[cross, 0], uvw[cross, 1]).max() / wavelengths.min()),
    )


def write_preset(
    path: str | Path, preset: str, *, seed: int = 0, **overrides: Any
) -> SynthMetadata:
    """Write one of :data:`PRESETS` (``tiny``, ``demo``, ``bench``) to ``path``."""
    try:
        spec = PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}") from None
    kwargs: dict[str, Any] = {
        "n_tiles": spec.n_tiles,
        "n_freqs": spec.n_freqs,
        "n_times": spec.n_times,
        "channel_width_hz": spec.channel_width_hz,
        "seed": seed,
    }
    kwargs.update(overrides)
    return write_synthetic_observation(path, **kwargs)


def preset_params(preset: str) -> dict[str, Any]:
    """Imaging params that suit a preset (chunk size, image size), JSON-friendly."""
    spec = PRESETS[preset]
    params: dict[str, Any] = {"chunk_channels": spec.chunk_channels}
    if spec.image_size is not None:
        params["image_size"] = spec.image_size
    return params
