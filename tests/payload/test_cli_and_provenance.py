"""``python -m payload image`` and the provenance every product carries."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest
from astropy.io import fits

from payload import __version__
from payload.cli import main
from payload.params import ImagingParams

from .conftest import PROVENANCE, Observation


def test_cli_bad_input_exits_65_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "garbage.uvfits"
    bad.write_bytes(b"\0" * 4096)
    status = main(["image", str(bad), "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert status == 65
    assert err.count("\n") == 0
    assert str(bad) in err
    assert not (tmp_path / "out").exists() or not any(
        p for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")
    )


def test_cli_bad_option_names_the_parameter(
    tiny_obs: Observation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["image", str(tiny_obs.path), "--out", str(tmp_path), "--image-size", "33"])
    assert status == 65
    assert "image_size" in capsys.readouterr().err


def test_fits_products_carry_provenance(tiny_products: dict[str, Path]) -> None:
    for name in ("image_cube.fits", "psf_cube.fits"):
        with fits.open(tiny_products[name]) as hdul:
            header = hdul[0].header
            assert header["PAYLVER"] == __version__
            assert header["GITCOMMT"] == PROVENANCE["git_commit"]
            assert header["AMI_ID"] == PROVENANCE["ami_id"]
            assert header["INPUTID"] == PROVENANCE["input_identity"]
            assert len(header["PARAMHSH"]) == 64
            assert "DATE" not in header  # no wall-clock time in products


@pytest.mark.parametrize("name", ["uvcube.h5", "powerspec.h5"])
def test_hdf5_products_carry_provenance(tiny_products: dict[str, Path], name: str) -> None:
    with h5py.File(tiny_products[name], "r") as handle:
        assert handle.attrs["provenance_payload_version"] == __version__
        assert handle.attrs["provenance_ami_id"] == PROVENANCE["ami_id"]
        assert handle.attrs["provenance_input_identity"] == PROVENANCE["input_identity"]


def test_instance_id_only_in_provenance_json(tiny_products: dict[str, Path]) -> None:
    doc = json.loads(tiny_products["provenance.json"].read_text())
    assert doc["instance_id"] == PROVENANCE["instance_id"]
    assert doc["params"]["chunk_channels"] == 4
    for name in ("image_cube.fits", "uvcube.h5", "powerspec.h5"):
        assert PROVENANCE["instance_id"].encode() not in tiny_products[name].read_bytes()


def test_params_round_trip_through_json() -> None:
    params = ImagingParams.from_mapping({"polarizations": "xx,I", "weighting": "uniform"})
    again = ImagingParams.from_mapping(json.loads(json.dumps(params.to_dict())))
    assert again == params
    assert params.polarizations == ("XX", "I")
