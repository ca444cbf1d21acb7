"""The hostile corpus of issue 10, each case through ``python -m payload image``.

Every case must end in exit 65 and one line on stderr that names the file (or the option)
and says what is wrong: never a traceback, a hang, or a product. The cases are the ones a
new user met (issue 10, "What was found"); the expectation for each comes from what the
data are, not from the code: a declination of 401 degrees or a 1e9 m baseline on the Earth
does not exist, a named pipe never ends.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from payload.cli import main

from .conftest import Observation

REPO = Path(__file__).resolve().parents[2]


def _cross_rows(handle: h5py.File) -> np.ndarray:
    header = handle["Header"]
    return np.flatnonzero(header["ant_1_array"][()] != header["ant_2_array"][()])


def _catalog_entry(handle: h5py.File) -> h5py.Group:
    catalog = handle["Header/phase_center_catalog"]
    return catalog[next(iter(catalog))]


def _nan_uvw(handle: h5py.File) -> None:
    uvw = handle["Header/uvw_array"][()]
    uvw[_cross_rows(handle)[3]] = np.nan
    handle["Header/uvw_array"][...] = uvw


def _zero_uvw(handle: h5py.File) -> None:
    handle["Header/uvw_array"][...] = 0.0


def _zero_hz(handle: h5py.File) -> None:
    handle["Header/freq_array"][...] = 0.0


def _one_zero_hz_channel(handle: h5py.File) -> None:
    freq = handle["Header/freq_array"][()]
    freq[..., 5] = 0.0
    handle["Header/freq_array"][...] = freq


def _nan_dec(handle: h5py.File) -> None:
    _catalog_entry(handle)["cat_lat"][()] = np.nan


def _dec_401(handle: h5py.File) -> None:
    _catalog_entry(handle)["cat_lat"][()] = math.radians(401.0)


def _huge_baseline(handle: h5py.File) -> None:
    uvw = handle["Header/uvw_array"][()]
    uvw[_cross_rows(handle)[0]] = [1e9, 0.0, 0.0]
    handle["Header/uvw_array"][...] = uvw


def _billion_channels(handle: h5py.File) -> None:
    del handle["Header/Nfreqs"]
    handle["Header"].create_dataset("Nfreqs", data=np.int64(10**9))


def _all_nan_visibilities(handle: h5py.File) -> None:
    handle["Data/visdata"][...] = np.nan


def _negative_nsamples(handle: h5py.File) -> None:
    handle["Data/nsamples"][...] = -1.0


# name: (damage, words the one line must contain)
UVH5_CASES: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "nan-uvw": (_nan_uvw, "uvw"),
    "zero-uvw": (_zero_uvw, "uvw = 0"),
    "zero-hz-channels": (_zero_hz, "frequencies"),
    "one-zero-hz-channel": (_one_zero_hz_channel, "channel 5 is 0 Hz"),
    "nan-dec": (_nan_dec, "phase centre"),
    "dec-401": (_dec_401, "Dec 401"),
    "1e9-m-baseline": (_huge_baseline, "Earth"),
    "1e9-channel-header": (_billion_channels, "Nfreqs"),
    "all-nan-visibilities": (_all_nan_visibilities, "flagged"),
    "negative-nsamples": (_negative_nsamples, "flagged"),
}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Exit status and stderr lines of ``python -m payload`` run in this process."""
    status = main(argv)
    err = capsys.readouterr().err
    return status, err.splitlines()


def assert_one_invalid_line(status: int, lines: list[str], *words: str) -> None:
    assert status == 65, lines
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])


def assert_no_product(out: Path) -> None:
    visible = [p for p in out.iterdir() if not p.name.startswith(".")] if out.exists() else []
    assert visible == []


@pytest.mark.parametrize("case", list(UVH5_CASES), ids=list(UVH5_CASES))
def test_bad_values_are_one_invalid_line(
    tiny_obs: Observation, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    damage, words = UVH5_CASES[case]
    path = tmp_path / f"{case}.uvh5"
    path.write_bytes(tiny_obs.path.read_bytes())
    with h5py.File(path, "r+") as handle:
        damage(handle)
    out = tmp_path / "out"
    status, lines = run_cli(["image", str(path), "--out", str(out), "--quiet"], capsys)
    assert_one_invalid_line(status, lines, str(path), words)
    assert_no_product(out)


def _uvfits_with_card(source: Path, target: Path, key: str, value: int) -> None:
    """A copy of a uvfits file whose primary header card ``key`` says ``value``."""
    data = bytearray(source.read_bytes())
    at = data.index(key.ljust(8).encode() + b"=")
    data[at : at + 80] = f"{key.ljust(8)}= {value:>20d}".ljust(80).encode()
    target.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def tiny_uvfits(tiny_obs: Observation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from payload.reading import UVData

    uvd = UVData.from_file(str(tiny_obs.path))
    path = tmp_path_factory.mktemp("uvfits") / "tiny.uvfits"
    uvd.write_uvfits(str(path))
    return path


@pytest.mark.parametrize("card", ["GCOUNT", "NAXIS4"], ids=["groups", "channels"])
def test_uvfits_claiming_a_billion_groups_or_channels_is_refused_before_reading(
    tiny_uvfits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], card: str
) -> None:
    path = tmp_path / "liar.uvfits"
    _uvfits_with_card(tiny_uvfits, path, card, 10**9)
    status, lines = run_cli(["image", str(path), "--out", str(tmp_path / "o"), "--quiet"], capsys)
    assert_one_invalid_line(status, lines, str(path), "header claims")


@pytest.mark.parametrize(
    ("option", "value", "names"),
    [
        ("--image-size", "1000000", "--image-size"),
        ("--pixel-scale", "1e-6", "--pixel-scale"),
        ("--fov", "100000", "--fov"),
    ],
    ids=["image-size", "pixel-scale", "fov"],
)
def test_unbounded_options_are_refused_with_the_option_to_change(
    tiny_obs: Observation,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    names: str,
) -> None:
    out = tmp_path / "out"
    argv = ["image", str(tiny_obs.path), "--out", str(out), "--quiet", option, value]
    status, lines = run_cli(argv, capsys)
    assert_one_invalid_line(status, lines, names)
    assert_no_product(out)
    assert not list(out.rglob("*.h5")), "nothing may be allocated before the refusal"


def test_a_named_pipe_is_refused_not_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "obs.uvh5"
    os.mkfifo(fifo)
    status, lines = run_cli(["image", str(fifo), "--out", str(tmp_path / "o")], capsys)
    assert_one_invalid_line(status, lines, str(fifo), "named pipe")


def test_a_device_is_refused_not_opened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines = run_cli(["image", "/dev/zero", "--out", str(tmp_path / "o")], capsys)
    assert_one_invalid_line(status, lines, "/dev/zero", "character device")


def test_a_symlink_loop_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = tmp_path / "loop.uvh5"
    loop.symlink_to(loop)
    status, lines = run_cli(["image", str(loop), "--out", str(tmp_path / "o")], capsys)
    assert_one_invalid_line(status, lines, str(loop), "loop")


def test_a_pipe_inside_a_measurement_set_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ms = tmp_path / "obs.ms"
    ms.mkdir()
    (ms / "table.dat").write_bytes(b"x" * 100)
    os.mkfifo(ms / "table.f0")
    status, lines = run_cli(["image", str(ms), "--out", str(tmp_path / "o")], capsys)
    assert_one_invalid_line(status, lines, "table.f0", "named pipe")


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="root reads files whatever their mode, and setpriv is missing to drop that",
)
def test_an_unreadable_file_is_refused(tiny_obs: Observation) -> None:
    """A mode-000 file is one invalid line.

    As root the command runs without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (dropped from
    the bounding set, so the exec'd interpreter never regains them): root then reads only
    what a file's mode lets its owner read, while the checkout and the venv, wherever they
    are and however private, stay readable (switching to ``nobody`` instead fails in a clone
    under a 0700 directory before the command starts).
    """
    with tempfile.TemporaryDirectory(prefix="unreadable-") as tmp:
        directory = Path(tmp)
        path = directory / "secret.uvh5"
        path.write_bytes(tiny_obs.path.read_bytes())
        path.chmod(0)
        without_override = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
        command = [sys.executable, "-m", "payload", "image", str(path), "--out", str(directory)]
        result = subprocess.run(
            [*(without_override if os.geteuid() == 0 else []), *command],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert_one_invalid_line(
        result.returncode, result.stderr.splitlines(), str(path), "permission denied"
    )


def test_out_naming_an_existing_file_is_refused(
    tiny_obs: Observation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "products.txt"
    out.write_text("keep me\n")
    status, lines = run_cli(["image", str(tiny_obs.path), "--out", str(out)], capsys)
    assert_one_invalid_line(status, lines, "--out", "not a directory")
    assert out.read_text() == "keep me\n"


def test_out_that_cannot_be_created_is_refused(
    tiny_obs: Observation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = blocker / "sub" / "out"
    status, lines = run_cli(["image", str(tiny_obs.path), "--out", str(out)], capsys)
    assert_one_invalid_line(status, lines, "--out", "cannot create")


def test_a_newline_in_a_file_name_stays_on_one_line(
    tiny_obs: Observation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "two\nlines.uvh5"
    path.write_bytes(tiny_obs.path.read_bytes())
    with h5py.File(path, "r+") as handle:
        _zero_uvw(handle)
    status, lines = run_cli(["image", str(path), "--out", str(tmp_path / "o")], capsys)
    assert_one_invalid_line(status, lines, "two\\nlines.uvh5", "uvw")


def test_an_unexpected_error_is_one_line_with_its_frames(
    tiny_obs: Observation,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug (here: a reader raising ZeroDivisionError) exits 70 with where it happened."""
    import payload.imaging

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("injected")

    monkeypatch.setattr(payload.imaging, "dirty_image", broken)
    status, lines = run_cli(
        ["image", str(tiny_obs.path), "--out", str(tmp_path / "o"), "--quiet"], capsys
    )
    assert status == 70
    assert len(lines) == 1
    assert "ZeroDivisionError: injected" in lines[0]
    assert "in broken" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["fifo", "nan-uvw", "image-size"])
def test_no_traceback_from_the_real_command(
    tiny_obs: Observation, tmp_path: Path, case: str
) -> None:
    """The same through a real ``python -m payload`` process, with a timeout for hangs."""
    out = tmp_path / "out"
    argv = ["--out", str(out), "--quiet"]
    if case == "fifo":
        path = tmp_path / "pipe.uvh5"
        os.mkfifo(path)
    elif case == "nan-uvw":
        path = tmp_path / "nan.uvh5"
        path.write_bytes(tiny_obs.path.read_bytes())
        with h5py.File(path, "r+") as handle:
            _nan_uvw(handle)
    else:
        path = tiny_obs.path
        argv += ["--image-size", "1000000"]
    result = subprocess.run(
        [sys.executable, "-m", "payload", "image", str(path), *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stderr.splitlines()
    assert_one_invalid_line(result.returncode, lines)
    assert_no_product(out)


def test_amplitudes_too_large_to_image_are_invalid(
    tiny_obs: Observation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finite float64 visibilities of 1e300 Jy overflow a float32 image: refused, not inf."""
    path = tmp_path / "loud.uvh5"
    path.write_bytes(tiny_obs.path.read_bytes())
    with h5py.File(path, "r+") as handle:
        vis = handle["Data/visdata"][()].astype(np.complex128)
        vis[_cross_rows(handle)[:3]] = 1e300
        del handle["Data/visdata"]
        handle["Data"].create_dataset("visdata", data=vis)
    out = tmp_path / "out"
    status, lines = run_cli(["image", str(path), "--out", str(out), "--quiet"], capsys)
    assert_one_invalid_line(status, lines, str(path), "too large")
    assert_no_product(out)


def test_a_full_disk_is_transient_not_a_bug(
    tiny_obs: Observation,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ENOSPC while a chunk is written: exit 69 (try again), one line, no traceback."""
    import errno

    import payload.jobs.image

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(payload.jobs.image, "_cubes_in_chunk_file", full)
    status, lines = run_cli(
        ["image", str(tiny_obs.path), "--out", str(tmp_path / "o"), "--quiet"], capsys
    )
    assert status == 69
    assert len(lines) == 1
    assert "No space left on device" in lines[0]


def test_a_consistent_header_of_ten_billion_channels_is_refused_before_reading(
    tiny_obs: Observation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A small file whose arrays really hold 10^10 channels (HDF5 fill values, nothing
    stored): refused from the datasets' shapes before 160 GB of frequency axes are read.

    10^10 rather than 10^9: the refusal compares with a quarter of the available memory,
    and 160 GB exceeds that on any machine with less than 640 GB available.
    """
    path = tmp_path / "wide.uvh5"
    path.write_bytes(tiny_obs.path.read_bytes())
    n = 10**10
    with h5py.File(path, "r+") as handle:
        header, data = handle["Header"], handle["Data"]
        n_blts, _, n_pols = data["visdata"].shape
        for name in ("freq_array", "channel_width", "Nfreqs"):
            del header[name]
        header["Nfreqs"] = np.int64(n)
        for name, fill in (("freq_array", 1.5e8), ("channel_width", 1e3)):
            header.create_dataset(name, shape=(n,), dtype="f8", chunks=(2**20,), fillvalue=fill)
        for name, dtype in (("visdata", "c8"), ("flags", "?"), ("nsamples", "f4")):
            del data[name]
            data.create_dataset(name, shape=(n_blts, n, n_pols), dtype=dtype, chunks=(1, 2**20, 1))
    assert path.stat().st_size < 10 * tiny_obs.path.stat().st_size
    out = tmp_path / "out"
    status, lines = run_cli(["image", str(path), "--out", str(out), "--quiet"], capsys)
    assert_one_invalid_line(status, lines, str(path), "header arrays", "of memory")
    assert_no_product(out)
