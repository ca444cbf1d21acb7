"""A variant's own roles are linted like the project's (``spotcube bake --image-config F --lint``).

The verdicts come from the real ansible-lint (production profile): its rules ``fqcn``
("Use FQCN for builtin module actions"), ``name[missing]`` ("All tasks should be named") and
``no-changed-when`` are documented at https://docs.ansible.com/projects/lint/rules/. The
project's own dp3 role, which ``make lint`` passes, is the clean control: a lint that failed
every role outside ``ansible/`` (or passed every one unread, which ansible-lint does when
given the project's config file) would fail one of the two tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.clirunner import run_cli

REPO = Path(__file__).resolve().parents[2]
BAD_TASKS = """\
- shell: curl https://example.org/install.sh | bash
- name: install the group's tool
  command: make install
"""

pytestmark = pytest.mark.skipif(
    shutil.which("ansible-lint") is None and not (Path(REPO, ".venv/bin/ansible-lint").is_file()),
    reason="ansible-lint missing: .venv/bin/pip install -c constraints.txt -e '.[dev]'",
)


def variant_with_role(tmp_path: Path, role: str) -> Path:
    config = tmp_path / "images" / "ours.yaml"
    config.parent.mkdir()
    config.write_text(f"name: ours\nroles: [../group/roles/{role}]\n")
    return config


@pytest.mark.slow
def test_bad_role_is_refused_with_its_findings(tmp_path: Path) -> None:
    role = tmp_path / "group" / "roles" / "installer" / "tasks"
    role.mkdir(parents=True)
    (role / "main.yml").write_text(BAD_TASKS)
    config = variant_with_role(tmp_path, "installer")
    result = run_cli(["bake", "--image-config", str(config), "--lint"])
    assert result.status == 3, result
    assert len(result.stderr_lines) == 1, result.stderr
    line = result.stderr_lines[0]
    assert "in role(s) installer" in line
    assert str(config) in line
    tasks = role / "main.yml"
    assert f"{tasks}:1:3: fqcn[action-core]" in result.stdout
    assert f"{tasks}:1: name[missing]" in result.stdout
    assert f"{tasks}:2: no-changed-when" in result.stdout


@pytest.mark.slow
def test_clean_role_outside_the_project_passes(tmp_path: Path) -> None:
    shutil.copytree(REPO / "ansible" / "roles" / "dp3", tmp_path / "group" / "roles" / "dp3")
    config = variant_with_role(tmp_path, "dp3")
    result = run_cli(["bake", "--image-config", str(config), "--lint"])
    assert result.status == 0, result
    assert f"{tmp_path / 'group' / 'roles' / 'dp3'}: clean" in result.stdout
    # Linting leaves nothing behind in the group's tree (its content hash covers the roles).
    assert sorted(p.name for p in (tmp_path / "group" / "roles").iterdir()) == ["dp3"]


def test_example_variant_has_no_roles_to_lint() -> None:
    result = run_cli(["bake", "--image-config", str(REPO / "images/radio-tools.yaml"), "--lint"])
    assert result.status == 0, result
    assert "no roles of its own" in result.stdout


def test_lint_needs_a_variant() -> None:
    result = run_cli(["bake", "--lint"])
    assert result.status == 2
    assert result.stderr_lines == [
        "spotcube bake: --lint checks a variant's own roles: give --image-config FILE "
        "(the project's roles: make lint)"
    ]
