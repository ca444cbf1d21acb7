"""testinfra checks of the payload image: the same file for the local image and the AMI.

Subjects: the venv and its pinned versions, the payload's entry point, the worker unit and
user, the provenance file, and what must not be in an image (identity, keys, history,
credentials).
"""

from __future__ import annotations

import json

import pytest
from testinfra.host import Host

# The first test of a session pays for the bake (minutes on a cold cache).
pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

VENV_PYTHON = "/opt/spotcube/venv/bin/python"
UNIT = "spotcube-worker.service"
WORKER_USER = "spotcube"
# The science stack plus what the worker talks to AWS with.
PINNED = ("numpy", "pyuvdata", "ducc0", "astropy", "h5py", "matplotlib", "boto3", "rich", "scipy")
IMPORTS = ("numpy", "pyuvdata", "ducc0", "astropy", "h5py", "boto3", "payload", "payload.worker")
# Paths searched for leftovers (small enough to scan on every bake).
HOME_DIRS = "/root /home /var/lib/spotcube"


def test_venv_python_is_debian_311(image_host: Host) -> None:
    out = image_host.check_output(f"{VENV_PYTHON} -c 'import sys; print(sys.version_info[:2])'")
    assert out == "(3, 11)"


@pytest.mark.parametrize("package", PINNED)
def test_pinned_version(image_host: Host, expected_pins: dict[str, str], package: str) -> None:
    installed = image_host.check_output(
        f"{VENV_PYTHON} -c 'import importlib.metadata as m; print(m.version(\"{package}\"))'"
    )
    assert installed == expected_pins[package]


@pytest.mark.parametrize("module", IMPORTS)
def test_imports_in_venv(image_host: Host, module: str) -> None:
    result = image_host.run(f"{VENV_PYTHON} -c 'import {module}'")
    assert result.rc == 0, result.stderr


def test_venv_dependencies_consistent(image_host: Host) -> None:
    result = image_host.run(f"PIP_DISABLE_PIP_VERSION_CHECK=1 {VENV_PYTHON} -m pip check")
    assert result.rc == 0, result.stdout + result.stderr


def test_image_constraints_are_the_repository_pins(
    image_host: Host, expected_pins: dict[str, str]
) -> None:
    baked = image_host.file("/opt/spotcube/constraints.txt").content_string
    pins = {}
    for line in baked.splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    assert pins == expected_pins


def test_worker_entry_point_runs(image_host: Host) -> None:
    result = image_host.run(f"{VENV_PYTHON} -m payload worker --help")
    assert result.rc == 0, result.stderr
    assert "--queue-url" in result.stdout


def test_payload_version_matches_provenance(image_host: Host) -> None:
    provenance = json.loads(image_host.file("/etc/spotcube/image.json").content_string)
    out = image_host.check_output(f"{VENV_PYTHON} -m payload --version")
    assert out.split()[-1] == provenance["payload_version"]


def test_provenance_carries_content_hash(
    image_host: Host, expected_content_hash: str | None
) -> None:
    provenance = json.loads(image_host.file("/etc/spotcube/image.json").content_string)
    if expected_content_hash is None:
        assert len(provenance["content_hash"]) == 64
    else:
        assert provenance["content_hash"] == expected_content_hash


def test_package_inventory_lists_the_venv(image_host: Host, expected_pins: dict[str, str]) -> None:
    inventory = image_host.file("/opt/spotcube/packages.txt").content_string
    assert f"numpy=={expected_pins['numpy']}" in inventory
    assert "\nsystemd=" in inventory


def test_worker_unit_enabled(image_host: Host) -> None:
    assert image_host.service(UNIT).is_enabled


def test_worker_unit_runs_as_worker_user(image_host: Host) -> None:
    # The installed file, not `systemctl cat`: a chroot has no running systemd to ask.
    unit = image_host.file(f"/etc/systemd/system/{UNIT}").content_string
    assert f"User={WORKER_USER}" in unit.splitlines()


def test_worker_user_is_unprivileged(image_host: Host) -> None:
    user = image_host.user(WORKER_USER)
    assert user.exists
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000  # a system account
    assert not {"sudo", "adm", "root"} & set(user.groups)


@pytest.mark.parametrize(
    ("path", "owner", "mode"),
    [("/etc/spotcube", "root", 0o750), ("/var/log/spotcube", WORKER_USER, 0o750)],
    ids=["config", "logs"],
)
def test_worker_directories(image_host: Host, path: str, owner: str, mode: int) -> None:
    directory = image_host.file(path)
    assert directory.is_directory
    assert directory.user == owner
    assert directory.group == WORKER_USER
    assert directory.mode == mode


def test_journald_is_capped(image_host: Host) -> None:
    assert image_host.file("/etc/systemd/journald.conf.d/50-spotcube.conf").contains(
        "^SystemMaxUse="
    )


@pytest.mark.parametrize(
    "setting",
    ["PasswordAuthentication no", "PermitRootLogin no", "KbdInteractiveAuthentication no"],
)
def test_sshd_hardened(image_host: Host, setting: str) -> None:
    assert image_host.file("/etc/ssh/sshd_config.d/50-spotcube.conf").contains(f"^{setting}$")


def test_no_ssh_host_keys(image_host: Host, pristine: None) -> None:
    assert image_host.check_output("find /etc/ssh -name 'ssh_host_*'") == ""


def test_no_authorized_keys(image_host: Host, pristine: None) -> None:
    found = image_host.check_output(
        f"find {HOME_DIRS} -name 'authorized_keys*' 2>/dev/null || true"
    )
    assert found == ""


def test_machine_id_empty(image_host: Host, pristine: None) -> None:
    assert image_host.file("/etc/machine-id").size == 0
    assert not image_host.file("/var/lib/dbus/machine-id").exists


def test_no_shell_history(image_host: Host, pristine: None) -> None:
    found = image_host.check_output(f"find {HOME_DIRS} -name '.*_history' 2>/dev/null || true")
    assert found == ""


def test_no_cloud_init_instance_state(image_host: Host, pristine: None) -> None:
    assert not image_host.file("/var/lib/cloud/instances").exists


def test_no_apt_lists(image_host: Host, pristine: None) -> None:
    found = image_host.check_output("find /var/lib/apt/lists -name '*_Packages*' -o -name '*.deb'")
    assert found == ""


def test_no_aws_credential_files(image_host: Host) -> None:
    found = image_host.check_output(
        "find / -xdev \\( -path /proc -o -path /sys \\) -prune -o "
        "\\( -name .aws -o -name .boto -o -name .netrc -o -name .pypirc \\) -print"
    )
    assert found == ""


def test_no_aws_keys_in_config_or_homes(image_host: Host) -> None:
    # Access key ids (AKIA long-term, ASIA temporary) and secret key assignments anywhere a
    # human or a role could have written one; the venv's library code is not configuration.
    result = image_host.run(
        f"grep -rIlE 'A(KIA|SIA)[0-9A-Z]{{16}}|aws_secret_access_key *[=:] *[A-Za-z0-9/+]{{40}}' "
        f"/etc /opt/spotcube/constraints.txt /opt/spotcube/requirements.txt {HOME_DIRS} /var/log"
    )
    assert result.rc == 1, f"credential-like strings in: {result.stdout}"


def test_no_private_keys_outside_ssh(image_host: Host) -> None:
    result = image_host.run(
        "grep -rIl --exclude-dir=ssh -e '-----BEGIN [A-Z ]*PRIVATE KEY-----' "
        f"/etc /opt/spotcube/dist {HOME_DIRS}"
    )
    assert result.rc == 1, f"private keys in: {result.stdout}"


def test_worker_env_has_one_writer_and_no_secrets(image_host: Host) -> None:
    """worker.env is written by the instance's user data only (infra/fleet.py); the image
    holds an example of its keys, with no credentials."""
    assert not image_host.file("/etc/spotcube/worker.env").exists
    example = image_host.file("/etc/spotcube/worker.env.example")
    assert example.contains("SPOTCUBE_QUEUE_URL")
    assert not example.contains("^AWS_SECRET_ACCESS_KEY=")
    assert not example.contains("^AWS_ACCESS_KEY_ID=")
