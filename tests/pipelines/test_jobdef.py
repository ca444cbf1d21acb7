"""Job definition files for ``spotcube demo --job``: checks, placeholders, directory inputs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from spotcube.cli import main
from spotcube.errors import UsageError
from spotcube.jobdef import JobDefinition, pack_directory, prepare_inputs

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mwa-pipeline" / "job.json"


def write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "job.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_example_job_expands_per_observation() -> None:
    """The example reads its input from SPOTCUBE_INPUT (the worker's verified local copy)."""
    job = JobDefinition.load(EXAMPLE)
    params = job.params_for("s3://raw/inputs/obs.tar")
    assert params["argv"] == ["make", "--no-print-directory", "-f", f"{EXAMPLE.parent}/Makefile"]
    assert job.params["argv"][-1] == "{job_dir}/Makefile"  # the template is untouched


def test_placeholders_replace_only_themselves(tmp_path: Path) -> None:
    argv = ["sh", "-c", "awk '{print $1}' {job_dir}/x < {input}", "{inputs}"]
    job = JobDefinition.load(write(tmp_path, {"kind": "command", "params": {"argv": argv}}))
    expanded = job.params_for("s3://b/k")["argv"]
    assert expanded[2] == f"awk '{{print $1}}' {tmp_path}/x < s3://b/k"
    assert expanded[3] == "{inputs}"


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ("{not json", "is not JSON"),
        ("[]", "must be a JSON object"),
        ({"kind": "command", "params": {}}, "params.argv"),
        ({"kind": "command", "params": {"argv": "make"}}, "params.argv"),
        ({"kind": "command", "params": {"argv": [1]}}, "params.argv"),
        ({"kind": "shell", "params": {"argv": ["x"]}}, "kind 'shell'"),
        ({"kind": "command", "params": [], "argv": ["x"]}, "unknown key"),
        ({"schema": 2, "params": {"argv": ["x"]}}, "schema 2"),
        ({"params": ["x"]}, "params must be a JSON object"),
        ({"params": {"argv": ["x"], "env": {"SPOTCUBE_INPUT": "a"}}}, "env sets SPOTCUBE_INPUT"),
        ({"params": {"argv": ["x"], "fetch_input": 1}}, "fetch_input must be true or false"),
    ],
)
def test_bad_job_file_names_file_and_key(tmp_path: Path, doc: object, match: str) -> None:
    path = write(tmp_path, doc)
    with pytest.raises(UsageError, match=match) as info:
        JobDefinition.load(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def make_ms_like(folder: Path) -> Path:
    ms = folder / "obs.ms"
    (ms / "ANTENNA").mkdir(parents=True)
    (ms / "table.dat").write_bytes(b"main table")
    (ms / "ANTENNA" / "table.f0").write_bytes(os.urandom(1000))
    return ms


def test_directory_input_packs_reproducibly(tmp_path: Path) -> None:
    """Same files, same .tar bytes, whatever the times; GNU tar reads the same tree back."""
    ms = make_ms_like(tmp_path)
    first = pack_directory(ms, tmp_path / "a" / "obs.ms.tar").read_bytes()
    os.utime(ms / "table.dat", (1, 1))
    (ms / "ANTENNA" / "table.f0").chmod(0o600)
    second = pack_directory(ms, tmp_path / "b" / "obs.ms.tar")
    assert second.read_bytes() == first
    listing = subprocess.run(
        ["tar", "-tf", str(second)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(listing) == ["obs.ms/", "obs.ms/ANTENNA/", "obs.ms/ANTENNA/table.f0",
                               "obs.ms/table.dat"]  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert tar.extractfile("obs.ms/table.dat").read() == b"main table"  # type: ignore[union-attr]


def test_prepare_inputs_keeps_files_and_rejects_missing(tmp_path: Path) -> None:
    data = tmp_path / "x.uvh5"
    data.write_bytes(b"x")
    ms = make_ms_like(tmp_path)
    prepared = prepare_inputs([data, ms], tmp_path / "packed")
    assert prepared == [data, tmp_path / "packed" / "obs.ms.tar"]
    with pytest.raises(UsageError, match=r"--input .*nothing"):
        prepare_inputs([tmp_path / "nothing"], tmp_path / "packed")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--job", str(EXAMPLE)], "--job needs --input"),
        (["--job", "/nonexistent/job.json", "--input", "/"], "cannot be read"),
        (["--job", str(EXAMPLE), "--input", "/nonexistent.ms"], "no such file"),
    ],
)
def test_demo_job_options_fail_in_one_line(
    args: list[str], match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert match in err
