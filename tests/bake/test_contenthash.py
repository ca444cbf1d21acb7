"""The content hash decides every rebake: it must move with each input and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spotcube.bake.contenthash import IMAGE_INPUTS, content_hash, image_name, input_files
from spotcube.bake.provenance import pinned_versions, repo_root, runtime_requirements


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A minimal checkout with one file in every image input."""
    for name in IMAGE_INPUTS:
        if "." in name:
            (tmp_path / name).write_text(f"{name}\n")
        else:
            (tmp_path / name / "sub").mkdir(parents=True)
            (tmp_path / name / "sub" / "file.txt").write_text(f"{name}\n")
    return tmp_path


def _file_of(tree: Path, name: str) -> Path:
    return tree / name if "." in name else tree / name / "sub" / "file.txt"


@pytest.mark.parametrize("name", IMAGE_INPUTS)
def test_hash_moves_when_an_input_changes(tree: Path, name: str) -> None:
    before = content_hash(tree).hexdigest
    _file_of(tree, name).write_text("changed\n")
    assert content_hash(tree).hexdigest != before


@pytest.mark.parametrize("name", [n for n in IMAGE_INPUTS if "." not in n])
def test_hash_moves_when_a_file_is_added_or_renamed(tree: Path, name: str) -> None:
    before = content_hash(tree).hexdigest
    (tree / name / "new.txt").write_text("x")
    added = content_hash(tree).hexdigest
    (tree / name / "new.txt").rename(tree / name / "renamed.txt")
    assert len({before, added, content_hash(tree).hexdigest}) == 3


def test_hash_moves_with_the_executable_bit(tree: Path) -> None:
    before = content_hash(tree).hexdigest
    os.chmod(_file_of(tree, "packer"), 0o755)
    assert content_hash(tree).hexdigest != before


@pytest.mark.parametrize(
    "junk",
    ["payload/__pycache__/x.cpython-311.pyc", "ansible/.ansible/cache", "spotcube/x.pyc", "docs/x"],
    ids=["pycache", "ansible-lint-cache", "pyc", "not-an-input"],
)
def test_hash_ignores_what_never_reaches_an_image(tree: Path, junk: str) -> None:
    before = content_hash(tree)
    path = tree / junk
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("junk")
    assert content_hash(tree) == before


def test_missing_input_is_an_error(tree: Path) -> None:
    _file_of(tree, "constraints.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"constraints\.txt"):
        content_hash(tree)


def test_image_name_format() -> None:
    assert image_name("0.1.0", "0123456789abcdef" * 4) == "spotcube-payload-0.1.0-0123456789ab"


def test_repository_hash_reads_only_the_image_inputs_and_covers_roles_and_template() -> None:
    """The no-op bake hashes the image's inputs, never a build, cache or venv tree: its work
    is bounded by the inputs, whatever else the checkout holds (state, not a stopwatch)."""
    root = repo_root()
    digest = content_hash(root)
    files = {p.as_posix() for p in input_files(root)}
    generated = (".venv/", "build/", ".git/", "__pycache__/", ".pytest_cache/", ".mypy_cache/")
    assert not [f for f in files if any(part in f"{f}/" for part in generated)]
    assert "ansible/site.yml" in files
    assert "packer/source.pkr.hcl" in files
    assert "constraints.txt" in files
    assert len(digest.hexdigest) == 64


def test_constraints_and_requirements_parse() -> None:
    root = repo_root()
    pins = pinned_versions(root / "constraints.txt")
    assert {"numpy", "pyuvdata", "ducc0"} <= set(pins)
    requirements = runtime_requirements(root / "pyproject.toml")
    assert any(r.startswith("pyuvdata") for r in requirements)
    # dev tools are not runtime requirements: they must not reach the image.
    assert not any(r.startswith(("pytest", "ansible", "moto")) for r in requirements)


def test_pinned_versions_normalises_names(tmp_path: Path) -> None:
    constraints = tmp_path / "c.txt"
    constraints.write_text("# header\nPyYAML==6.0.3\ntyping_extensions==4.1 # why\n-e .\n")
    assert pinned_versions(constraints) == {"pyyaml": "6.0.3", "typing-extensions": "4.1"}
