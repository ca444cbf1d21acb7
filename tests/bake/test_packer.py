"""The Packer template without AWS: structure (python-hcl2), `packer validate`, `packer fmt`.

Debian's packer 1.6.6 rejects `required_plugins` and predates some amazon-ebs arguments the
template needs, so `packer validate` runs on a staged copy without the plugins file and without
those arguments; the structural tests prove the real files have them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest

from spotcube.bake.aws import CONTENT_HASH_TAG, packer_variables
from spotcube.bake.contenthash import ContentHash, image_name
from spotcube.bake.provenance import BakeInputs

REPO = Path(__file__).resolve().parents[2]
PACKER = REPO / "packer"
DEBIAN_OWNER = "136693071363"
# amazon-ebs arguments newer than Debian's packer 1.6.6 (removed only in the staged copy).
NEWER_THAN_166 = ("deprecate_at", "spot_allocation_strategy", "imds_support")


def unquote(value: Any) -> Any:
    """python-hcl2 keeps string quotes and marks blocks; strip both for assertions."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {
            unquote(k): unquote(v)
            for k, v in value.items()
            if k not in ("__is_block__", "__comments__")
        }
    return value


def load(name: str) -> dict[str, Any]:
    with (PACKER / name).open() as stream:
        doc: dict[str, Any] = unquote(hcl2.load(stream))
        return doc


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    return load("source.pkr.hcl")["source"][0]["amazon-ebs"]["payload"]


@pytest.fixture(scope="module")
def locals_() -> dict[str, Any]:
    return load("locals.pkr.hcl")["locals"][0]


@pytest.fixture(scope="module")
def variables() -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for block in load("variables.pkr.hcl")["variable"]:
        merged.update(block)
    return merged


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    return load("build.pkr.hcl")["build"][0]


def test_plugins_pinned_in_their_own_file() -> None:
    packer_block = load("plugins.pkr.hcl")["packer"][0]
    plugins = packer_block["required_plugins"][0]
    assert set(plugins) == {"amazon", "ansible"}
    for plugin in plugins.values():
        assert re.fullmatch(r"= \d+\.\d+\.\d+", plugin["version"]), plugin
        assert plugin["source"].startswith("github.com/hashicorp/")
    others = [p.name for p in PACKER.glob("*.pkr.hcl") if p.name != "plugins.pkr.hcl"]
    assert all("packer" not in load(name) for name in others)


def test_variables_typed_and_described(variables: dict[str, dict[str, Any]]) -> None:
    assert variables
    for name, spec in variables.items():
        assert spec.get("type"), f"variable {name} has no type"
        assert len(spec.get("description", "")) > 10, f"variable {name} has no description"


def test_bake_passes_every_required_variable_and_only_declared_ones(
    variables: dict[str, dict[str, Any]],
) -> None:
    digest = ContentHash("ab" * 32, 1)
    inputs = BakeInputs(REPO, digest, "0.1.0", "abc", [], {"pytest-testinfra": "10.2.2"})
    passed = packer_variables(
        inputs,
        region="us-east-1",
        instance_types=["c6i.large"],
        extra_vars_file=Path("x.json"),
        manifest=Path("m.json"),
    )
    required = {name for name, spec in variables.items() if "default" not in spec}
    assert required <= set(passed)
    assert set(passed) <= set(variables)


def test_source_ami_owner_pinned_to_debian(source: dict[str, Any], locals_: dict[str, Any]) -> None:
    ami_filter = source["source_ami_filter"][0]
    assert ami_filter["owners"] == ["${local.debian_owner}"]
    assert locals_["debian_owner"] == DEBIAN_OWNER
    assert ami_filter["most_recent"] is True
    assert ami_filter["filters"]["name"] == "debian-12-amd64-*"
    assert ami_filter["filters"]["architecture"] == "x86_64"


def test_imdsv2_required_on_build_instance_and_ami(source: dict[str, Any]) -> None:
    options = source["metadata_options"][0]
    assert options["http_tokens"] == "required"
    assert options["http_endpoint"] == "enabled"
    assert source["imds_support"] == "v2.0"


def test_root_volume_encrypted(source: dict[str, Any]) -> None:
    (device,) = source["launch_block_device_mappings"]
    assert device["encrypted"] is True
    assert device["volume_type"] == "gp3"
    assert source["encrypt_boot"] is True


def test_build_instance_is_diversified_spot(source: dict[str, Any]) -> None:
    assert source["spot_instance_types"] == "${var.spot_instance_types}"
    assert source["spot_allocation_strategy"] == "price-capacity-optimized"
    assert source["spot_price"] == "auto"


def test_tags_carry_hash_and_provenance(source: dict[str, Any], locals_: dict[str, Any]) -> None:
    tags = locals_["image_tags"]
    assert tags[CONTENT_HASH_TAG] == "${var.content_hash}"
    for key in ("git-commit", "payload-version", "numpy-version", "pyuvdata-version"):
        assert f"spotcube:{key}" in tags
    assert "spotcube:ducc0-version" in tags
    assert tags["spotcube:source-ami"] == "{{ .SourceAMI }}"
    assert source["tags"] == source["snapshot_tags"] == "${local.image_tags}"


def test_ami_deprecates(source: dict[str, Any]) -> None:
    assert "var.deprecate_after" in source["deprecate_at"]


def test_ami_name_built_in_one_place(source: dict[str, Any], locals_: dict[str, Any]) -> None:
    assert source["ami_name"] == "${local.ami_name}"
    mentions = [
        path.name
        for path in PACKER.glob("*.pkr.hcl")
        for _ in re.finditer("spotcube-payload-", path.read_text())
    ]
    assert mentions == ["locals.pkr.hcl"]


def test_ami_name_matches_python(locals_: dict[str, Any]) -> None:
    template = locals_["ami_name"]
    digest = "0123456789abcdef" * 4
    rendered = template.replace("${var.payload_version}", "1.2.3").replace(
        "${substr(var.content_hash, 0, 12)}", digest[:12]
    )
    assert rendered == image_name("1.2.3", digest)


def test_build_provisions_tests_and_records_manifest(build: dict[str, Any]) -> None:
    steps = [(next(iter(p)), next(iter(p.values()))) for p in build["provisioner"]]
    kinds = [kind for kind, _ in steps]
    ansible = steps[kinds.index("ansible")][1]
    assert ansible["playbook_file"] == "${path.root}/../ansible/site.yml"
    assert "@${var.ansible_extra_vars_file}" in ansible["extra_arguments"]
    upload = steps[kinds.index("file")][1]
    assert "${path.root}/../tests/image" in upload["sources"]
    # The tests are provisioners after the playbook, so they run before the snapshot.
    last_kind, last = steps[-1]
    assert last_kind == "shell"
    assert "testinfra" in last["script"]
    assert kinds.index("ansible") < kinds.index("file") < len(steps) - 1
    manifest = build["post-processor"][0]["manifest"]
    assert manifest["output"] == "${var.manifest_path}"
    assert manifest["custom_data"]["content_hash"] == "${var.content_hash}"


def test_packer_fmt_clean() -> None:
    if shutil.which("packer") is None:
        pytest.skip("packer not installed (sudo bash scripts/system-deps.sh packer)")
    result = subprocess.run(
        ["packer", "fmt", "-check", "-diff", str(PACKER)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def stage_for_packer_166(tmp_path: Path) -> Path:
    """A copy of packer/ that Debian's packer 1.6.6 can validate, next to its references."""
    staged = tmp_path / "packer"
    shutil.copytree(PACKER, staged, ignore=shutil.ignore_patterns("plugins.pkr.hcl"))
    for name in ("ansible", "tests", "constraints.txt"):
        (tmp_path / name).symlink_to(REPO / name)
    source = staged / "source.pkr.hcl"
    text = source.read_text()
    text = re.sub(rf"(?m)^\s*({'|'.join(NEWER_THAN_166)})\s*=.*\n", "", text)
    text = re.sub(r"(?ms)^\s*metadata_options \{.*?^\s*\}\n", "", text)
    source.write_text(text)
    return staged


def test_packer_validate_on_staged_copy(tmp_path: Path) -> None:
    if shutil.which("packer") is None:
        pytest.skip("packer not installed (sudo bash scripts/system-deps.sh packer)")
    staged = stage_for_packer_166(tmp_path)
    assert not (staged / "plugins.pkr.hcl").exists()
    extra_vars = tmp_path / "extra-vars.json"
    extra_vars.write_text("{}")
    args = {
        "region": "us-east-1",
        "content_hash": "ab" * 32,
        "payload_version": "0.1.0",
        "numpy_version": "2.3.5",
        "pyuvdata_version": "3.2.8",
        "ducc0_version": "0.42.0",
        "ansible_extra_vars_file": str(extra_vars),
        "testinfra_version": "10.2.2",
    }
    command = ["packer", "validate"]
    for key, value in args.items():
        command += ["-var", f"{key}={value}"]
    # The ansible provisioner checks for ansible-playbook; the venv's is the one bakes use.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        [*command, "."], cwd=staged, capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
