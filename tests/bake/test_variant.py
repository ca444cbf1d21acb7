"""Image variants: a declarative file, a content hash that follows exactly what it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotcube.bake.aws import packer_variables
from spotcube.bake.contenthash import IMAGE_INPUTS, content_hash
from spotcube.bake.local import WHEELHOUSE_MOUNT, extra_vars, variant_pip_requirements
from spotcube.bake.provenance import BakeInputs, repo_root
from spotcube.bake.variant import TOOLCHAIN_ROLES, ImageVariant, VariantError
from spotcube.cli import main
from tests.image.test_toolchains import TOOLCHAINS

EXAMPLE = repo_root() / "images" / "radio-tools.yaml"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A minimal checkout: one file per image input, every toolchain role, a group role."""
    root = tmp_path / "repo"
    for name in IMAGE_INPUTS:
        if "." in name:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(f"{name}\n")
        else:
            (root / name / "sub").mkdir(parents=True)
            (root / name / "sub" / "file.txt").write_text(f"{name}\n")
    for role in TOOLCHAIN_ROLES:
        (root / "ansible" / "roles" / role / "tasks").mkdir(parents=True)
        (root / "ansible" / "roles" / role / "tasks" / "main.yml").write_text(f"# {role}\n")
    own = tmp_path / "group" / "roles" / "fhd"
    (own / "tasks").mkdir(parents=True)
    (own / "tasks" / "main.yml").write_text("# the group's FHD role\n")
    (root / "images").mkdir()
    (root / "images" / "v.yaml").write_text(
        "name: mwa-fhd\ntoolchains: [wsclean, casacore_tools]\n"
        "roles: [../../group/roles/fhd]\npip_packages: ['ssins==1.0.0']\n"
    )
    return root


def hashes(tree: Path) -> tuple[str, str]:
    variant = ImageVariant.load(tree / "images" / "v.yaml")
    return content_hash(tree).hexdigest, content_hash(tree, variant).hexdigest


@pytest.mark.parametrize(
    ("edit", "default_moves", "variant_moves"),
    [
        ("images/v.yaml", False, True),
        ("ansible/roles/wsclean/tasks/main.yml", False, True),  # named by the variant
        ("ansible/roles/dp3/tasks/main.yml", False, False),  # a toolchain it does not name
        ("../group/roles/fhd/tasks/main.yml", False, True),  # the group's own role
        ("payload/sub/file.txt", True, True),  # the payload is in every image
        ("ansible/sub/file.txt", True, True),
    ],
    ids=["config", "named-toolchain", "other-toolchain", "own-role", "payload", "playbook"],
)
def test_hash_follows_what_the_variant_names(
    tree: Path, edit: str, default_moves: bool, variant_moves: bool
) -> None:
    default_before, variant_before = hashes(tree)
    path = (tree / edit).resolve()
    path.write_text(path.read_text() + "# edited\n")
    default_after, variant_after = hashes(tree)
    assert (default_after != default_before) is default_moves
    assert (variant_after != variant_before) is variant_moves


def test_variant_and_default_hashes_differ_and_a_new_role_file_counts(tree: Path) -> None:
    default, variant = hashes(tree)
    assert default != variant
    (tree / "ansible" / "roles" / "casacore_tools" / "defaults").mkdir()
    (tree / "ansible" / "roles" / "casacore_tools" / "defaults" / "main.yml").write_text("x: 1\n")
    default_after, variant_after = hashes(tree)
    assert default_after == default
    assert variant_after != variant


def test_example_variant_loads_and_feeds_ansible_and_packer() -> None:
    variant = ImageVariant.load(EXAMPLE)
    assert variant.name == "radio-tools"
    assert set(variant.toolchains) == set(TOOLCHAIN_ROLES)
    inputs = BakeInputs.read(repo_root(), variant)
    assert inputs.provenance()["variant"] == "radio-tools"
    assert inputs.digest.hexdigest != BakeInputs.read(repo_root()).digest.hexdigest
    variables = extra_vars(inputs, Path("/w.whl"), wheelhouse_dir="")
    # The example pipeline's folder rides along (ansible/roles/pipelines copies it).
    assert variables["spotcube_variant_roles"] == [*variant.toolchains, "pipelines"]
    assert variables["payload_image_metadata"]["variant"] == "radio-tools"
    assert variables["payload_image_metadata"]["toolchains"] == list(variant.toolchains)
    assert variables["image_extras_debian_packages"] == ["make"]
    packer = packer_variables(
        inputs,
        region="us-east-1",
        instance_types=["c6i.large"],
        extra_vars_file=Path("/x.json"),
        manifest=Path("/m.json"),
    )
    assert packer["variant"] == "radio-tools"


def test_default_image_has_no_variant_roles() -> None:
    inputs = BakeInputs.read(repo_root())
    variables = extra_vars(inputs, Path("/w.whl"), wheelhouse_dir="")
    assert "spotcube_variant_roles" not in variables
    assert variables["payload_image_metadata"]["variant"] == "default"
    assert variables["payload_image_metadata"]["toolchains"] == []


def test_every_toolchain_role_exists_and_has_image_checks() -> None:
    roles = repo_root() / "ansible" / "roles"
    for role in TOOLCHAIN_ROLES:
        for part in ("defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml"):
            assert (roles / role / part).is_file(), f"{role}/{part}"
    assert sorted(TOOLCHAINS) == sorted(TOOLCHAIN_ROLES)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name: [x]\n", "name"),
        ("name: default\n", "name"),
        ("name: Bad_Name\n", "name"),
        ("name: v\ntoolchains: [casa]\n", "toolchains: 'casa'"),
        ("name: v\npip_packages: [ssins]\n", "pinned"),
        ("name: v\npip_packages: ['ssins>=1']\n", "pinned"),
        ("name: v\npip_packages: ['ssins==1.*']\n", "pinned"),
        ("name: v\npip_packages: ['not a req!']\n", "not a requirement"),
        ("name: v\ndebian_packages: ['Make it']\n", "debian_packages"),
        ("name: v\nroles: [nowhere]\n", "roles: nowhere"),
        ("name: v\npip_venv: relative\n", "pip_venv"),
        ("name: v\ntoolchain: [wsclean]\n", "unknown key"),
        ("name: v\ntoolchains: [wsclean, wsclean]\n", "twice"),
        ("name: v\ntoolchains: wsclean\n", "toolchains must be a list"),
        ("- a list\n", "mapping"),
        ("name: [unclosed\n", "not YAML"),
    ],
)
def test_bad_variant_file_says_which_key(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "variant.yaml"
    path.write_text(text)
    with pytest.raises(VariantError, match=match) as info:
        ImageVariant.load(path)
    assert str(path) in str(info.value)


def test_cli_bad_variant_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "variant.yaml"
    path.write_text("name: v\npip_packages: [ssins]\n")
    assert main(["bake", "--image-config", str(path), "--print-hash"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "pinned" in err


def test_cli_print_hash_of_a_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bake", "--print-hash"]) == 0
    default = capsys.readouterr().out.strip()
    assert main(["bake", "--image-config", str(EXAMPLE), "--print-hash"]) == 0
    variant = capsys.readouterr().out.strip()
    assert len(variant) == 64
    assert variant != default


def test_noop_bake_of_a_current_variant_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A variant whose image is current is not rebaked, and says which variant it checked."""
    from tests.bake.test_local import fake_image, tree_state

    digest = BakeInputs.read(repo_root(), ImageVariant.load(EXAMPLE)).digest.hexdigest
    fake_image(tmp_path / "image", digest)
    before = tree_state(tmp_path / "image")
    args = ["bake", "--image-config", str(EXAMPLE), "--target", "local"]
    assert main([*args, "--out", str(tmp_path / "image")]) == 0
    assert tree_state(tmp_path / "image") == before  # nothing rebuilt, nothing rewritten
    out = capsys.readouterr().out
    assert "(radio-tools): up to date" in out
    assert digest[:12] in out


def test_variant_pip_packages_install_offline_from_the_local_wheelhouse() -> None:
    """The local bake downloads the variant's wheels on the host (the chroot has neither the
    host's pip configuration nor its certificate authorities); AWS installs from PyPI."""
    inputs = BakeInputs.read(repo_root(), ImageVariant.load(EXAMPLE))
    requirements = variant_pip_requirements(inputs)
    assert "dp3==6.6.0" in requirements
    assert "mwa-hyperbeam==0.10.4" in requirements
    assert any(r.startswith("numpy==") for r in requirements)
    local = extra_vars(inputs, Path("/w.whl"), wheelhouse_dir=WHEELHOUSE_MOUNT)
    assert local["dp3_wheelhouse"] == local["image_extras_pip_wheelhouse"] == WHEELHOUSE_MOUNT
    aws = extra_vars(inputs, Path("/w.whl"), wheelhouse_dir="")
    assert aws["dp3_wheelhouse"] == aws["image_extras_pip_wheelhouse"] == ""
    assert variant_pip_requirements(BakeInputs.read(repo_root())) == []
