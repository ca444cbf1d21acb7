"""Synthetic MWA raw data of the legacy correlator: one metafits file plus gpubox FITS files.

There are no real MWA raw files on the build machines, so this module writes a small but
complete legacy-correlator observation that ``UVData.read(..., file_type="mwa_corr_fits")``
(pyuvdata 3.2) reads offline. The legacy correlator always correlates all 128 tiles (256
inputs); the observation is kept small in time and frequency instead: one coarse channel of
a few fine channels and a couple of integrations.

Visibilities follow a known integer pattern (:func:`pattern_visibility`) chosen so that a
wrong baseline, polarization, channel or time in the correlator layout changes the value
read back. With the default metafits values every correction pyuvdata applies by default is
the identity, so the pattern is read back exactly:

* digital gains: every ``Gains`` entry is 64 (pyuvdata divides by ``gain / 64``);
* PFB coarse-band shape: ``DERIPPLE = 1`` says the correlator already removed it;
* cable delays: every tile has the same electrical length (``EL_`` prefix), so the
  differences pyuvdata phases by are zero;
* start-of-observation flags: ``GOODTIME`` equals the first integration's time;
* Van Vleck correction: off by default in pyuvdata.

What remains is pyuvdata's routine channel flagging (``flag_init``): with the default
``edge_width`` of 80 kHz, the 80 kHz at each edge of a coarse channel and its centre (DC)
fine channel are flagged (:func:`expected_flagged_channels`).

Layout of a legacy gpubox file (as pyuvdata maps it in ``_corr_fits.generate_map``): each
integration is an image HDU of float32 with ``NAXIS2`` fine channels and ``NAXIS1`` =
8256 blocks x 4 products x (re, im). Inputs are numbered by the row pairs of the metafits
table (pair ``i``: input ``2i`` is Y, ``2i + 1`` is X); the PFB reorders inputs into
outputs; output ``o`` is correlator "antenna" ``o // 2`` with polarization ``o % 2``; each
block holds the 2x2 products of a lower-triangle pair of correlator antennas.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from payload.sites import install_offline_sites

install_offline_sites()

from astropy.io import fits  # noqa: E402
from astropy.time import Time  # noqa: E402
from pyuvdata import Telescope  # noqa: E402
from pyuvdata.utils import ENU_from_ECEF  # noqa: E402

from payload.synth import mwa_phase1_tiles  # noqa: E402

N_TILES = 128  # the legacy correlator correlates exactly 128 tiles, 256 inputs
N_INPUTS = 2 * N_TILES
N_BLOCKS = N_TILES * (N_TILES + 1) // 2  # lower-triangle pairs of correlator "antennas"
COARSE_CHANNEL_HZ = 1_280_000.0
# pyuvdata's read default ``edge_width``: the width flagged at each coarse-channel edge.
PYUVDATA_EDGE_WIDTH_HZ = 80_000.0
# Legacy fine-channel widths: 10 kHz native, averaged by NAV_FREQ = 2 or 4.
LEGACY_FINE_WIDTHS_HZ = (10_000.0, 20_000.0, 40_000.0)
# 2020-06-01 06:00 UTC: inside astropy's bundled IERS-B table, as in payload.synth.
DEFAULT_START_UNIX = 1_590_991_200
# pyuvdata's polarization codes in the file's product order (p1, p2) = (Y,Y), (Y,X),
# (X,Y), (X,X); it reorders them to AIPS order XX, YY, XY, YX on reading.
FILE_POL_CODES = (-6, -8, -7, -5)


@dataclass(frozen=True)
class MWARawObservation:
    """What a synthetic legacy MWA raw observation holds, for tests to compare against."""

    directory: Path
    metafits: Path
    gpubox_files: tuple[Path, ...]
    obs_id: int
    freq_hz: npt.NDArray[np.float64]
    channel_width_hz: float
    integration_time_s: float
    n_times: int
    tile_numbers: npt.NDArray[np.int64]  # tile number of metafits "Antenna" index 0..127
    flagged_tiles: tuple[int, ...]

    def antenna_index(self, tile_numbers: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Metafits "Antenna" index (0-127) of each tile number."""
        lookup = {int(t): i for i, t in enumerate(self.tile_numbers)}
        return np.asarray([lookup[int(t)] for t in np.ravel(tile_numbers)], dtype=np.int64)


def pattern_visibility(
    ant1: npt.ArrayLike,
    ant2: npt.ArrayLike,
    pol_code: npt.ArrayLike,
    channel: npt.ArrayLike,
    time_index: npt.ArrayLike,
) -> npt.NDArray[np.complex128]:
    """Visibility pyuvdata should read for a baseline, polarization, channel and time.

    ``ant1 <= ant2`` are metafits "Antenna" indices (0-127), ``pol_code`` an AIPS code
    (-5..-8 for XX, YY, XY, YX), ``channel`` the fine channel index within the coarse
    channel. Values are small integers (exact in float32 and unchanged by the rounding to
    multiples of ``SCALEFAC`` pyuvdata does); the real part encodes ant1, polarization,
    channel and time, the imaginary part ant2 and polarization. Autocorrelations are
    Hermitian as the correlator produces them: XX and YY real, YX the conjugate of XY.
    """
    a1, a2, code, chan, t = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.int64) for x in (ant1, ant2, pol_code, channel, time_index))
    )
    q = -5 - code  # 0..3 for XX, YY, XY, YX
    real = 1 + a1 + 200 * q + 1_000 * chan + 40_000 * t
    imag = 1 + a2 + 200 * q
    auto = a1 == a2
    # Same-tile XX, YY: real powers. Same-tile YX: the conjugate of XY, stored once.
    imag = np.where(auto & (q < 2), 0, imag)
    yx = auto & (q == 3)
    xy_real = 1 + a1 + 200 * 2 + 1_000 * chan + 40_000 * t
    xy_imag = 1 + a2 + 200 * 2
    real = np.where(yx, xy_real, real)
    imag = np.where(yx, -xy_imag, imag)
    return real.astype(np.float64) + 1j * imag.astype(np.float64)


def expected_flagged_channels(n_fine: int, channel_width_hz: float) -> npt.NDArray[np.int64]:
    """Fine channels pyuvdata's default ``flag_init`` flags in one coarse channel."""
    n_edge = int(PYUVDATA_EDGE_WIDTH_HZ // channel_width_hz)
    edges = list(range(n_edge)) + list(range(n_fine - n_edge, n_fine))
    return np.unique(np.asarray([*edges, n_fine // 2], dtype=np.int64))


def pfb_output(pfb_input: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Legacy PFB output index of each input index (0-255).

    Within each group of 64, input ``16 k + j`` (j < 16, k < 4) comes out at ``4 j + k``.
    """
    n = np.asarray(pfb_input, dtype=np.int64)
    r = n % 64
    return 64 * (n // 64) + 4 * (r % 16) + r // 16


def legacy_layout(
    row_pair_of_antenna: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Where each product is stored in a legacy gpubox HDU row, and whether it is conjugated.

    Parameters
    ----------
    row_pair_of_antenna : numpy.ndarray
        For each metafits "Antenna" index, the index of its row pair in the metafits table
        (its Y input is ``2 * pair``, its X input ``2 * pair + 1``).

    Returns
    -------
    index : numpy.ndarray
        Shape (8256, 4): complex position in the HDU row of baseline ``b`` (pairs
        ``a1 <= a2`` in row-major order) and product ``p`` of ``FILE_POL_CODES``.
    stored_conjugate : numpy.ndarray
        True where the correlator stores the product with the inputs in the other order,
        i.e. the stored number is the conjugate of the product for ``(a1, a2)``.
    """
    a1, a2 = np.triu_indices(N_TILES)
    p1 = np.repeat(np.array([[0, 0, 1, 1]]), len(a1), axis=0)  # 0 = Y, 1 = X
    p2 = np.repeat(np.array([[0, 1, 0, 1]]), len(a1), axis=0)
    out1 = pfb_output(2 * row_pair_of_antenna[a1][:, None] + p1)
    out2 = pfb_output(2 * row_pair_of_antenna[a2][:, None] + p2)
    hi, lo = np.maximum(out1, out2), np.minimum(out1, out2)
    ant_hi, ant_lo = hi // 2, lo // 2
    # Blocks run over correlator antenna pairs lo <= hi, hi-major; 4 products per block.
    index = 2 * ant_hi * (ant_hi + 1) + 4 * ant_lo + 2 * (hi % 2) + lo % 2
    return index, out2 > out1


def _correlator_row(
    values: npt.NDArray[np.complex128],
    index: npt.NDArray[np.int64],
    stored_conjugate: npt.NDArray[np.bool_],
) -> npt.NDArray[np.complex128]:
    """One fine channel's HDU row (as complex) holding ``values`` (shape (8256, 4)).

    pyuvdata conjugates every visibility after mapping (its uvw convention), so what is
    stored is the conjugate of the wanted value, unless the correlator stores the product
    reversed, which is conjugated once more.
    """
    row = np.full(4 * N_BLOCKS, np.nan + 0j)
    row[index] = np.where(stored_conjugate, values, np.conj(values))
    # The same-correlator-antenna blocks hold the cross product of their two outputs twice
    # (offsets 1 and 2); pyuvdata reads offset 2. Offset 1 is its conjugate.
    diagonal = 2 * np.arange(N_TILES) * (np.arange(N_TILES) + 1) + 4 * np.arange(N_TILES)
    row[diagonal + 1] = np.conj(row[diagonal + 2])
    if np.isnan(row.real).any():  # every position must be written exactly by the layout
        raise AssertionError("legacy layout left part of the HDU row unwritten")
    return row


def _tile_table(
    flagged_tiles: Sequence[int], seed: int
) -> tuple[npt.NDArray[np.int64], list[str], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Tile numbers, names and ENU positions (by Antenna index), and the input cabling."""
    names, numbers, rel_ecef = mwa_phase1_tiles()
    order = np.argsort(numbers)
    tile_numbers = np.asarray(numbers, dtype=np.int64)[order]
    tile_names = [names[i] for i in order]
    telescope = Telescope.from_known_telescopes("mwa")
    lat, lon, alt = telescope.location_lat_lon_alt
    # Metafits positions are East/North/Height about the array centre; pyuvdata turns them
    # back into ECEF with the same known MWA location.
    enu = ENU_from_ECEF(
        rel_ecef[order] + telescope._location.xyz(), latitude=lat, longitude=lon, altitude=alt
    )
    unknown = set(flagged_tiles) - set(tile_numbers.tolist())
    if unknown:
        raise ValueError(f"flagged_tiles not in the Phase I array: {sorted(unknown)}")
    # Receiver cabling scrambles which metafits row pair (PFB input) a tile lands on.
    row_pair_of_antenna = np.random.default_rng(seed).permutation(N_TILES).astype(np.int64)
    return tile_numbers, tile_names, np.asarray(enu), row_pair_of_antenna


def _first_freq_hz(coarse_channel: int, n_fine: int, channel_width_hz: float) -> float:
    """Centre of the first fine channel, the fine channels centred on the coarse channel."""
    return coarse_channel * COARSE_CHANNEL_HZ - (n_fine / 2 - 0.5) * channel_width_hz


def _metafits(
    *,
    obs_id: int,
    start_unix: int,
    integration_time_s: float,
    n_fine: int,
    channel_width_hz: float,
    coarse_channel: int,
    tile_numbers: npt.NDArray[np.int64],
    tile_names: list[str],
    enu: npt.NDArray[np.float64],
    row_pair_of_antenna: npt.NDArray[np.int64],
    flagged_tiles: Sequence[int],
    digital_gain: int,
    cable_length: str,
    ra_deg: float,
    dec_deg: float,
) -> fits.HDUList:
    """The metafits file: observation header and the 256-row (one per input) tile table."""
    first_freq_hz = _first_freq_hz(coarse_channel, n_fine, channel_width_hz)
    start = datetime.fromtimestamp(start_unix, tz=UTC)
    header = fits.Header()
    # read_metafits pops TELESCOP/INSTRUME into telescope.name / instrument.
    header["TELESCOP"] = "MWA"
    header["INSTRUME"] = "128T"
    header["GPSTIME"] = obs_id
    header["DATE-OBS"] = start.strftime("%Y-%m-%dT%H:%M:%S")  # skipped by pyuvdata
    # FILENAME: pyuvdata's phase-centre (object) name.
    header["FILENAME"] = f"synthetic_legacy_{obs_id}"
    # RA/DEC: pointing centre; only used with phase_to_pointing_center=True.
    header["RA"] = ra_deg
    header["DEC"] = dec_deg
    # GOODTIME (unix s): pyuvdata's default start_flag="goodtime" flags integrations before
    # it; equal to the first integration's start, nothing is flagged.
    header["GOODTIME"] = float(start_unix)
    # CHANNELS: coarse channel numbers; with NCHANS (fine channels over all coarse
    # channels) gives the fine channels per coarse channel.
    header["CHANNELS"] = str(coarse_channel)
    header["CENTCHAN"] = coarse_channel
    header["NCHANS"] = n_fine
    header["BANDWDTH"] = n_fine * channel_width_hz / 1e6
    # FINECHAN (kHz): channel_width. FREQCENT (MHz): for the legacy correlator pyuvdata
    # takes it as the centre of the first fine channel of the centre coarse channel.
    header["FINECHAN"] = channel_width_hz / 1e3
    header["FREQCENT"] = first_freq_hz / 1e6
    # NAV_FREQ: averaging of the 10 kHz native channels (sizes the PFB passband array).
    header["NAV_FREQ"] = round(channel_width_hz / 10_000.0)
    header["INTTIME"] = integration_time_s  # integration_time and the time grid
    # DERIPPLE = 1: the PFB passband is already removed, so pyuvdata's default
    # remove_coarse_band=None resolves to False.
    header["DERIPPLE"] = 1
    header["HISTORY"] = "Synthetic legacy-correlator observation (payload.synth_mwaraw)."

    rows = 2 * N_TILES
    antenna = np.empty(rows, dtype=np.int16)
    pol = np.empty(rows, dtype="U1")
    antenna_of_pair = np.argsort(row_pair_of_antenna)
    for pair in range(N_TILES):
        # pyuvdata reads every other row (1::2) and treats row pair i as inputs 2i (Y) and
        # 2i + 1 (X); the table is sorted by Input as in real metafits files.
        antenna[2 * pair : 2 * pair + 2] = antenna_of_pair[pair]
        pol[2 * pair : 2 * pair + 2] = ("Y", "X")
    ant = antenna.astype(np.int64)
    flags = np.isin(tile_numbers[ant], np.asarray(flagged_tiles, dtype=np.int64))
    columns = [
        fits.Column(name="Input", format="I", array=np.arange(rows, dtype=np.int16)),
        # Antenna: correlator antenna index, the order of pyuvdata's baselines.
        fits.Column(name="Antenna", format="I", array=antenna),
        fits.Column(name="Tile", format="I", array=tile_numbers[ant].astype(np.int16)),
        fits.Column(name="TileName", format="8A", array=np.asarray(tile_names)[ant]),
        fits.Column(name="Pol", format="1A", array=pol),
        fits.Column(name="Rx", format="I", array=(tile_numbers[ant] // 10).astype(np.int16)),
        fits.Column(name="Slot", format="I", array=(tile_numbers[ant] % 10).astype(np.int16)),
        # Flag = 1: pyuvdata flags the tile, and removes it with remove_flagged_ants.
        fits.Column(name="Flag", format="I", array=flags.astype(np.int16)),
        # Length: cable length; "EL_" means already electrical, so pyuvdata applies no
        # velocity factor. Equal lengths make its cable-delay phases zero.
        fits.Column(name="Length", format="14A", array=np.full(rows, cable_length)),
        fits.Column(name="East", format="E", array=enu[ant, 0]),
        fits.Column(name="North", format="E", array=enu[ant, 1]),
        fits.Column(name="Height", format="E", array=enu[ant, 2]),
        # Gains: one digital gain per coarse channel of the receiver (24); pyuvdata takes
        # the column of each coarse channel read and divides by gain / 64.
        fits.Column(name="Gains", format="24J", array=np.full((rows, 24), digital_gain)),
    ]
    table = fits.BinTableHDU.from_columns(columns, name="TILEDATA")
    return fits.HDUList([fits.PrimaryHDU(header=header), table])


def write_mwa_raw(
    directory: str | Path,
    *,
    n_fine: int = 8,
    channel_width_hz: float = 40_000.0,
    n_times: int = 2,
    integration_time_s: float = 2.0,
    coarse_channel: int = 133,
    start_unix: int = DEFAULT_START_UNIX,
    flagged_tiles: Sequence[int] = (),
    digital_gain: int = 64,
    cable_length: str = "EL_100.0",
    ra_deg: float = 0.0,
    dec_deg: float = -26.7,
    seed: int = 7,
) -> MWARawObservation:
    """Write a legacy-correlator MWA raw observation (metafits + one gpubox file).

    Parameters
    ----------
    directory : str or pathlib.Path
        Created if needed; receives ``<obsid>.metafits`` and
        ``<obsid>_<YYYYmmddHHMMSS>_gpubox01_00.fits``.
    n_fine : int
        Fine channels in the coarse channel (a real 40 kHz observation has 32; fewer keep
        the files small, and pyuvdata does not require the coarse channel to be filled).
    channel_width_hz : float
        Fine channel width: 10, 20 or 40 kHz as the legacy correlator produced. These also
        divide pyuvdata's default 80 kHz ``edge_width``, which it requires.
    n_times : int
        Integrations (one image HDU each).
    integration_time_s : float
        Integration time; a whole or half number of seconds so times are exact.
    coarse_channel : int
        Coarse channel number (x 1.28 MHz is its centre). As the only coarse channel it
        is gpubox01 under the legacy receiver-to-file order, whatever its number.
    start_unix : int
        Unix time of the start of the first integration (whole seconds).
    flagged_tiles : sequence of int
        Tile numbers flagged in the metafits table.
    digital_gain : int
        Digital gain of every input; 64 makes pyuvdata's gain removal the identity.
    cable_length : str
        Metafits ``Length`` of every input.
    ra_deg, dec_deg : float
        Pointing centre written to the metafits.
    seed : int
        Seed of the input cabling (which metafits row pair each tile is on).

    Returns
    -------
    MWARawObservation
        Paths and what pyuvdata should read (frequencies, times, tiles).
    """
    if channel_width_hz not in LEGACY_FINE_WIDTHS_HZ:
        raise ValueError(f"channel_width_hz must be one of {LEGACY_FINE_WIDTHS_HZ}")
    if not 2 <= n_fine <= int(COARSE_CHANNEL_HZ // channel_width_hz):
        raise ValueError("n_fine must be at least 2 and fit in a 1.28 MHz coarse channel")
    if not 1 <= coarse_channel <= 255:
        raise ValueError("coarse_channel must be between 1 and 255")
    if n_times < 1 or (2 * integration_time_s) % 1:
        raise ValueError("need n_times >= 1 and integration_time_s a multiple of 0.5 s")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    obs_id = round(Time(start_unix, format="unix", scale="utc").gps)
    tile_numbers, tile_names, enu, row_pair_of_antenna = _tile_table(flagged_tiles, seed)

    metafits = directory / f"{obs_id}.metafits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)  # long string cards
        _metafits(
            obs_id=obs_id,
            start_unix=start_unix,
            integration_time_s=integration_time_s,
            n_fine=n_fine,
            channel_width_hz=channel_width_hz,
            coarse_channel=coarse_channel,
            tile_numbers=tile_numbers,
            tile_names=tile_names,
            enu=enu,
            row_pair_of_antenna=row_pair_of_antenna,
            flagged_tiles=flagged_tiles,
            digital_gain=digital_gain,
            cable_length=cable_length,
            ra_deg=ra_deg,
            dec_deg=dec_deg,
        ).writeto(metafits, overwrite=True)

    index, stored_conjugate = legacy_layout(row_pair_of_antenna)
    a1, a2 = np.triu_indices(N_TILES)
    codes = np.asarray(FILE_POL_CODES)[None, :]
    primary = fits.Header()
    # OBSID: pyuvdata requires every gpubox file of a read to share it. No CORR_VER card:
    # its presence is how pyuvdata recognises MWAX files.
    primary["OBSID"] = obs_id
    primary["TIME"] = start_unix
    primary["MILLITIM"] = 0
    primary["INTTIME"] = integration_time_s  # aligns start times of several gpubox files
    primary["NCHANS"] = n_fine
    primary["NINPUTS"] = N_INPUTS
    hdus: list[fits.PrimaryHDU | fits.ImageHDU] = [fits.PrimaryHDU(header=primary)]
    start_ms = 1000 * start_unix
    for t in range(n_times):
        data = np.empty((n_fine, 4 * N_BLOCKS), dtype=np.complex64)
        for chan in range(n_fine):
            values = pattern_visibility(a1[:, None], a2[:, None], codes, chan, t)
            data[chan] = _correlator_row(values, index, stored_conjugate)
        header = fits.Header()
        # TIME + MILLITIM / 1000: start of the integration (unix); pyuvdata adds half an
        # integration and matches it exactly against its time grid. NAXIS2 (the number of
        # rows) is the fine-channel count. No BSCALE: pyuvdata then uses SCALEFAC = 0.25
        # and rounds data to multiples of it, which the integer pattern survives.
        at_ms = start_ms + round(1000 * t * integration_time_s)
        header["TIME"] = at_ms // 1000
        header["MILLITIM"] = at_ms % 1000
        hdus.append(fits.ImageHDU(data=data.view(np.float32), header=header))
    stamp = datetime.fromtimestamp(start_unix, tz=UTC).strftime("%Y%m%d%H%M%S")
    # pyuvdata takes the file number from the last two digits before the final "_" and
    # maps it to a coarse channel (ascending <= 128, then descending): the only one is 01.
    gpubox = directory / f"{obs_id}_{stamp}_gpubox01_00.fits"
    fits.HDUList(hdus).writeto(gpubox, overwrite=True)

    first_freq_hz = _first_freq_hz(coarse_channel, n_fine, channel_width_hz)
    return MWARawObservation(
        directory=directory,
        metafits=metafits,
        gpubox_files=(gpubox,),
        obs_id=obs_id,
        freq_hz=first_freq_hz + channel_width_hz * np.arange(n_fine, dtype=np.float64),
        channel_width_hz=channel_width_hz,
        integration_time_s=integration_time_s,
        n_times=n_times,
        tile_numbers=tile_numbers,
        flagged_tiles=tuple(int(t) for t in flagged_tiles),
    )
