"""The power spectrum's options on the command line: beam and taper reach the job."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import pytest

from payload.cli import main
from payload.commands.image import params_from_args, register

from .conftest import Observation


def _args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["image", "in.uvh5", "--out", "o", *extra])


def test_beam_and_taper_options_become_job_params() -> None:
    params = params_from_args(_args("--primary-beam", "gaussian:12@150", "--ps-taper", "15"))
    assert params["primary_beam"] == "gaussian:12@150"
    assert params["ps_taper_fwhm_deg"] == 15.0
    assert "primary_beam" not in params_from_args(_args())


@pytest.mark.parametrize("spec", ["gaussian:-1", "airy", "mwa:1,2,3", "tophat:10"])
def test_a_bad_beam_spec_is_one_line_naming_it(
    spec: str, tiny_obs: Observation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["image", str(tiny_obs.path), "--out", str(tmp_path), "--primary-beam", spec, "--quiet"]
    )
    err = capsys.readouterr().err.strip()
    assert status == 65
    assert err.count("\n") == 0
    assert spec in err
    assert "gaussian:FWHM_DEG" in err


def test_cli_beam_is_recorded_in_the_products(
    tiny_obs: Observation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "image",
            str(tiny_obs.path),
            "--out",
            str(tmp_path),
            "--primary-beam",
            "airy:4",
            "--image-size",
            "64",
            "--chunk-channels",
            "4",
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{\n") :])  # after the progress bar
    assert set(summary["beyond_grid"]) == {"image", "uv"}
    assert json.loads((tmp_path / "provenance.json").read_text())["primary_beam"] == "airy:4"
    for name in ("uvcube.h5", "powerspec.h5"):
        with h5py.File(tmp_path / name, "r") as handle:
            assert handle.attrs["primary_beam"] == "airy:4", name
