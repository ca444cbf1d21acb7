"""Which image the testinfra checks run against.

* ``make test`` (no ``--hosts``): the local Debian 12 image, baked once per session with
  ``spotcube bake --target local --check-idempotence`` and entered with the chroot backend.
  Needs root and mmdebstrap; skipped with the reason otherwise.
* ``--hosts=local://`` on the Packer build instance (packer/scripts/testinfra-on-build-host.sh).
* ``--hosts=ssh://admin@HOST --image-state=booted`` against a running instance (README).

This file imports nothing from the checkout at module level: on the build instance only
tests/image/ and constraints.txt are uploaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra

REPO = Path(__file__).resolve().parents[2]
# The recipe that boots systemd under podman on these machines (DESIGN.md, "Local image").
PODMAN = ["podman", "--cgroup-manager=cgroupfs", "--runtime=runc"]
BOOT_TIMEOUT = 180.0  # systemd up in the container; generous for a loaded 2-core machine


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("spotcube image")
    group.addoption(
        "--image-constraints",
        default=None,
        help="constraints.txt the image must match (default: the checkout's)",
    )
    group.addoption(
        "--image-content-hash",
        default=None,
        help="content hash the image must carry (default: the local bake's)",
    )
    group.addoption(
        "--image-config",
        default=None,
        help="bake and test this image variant locally (spotcube bake --image-config FILE)",
    )
    group.addoption(
        "--image-state",
        choices=("baked", "booted"),
        default="baked",
        help="booted: a running instance, where first boot has recreated host keys, "
        "machine-id and authorized_keys, so those checks are skipped",
    )


@dataclass(frozen=True)
class LocalBake:
    """The session's local image and what a second bake of it did.

    ``metadata`` is read right after the bake, ``tree_hash`` is the content hash of the tree
    just before it, and ``noop_*`` describe a second bake of the unchanged tree (``None`` when
    someone changed the tree in between, which makes a rebake correct, not a no-op):
    ``noop_rewrote`` names the image files it wrote, which a no-op leaves as they were.
    """

    rootfs: Path
    metadata: dict[str, Any]
    tree_hash: str
    noop_rewrote: list[str] | None
    noop_output: str | None


def _image_files(out_dir: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time (ns) of what every bake writes: the files at the top of
    its output (bake.log first of all, metadata, tarball) and the image's provenance record.

    A bake that does work rewrites them; comparing them, not timing the bake, tells a no-op
    from a rebuild on however loaded a machine.
    """
    paths = [p for p in out_dir.iterdir() if p.is_file()]
    paths.append(out_dir / "rootfs" / "etc" / "spotcube" / "image.json")
    return {
        str(p.relative_to(out_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in paths
        if p.exists()
    }


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the local image needs root (mmdebstrap, chroot, mounts); run `sudo make test`"
    missing = [t for t in ("mmdebstrap", "zstd", "chroot") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} missing; install with: sudo bash scripts/system-deps.sh image"
    return None


def _spotcube(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spotcube.cli", "bake", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )


@pytest.fixture(scope="session")
def local_bake(request: pytest.FixtureRequest) -> LocalBake:
    """Bake the local image once per session (a no-op when the tree has not changed)."""
    if request.config.getoption("hosts"):
        pytest.skip("testing a given --hosts, not the local image")
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    config = request.config.getoption("image_config")
    variant = ("--image-config", str(Path(config).resolve())) if config else ()
    tree_hash = _spotcube("--print-hash", *variant).stdout.strip()
    baked = _spotcube("--target", "local", "--check-idempotence", *variant)
    if baked.returncode != 0:
        pytest.fail(f"spotcube bake --target local failed:\n{baked.stdout}\n{baked.stderr}")
    out_dir = Path(baked.stdout.split("rootfs:", 1)[1].split()[0]).parent
    metadata = json.loads((out_dir / "metadata.json").read_text())
    # A second bake of the same tree must notice there is nothing to do.
    noop_rewrote: list[str] | None = None
    noop_output: str | None = None
    if _spotcube("--print-hash", *variant).stdout.strip() == metadata["content_hash"]:
        before = _image_files(out_dir)
        noop = _spotcube("--target", "local", *variant)
        assert noop.returncode == 0, noop.stderr
        after = _image_files(out_dir)
        noop_rewrote = sorted(
            k for k in before.keys() | after.keys() if before.get(k) != after.get(k)
        )
        noop_output = noop.stdout
    return LocalBake(
        rootfs=out_dir / "rootfs",
        metadata=metadata,
        tree_hash=tree_hash,
        noop_rewrote=noop_rewrote,
        noop_output=noop_output,
    )


@pytest.fixture(scope="session")
def image_host(request: pytest.FixtureRequest) -> testinfra.host.Host:
    """The testinfra host of the image under test."""
    hosts = request.config.getoption("hosts")
    if hosts:
        option = request.config.option
        return testinfra.get_host(
            hosts.split(",")[0],
            connection=option.connection,
            ssh_config=option.ssh_config,
            ssh_identity_file=option.ssh_identity_file,
            sudo=option.sudo,
        )
    bake: LocalBake = request.getfixturevalue("local_bake")
    return testinfra.get_host(str(bake.rootfs), connection="chroot")


@pytest.fixture(scope="session")
def expected_pins(request: pytest.FixtureRequest) -> dict[str, str]:
    """``name -> version`` from the constraints file the image must match."""
    path = Path(request.config.getoption("image_constraints") or REPO / "constraints.txt")
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


@pytest.fixture(scope="session")
def expected_content_hash(request: pytest.FixtureRequest) -> str | None:
    given: str | None = request.config.getoption("image_content_hash")
    if given or request.config.getoption("hosts"):
        return given
    bake: LocalBake = request.getfixturevalue("local_bake")
    return str(bake.metadata["content_hash"])


@pytest.fixture(scope="session")
def pristine(request: pytest.FixtureRequest) -> None:
    """Skip checks that only hold before first boot."""
    if request.config.getoption("image_state") == "booted":
        pytest.skip("first boot recreates host keys, machine-id and authorized_keys")


def podman_reason() -> str | None:
    """Why the local image cannot be booted under podman here, or None."""
    missing = [t for t in ("podman", "runc") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} missing; install with: sudo bash scripts/system-deps.sh image"
    probe = subprocess.run([*PODMAN, "info"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"podman cannot run here: {probe.stderr.strip().splitlines()[-1:]}"
    return None


@dataclass(frozen=True)
class BootedImage:
    """The local image booted with systemd in a podman container, and its testinfra host."""

    name: str
    host: testinfra.host.Host


@pytest.fixture(scope="session")
def booted_image(request: pytest.FixtureRequest) -> Iterator[BootedImage]:
    """The session's local image booted under podman (systemd as PID 1, no worker settings).

    For checks that must hold on a running system as well as in the chroot: services,
    /proc, the dynamic loader of a real boot. The rootfs is mounted as an overlay (``:O``),
    so the boot changes nothing in it. systemd counts as up when it reports ``running`` or
    ``degraded`` (the worker unit fails here without /etc/spotcube/worker.env, by design).
    """
    if request.config.getoption("hosts"):
        pytest.skip("testing a given --hosts: nothing local to boot")
    bake: LocalBake = request.getfixturevalue("local_bake")
    reason = podman_reason()
    if reason:
        pytest.skip(reason)
    name = f"spotcube-image-{uuid.uuid4().hex[:8]}"
    started = subprocess.run(
        [*PODMAN, "run", "--detach", "--name", name, "--network=host", "--systemd=always",
         "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768",
         "--rootfs", f"{bake.rootfs}:O", "/sbin/init"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if started.returncode != 0:
        pytest.fail(f"podman run failed: {started.stderr}")
    try:
        state = ""
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline and state not in ("running", "degraded"):
            time.sleep(1)
            probe = subprocess.run(
                [*PODMAN, "exec", name, "systemctl", "is-system-running"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            state = probe.stdout.strip()
        if state not in ("running", "degraded"):
            pytest.fail(f"systemd in {name} not up after {BOOT_TIMEOUT:.0f} s: {state!r}")
        yield BootedImage(name, testinfra.get_host(f"podman://{name}"))
    finally:
        subprocess.run([*PODMAN, "rm", "--force", "--time", "5", name],
                       capture_output=True, check=False)  # fmt: skip
