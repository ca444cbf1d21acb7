"""Real HERA data of pyuvdata's test files through spotcube and through hera_pspec.

The file: ``zen.2458098.45361.HH_downselected.uvh5`` from the pyuvdata 3.2.3 wheel (HERA,
2017-12-08, 8 antennas, 28 cross-correlations of 14.6-38.7 m, 10 integrations of 10.7 s
drifting at zenith, 64 channels of 97.7 kHz every 1.5625 MHz from 100 to 198 MHz,
uncalibrated, nothing flagged; a pyuvdata < 2 file with a spectral-window axis).

* spotcube: ``python -m payload image FILE`` as a user runs it (default beam ``airy:14``,
  the beam fixed on the ground, data phased to the zenith of the middle time), and its
  ``powerspec.h5`` read back: ``p_sph`` (even x odd cross power), ``p_sph_auto`` (auto power
  of all data, noise bias included), ``sigma_sph`` (1 sigma of the cross power's thermal
  noise), on its own |k| bins.
* hera_pspec 0.5.0 on the same visibilities, read by pyuvdata and phased as spotcube phases
  them (zenith of the middle time): the even and the odd integrations each averaged
  coherently over time (as spotcube grids each half), one delay spectrum per baseline
  (:func:`.hera_reference.pspec_with_beam`: Blackman-Harris, ``Jy_to_mK``, Planck 2018),
  even x odd for the cross power, all x all for the auto power, and the thermal 1 sigma
  from hera_pspec's analytic covariance with ``cov_model="autos"`` (the radiometer
  equation from the autocorrelations: an estimate of the noise that shares nothing with
  spotcube's fit to the even - odd difference), spherically averaged on spotcube's bins
  (:func:`.hera_reference.spherical_on`).
* The beam for hera_pspec: pyuvdata's ``AiryBeam`` of 14 m, Omega_p and Omega_pp integrated
  here over the hemisphere per channel (``PSpecBeamFromArray``), not through
  :mod:`payload.beams`.

The data are uncalibrated: both estimators take them as Jy, so the numbers compare the
estimators, not the sky. How they compare and why: docs/imaging.md, "Real data".
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from . import hera_reference as hera

PYUVDATA_WHEEL = "pyuvdata==3.2.3"
HERA_FILE = "zen.2458098.45361.HH_downselected.uvh5"
HERA_DISH_M = 14.0
# ``python -m payload`` runs from here, so that this checkout's payload is the one imaged with
REPO = Path(__file__).resolve().parents[2]
# pol name in hera_pspec / pyuvdata (x = east on HERA) -> spotcube's
POLS = {"xx": "XX", "yy": "YY"}


# 140.6-176.6 MHz: the file's channels 26-49, clear of FM (<= 108 MHz) and ORBCOMM
# (137.5 MHz), where the even - odd difference is 20-240 x the radiometer noise; elsewhere it
# is 0.9-1.1 x (median over baselines, per channel).
CLEAN_CHANNELS = range(26, 50)


class WheelUnavailableError(RuntimeError):
    """The pyuvdata wheel could not be downloaded (no package registry)."""


def unpack(name: str, cache: Path) -> Path:
    """``pyuvdata/data/<name>`` (a file or a directory) from the wheel, kept in ``cache``."""
    target = cache / name
    if target.exists():
        return target
    wheels = cache / "wheel"
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", PYUVDATA_WHEEL, "--no-deps", "-q",
             "-d", str(wheels)],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise WheelUnavailableError(f"cannot download {PYUVDATA_WHEEL}: {exc}") from exc
    wheel = next(wheels.glob("pyuvdata-3.2.3-*.whl"))
    prefix = f"pyuvdata/data/{name}"
    partial = cache / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.unlink(missing_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m == prefix or m.startswith(prefix + "/")]
        if not members:
            raise FileNotFoundError(f"{PYUVDATA_WHEEL} has no {prefix}")
        for member in members:
            if member.endswith("/"):
                continue
            out = partial if member == prefix else partial / member[len(prefix) + 1 :]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(archive.read(member))
    partial.replace(target)  # a download cut short leaves nothing half written behind
    return target


@dataclass(frozen=True)
class Spectra:
    """Spherical power spectra of one polarization on spotcube's |k| bins (Mpc^-1)."""

    k_edges: npt.NDArray[np.float64]
    cross: npt.NDArray[np.float64]  # even x odd, mK^2 Mpc^3
    auto: npt.NDArray[np.float64]  # all x all, noise bias included
    sigma: npt.NDArray[np.float64]  # thermal 1 sigma of ``cross``

    @property
    def centres(self) -> npt.NDArray[np.float64]:
        return 0.5 * (self.k_edges[:-1] + self.k_edges[1:])


@dataclass(frozen=True)
class SpotcubeRun:
    spectra: dict[str, Spectra]  # by hera_pspec pol name
    above_buffer: npt.NDArray[np.float64]  # per bin, share of its modes above the buffer
    sigma0_jy: dict[str, float]  # spotcube's fitted noise of one visibility, by pol
    attrs: dict[str, Any]
    seconds: float


def run_spotcube(path: Path, out: Path, pols: tuple[str, ...] = ("xx",)) -> SpotcubeRun:
    """``python -m payload image`` on ``path`` (one thread), its powerspec.h5 read back."""
    import time

    started = time.perf_counter()
    wanted = ",".join(POLS[p] for p in pols)
    subprocess.run(
        [sys.executable, "-m", "payload", "image", str(path), "--out", str(out), "--quiet",
         "--threads", "1", "--polarizations", wanted, "--fresh"],
        check=True, capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    with h5py.File(out / "powerspec.h5", "r") as handle:
        order = json.loads(handle.attrs["polarizations"])
        edges = np.asarray(handle["k_edges"][()])
        counts = np.asarray(handle["counts_sph"][()], dtype=float)
        window = np.asarray(handle["counts_sph_window"][()], dtype=float)
        spectra = {
            p: Spectra(
                edges,
                np.asarray(handle["p_sph"][order.index(POLS[p])]),
                np.asarray(handle["p_sph_auto"][order.index(POLS[p])]),
                np.asarray(handle["sigma_sph"][order.index(POLS[p])]),
            )
            for p in pols
        }
        sigma0 = {p: float(handle["noise_sigma0_jy"][order.index(POLS[p])]) for p in pols}
        attrs = {k: handle.attrs[k] for k in handle.attrs}
    above = np.where(counts > 0, window / np.maximum(counts, 1), np.nan)
    return SpotcubeRun(spectra, above, sigma0, attrs, seconds)


def airy_beam(freq_hz: npt.NDArray[np.float64], diameter_m: float = HERA_DISH_M) -> Any:
    """hera_pspec's beam of pyuvdata's ``AiryBeam``: Omega_p, Omega_pp over the hemisphere.

    Integrated here (2 pi int A sin(za) dza, 20,000 zenith angles; the pattern is circular),
    in solid angle as hera_pspec integrates a ``UVBeam``. spotcube integrates in dl dm
    (cos(za) dOmega); for this beam the two differ by < 1 % (printed by the bench).
    """
    import hera_pspec as hp

    omega_p, omega_pp = solid_angles(freq_hz, diameter_m)
    return hp.PSpecBeamFromArray(
        OmegaP={"xx": omega_p, "yy": omega_p},
        OmegaPP={"xx": omega_pp, "yy": omega_pp},
        beam_freqs=np.asarray(freq_hz, dtype=float),
        cosmo=hera.cosmology(),
    )


def solid_angles(
    freq_hz: npt.NDArray[np.float64], diameter_m: float, *, dl_dm: bool = False
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """int A dOmega and int A^2 dOmega of pyuvdata's AiryBeam per frequency (or in dl dm)."""
    from pyuvdata.analytic_beam import AiryBeam

    za = np.linspace(0.0, math.pi / 2, 20_001)
    power = np.asarray(
        AiryBeam(diameter=diameter_m).power_eval(
            az_array=np.zeros_like(za), za_array=za, freq_array=np.asarray(freq_hz, dtype=float)
        )
    ).real[0, 0]  # (freq, za), xx
    measure = 2 * math.pi * np.sin(za) * (np.cos(za) if dl_dm else 1.0)
    return (
        np.trapezoid(power * measure, za, axis=-1),
        np.trapezoid(power**2 * measure, za, axis=-1),
    )


@dataclass(frozen=True)
class Halves:
    even: Any  # UVData, one time: the even integrations averaged
    odd: Any  # the odd ones, stamped with the even half's time so hera_pspec pairs them
    whole: Any  # all integrations averaged
    pairs: list[tuple[int, int]]  # cross-correlations
    freq_hz: npt.NDArray[np.float64]


def halves(path: Path, pol: str) -> Halves:
    """The file's ``pol`` visibilities, phased as spotcube phases them, averaged per half.

    Unprojected (drift-scan) data are phased to the zenith of the middle integration
    (``phase_to_time``, pyuvdata), which is what spotcube images. Averages are pyuvdata's
    ``downsample_in_time`` (nsamples-weighted, flags respected). Autocorrelations are kept
    for hera_pspec's ``cov_model="autos"``.
    """
    from astropy.time import Time
    from pyuvdata import UVData

    from payload.sites import install_offline_sites

    install_offline_sites()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd = UVData.from_file(str(path), polarizations=[pol], run_check_acceptability=False)
        times = np.unique(uvd.time_array)
        if any(c["cat_type"] == "unprojected" for c in uvd.phase_center_catalog.values()):
            uvd.phase_to_time(Time(times[len(times) // 2], format="jd"))
        uvd.vis_units = "Jy"  # uncalibrated: both estimators take the numbers as Jy

        def averaged(selected: npt.NDArray[np.float64]) -> Any:
            part = uvd.select(times=selected, inplace=False)
            if len(selected) > 1:
                part.downsample_in_time(n_times_to_avg=len(selected))
            part.reorder_blts(order="baseline")
            return part

        even, odd, whole = averaged(times[0::2]), averaged(times[1::2]), averaged(times)
        odd.time_array = even.time_array.copy()
        odd.lst_array = even.lst_array.copy()
    pairs = sorted(
        {(int(a), int(b)) for a, b in zip(uvd.ant_1_array, uvd.ant_2_array, strict=True) if a != b}
    )
    return Halves(even, odd, whole, pairs, np.asarray(uvd.freq_array, dtype=float).ravel())


def hera_spectra(path: Path, k_edges: npt.NDArray[np.float64], pol: str = "xx") -> Spectra:
    """hera_pspec's cross, auto and cross-power 1 sigma of ``path`` on the bins ``k_edges``."""
    data = halves(path, pol)
    beam = airy_beam(data.freq_hz)
    cross_uvp = hera.pspec_with_beam(
        data.even, data.odd, data.pairs, beam, pol=pol, cov_model="autos"
    )
    cross, sigma = hera.spherical_on(cross_uvp, k_edges, pol)
    auto_uvp = hera.pspec_with_beam(data.whole, data.whole.copy(), data.pairs, beam, pol=pol)
    auto, _ = hera.spherical_on(auto_uvp, k_edges, pol)
    assert sigma is not None
    return Spectra(k_edges, cross, auto, sigma)


def compare(file: Path, pols: tuple[str, ...] = ("xx",)) -> tuple[SpotcubeRun, dict[str, Spectra]]:
    """spotcube's and hera_pspec's spectra of ``file`` for each of ``pols``."""
    with tempfile.TemporaryDirectory(prefix="pspec-realdata-") as tmp:
        ours = run_spotcube(file, Path(tmp) / "out", pols)
    edges = next(iter(ours.spectra.values())).k_edges
    theirs = {p: hera_spectra(file, edges, p) for p in pols}
    return ours, theirs


def selected_copy(
    source: Path, dest: Path, *, channels: range | None = None, one_per_group: bool = False
) -> Path:
    """A copy of ``source`` written by pyuvdata with some channels and/or baselines only.

    ``one_per_group``: one cross-correlation per redundant group (the first pyuvdata lists)
    and every autocorrelation, so that no two baselines share a uv cell.
    """
    from pyuvdata import UVData

    from payload.sites import install_offline_sites

    install_offline_sites()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd = UVData.from_file(str(source), freq_chans=None if channels is None else list(channels))
        if one_per_group:
            groups = uvd.get_redundancies(include_autos=False)[0]
            keep = [tuple(int(a) for a in uvd.baseline_to_antnums(g[0])) for g in groups]
            keep = [pair for pair in keep if pair[0] != pair[1]]
            ants = sorted({a for pair in keep for a in pair})
            uvd.select(bls=keep + [(a, a) for a in ants])
        with contextlib.redirect_stdout(io.StringIO()):  # pyuvdata prints on clobbering
            uvd.write_uvh5(str(dest), clobber=True)
    return dest


def noise_copy(source: Path, dest: Path, seed: int) -> Path:
    """``source`` with every cross-correlation replaced by radiometer noise (seeded).

    Complex Gaussian noise of variance |V_aa V_bb| / (channel width x integration time)
    per visibility, from the file's own autocorrelations (kept): hera_pspec's
    ``cov_model="autos"`` is then exactly the truth, and both estimators' sigma can be set
    against the scatter of their cross power over seeds, on this file's sampling.
    """
    from pyuvdata import UVData

    from payload.sites import install_offline_sites

    install_offline_sites()
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd = UVData.from_file(str(source))
        a1, a2, times = uvd.ant_1_array, uvd.ant_2_array, uvd.time_array
        for p in range(uvd.Npols):
            for row in range(uvd.Nblts):
                if a1[row] == a2[row]:
                    continue
                autos = [
                    np.nonzero((a1 == ant) & (a2 == ant) & (times == times[row]))[0][0]
                    for ant in (a1[row], a2[row])
                ]
                var = np.abs(uvd.data_array[autos[0], :, p] * uvd.data_array[autos[1], :, p]) / (
                    uvd.channel_width * uvd.integration_time[row]
                )
                uvd.data_array[row, :, p] = np.sqrt(var / 2) * (
                    rng.normal(size=var.shape) + 1j * rng.normal(size=var.shape)
                )
        with contextlib.redirect_stdout(io.StringIO()):  # pyuvdata prints on clobbering
            uvd.write_uvh5(str(dest), clobber=True)
    return dest


def radiometer_rms(path: Path, pol: str) -> float:
    """sqrt of the mean over cross-correlations of |V_aa V_bb| / (channel width x time)."""
    from pyuvdata import UVData

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd = UVData.from_file(str(path), polarizations=[pol])
    a1, a2, times = uvd.ant_1_array, uvd.ant_2_array, uvd.time_array
    variances = []
    for row in np.nonzero(a1 != a2)[0]:
        autos = [
            np.nonzero((a1 == ant) & (a2 == ant) & (times == times[row]))[0][0]
            for ant in (a1[row], a2[row])
        ]
        product = np.abs(uvd.data_array[autos[0], :, 0] * uvd.data_array[autos[1], :, 0])
        variances.append(product / (uvd.channel_width * uvd.integration_time[row]))
    return float(np.sqrt(np.mean(variances)))


# Every MWA data set of the wheel: (label, files under pyuvdata/data, read keywords). The
# raw correlator sets are read as pyuvdata reads them by default (flag_init: edge channels,
# the DC channel and the first/last samples flagged).
MWA_SETS: tuple[tuple[str, tuple[str, ...], dict[str, Any]], ...] = (
    ("1061316296.uvfits", ("1061316296.uvfits",), {}),
    ("1133866760.uvfits", ("1133866760.uvfits",), {}),
    ("1133866760_rephase.uvfits", ("1133866760_rephase.uvfits",), {}),
    ("1102865728_small.ms", ("1102865728_small.ms",), {}),
    ("1090008640_birli_pyuvdata.ms", ("1090008640_birli_pyuvdata.ms",), {}),
    (
        "mwa_corr_fits_testfiles/1131733552_mini_cotter.uvfits",
        ("mwa_corr_fits_testfiles/1131733552_mini_cotter.uvfits",),
        {},
    ),
    (
        "mwa_corr_fits_testfiles/1061315448_20130823175130_mini_vv_07_01.uvh5",
        ("mwa_corr_fits_testfiles/1061315448_20130823175130_mini_vv_07_01.uvh5",),
        {},
    ),
    (
        "raw 1131733552 (metafits, gpubox01_00, gpubox06_01)",
        (
            "mwa_corr_fits_testfiles/1131733552.metafits",
            "mwa_corr_fits_testfiles/1131733552_20151116182537_mini_gpubox01_00.fits",
            "mwa_corr_fits_testfiles/1131733552_20151116182637_mini_gpubox06_01.fits",
        ),
        {},
    ),
    (
        "raw 1061315448 (metafits, gpubox07_01)",
        (
            "mwa_corr_fits_testfiles/1061315448.metafits",
            "mwa_corr_fits_testfiles/1061315448_20130823175130_mini_gpubox07_01.fits",
        ),
        {},
    ),
    (
        "raw 1320409688 (MWAX metafits, ch137_000)",
        (
            "mwa_corr_fits_testfiles/1320409688.metafits",
            "mwa_corr_fits_testfiles/1320409688_20211108122750_mini_ch137_000.fits",
        ),
        {},
    ),
)
FHD_DIR = "fhd_vis_data"


def mwa_shapes(cache: Path) -> list[dict[str, Any]]:
    """Ntimes, Nfreqs, channel width, Nbls, cross-correlation flag fraction, vis_units of
    every MWA data set of the wheel (:data:`MWA_SETS` and the FHD one), read by pyuvdata."""
    from pyuvdata import UVData

    from payload.sites import install_offline_sites

    install_offline_sites()
    unpack("mwa_corr_fits_testfiles", cache)
    rows = []
    sets = [*MWA_SETS, ("fhd_vis_data/1061316296 (FHD, XX and YY)", (), {})]
    for label, names, keywords in sets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if names:
                paths = [str(unpack(n, cache) if "/" not in n else cache / n) for n in names]
                uvd = UVData.from_file(
                    paths[0] if len(paths) == 1 else paths,
                    run_check_acceptability=False,
                    **keywords,
                )
            else:
                fhd = unpack(FHD_DIR, cache)
                meta, vis = fhd / "metadata", fhd / "vis_data"
                uvd = UVData.from_file(
                    [str(vis / "1061316296_vis_XX.sav"), str(vis / "1061316296_vis_YY.sav")],
                    params_file=str(meta / "1061316296_params.sav"),
                    flags_file=str(vis / "1061316296_flags.sav"),
                    layout_file=str(meta / "1061316296_layout.sav"),
                    settings_file=str(meta / "1061316296_settings.txt"),
                    obs_file=str(meta / "1061316296_obs.sav"),
                    run_check_acceptability=False,
                )
        cross = uvd.ant_1_array != uvd.ant_2_array
        rows.append(
            {
                "set": label,
                "n_times": int(uvd.Ntimes),
                "n_freqs": int(uvd.Nfreqs),
                "channel_khz": float(np.median(uvd.channel_width)) / 1e3,
                "n_bls": int(uvd.Nbls),
                "flagged": float(uvd.flag_array[cross].mean()) if cross.any() else math.nan,
                "nsamples_le_0": float((uvd.nsample_array[cross] <= 0).mean())
                if cross.any()
                else math.nan,
                "vis_units": str(uvd.vis_units),
            }
        )
    return rows


def baseline_coherence(path: Path, max_sep_lambda: float = 0.3) -> dict[tuple[str, int], float]:
    """Re sum V_i V_j^* / sum |V_i||V_j| over pairs of cross-correlations (and their mirrors)
    less than ``max_sep_lambda`` apart in uv, per (pol, channel) of a one-time file: ~1 for a
    calibrated sky (they sample nearly the same Fourier mode), ~0 for random gains."""
    from pyuvdata import UVData
    from scipy.spatial import cKDTree

    from payload.sites import install_offline_sites

    install_offline_sites()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd = UVData.from_file(str(path), polarizations=["xx", "yy"])
    cross = uvd.ant_1_array != uvd.ant_2_array
    uvw = uvd.uvw_array[cross][:, :2]
    out = {}
    for c, freq in enumerate(np.asarray(uvd.freq_array).ravel()):
        u = uvw * freq / 299_792_458.0
        points = np.vstack([u, -u])
        pairs = cKDTree(points).query_pairs(max_sep_lambda, output_type="ndarray")
        n = len(u)
        pairs = pairs[pairs[:, 0] % n != pairs[:, 1] % n]
        for p, pol in enumerate(("xx", "yy")):
            vis = uvd.data_array[cross][:, c, p]
            both = np.concatenate([vis, vis.conj()])
            a, b = both[pairs[:, 0]], both[pairs[:, 1]]
            out[(pol, c)] = float(np.real((a * b.conj()).sum()) / (np.abs(a) * np.abs(b)).sum())
    return out
