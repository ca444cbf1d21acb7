"""Property-based damage to the values of valid observations, every reader.

Hypothesis sets random visibilities or nsamples of a valid observation to NaN, ±Inf,
negative, zero, huge or tiny values, in any row (autocorrelations too), channel and
polarization (XY and YX too), and runs ``python -m payload image``. The invariant (issue
10): exit 0 with products that agree with an independent oracle (:mod:`.hostile`: h5py or
pyuvdata reading, the rule for values and the centre pixel computed in numpy, and the
flag counts in ``provenance.json``), or exit 65 with one line and no product; never a
traceback, a hang or a wrong product.

Readers: the h5py fast path (uvh5), the pyuvdata chunk reader (a drift-scan uvh5, phased
per chunk), and the read-once-and-convert path (uvfits, Measurement Set). Derandomised and
with a fixed number of examples, so CI runs the same cases every time.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from .conftest import Observation
from .hostile import Expected, assert_outcome, expected_pyuvdata, expected_uvh5, run_isolated

ARGS = ["--chunk-channels", "4", "--image-size", "64", "--quiet"]

VIS_VALUES = {
    "nan": complex(np.nan, 0.0),
    "nan-imag": complex(0.0, np.nan),
    "inf": complex(np.inf, 0.0),
    "-inf-imag": complex(1.0, -np.inf),
    "huge": complex(3e37, -3e37),  # finite in complex64: must be imaged, not flagged
    "zero": 0j,
}
NSAMPLES_VALUES = {
    "nan": np.nan,
    "inf": np.inf,
    "-inf": -np.inf,
    "negative": -1.0,
    "zero": 0.0,
    "huge": 3e37,  # a valid weight, however odd
    "tiny": 1e-30,
}

damage = st.one_of(
    st.tuples(st.just("visdata"), st.sampled_from(sorted(VIS_VALUES))),
    st.tuples(st.just("nsamples"), st.sampled_from(sorted(NSAMPLES_VALUES))),
)
# How many (row, channel, polarization) cells, or every cell (-1).
extent = st.one_of(st.integers(1, 400), st.just(-1))

SETTINGS = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _damage_uvh5(path: Path, what: tuple[str, str], count: int, seed: int) -> None:
    dataset, name = what
    value = VIS_VALUES[name] if dataset == "visdata" else NSAMPLES_VALUES[name]
    with h5py.File(path, "r+") as handle:
        data = handle[f"Data/{dataset}"][()]
        if count < 0:
            data[...] = value
        else:
            rng = np.random.default_rng(seed)
            cells = rng.choice(data.size, size=min(count, data.size), replace=False)
            data.reshape(-1)[cells] = value
        handle[f"Data/{dataset}"][...] = data


def _fresh(tmp: Path, name: str) -> tuple[Path, Path]:
    case = tmp / name
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir()
    return case, case / "out"


@given(what=damage, count=extent, seed=st.integers(0, 2**32 - 1))
@SETTINGS
def test_uvh5_fast_path(
    tiny_obs: Observation, tmp_path: Path, what: tuple[str, str], count: int, seed: int
) -> None:
    case, out = _fresh(tmp_path, "case")
    path = case / "obs.uvh5"
    shutil.copyfile(tiny_obs.path, path)
    _damage_uvh5(path, what, count, seed)
    run = run_isolated(["image", str(path), "--out", str(out), *ARGS], case / "stderr")
    event(assert_outcome(run, out, expected_uvh5(path)))


@pytest.fixture(scope="module")
def drift_obs(tiny_obs: Observation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny observation unprojected: read per chunk by pyuvdata, phased to zenith."""
    from payload.reading import UVData

    uvd = UVData.from_file(str(tiny_obs.path))
    path = tmp_path_factory.mktemp("drift") / "drift.uvh5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd.unproject_phase()
        uvd.write_uvh5(str(path))
    return path


@pytest.mark.slow
@given(what=damage, count=extent, seed=st.integers(0, 2**32 - 1))
@settings(SETTINGS, max_examples=4)
def test_pyuvdata_chunk_reader(
    drift_obs: Path, tmp_path: Path, what: tuple[str, str], count: int, seed: int
) -> None:
    case, out = _fresh(tmp_path, "case")
    path = case / "drift.uvh5"
    shutil.copyfile(drift_obs, path)
    _damage_uvh5(path, what, count, seed)
    run = run_isolated(["image", str(path), "--out", str(out), *ARGS], case / "stderr")
    expected = _or_none(lambda: expected_pyuvdata(str(path), phase_to_middle=True))
    event(assert_outcome(run, out, expected))


def _or_none(oracle: Callable[[], Expected]) -> Expected | None:
    try:
        return oracle()
    except Exception:  # the oracle's reader refuses the file: exit 0 would then be wrong
        return None


def _write_other_format(source: Path, target: Path, kind: str) -> None:
    from payload.reading import UVData

    with warnings.catch_warnings():
        # pyuvdata warns about the damage it reads ("fixing auto-correlations"): expected here
        warnings.simplefilter("ignore")
        uvd = UVData.from_file(str(source))
        if kind == "uvfits":
            uvd.write_uvfits(str(target), run_check=False)
        else:
            uvd.write_ms(str(target), run_check=False)


# uvfits stores nsamples as the weight's magnitude and a flag as its sign, so only the
# visibilities can carry damage into it; a Measurement Set carries both.
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["uvfits", "ms"])
@given(
    what=st.one_of(
        st.tuples(st.just("visdata"), st.sampled_from(["nan", "inf", "nan-imag", "huge"])),
        st.tuples(st.just("nsamples"), st.sampled_from(["nan", "zero", "huge"])),
    ),
    count=extent,
    seed=st.integers(0, 2**32 - 1),
)
@settings(SETTINGS, max_examples=3)
def test_converted_formats(
    tiny_obs: Observation,
    tmp_path: Path,
    kind: str,
    what: tuple[str, str],
    count: int,
    seed: int,
) -> None:
    assume(not (kind == "uvfits" and what[0] == "nsamples"))  # not representable (above)
    case, out = _fresh(tmp_path, "case")
    damaged = case / "damaged.uvh5"
    shutil.copyfile(tiny_obs.path, damaged)
    _damage_uvh5(damaged, what, count, seed)
    path = case / f"obs.{kind}"
    _write_other_format(damaged, path, kind)
    run = run_isolated(["image", str(path), "--out", str(out), *ARGS], case / "stderr")
    event(assert_outcome(run, out, _or_none(lambda: expected_pyuvdata(str(path)))))


def test_the_oracle_agrees_with_an_undamaged_run(tiny_obs: Observation, tmp_path: Path) -> None:
    """The oracle itself: an undamaged file gives exit 0 and agrees (no flagged cells)."""
    out = tmp_path / "out"
    run = run_isolated(["image", str(tiny_obs.path), "--out", str(out), *ARGS], tmp_path / "e")
    expected = expected_uvh5(tiny_obs.path)
    assert (expected.nonfinite_visibilities, expected.bad_nsamples) == (0, 0)
    assert assert_outcome(run, out, expected) == "done"


def test_the_oracle_catches_a_wrong_product(tiny_obs: Observation, tmp_path: Path) -> None:
    """The check can fail: products of one file do not pass for a damaged other."""
    out = tmp_path / "out"
    run = run_isolated(["image", str(tiny_obs.path), "--out", str(out), *ARGS], tmp_path / "e")
    other = tmp_path / "other.uvh5"
    shutil.copyfile(tiny_obs.path, other)
    _damage_uvh5(other, ("visdata", "huge"), 50, seed=1)
    with pytest.raises(AssertionError, match=r"centre pixel|nonfinite|bad_nsamples"):
        assert_outcome(run, out, expected_uvh5(other))
