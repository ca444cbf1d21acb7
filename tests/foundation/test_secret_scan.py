"""The secret scan that `make test` and the pre-commit hook run catches a leaked key pair."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCAN = REPO / "scripts" / "scan-secrets.sh"

# Assembled at run time so that this file itself holds no key for the scanner to find.
FAKE_KEY_ID = "AKIA" + "Z7QX3M4KLW2RTP5N"
FAKE_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzq8Hd4Tr2L"  # pragma: allowlist secret


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def _scan(repo: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        ["bash", str(SCAN)], cwd=repo, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    (tmp_path / "README.md").write_text("# analysis\n")
    return tmp_path


def test_clean_repository_passes(repo: Path) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "clean")
    result = _scan(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no secrets found" in result.stdout


def test_committed_key_pair_fails_and_names_file_and_line(repo: Path) -> None:
    (repo / "deploy.env").write_text(
        f"region=us-east-1\nAWS_ACCESS_KEY_ID={FAKE_KEY_ID}\n"
        f"aws_secret_access_key = {FAKE_SECRET}\n"
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "oops")
    result = _scan(repo)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "deploy.env:2" in output  # the access key id
    assert "deploy.env:3" in output  # the secret key, unquoted as in a credentials file
    assert "FAILED" in output


def test_quoted_secret_in_python_is_caught(repo: Path) -> None:
    (repo / "settings.py").write_text(f'REGION = "us-east-1"\naws_secret_key = "{FAKE_SECRET}"\n')
    _git(repo, "add", "-A")
    result = _scan(repo)  # tracked (staged) files are scanned, before any commit
    assert result.returncode != 0
    assert "settings.py:2" in result.stdout + result.stderr


def test_gitignore_keeps_secret_material_out(tmp_path: Path) -> None:
    for name in (".env", "id_rsa.pem", ".aws/credentials", "Pulumi.alice.yaml"):
        result = subprocess.run(
            ["git", "check-ignore", "-q", name], cwd=REPO, capture_output=True, check=False
        )
        assert result.returncode == 0, f"{name} is not ignored by .gitignore"
    kept = subprocess.run(
        ["git", "check-ignore", "-q", "Pulumi.example.yaml"], cwd=REPO, check=False
    )
    assert kept.returncode == 1, "Pulumi.example.yaml must stay tracked"
