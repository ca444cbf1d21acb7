"""Property-based damage to the bytes and headers of valid files, one test per format.

Hypothesis truncates files, flips bytes (anywhere, or inside the visibility data where a
flip changes a value rather than the file's structure) and makes headers lie (uvfits
cards, MWA metafits cards), in uvh5, uvfits, Measurement Set and MWA raw observations,
then runs ``python -m payload image``. The invariant (issue 10): exit 0 with products an
independent oracle agrees with (:mod:`.hostile`: the file read by h5py or pyuvdata, the
centre pixel and flag counts computed in numpy), or exit 65 with one line and no product.
Never a traceback, a crash, a hang (each run is a forked child with a timeout) or a wrong
product. Derandomised, with a fixed number of examples per format.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from payload.synth_mwaraw import MWARawObservation, write_mwa_raw

from .conftest import Observation
from .hostile import Expected, assert_outcome, expected_pyuvdata, expected_uvh5, run_isolated

ARGS = ["--chunk-channels", "4", "--image-size", "64", "--quiet"]
SETTINGS = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# (kind, where, how many bytes, seed): "truncate" keeps ``where`` of the file (a fraction);
# "flip" XORs bytes at offsets drawn from the whole file or from its data region.
byte_damage = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 0.999), st.just(0), st.just(0)),
    st.tuples(
        st.just("flip"),
        st.sampled_from([0.0, 1.0]),  # 0: anywhere, 1: inside the data
        st.integers(1, 64),
        st.integers(0, 2**32 - 1),
    ),
)


def _damage_bytes(path: Path, damage: tuple[str, float, int, int], data: range) -> None:
    kind, where, count, seed = damage
    raw = bytearray(path.read_bytes())
    if kind == "truncate":
        path.write_bytes(bytes(raw[: int(len(raw) * where)]))
        return
    rng = np.random.default_rng(seed)
    span = data if where and len(data) else range(len(raw))
    for offset in rng.choice(np.arange(span.start, span.stop), size=count):
        raw[int(offset)] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(raw))


def _fresh(tmp: Path) -> tuple[Path, Path]:
    case = tmp / "case"
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir()
    return case, case / "out"


def _oracle(read: Callable[[], Expected]) -> Expected | None:
    try:
        return read()
    except Exception:  # the oracle's own reader refuses the file: exit 0 would be wrong
        return None


def _uvh5_data_region(path: Path) -> range:
    """Byte range of the stored visibilities (h5py's chunk index of ``Data/visdata``)."""
    with h5py.File(path, "r") as handle:
        dataset = handle["Data/visdata"]
        chunks = [dataset.id.get_chunk_info(i) for i in range(dataset.id.get_num_chunks())]
    start = min(c.byte_offset for c in chunks)
    return range(start, max(c.byte_offset + c.size for c in chunks))


@given(damage=byte_damage)
@example(damage=("flip", 1.0, 16, 7))  # always one case of values changed, not structure
@SETTINGS
def test_uvh5(tiny_obs: Observation, tmp_path: Path, damage: tuple[str, float, int, int]) -> None:
    case, out = _fresh(tmp_path)
    path = case / "obs.uvh5"
    shutil.copyfile(tiny_obs.path, path)
    _damage_bytes(path, damage, _uvh5_data_region(tiny_obs.path))
    run = run_isolated(["image", str(path), "--out", str(out), *ARGS], case / "stderr")
    event(assert_outcome(run, out, _oracle(lambda: expected_uvh5(path))))


@pytest.fixture(scope="module")
def tiny_uvfits(tiny_obs: Observation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from payload.reading import UVData

    uvd = UVData.from_file(str(tiny_obs.path))
    path = tmp_path_factory.mktemp("uvfits") / "tiny.uvfits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd.write_uvfits(str(path))
    return path


def _fits_data_region(path: Path) -> range:
    from astropy.io import fits

    with fits.open(path) as hdul:
        info = hdul.fileinfo(0)
        start = info["datLoc"]
        return range(start, start + hdul[0]._data_size)


# Cards a lying uvfits header may carry, and the lies.
UVFITS_CARDS = ["GCOUNT", "PCOUNT", "NAXIS2", "NAXIS3", "NAXIS4", "CRVAL4", "CDELT4", "OBSDEC"]
LIES = [0, -1, 3, 10**9, 1e300, -1e300, 401.0]
uvfits_damage = st.one_of(
    byte_damage.map(lambda d: ("bytes", d)),
    st.tuples(st.sampled_from(UVFITS_CARDS), st.sampled_from(LIES)).map(lambda c: ("card", c)),
)


def _set_card(path: Path, key: str, value: float) -> None:
    """Overwrite the value of a card in the primary header in place (the file keeps its size)."""
    raw = bytearray(path.read_bytes())
    header_end = raw.index(b"END" + b" " * 77)
    at = raw.index(key.ljust(8).encode() + b"=", 0, header_end)
    text = str(int(value)) if float(value).is_integer() and abs(value) < 1e18 else repr(value)
    raw[at : at + 80] = f"{key.ljust(8)}= {text:>20}".ljust(80).encode()
    path.write_bytes(bytes(raw))


@pytest.mark.slow
@given(damage=uvfits_damage)
@example(damage=("bytes", ("flip", 1.0, 16, 7)))
@SETTINGS
def test_uvfits(tiny_uvfits: Path, tmp_path: Path, damage: tuple[str, tuple[object, ...]]) -> None:
    case, out = _fresh(tmp_path)
    path = case / "obs.uvfits"
    shutil.copyfile(tiny_uvfits, path)
    kind, detail = damage
    if kind == "bytes":
        _damage_bytes(path, detail, _fits_data_region(tiny_uvfits))  # type: ignore[arg-type]
    else:
        _set_card(path, str(detail[0]), float(detail[1]))  # type: ignore[arg-type]
    run = run_isolated(["image", str(path), "--out", str(out), *ARGS], case / "stderr")
    event(assert_outcome(run, out, _oracle(lambda: expected_pyuvdata(str(path)))))


@pytest.fixture(scope="module")
def tiny_ms(tiny_obs: Observation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from payload.reading import UVData

    uvd = UVData.from_file(str(tiny_obs.path))
    path = tmp_path_factory.mktemp("ms") / "tiny.ms"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd.write_ms(str(path))
    return path


@pytest.mark.slow
@given(damage=byte_damage, member=st.integers(0, 10**6))
@example(damage=("flip", 0.0, 16, 7), member=0)
@settings(SETTINGS, max_examples=4)
def test_measurement_set(
    tiny_ms: Path, tmp_path: Path, damage: tuple[str, float, int, int], member: int
) -> None:
    """One table file of the Measurement Set damaged (the main table's data most often)."""
    case, out = _fresh(tmp_path)
    path = case / "obs.ms"
    shutil.copytree(tiny_ms, path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    main_data = [p for p in files if p.parent == path and p.name.startswith("table.f")]
    target = (main_data + files)[member % (len(main_data) + len(files))]
    _damage_bytes(target, damage, range(0))
    run = run_isolated(["image", str(path), "--out", str(out), *ARGS], case / "stderr")
    event(assert_outcome(run, out, _oracle(lambda: expected_pyuvdata(str(path)))))


@pytest.fixture(scope="module")
def mwa_raw(tmp_path_factory: pytest.TempPathFactory) -> MWARawObservation:
    return write_mwa_raw(tmp_path_factory.mktemp("mwaraw") / "obs", n_fine=8, n_times=2)


METAFITS_CARDS = ["NCHANS", "FINECHAN", "BANDWDTH", "FREQCENT", "EXPOSURE", "INTTIME", "DEC"]
mwa_damage = st.one_of(
    st.tuples(st.sampled_from(["gpubox", "metafits"]), byte_damage).map(lambda d: ("bytes", d)),
    st.tuples(st.sampled_from(METAFITS_CARDS), st.sampled_from(LIES)).map(lambda c: ("card", c)),
)


@pytest.mark.slow
@given(damage=mwa_damage)
@example(damage=("bytes", ("gpubox", ("flip", 1.0, 16, 7))))
@settings(SETTINGS, max_examples=4)
def test_mwa_raw(
    mwa_raw: MWARawObservation, tmp_path: Path, damage: tuple[str, tuple[object, ...]]
) -> None:
    case, out = _fresh(tmp_path)
    path = case / "obs"
    shutil.copytree(mwa_raw.directory, path)
    metafits = path / mwa_raw.metafits.name
    gpubox = path / mwa_raw.gpubox_files[0].name
    kind, detail = damage
    if kind == "bytes":
        which, bytes_damage = detail
        target = gpubox if which == "gpubox" else metafits
        _damage_bytes(target, bytes_damage, _mwa_data_region(target))  # type: ignore[arg-type]
    else:
        _set_card(metafits, str(detail[0]), float(detail[1]))  # type: ignore[arg-type]
    files = [str(metafits), str(gpubox)]
    run = run_isolated(["image", str(path), "--out", str(out), *ARGS], case / "stderr")
    expected = _oracle(lambda: expected_pyuvdata(files, phase_to_middle=True))
    event(assert_outcome(run, out, expected))


def _mwa_data_region(path: Path) -> range:
    """Bytes of the first image extension's data (the visibilities of a gpubox file)."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        index = 1 if len(hdul) > 1 else 0
        info = hdul.fileinfo(index)
        return range(info["datLoc"], info["datLoc"] + hdul[index]._data_size)
