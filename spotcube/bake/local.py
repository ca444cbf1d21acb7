"""``spotcube bake --target local``: a Debian 12 rootfs baked by the same Ansible roles.

mmdebstrap makes a minimal bookworm base holding the base role's package list (cached by
that list); the playbook runs into a fresh copy of it through Ansible's chroot connection,
with the wheelhouse bind-mounted so nothing is fetched from inside; the result is kept as a
directory (for testinfra and the podman boot test) and as a tarball with a metadata JSON that
carries the content hash. A bake whose hash matches the metadata is a no-op.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spotcube.bake.artifacts import BuildError, build_wheel, run_logged, wheelhouse
from spotcube.bake.contenthash import BASE_IMAGE_SELECTOR
from spotcube.bake.provenance import BakeInputs

SUITE = "bookworm"
VARIANT = "minbase"
METADATA_SCHEMA = 1
TARBALL = "image.tar.zst"
METADATA = "metadata.json"
ROOTFS = "rootfs"
# Where the wheelhouse appears inside the rootfs while the playbook runs (unmounted after).
WHEELHOUSE_MOUNT = "/run/spotcube-wheelhouse"
INVENTORY_HOST = "image"

Log = Callable[[str], None]


@dataclass(frozen=True)
class LocalImage:
    """Paths of a local image and what its metadata says."""

    out_dir: Path

    @property
    def rootfs(self) -> Path:
        return self.out_dir / ROOTFS

    @property
    def tarball(self) -> Path:
        return self.out_dir / TARBALL

    @property
    def metadata_path(self) -> Path:
        return self.out_dir / METADATA

    def metadata(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.metadata_path.read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def is_current(self, digest: str) -> bool:
        """True when this directory holds a complete image of ``digest``."""
        doc = self.metadata()
        return (
            doc is not None
            and doc.get("content_hash") == digest
            and self.tarball.is_file()
            and (self.rootfs / "etc" / "spotcube" / "image.json").is_file()
        )


def base_packages(root: Path) -> list[str]:
    """The base role's package list: what mmdebstrap puts into the cached base."""
    defaults = yaml.safe_load((root / "ansible/roles/base/defaults/main.yml").read_text())
    packages = defaults.get("base_packages") if isinstance(defaults, dict) else None
    if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
        raise BuildError("ansible/roles/base/defaults/main.yml lacks a base_packages list")
    return sorted(set(packages))


def base_tarball(packages: list[str], cache_dir: Path, *, log: Path) -> tuple[Path, bool]:
    """The mmdebstrap base for ``packages`` (cached by the list); ``True`` if just built."""
    key = hashlib.sha256(
        f"{BASE_IMAGE_SELECTOR}\0{SUITE}\0{VARIANT}\0{','.join(packages)}".encode()
    ).hexdigest()[:16]
    target = cache_dir / "base" / f"{SUITE}-{VARIANT}-{key}.tar"
    if target.is_file():
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.tar")
    partial.unlink(missing_ok=True)
    run_logged(
        [
            "mmdebstrap",
            "--quiet",
            f"--variant={VARIANT}",
            f"--include={','.join(packages)}",
            SUITE,
            str(partial),
        ],
        log=log,
        what="mmdebstrap of the Debian 12 base",
    )
    partial.rename(target)
    return target, True


@contextlib.contextmanager
def _mounted(rootfs: Path, wheels: Path) -> Iterator[None]:
    """/proc (the chroot fact and systemctl need it) and the read-only wheelhouse."""
    proc = rootfs / "proc"
    mount_point = rootfs / WHEELHOUSE_MOUNT.lstrip("/")
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted: list[Path] = []
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
        mounted.append(proc)
        subprocess.run(["mount", "--bind", str(wheels), str(mount_point)], check=True)
        mounted.append(mount_point)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mount_point)], check=True)
        yield
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "--lazy", str(path)], check=False)
        with contextlib.suppress(OSError):
            mount_point.rmdir()


RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def parse_recap(output: str) -> dict[str, int]:
    """The last PLAY RECAP line of ``ansible-playbook`` output, as counts."""
    matches = list(RECAP.finditer(output))
    if not matches:
        raise BuildError("ansible-playbook printed no PLAY RECAP")
    last = matches[-1]
    return {k: int(last.group(k)) for k in ("ok", "changed", "unreachable", "failed")}


def ansible_playbook(root: Path, inventory: Path, extra_vars: Path, *, log: Path) -> dict[str, int]:
    """Run ansible/site.yml; return the recap counts."""
    executable = Path(sys.executable).parent / "ansible-playbook"
    command = [
        str(executable if executable.exists() else "ansible-playbook"),
        "--inventory",
        str(inventory),
        "--extra-vars",
        f"@{extra_vars}",
        str(root / "ansible" / "site.yml"),
    ]
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(root / "ansible" / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    start = log.stat().st_size if log.exists() else 0
    run_logged(command, log=log, what="ansible-playbook ansible/site.yml", env=env)
    with log.open(errors="replace") as stream:
        stream.seek(start)
        return parse_recap(stream.read())


UNIT_FILE = Path("payload/systemd/spotcube-worker.service")


def extra_vars(inputs: BakeInputs, wheel: Path, *, wheelhouse_dir: str) -> dict[str, Any]:
    """The variables `spotcube bake` gives the roles (both targets)."""
    unit = inputs.root / UNIT_FILE
    if not unit.is_file():
        raise BuildError(f"{UNIT_FILE} is missing: the payload role installs the worker's unit")
    return {
        "payload_env_constraints_src": str(inputs.constraints),
        "payload_env_requirements": inputs.requirements,
        "payload_env_wheelhouse": wheelhouse_dir,
        "payload_wheel_src": str(wheel),
        "payload_unit_src": str(unit),
        "payload_image_metadata": inputs.provenance() | {"base_image": BASE_IMAGE_SELECTOR},
    }


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _extract(tarball: Path, rootfs: Path) -> None:
    # A bake killed mid-run can leave its mounts behind; never delete through them.
    for leftover in (rootfs / "proc", rootfs / WHEELHOUSE_MOUNT.lstrip("/")):
        if os.path.ismount(leftover):
            subprocess.run(["umount", "--lazy", str(leftover)], check=True)
    if rootfs.exists():
        shutil.rmtree(rootfs)
    rootfs.mkdir(parents=True)
    subprocess.run(
        ["tar", "--numeric-owner", "--xattrs", "-xpf", str(tarball), "-C", str(rootfs)],
        check=True,
    )


def bake_local(
    inputs: BakeInputs,
    *,
    out_dir: Path,
    cache_dir: Path,
    force: bool = False,
    check_idempotence: bool = False,
    say: Log = print,
) -> tuple[LocalImage, bool]:
    """Bake (or find) the local image of ``inputs``; return it and whether it was built."""
    image = LocalImage(out_dir)
    digest = inputs.digest.hexdigest
    if not force and image.is_current(digest):
        return image, False
    missing = [tool for tool in ("mmdebstrap", "tar", "zstd") if shutil.which(tool) is None]
    if missing:
        raise BuildError(
            f"{', '.join(missing)} not found; install with: sudo bash scripts/system-deps.sh image"
        )
    if os.geteuid() != 0:
        raise BuildError("the local bake needs root (mmdebstrap, chroot and mounts)")
    if not (inputs.root / UNIT_FILE).is_file():  # fail before minutes of base and wheels
        raise BuildError(f"{UNIT_FILE} is missing: the payload role installs the worker's unit")

    timings: dict[str, float] = {}
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = cache_dir / "build" / inputs.digest.short
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    log = out_dir / "bake.log"
    log.write_text(f"spotcube bake --target local {digest}\n")

    mark = time.monotonic()
    packages = base_packages(inputs.root)
    base, built = base_tarball(packages, cache_dir, log=log)
    timings["base"] = time.monotonic() - mark
    say(f"base: {base.name} ({'built' if built else 'cached'}, {timings['base']:.0f} s)")

    mark = time.monotonic()
    wheel = build_wheel(inputs.root, stage / "dist", log=log)
    wheels = wheelhouse(inputs.requirements, inputs.constraints, cache_dir, log=log)
    timings["artifacts"] = time.monotonic() - mark
    say(f"wheel: {wheel.name}; wheelhouse: {wheels.name} ({timings['artifacts']:.0f} s)")

    rootfs_new = out_dir / (ROOTFS + ".new")
    mark = time.monotonic()
    _extract(base, rootfs_new)
    variables = stage / "extra-vars.json"
    variables.write_text(
        json.dumps(extra_vars(inputs, wheel, wheelhouse_dir=WHEELHOUSE_MOUNT), indent=1)
    )
    inventory = stage / "inventory.ini"
    inventory.write_text(
        f"{INVENTORY_HOST} ansible_connection=community.general.chroot "
        f"ansible_host={rootfs_new} ansible_become=false\n"
    )
    idempotence: dict[str, int] | None = None
    with _mounted(rootfs_new, wheels):
        recap = ansible_playbook(inputs.root, inventory, variables, log=log)
        timings["ansible"] = time.monotonic() - mark
        say(f"ansible: changed={recap['changed']} ok={recap['ok']} ({timings['ansible']:.0f} s)")
        if check_idempotence:
            mark = time.monotonic()
            idempotence = ansible_playbook(inputs.root, inventory, variables, log=log)
            timings["ansible_rerun"] = time.monotonic() - mark
            say(
                f"ansible re-run: changed={idempotence['changed']} "
                f"({timings['ansible_rerun']:.0f} s)"
            )
            if idempotence["changed"]:
                raise BuildError(
                    f"the playbook is not idempotent: a second run changed "
                    f"{idempotence['changed']} task(s); see {log}"
                )

    mark = time.monotonic()
    # The old metadata goes first: a crash from here on must not leave an image that looks
    # current but mixes two bakes.
    image.metadata_path.unlink(missing_ok=True)
    shutil.rmtree(image.rootfs, ignore_errors=True)
    rootfs_new.rename(image.rootfs)
    partial = out_dir / (TARBALL + ".partial")
    subprocess.run(
        [
            "tar",
            "--numeric-owner",
            "--xattrs",
            "--sort=name",
            "-I",
            "zstd -T0 -3 -q",
            "-cf",
            str(partial),
            "-C",
            str(image.rootfs),
            ".",
        ],
        check=True,
    )
    partial.rename(image.tarball)
    timings["tarball"] = time.monotonic() - mark
    timings["total"] = time.monotonic() - started

    metadata = {
        "schema": METADATA_SCHEMA,
        **inputs.provenance(),
        "base_image": BASE_IMAGE_SELECTOR,
        "base": {"suite": SUITE, "variant": VARIANT, "packages": packages, "tarball": base.name},
        "tarball": TARBALL,
        "tarball_sha256": _sha256(image.tarball),
        "tarball_bytes": image.tarball.stat().st_size,
        "rootfs_bytes": _tree_bytes(image.rootfs),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "idempotence": idempotence,
    }
    partial_meta = image.metadata_path.with_suffix(".partial")
    partial_meta.write_text(json.dumps(metadata, indent=1) + "\n")
    partial_meta.rename(image.metadata_path)
    shutil.rmtree(stage, ignore_errors=True)
    return image, True


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).lstat().st_size
    return total
