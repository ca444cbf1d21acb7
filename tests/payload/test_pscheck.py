"""The power spectrum's warnings (payload/pscheck.py, issue 19): uncalibrated input, an
RFI-dominated band, too few channels — each said in the log, powerspec.h5, provenance.json
and the summary, never a silent factor.

The RFI threshold is set on real data: HERA's ``zen.2458098.45361.HH_downselected.uvh5``
(pyuvdata's test data; skipped when the wheel cannot be fetched), whose unflagged FM and
ORBCOMM channels raise spotcube's fitted noise 42x, is flagged in both polarizations; its
clean channels 26-49 are not. A 4-channel HERA file of the same wheel gives one k bin.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from payload import pscheck
from payload.cli import main
from payload.synth import write_synthetic_observation

from . import realdata as rd

SMALL = ["--image-size", "64", "--chunk-channels", "16", "--threads", "1"]
XX_YY = ("--polarizations", "XX,YY")


def _run(path: Path, out: Path, *extra: str) -> dict[str, object]:
    """``payload image``; the summary's, provenance's and powerspec.h5's warnings agree."""
    assert main(["image", str(path), "--out", str(out), "--fresh", *SMALL, *extra]) == 0
    provenance = json.loads((out / "provenance.json").read_text())
    with h5py.File(out / "powerspec.h5", "r") as handle:
        stored = json.loads(handle.attrs["warnings"]) if "warnings" in handle.attrs else []
    assert provenance.get("power_spectrum_warnings", []) == stored
    return provenance


def test_uncalibrated_input_is_warned_about() -> None:
    def check(units: str | None, estimated: bool = True) -> list[str]:
        return pscheck.check(
            vis_units=units, n_channels=32, n_bins_estimated=8, estimated=estimated
        )

    assert check("uncalib") == [pscheck.UNCALIBRATED]
    assert check("Jy") == []
    assert check(None) == []
    # a power spectrum that was not estimated says why already; calibration still matters
    assert check("uncalib", estimated=False) == [pscheck.UNCALIBRATED]


def test_smooth_noise_across_an_octave_is_not_rfi_and_one_loud_channel_is() -> None:
    """Sky noise power ~ nu^-5.1 over 100-200 MHz (a factor 34) is the band's smooth
    noise: ratio ~1. One channel of 30 x its amplitude (900 x its power) stands out."""
    freq = np.linspace(100e6, 200e6, 64)
    smooth = (freq / 150e6) ** -5.1
    ratio, _, _ = pscheck.rfi_ratio(smooth)
    assert ratio == pytest.approx(1.0, abs=0.05)  # the edges: a one-sided median
    assert smooth.mean() / np.median(smooth) > 1.5  # a global median would be fooled
    loud = smooth.copy()
    loud[20] *= 900
    ratio, worst, excess = pscheck.rfi_ratio(loud)
    assert ratio > 5 * pscheck.RFI_POWER_RATIO
    assert worst == 20
    assert excess == pytest.approx(900, rel=0.1)
    warnings = pscheck.check(
        vis_units="Jy",
        n_channels=64,
        n_bins_estimated=8,
        estimated=True,
        noise=np.stack([smooth, loud]),
        polarizations=("XX", "YY"),
        freq_hz=freq,
    )
    assert len(warnings) == 1
    assert warnings[0].startswith("YY: RFI-dominated")


def test_few_channels_are_warned_about() -> None:
    one_bin = pscheck.check(vis_units="Jy", n_channels=16, n_bins_estimated=1, estimated=True)
    assert one_bin == [pscheck.ONE_BIN.format(n_bins=1, n_chan=16)]
    in_lobe = pscheck.check(vis_units="Jy", n_channels=8, n_bins_estimated=3, estimated=True)
    assert in_lobe == [pscheck.IN_LOBE.format(n_chan=8, lobe=pscheck.WINDOW_LOBE_BINS)]
    assert pscheck.check(vis_units="Jy", n_channels=10, n_bins_estimated=3, estimated=True) == []


def test_clean_calibrated_noise_says_nothing_and_an_rfi_channel_is_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Radiometer noise in Jy over 24 channels: no warning. The same with one channel
    carrying time-variable interference 20 x the noise: that channel is named, in every
    polarization, in the summary too."""
    path = tmp_path / "noise.uvh5"
    write_synthetic_observation(path, n_tiles=16, n_freqs=24, n_times=4, noise_jy=1.0, seed=5)
    provenance = _run(path, tmp_path / "clean", "--quiet", *XX_YY)
    assert "power_spectrum_warnings" not in provenance
    with h5py.File(path, "r+") as handle:
        data = handle["Data/visdata"]
        rng = np.random.default_rng(9)
        shape = data[:, 11, :].shape
        data[:, 11, :] = data[:, 11, :] + 20 * (
            rng.normal(size=shape) + 1j * rng.normal(size=shape)
        ) / math.sqrt(2)
        freq = float(np.ravel(handle["Header/freq_array"][()])[11])
    out = tmp_path / "rfi"
    assert main(["image", str(path), "--out", str(out), "--fresh", *SMALL, *XX_YY]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed[printed.index("{\n") :])
    warnings = summary["power_spectrum_warnings"]
    assert [w.split(":")[0] for w in warnings] == ["XX", "YY"]
    assert all("RFI-dominated" in w and f"worst {freq / 1e6:.2f} MHz" in w for w in warnings)
    assert json.loads((out / "provenance.json").read_text())["power_spectrum_warnings"] == warnings


@pytest.fixture(scope="module")
def wheel_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return tmp_path_factory.mktemp("pyuvdata-realdata")
    return Path(cache.mkdir("pyuvdata-3.2.3-realdata"))


def _fetch(name: str, cache: Path) -> Path:
    try:
        return rd.unpack(name, cache)
    except rd.WheelUnavailableError as exc:
        pytest.skip(f"{exc} (is the package registry reachable?)")


@pytest.mark.slow
def test_real_hera_band_with_fm_and_orbcomm_is_rfi_dominated_and_its_clean_part_is_not(
    wheel_cache: Path, tmp_path: Path
) -> None:
    hera = _fetch(rd.HERA_FILE, wheel_cache)
    whole = _run(hera, tmp_path / "whole", "--quiet", "--polarizations", "XX,YY")
    warnings = whole["power_spectrum_warnings"]
    assert isinstance(warnings, list)
    assert warnings[0] == pscheck.UNCALIBRATED  # the file is uncalibrated
    rfi = [w for w in warnings if "RFI-dominated" in w]
    assert [w[:2] for w in rfi] == ["XX", "YY"]
    assert all("worst 137.50 MHz" in w for w in rfi)  # ORBCOMM
    clean = rd.selected_copy(hera, tmp_path / "clean.uvh5", channels=rd.CLEAN_CHANNELS)
    part = _run(clean, tmp_path / "part", "--quiet", "--polarizations", "XX,YY")
    assert part["power_spectrum_warnings"] == [pscheck.UNCALIBRATED]


@pytest.mark.slow
def test_real_four_channel_file_says_it_has_one_bin(wheel_cache: Path, tmp_path: Path) -> None:
    four = _fetch("zen.2458661.23480.HH.uvh5", wheel_cache)
    warnings = _run(four, tmp_path / "four", "--quiet")["power_spectrum_warnings"]
    assert warnings == [
        pscheck.UNCALIBRATED,
        pscheck.ONE_BIN.format(n_bins=1, n_chan=4),
        pscheck.IN_LOBE.format(n_chan=4, lobe=pscheck.WINDOW_LOBE_BINS),
    ]
