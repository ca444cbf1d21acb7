"""``spotcube bake --target aws`` against the embedded cloud's EC2 and a stand-in Packer.

The stand-in records its arguments and writes a manifest the way Packer's manifest
post-processor does; everything else (hash lookup, wheel build, variables, manifest parsing,
the printed pulumi line) is the real code.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from spotcube.bake.artifacts import BuildError
from spotcube.bake.aws import CONTENT_HASH_TAG, read_manifest
from spotcube.bake.provenance import BakeInputs, repo_root
from spotcube.cli import main
from spotcube.local.motoserver import local_client

FAKE_AMI = "ami-0123456789abcdef0"
FAKE_PACKER = """#!{python}
import json, pathlib, sys
log = pathlib.Path({log!r})
with log.open("a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1] == "version":
    print("Packer v{version}")
elif sys.argv[1] == "build":
    values = dict(a.split("=", 1) for a in sys.argv[2:] if "=" in a and not a.startswith("-"))
    manifest = {{"builds": [{{"name": "payload", "packer_run_uuid": "u1",
        "artifact_id": values["region"] + ":{ami}",
        "custom_data": {{"ami_name": "x", "content_hash": values["content_hash"]}}}}],
        "last_run_uuid": "u1"}}
    pathlib.Path(values["manifest_path"]).write_text(json.dumps(manifest))
"""


@pytest.fixture(scope="module")
def digest() -> str:
    return BakeInputs.read(repo_root()).digest.hexdigest


def fake_packer(tmp_path: Path, version: str = "1.11.2") -> tuple[Path, Path]:
    log = tmp_path / "packer-calls.jsonl"
    script = tmp_path / "packer"
    script.write_text(
        FAKE_PACKER.format(python=sys.executable, log=str(log), version=version, ami=FAKE_AMI)
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


def register_ami(endpoint: str, content_hash: str, name: str) -> str:
    ec2 = local_client("ec2", endpoint)
    image_id: str = ec2.register_image(
        Name=name,
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 16}}],
    )["ImageId"]
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": CONTENT_HASH_TAG, "Value": content_hash}])
    return image_id


def bake(endpoint: str, tmp_path: Path, packer: Path | str, *extra: str) -> list[str]:
    return [
        "bake", "--target", "aws", "--region", "us-east-1", "--endpoint-url", endpoint,
        "--packer", str(packer), "--cache-dir", str(tmp_path / "cache"), *extra,
    ]  # fmt: skip


def test_existing_ami_is_printed_and_packer_never_runs(
    cloud: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], digest: str
) -> None:
    register_ami(cloud, "f" * 64, "other-image")
    image_id = register_ami(cloud, digest, "spotcube-payload-x")
    packer, log = fake_packer(tmp_path)
    assert main(bake(cloud, tmp_path, packer)) == 0
    out = capsys.readouterr().out
    assert f"{image_id} (us-east-1, exists" in out
    assert f"pulumi config set spotcube:ami {image_id}" in out
    assert not log.exists()


def test_missing_ami_is_baked_with_packer(
    cloud: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], digest: str
) -> None:
    register_ami(cloud, "f" * 64, "stale-image")  # another hash: must not count
    packer, log = fake_packer(tmp_path)
    assert main(bake(cloud, tmp_path, packer, "--instance-types", "c6i.large,m6i.large")) == 0
    out = capsys.readouterr().out
    assert f"{FAKE_AMI} (us-east-1, baked" in out
    assert f"pulumi config set spotcube:ami {FAKE_AMI}" in out
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c[0] for c in calls] == ["version", "init", "build"]
    build = calls[-1]
    values = dict(a.split("=", 1) for a in build if "=" in a and not a.startswith("-"))
    assert values["content_hash"] == digest
    assert json.loads(values["spot_instance_types"]) == ["c6i.large", "m6i.large"]
    assert build[-1] == str(repo_root() / "packer")
    extra_vars = json.loads(Path(values["ansible_extra_vars_file"]).read_text())
    assert extra_vars["payload_env_wheelhouse"] == ""  # PyPI on the build instance
    assert Path(extra_vars["payload_wheel_src"]).name.startswith("spotcube-")
    assert Path(extra_vars["payload_wheel_src"]).is_file()
    assert extra_vars["payload_image_metadata"]["content_hash"] == digest


def test_old_packer_is_refused(
    cloud: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packer, log = fake_packer(tmp_path, version="1.6.6")
    assert main(bake(cloud, tmp_path, packer)) == 3
    assert "too old" in capsys.readouterr().err
    assert [json.loads(line)[0] for line in log.read_text().splitlines()] == ["version"]


def test_missing_packer_says_what_to_install(
    cloud: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(bake(cloud, tmp_path, tmp_path / "no-such-packer")) == 3
    assert "Packer >= 1.10" in capsys.readouterr().err


def test_manifest_reader_takes_the_last_run(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "builds": [
                    {"packer_run_uuid": "old", "artifact_id": "us-east-1:ami-old"},
                    {"packer_run_uuid": "new", "artifact_id": "eu-west-1:ami-eu,us-east-1:ami-new"},
                ],
                "last_run_uuid": "new",
            }
        )
    )
    assert read_manifest(manifest, "us-east-1").image_id == "ami-new"
    with pytest.raises(BuildError, match="no AMI in ap-south-1"):
        read_manifest(manifest, "ap-south-1")
