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


def parse_stats(document: str) -> dict[str, int]:
    """Counts summed over hosts from the ``stats`` of Ansible's ``json`` stdout callback.

    The callback (``ansible.builtin.json``) prints one JSON document when the playbook ends;
    its ``stats`` map each host to ``ok``, ``changed``, ``unreachable``, ``failures``, ...
    """
    try:
        doc = json.loads(document)
        stats = doc["stats"]
        counts = {"ok": 0, "changed": 0, "unreachable": 0, "failed": 0}
        for host in stats.values():
            counts["ok"] += int(host.get("ok", 0))
            counts["changed"] += int(host.get("changed", 0))
            counts["unreachable"] += int(host.get("unreachable", 0))
            counts["failed"] += int(host.get("failures", 0))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BuildError(f"ansible-playbook printed no JSON stats ({exc!r})") from None
    return counts


def ansible_playbook(root: Path, inventory: Path, extra_vars: Path, *, log: Path) -> dict[str, int]:
    """Run ansible/site.yml; return the counts of its JSON stats.

    stdout (the JSON document) goes to a file of its own, stderr (warnings) to the log; the
    document is copied into the log afterwards, so the log stays the one record of a bake.
    """
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
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
    }
    result_file = extra_vars.with_name("ansible-result.json")
    with log.open("a") as stream, result_file.open("w") as stdout:
        stream.write(f"\n$ {' '.join(command)}\n")
        stream.flush()
        status = subprocess.run(command, stdout=stdout, stderr=stream, env=env, check=False)
    document = result_file.read_text(errors="replace")
    with log.open("a") as stream:
        stream.write(document)
    if status.returncode != 0:
        raise BuildError(
            f"ansible-playbook ansible/site.yml failed (exit {status.returncode}): "
            f"{_first_failure(document)}; see {log}"
        )
    return parse_stats(document)


def _first_failure(document: str) -> str:
    """The first failed task and its message in a JSON callback document, for one line."""
    try:
        for play in json.loads(document).get("plays", []):
            for task in play.get("tasks", []):
                for host, result in task.get("hosts", {}).items():
                    if result.get("failed") or result.get("unreachable"):
                        name = task.get("task", {}).get("name", "?")
                        return f"task {name!r} on {host}: {result.get('msg', '')}"[:300]
    except (ValueError, AttributeError):
        pass
    return "no failed task in the JSON output"


UNIT_FILE = Path("payload/systemd/spotcube-worker.service")


def variant_pip_requirements(inputs: BakeInputs) -> list[str]:
    """What a variant installs with pip: its pip_packages and the dp3 role's pins.

    The local bake downloads them on the host into a wheelhouse of their own and the roles
    install offline from it, like the payload: a chroot has neither the host's pip
    configuration nor its certificate authorities.
    """
    if inputs.variant is None:
        return []
    requirements = list(inputs.variant.pip_packages)
    if "dp3" in inputs.variant.toolchains:
        defaults = yaml.safe_load((inputs.root / "ansible/roles/dp3/defaults/main.yml").read_text())
        requirements += [f"dp3=={defaults['dp3_version']}", *defaults["dp3_extra_packages"]]
    return requirements


def _combined(sources: list[Path], target: Path) -> Path:
    """One folder of wheels linking every wheel of ``sources`` (first source wins a name)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for source in sources:
        for wheel in sorted(source.glob("*.whl")):
            link = target / wheel.name
            if link.exists():
                continue
            try:
                os.link(wheel, link)
            except OSError:  # another filesystem
                shutil.copy2(wheel, link)
    return target


def extra_vars(inputs: BakeInputs, wheel: Path, *, wheelhouse_dir: str) -> dict[str, Any]:
    """The variables `spotcube bake` gives the roles (both targets)."""
    unit = inputs.root / UNIT_FILE
    if not unit.is_file():
        raise BuildError(f"{UNIT_FILE} is missing: the payload role installs the worker's unit")
    variant = inputs.variant.extra_vars() if inputs.variant else {}
    if inputs.variant:
        # empty on AWS: the build instance installs from PyPI with the same pins
        variant |= {"dp3_wheelhouse": wheelhouse_dir, "image_extras_pip_wheelhouse": wheelhouse_dir}
    toolchains = inputs.variant.toolchains if inputs.variant else ()
    return variant | {
        "payload_env_constraints_src": str(inputs.constraints),
        "payload_env_requirements": inputs.requirements,
        "payload_env_wheelhouse": wheelhouse_dir,
        "payload_wheel_src": str(wheel),
        "payload_unit_src": str(unit),
        "payload_image_metadata": inputs.provenance()
        | {"base_image": BASE_IMAGE_SELECTOR, "toolchains": list(toolchains)},
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
    extra = variant_pip_requirements(inputs)
    if extra:
        wheels = _combined(
            [wheels, wheelhouse(extra, inputs.constraints, cache_dir, log=log)],
            stage / "wheelhouse",
        )
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
