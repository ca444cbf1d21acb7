"""Inputs are read as the data mean: channel order and repeated baseline-times.

Invariants (issue 18 item 5; rule in docs/imaging.md, "Channel order" and "Repeated
baseline-times"):

* **Channel order carries no meaning.** The same observation written by pyuvdata (the field's
  own library, the oracle here) with its channels ascending, descending or in any permutation
  gives the same visibilities for every frequency chunk, through the h5py path and the
  pyuvdata path, from uvh5, uvfits and a Measurement Set; and the same products, bit for bit.
* **A baseline-time counts once.** A file holding some rows twice, identically, gives the
  products of the file without the copies (the noise is not a factor sqrt(2) off); a file in
  which any copy differs is refused with one line naming the file, the antennas and the time.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payload.errors import InvalidInputError
from payload.jobs.image import ImageJob
from payload.reading import open_observation, read_chunk, read_info
from tests.payload.conftest import Observation, make_context, run_job

POLS = ("XX", "YY", "I")


def _uvdata(path: Path) -> Any:
    from pyuvdata import UVData

    uvd = UVData()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd.read(str(path), run_check_acceptability=False)
    return uvd


def _write(uvd: Any, path: Path, fmt: str = "uvh5") -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "uvh5":
            uvd.write_uvh5(str(path), clobber=True, run_check_acceptability=False)
        elif fmt == "uvfits":
            uvd.write_uvfits(str(path), run_check_acceptability=False)
        else:
            uvd.write_ms(str(path), clobber=True, run_check_acceptability=False)
    return path


def reordered(src: Path, order: np.ndarray, dst: Path, fmt: str = "uvh5") -> Path:
    """``src`` rewritten by pyuvdata with its channels stored in ``order``."""
    uvd = _uvdata(src)
    uvd.reorder_freqs(channel_order=np.asarray(order), run_check_acceptability=False)
    return _write(uvd, dst, fmt)


def chunks(path: Path, cache: Path, step: int, *, use_pyuvdata: bool = False) -> list[Any]:
    info = read_info(path, use_pyuvdata=True) if use_pyuvdata else open_observation(path, cache)
    return [
        read_chunk(info, range(start, min(start + step, info.n_freqs)), POLS)
        for start in range(0, info.n_freqs, step)
    ]


def assert_same_chunks(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.freq_hz, b.freq_hz)
        np.testing.assert_array_equal(a.uvw_m, b.uvw_m)
        for pol in POLS:
            np.testing.assert_array_equal(a.vis[pol], b.vis[pol])
            np.testing.assert_array_equal(a.weights[pol], b.weights[pol])


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_channel_order_reads_as_the_sorted_file(
    tiny_obs: Observation, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    n = 16
    order = np.array(data.draw(st.permutations(range(n)), label="storage order"))
    step = data.draw(st.integers(1, 7), label="chunk channels")
    tmp = tmp_path_factory.mktemp("order")
    path = reordered(tiny_obs.path, order, tmp / "permuted.uvh5")
    want = chunks(tiny_obs.path, tmp / "cache", step)
    assert_same_chunks(chunks(path, tmp / "cache", step), want)
    assert_same_chunks(chunks(path, tmp / "cache", step, use_pyuvdata=True), want)


@pytest.mark.parametrize("fmt", ["uvfits", "ms"])
def test_descending_channels_in_other_formats_read_as_sorted(
    tiny_obs: Observation, tmp_path: Path, fmt: str
) -> None:
    sorted_copy = _write(_uvdata(tiny_obs.path), tmp_path / f"sorted.{fmt}", fmt)
    descending = reordered(tiny_obs.path, np.arange(16)[::-1], tmp_path / f"desc.{fmt}", fmt)
    info = open_observation(descending, tmp_path / "cache")
    assert np.all(np.diff(info.freq_hz) > 0)
    assert_same_chunks(
        chunks(descending, tmp_path / "cache", 5), chunks(sorted_copy, tmp_path / "cache", 5)
    )


def _products(path: Path, params: dict[str, Any], root: Path) -> dict[str, bytes]:
    """Every product's bytes except provenance (which names the input file)."""
    for sub in ("work", "chunks", "out"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    job = ImageJob(make_context(path, params, root / "work"))
    made = run_job(job, root / "chunks", root / "out")
    return {p.name: _payload_bytes(p) for p in made if p.name != "provenance.json"}


def _payload_bytes(path: Path) -> bytes:
    """The numbers of a product: HDF5 datasets and FITS data, not headers naming the input."""
    if path.suffix == ".h5":
        with h5py.File(path, "r") as handle:
            parts: list[bytes] = []
            handle.visititems(
                lambda name, obj: (
                    parts.append(name.encode() + obj[()].tobytes())
                    if isinstance(obj, h5py.Dataset)
                    else None
                )
            )
            return b"".join(parts)
    if path.suffix == ".fits":
        from astropy.io import fits

        with fits.open(path) as hdul:
            return b"".join(h.data.tobytes() for h in hdul if h.data is not None)
    return path.read_bytes()


def test_descending_and_permuted_files_make_the_same_products(
    tiny_obs: Observation, tmp_path: Path
) -> None:
    params = dict(tiny_obs.params)
    want = _products(tiny_obs.path, params, tmp_path / "sorted")
    rng = np.random.default_rng(18)
    for name, order in (("desc", np.arange(16)[::-1]), ("perm", rng.permutation(16))):
        path = reordered(tiny_obs.path, order, tmp_path / f"{name}.uvh5")
        got = _products(path, params, tmp_path / name)
        assert got.keys() == want.keys()
        for product in want:
            if product.endswith(".png"):
                continue  # a rendering of the arrays compared here
            assert got[product] == want[product], f"{name}: {product} differs"


# --- repeated baseline-times --------------------------------------------------------------

_BLT_DATASETS = ("Data/visdata", "Data/flags", "Data/nsamples")


def with_rows(src: Path, dst: Path, rows: np.ndarray, change: dict[int, str] | None = None) -> Path:
    """``src`` with its baseline-time rows replaced by ``rows`` (indices, repeats allowed).

    ``change`` alters the copy at output position i: "data" (x2), "flags" (inverted),
    "nsamples" (x2) or "uvw" (+1 m) — a conflicting repeat.
    """
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as handle:
        n = int(handle["Header/Nblts"][()])
        for name in list(handle["Header"]) + list(_BLT_DATASETS):
            key = name if "/" in name else f"Header/{name}"
            dataset = handle[key]
            if not isinstance(dataset, h5py.Dataset) or not dataset.shape or dataset.shape[0] != n:
                continue
            values = dataset[()][rows]
            for position, what in (change or {}).items():
                if (what, key) in (
                    ("data", "Data/visdata"),
                    ("nsamples", "Data/nsamples"),
                ):
                    values[position] = values[position] * 2 + 1
                elif (what, key) == ("flags", "Data/flags"):
                    values[position] = ~values[position]
                elif (what, key) == ("uvw", "Header/uvw_array"):
                    values[position] = values[position] + 1.0
            del handle[key]
            handle.create_dataset(key, data=values)
        del handle["Header/Nblts"]
        handle["Header/Nblts"] = len(rows)
    return dst


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_repeated_baseline_time_counts_once_or_is_refused(
    tiny_obs: Observation, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    tmp = tmp_path_factory.mktemp("repeats")
    with h5py.File(tiny_obs.path, "r") as handle:
        n = int(handle["Header/Nblts"][()])
        ant1 = handle["Header/ant_1_array"][()]
        ant2 = handle["Header/ant_2_array"][()]
    cross = np.flatnonzero(ant1 != ant2)
    copies = data.draw(st.lists(st.sampled_from(list(cross)), min_size=1, max_size=6, unique=True))
    rows = np.concatenate([np.arange(n), np.array(copies, dtype=int)])
    shuffle = data.draw(st.booleans(), label="copies interleaved")
    if shuffle:
        rows = np.array(data.draw(st.permutations(list(rows))))
    altered = data.draw(
        st.dictionaries(
            st.sampled_from(copies),
            st.sampled_from(["data", "flags", "nsamples", "uvw"]),
            max_size=2,
        )
    )
    # The altered row is the *later* of the two copies, wherever the shuffle put it.
    change = {int(np.flatnonzero(rows == r)[-1]): what for r, what in altered.items()}
    path = with_rows(tiny_obs.path, tmp / "repeated.uvh5", rows, change)
    step = 4
    if altered:
        with pytest.raises(InvalidInputError) as caught:
            chunks(path, tmp / "cache", step)
        message = str(caught.value)
        assert message.startswith(f"{path}: ")
        assert "twice with different values" in message
        assert "\n" not in message
        return
    want = chunks(tiny_obs.path, tmp / "cache", step)
    for got in (
        chunks(path, tmp / "cache", step),
        chunks(path, tmp / "c2", step, use_pyuvdata=True),
    ):
        for a, b in zip(got, want, strict=True):
            for pol in POLS:
                # Weight sums per channel and the weighted visibility sums are those of the
                # file without copies: every measurement counted once.
                np.testing.assert_allclose(a.weights[pol].sum(0), b.weights[pol].sum(0), rtol=0)
                np.testing.assert_allclose(
                    (a.weights[pol] * a.vis[pol]).sum(0),
                    (b.weights[pol] * b.vis[pol]).sum(0),
                    rtol=1e-12,
                )


def test_exact_repeats_leave_the_noise_estimate_unchanged(
    tiny_obs: Observation, tmp_path: Path
) -> None:
    """End to end: every cross row written twice gives the products of the file itself.

    Before the rule, this file's noise maps were sqrt(2) too high relative to its weights
    (issue 18): each measurement was gridded twice as if independent.
    """
    with h5py.File(tiny_obs.path, "r") as handle:
        n = int(handle["Header/Nblts"][()])
    doubled = with_rows(tiny_obs.path, tmp_path / "doubled.uvh5", np.arange(2 * n) % n)
    want = _products(tiny_obs.path, dict(tiny_obs.params), tmp_path / "once")
    got = _products(doubled, dict(tiny_obs.params), tmp_path / "twice")
    for name in want:
        if name.endswith(".h5") or name.endswith(".fits"):
            assert got[name] == want[name], name
