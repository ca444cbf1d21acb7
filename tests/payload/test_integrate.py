"""The integrate job sums uv cubes of many observations, in any chunking, exactly."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from payload.errors import InvalidInputError
from payload.jobs.image import ImageJob
from payload.jobs.integrate import IntegrateJob
from payload.params import ImagingParams, StackParams
from payload.synth import write_preset
from payload.uvcube import UVCube

from .conftest import Observation, make_context, run_job


@pytest.fixture(scope="module")
def cubes(
    tiny_obs: Observation, tiny_products: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    """Three uv cubes: the tiny observation and two more noisy ones of the same field."""
    root = tmp_path_factory.mktemp("integrate-inputs")
    paths = [tiny_products["uvcube.h5"]]
    for seed in (11, 12):
        obs = write_preset(root / f"obs{seed}.uvh5", "tiny", noise_jy=0.5, seed=seed)
        job = ImageJob(make_context(Path(obs.path), tiny_obs.params, root / f"w{seed}"))
        products = run_job(job, root / f"c{seed}", root / f"out{seed}")
        paths.append(next(p for p in products if p.name == "uvcube.h5"))
    return paths


def _integrate(cubes: list[Path], root: Path, per_chunk: int) -> dict[str, Path]:
    params = {"uvcubes": [f"s3://local{p}" for p in cubes], "cubes_per_chunk": per_chunk}
    job = IntegrateJob(make_context(cubes[0], params, root / "work", kind="integrate"))
    return {p.name: p for p in run_job(job, root / "chunks", root / "out")}


@pytest.mark.parametrize("per_chunk", [1, 2, 3])
def test_integrated_cube_is_the_exact_sum(
    cubes: list[Path], tmp_path: Path, per_chunk: int
) -> None:
    products = _integrate(cubes, tmp_path, per_chunk)
    total = UVCube.read(products["uvcube.h5"])
    parts = [UVCube.read(p) for p in cubes]
    np.testing.assert_allclose(total.vis, sum(p.vis for p in parts), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(total.weights, sum(p.weights for p in parts), rtol=1e-12, atol=1e-9)
    # even halves with even halves, odd with odd, and their sampling images alike
    np.testing.assert_allclose(
        total.vis_halves, sum(p.vis_halves for p in parts), rtol=1e-12, atol=1e-9
    )
    np.testing.assert_allclose(
        total.sampling, sum(p.sampling.astype(np.float64) for p in parts), rtol=1e-5, atol=1e-2
    )
    assert len(total.observations) == 3
    assert products["powerspec.png"].read_bytes().startswith(b"\x89PNG")


def test_integration_is_bit_identical_across_runs(cubes: list[Path], tmp_path: Path) -> None:
    first = _integrate(cubes, tmp_path / "a", 2)
    second = _integrate(cubes, tmp_path / "b", 2)
    for name in ("uvcube.h5", "powerspec.h5", "powerspec.png"):
        assert first[name].read_bytes() == second[name].read_bytes(), name


def test_cubes_on_another_grid_are_refused(
    cubes: list[Path], tiny_obs: Observation, tmp_path: Path
) -> None:
    # 1.5, not 2: a coarser cell would leave the MWA beam outside the uv grid's field, which
    # the image job now refuses before any cube exists (docs/imaging.md).
    params = dict(tiny_obs.params, uv_cell_lambda=1.5)
    job = ImageJob(make_context(tiny_obs.path, params, tmp_path / "w"))
    other = next(p for p in run_job(job, tmp_path / "c", tmp_path / "o") if p.name == "uvcube.h5")
    with pytest.raises(InvalidInputError, match=r"uv_cell_lambda is 1\.5 but 1\.0"):
        _integrate([cubes[0], other], tmp_path / "bad", 2)


@pytest.mark.parametrize(
    ("key", "value"),
    [("primary_beam", "gaussian:25"), ("ps_taper_fwhm_deg", 15.0)],
    ids=["beam", "taper"],
)
def test_cubes_with_another_beam_or_taper_are_refused(
    cubes: list[Path], tmp_path: Path, key: str, value: object
) -> None:
    """One line naming the key that differs; the cube need not be re-imaged to find out."""
    other = UVCube.read(cubes[1])
    if key == "primary_beam":
        other.primary_beam = str(value)
    else:
        assert isinstance(value, float)
        other.stack_params = dataclasses.replace(other.stack_params, **{key: value})
    path = tmp_path / "other.h5"
    other.write(path, attrs={})
    with pytest.raises(InvalidInputError, match=f"{key} is .* but "):
        _integrate([cubes[0], path], tmp_path / "bad", 2)


def test_stack_params_json_is_what_the_dict_wrote(cubes: list[Path]) -> None:
    """The record writes the attribute the dict wrote (files read back either way)."""
    import h5py

    params = ImagingParams.from_mapping({"uv_max_lambda": 40, "ps_taper_fwhm_deg": 15.0})
    as_dict = {"uv_cell_lambda": 1.0, "uv_max_lambda": 40, "ps_taper_fwhm_deg": 15.0}
    assert params.stack_params().to_json() == json.dumps(as_dict, sort_keys=True)
    with h5py.File(cubes[0], "r") as handle:
        written = str(handle.attrs["stack_params"])
    record = UVCube.read(cubes[0]).stack_params
    assert isinstance(record, StackParams)
    assert record.to_json() == written


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"uv_cell_lambda": 1.0, "uv_max_lambda": 64.0}, "missing ps_taper_fwhm_deg"),
        (
            {"uv_cell_lambda": 1.0, "uv_max_lambda": 64.0, "ps_taper_fwhm_deg": 20.0, "x": 1},
            "unknown x",
        ),
        (
            {"uv_cell_lambda": "1", "uv_max_lambda": 64.0, "ps_taper_fwhm_deg": 20.0},
            "uv_cell_lambda must be a number",
        ),
    ],
    ids=["missing", "unknown", "not-a-number"],
)
def test_bad_stack_params_are_named(
    cubes: list[Path], tmp_path: Path, doc: dict[str, object], match: str
) -> None:
    import h5py

    path = tmp_path / "bad.h5"
    path.write_bytes(cubes[0].read_bytes())
    with h5py.File(path, "r+") as handle:
        handle.attrs["stack_params"] = json.dumps(doc)
    with pytest.raises(InvalidInputError, match=match) as caught:
        UVCube.read(path)
    assert str(path) in str(caught.value)


def test_integrated_cross_power_has_smaller_errors(cubes: list[Path], tmp_path: Path) -> None:
    """Three observations of one field: the integrated spectrum's 1 sigma is below each one's."""
    import h5py

    products = _integrate(cubes, tmp_path, 3)
    with h5py.File(products["powerspec.h5"], "r") as handle:
        integrated = np.asarray(handle["sigma_sph"][()])
    single = _integrate(cubes[1:2], tmp_path / "one", 1)
    with h5py.File(single["powerspec.h5"], "r") as handle:
        alone = np.asarray(handle["sigma_sph"][()])
    both = np.isfinite(integrated) & np.isfinite(alone) & (alone > 0)
    assert both.any()
    assert np.all(integrated[both] < alone[both])


@pytest.mark.parametrize(
    "params",
    [{}, {"uvcubes": []}, {"uvcubes": ["a", "a"]}, {"uvcubes": ["a"], "cubes_per_chunk": 0}],
    ids=["none", "empty", "twice", "zero-per-chunk"],
)
def test_bad_integrate_params(tmp_path: Path, params: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError, match="parameter"):
        IntegrateJob(make_context(tmp_path, params, tmp_path, kind="integrate"))


def test_not_a_uvcube_is_named(tmp_path: Path, tiny_obs: Observation) -> None:
    with pytest.raises(InvalidInputError, match=str(tiny_obs.path)):
        _integrate([tiny_obs.path], tmp_path, 1)


def test_local_integrate_command(cubes: list[Path], tmp_path: Path) -> None:
    from payload.cli import main

    assert (
        main(["integrate", *map(str, cubes), "--out", str(tmp_path), "--cubes-per-chunk", "2"]) == 0
    )
    total = UVCube.read(tmp_path / "uvcube.h5")
    assert len(total.observations) == 3
    assert main(["integrate", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "x")]) == 65
