"""Run a local instance's worker inside a baked image: the demo then checks what AWS will run.

``spotcube demo --in-image DIR`` starts every worker of the local fleet through this module
instead of on the host. The worker and the programs of its jobs then run from the image's
root filesystem (``spotcube bake --target local``, its variant's tools, its Python and its
payload), as the user ``spotcube`` the image's systemd unit runs it as, on the host's network
(the local cloud and the instance's IMDS emulator are on 127.0.0.1).

How (``python -m spotcube.local.inimage ROOTFS SHARED -- ARGV...``): the launcher enters new
mount and PID namespaces and forks; the child mounts an overlay over the root filesystem
(writes go to ``SHARED/image-overlay``, so the baked tree is never changed and every instance
starts from the same image), ``/dev``, a ``/proc`` of its own, a private ``/tmp`` (the unit's
``PrivateTmp``) and ``SHARED`` (the instance's folder: its scratch disk and the work-point
marker the fleet watches) at the same path; then it changes root, drops to ``spotcube`` and
executes ``ARGV``. The launcher forwards SIGTERM and SIGINT to the worker
(a fleet's stop: the worker hands its job back) and exits with its status. A SIGKILL of the
launcher (a reclaim) kills the worker too: it is the first process of its PID namespace and
dies with its parent (``PR_SET_PDEATHSIG``), and the kernel then kills every process in the
namespace, as a reclaimed instance loses all of them. Linux and root only, like the bake.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from payload.codeid import code_identity, current_code_identity
from spotcube.jobdef import JobDefinition

# Where the image keeps the worker (ansible/roles/payload; systemd unit's ExecStart).
IMAGE_PYTHON = "/opt/spotcube/venv/bin/python"
IMAGE_SITE = Path("opt/spotcube/venv/lib/python3.11/site-packages")
IMAGE_RECORD = Path("etc/spotcube/image.json")
IMAGE_USER = "spotcube"
# What PATH holds on an instance: the payload's venv first (as the image's profile sets it).
IMAGE_PATH = "/opt/spotcube/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_CLONE_NEWNS = 0x00020000
_CLONE_NEWPID = 0x20000000
_PR_SET_PDEATHSIG = 1


class ImageError(ValueError):
    """The image cannot run this checkout's workers: one line saying why and what to do."""


def find_rootfs(path: Path) -> Path:
    """The root filesystem of a local bake: ``path`` itself, or its ``rootfs`` folder."""
    for candidate in (path, path / "rootfs"):
        if (candidate / IMAGE_RECORD).is_file():
            return candidate.resolve()
    raise ImageError(
        f"--in-image {path}: no baked image there (no {IMAGE_RECORD}); bake one with "
        "`spotcube bake --target local [--image-config FILE]` and give the folder it prints"
    )


def image_record(rootfs: Path) -> dict[str, object]:
    record: dict[str, object] = json.loads((rootfs / IMAGE_RECORD).read_text())
    return record


def check_current(rootfs: Path) -> None:
    """Refuse an image whose payload is not this checkout's.

    A worker recomputes every job's params hash with its own code identity and refuses a
    message made by other code (docs/work-plane.md), so an image baked before the last
    change to ``payload`` or ``contract`` would refuse every job of this demo.
    """
    site = rootfs / IMAGE_SITE
    if not (site / "payload").is_dir():
        raise ImageError(
            f"--in-image {rootfs}: no payload in {IMAGE_SITE}; is it a spotcube image?"
        )
    if code_identity(site / "payload", site / "contract") != current_code_identity():
        commit = image_record(rootfs).get("git_commit", "?")
        raise ImageError(
            f"--in-image {rootfs}: its payload (baked from {str(commit)[:10]}) is not this "
            "checkout's, and its workers would refuse this demo's jobs; bake it again: "
            "`spotcube bake --target local [--image-config FILE]`"
        )


def check_job_dir(rootfs: Path, job: JobDefinition) -> None:
    """Refuse a job whose ``{job_dir}`` the image does not hold: on AWS the variant's
    ``pipelines`` key puts the job's folder there, and the demo runs what AWS would."""
    if "{job_dir}" not in json.dumps(job.params):
        return
    where = job.on_image().job_dir
    if not (rootfs / where.lstrip("/")).is_dir():
        raise ImageError(
            f"--in-image {rootfs}: the job uses {{job_dir}}, but the image has no {where}; "
            f"list its folder ({job.path.parent}) under `pipelines` in the image variant "
            "and bake it again (docs/pipelines.md)"
        )


def launcher_command(rootfs: Path, shared: Path, argv: list[str]) -> list[str]:
    """The host command that runs ``argv`` inside ``rootfs`` with the folder ``shared``."""
    return [sys.executable, "-m", "spotcube.local.inimage", str(rootfs), str(shared), "--", *argv]


def _user(rootfs: Path) -> tuple[int, int]:
    for line in (rootfs / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == IMAGE_USER:
            return int(fields[2]), int(fields[3])
    raise ImageError(f"{rootfs}: no user {IMAGE_USER} in etc/passwd")


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _enter(rootfs: Path, shared: Path, argv: list[str], parent_alive: int) -> None:
    """In the child (PID 1 of the new namespace): mounts, root, user, then the worker.

    ``parent_alive``: the read end of a pipe the launcher holds open; at EOF it is gone.
    """
    _die_with_parent()
    # Nothing mounted here may show on the host (systemd makes / shared).
    _mount("--make-rprivate", "/")
    scratch = shared / "image-overlay"
    upper, work, merged = (scratch / n for n in ("upper", "work", "merged"))
    for folder in (upper, work, merged):
        folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "overlay", "overlay", "-o", f"lowerdir={rootfs},upperdir={upper},workdir={work}",
           str(merged))  # fmt: skip
    _mount("--rbind", "/dev", str(merged / "dev"))
    _mount("-t", "proc", "proc", str(merged / "proc"))
    _mount("-t", "tmpfs", "tmpfs", str(merged / "tmp"))
    inside = merged / shared.relative_to("/")
    inside.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(shared), str(inside))
    uid, gid = _user(rootfs)
    os.chroot(merged)
    os.chdir("/")
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    # Again after the change of user, which clears it (prctl(2)); kept across execve. The
    # worker dies with the launcher, and with it, PID 1 of its namespace, every process it
    # started. A launcher killed in the moment between the two is seen on the pipe.
    _die_with_parent()
    if select.select([parent_alive], [], [], 0)[0]:
        os._exit(1)
    env = {**os.environ, "HOME": "/var/lib/spotcube", "USER": IMAGE_USER, "PATH": IMAGE_PATH}
    os.execve(argv[0], argv, env)


def main(args: list[str]) -> int:
    if len(args) < 4 or args[2] != "--":
        print("usage: python -m spotcube.local.inimage ROOTFS SHARED -- ARGV...", file=sys.stderr)
        return 2
    rootfs, shared, argv = Path(args[0]).resolve(), Path(args[1]).resolve(), args[3:]
    shared.mkdir(parents=True, exist_ok=True)
    uid, gid = _user(rootfs)
    os.chown(shared, uid, gid)  # the worker runs as the image's spotcube user
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNS | _CLONE_NEWPID) != 0:
        errno = ctypes.get_errno()
        print(f"inimage: unshare failed ({os.strerror(errno)}): needs root", file=sys.stderr)
        return 1
    parent_alive, alive = os.pipe()  # not inherited by the worker (close-on-exec)
    child = os.fork()
    if child == 0:
        os.close(alive)
        try:
            _enter(rootfs, shared, argv, parent_alive)
        except (OSError, subprocess.CalledProcessError, ImageError) as exc:
            detail = (
                exc.stderr.decode().strip()
                if isinstance(exc, subprocess.CalledProcessError)
                else exc
            )
            print(f"inimage: cannot start the worker in {rootfs}: {detail}", file=sys.stderr)
        os._exit(1)
    os.close(parent_alive)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda sig, _frame: os.kill(child, sig))
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
