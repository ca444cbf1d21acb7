"""``spotcube demo --in-image``: workers and their programs run inside the locally baked image.

The launcher (``spotcube.local.inimage``) is checked for what an instance is: the image's
files and user, its own processes, a disk the bake never sees written, a stop that reaches
the worker and a reclaim that leaves nothing running. Then a whole demo of a command job runs
inside the image under a storm paced by CPU, and its product says where it ran.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from spotcube.demo import DemoOptions, run_demo
from spotcube.local import cpuclock, inimage
from tests.image.conftest import LocalBake

pytestmark = [pytest.mark.image, pytest.mark.slow]


def launch(bake: LocalBake, shared: Path, code: str, **popen: object) -> subprocess.Popen[str]:
    argv = [inimage.IMAGE_PYTHON, "-c", code]
    return subprocess.Popen(
        inimage.launcher_command(bake.rootfs, shared, argv),
        text=True,
        **popen,  # type: ignore[call-overload]
    )


def test_the_worker_sees_the_image_not_the_host(local_bake: LocalBake, tmp_path: Path) -> None:
    shared = tmp_path / "i-1"
    probe = (
        "import json, os; print(json.dumps({"
        "'image': json.load(open('/etc/spotcube/image.json'))['content_hash'],"
        "'uid': os.getuid(), 'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),"
        f"'shared': os.access('{shared}', os.W_OK)}}));"
        "open('/var/lib/spotcube/probe', 'w').write('x')"
    )
    done = launch(local_bake, shared, probe, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    seen = json.loads(out)
    assert seen["image"] == local_bake.metadata["content_hash"]
    assert seen["uid"] != 0  # the image's spotcube user, as its systemd unit runs the worker
    assert seen["pids"] == [1]  # a PID namespace of its own: the worker is the instance
    assert seen["shared"] is True
    # written to the overlay, never to the baked tree
    assert not (local_bake.rootfs / "var/lib/spotcube/probe").exists()
    assert (shared / "image-overlay/upper/var/lib/spotcube/probe").exists()


def test_a_stop_reaches_the_worker_and_a_reclaim_ends_everything(
    local_bake: LocalBake, tmp_path: Path
) -> None:
    shared = tmp_path / "i-2"
    marker = uuid.uuid4().hex
    # hands back on SIGTERM (exit 75, as the worker does), after saying it was asked
    code = (
        "import signal, sys, time\n"
        f"def stop(*_): open('{shared}/stopped', 'w').write('x'); sys.exit(75)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        f"open('{shared}/up', 'w').write('{marker}')\n"
        "while True: time.sleep(0.1)\n"
    )
    stopped = launch(local_bake, shared, code)
    wait_for(shared / "up")
    stopped.send_signal(signal.SIGTERM)
    assert stopped.wait(timeout=60) == 75
    assert (shared / "stopped").exists()

    (shared / "up").unlink()
    reclaimed = launch(local_bake, shared, code.replace("sys.exit(75)", "pass"))
    wait_for(shared / "up")
    assert cpuclock.available()
    reclaimed.send_signal(signal.SIGKILL)
    reclaimed.wait(timeout=60)
    deadline = time.monotonic() + 30
    while _running_with(marker):
        assert time.monotonic() < deadline, "the worker outlived its reclaimed instance"
        time.sleep(0.2)


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def _running_with(text: str) -> bool:
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_text(errors="replace"):
                return True
        except OSError:
            continue
    return False


# A command job as a user would write it: steps that skip themselves when their stamp is
# there (so a resumed attempt goes on), CPU work in each, and a product that says where it ran.
PROGRAM = """
import hashlib, json, os, pathlib, time
steps = pathlib.Path("steps"); steps.mkdir(exist_ok=True)
for step in range(4):
    stamp = steps / f"{step}.done"
    if stamp.exists():
        continue
    end = time.process_time() + 0.6
    while time.process_time() < end:
        pass
    stamp.write_text("ok")
out = pathlib.Path("products"); out.mkdir(exist_ok=True)
record = json.load(open("/etc/spotcube/image.json"))
data = open(os.environ["SPOTCUBE_INPUT"], "rb").read()
(out / "result.json").write_text(json.dumps({
    "image": record["content_hash"], "input_sha256": hashlib.sha256(data).hexdigest(),
    "user": os.getuid()}, sort_keys=True))
"""


def test_a_command_job_demo_runs_inside_the_image(local_bake: LocalBake, tmp_path: Path) -> None:
    job = tmp_path / "job" / "job.json"
    job.parent.mkdir()
    job.write_text(json.dumps({"kind": "command", "params": {
        "argv": ["python3", "-c", PROGRAM], "products": ["products/*.json"]}}))  # fmt: skip
    data = tmp_path / "obs.bin"
    data.write_bytes(b"an observation" * 100)
    inimage.check_current(local_bake.rootfs)
    options = DemoOptions(
        out=tmp_path / "demo",
        job=job,
        inputs=(data,),
        observations=1,
        kind="command",
        workers=1,
        reference_workers=1,
        # lifetimes of 1.2 CPU seconds on average against ~2.4 s of the program's work and
        # each worker's start: a storm, counted in CPU, so the same on any machine
        interrupt_rate=3600.0 / (1.2 * 2400.0),
        seed=7,
        min_notice_real=3.0,
        timeout=600.0,
        rootfs=local_bake.rootfs,
    )
    report = run_demo(options)
    assert report.outcome.ok, report.outcome
    assert report.verified_identical is True
    assert report.settings.paced_by == "cpu"
    print("spot notices:", report.spot_notices, file=sys.stderr)
    [product] = (tmp_path / "demo" / "products").glob("*/result.json")
    result = json.loads(product.read_text())
    assert result["image"] == local_bake.metadata["content_hash"]
    assert result["user"] != 0
