"""testinfra checks of the toolchains an image variant declares (``spotcube bake --image-config``).

The image lists its toolchain roles in /etc/spotcube/image.json (``toolchains``); each role
has its checks here, and a check runs only where its role was baked in, so the default image
(no toolchains) skips them all with the reason. Run against the local variant image with
``pytest tests/image --image-config images/radio-tools.yaml`` (root, mmdebstrap, minutes), or
on the Packer build host / an instance with ``--hosts``. Locally every check runs twice: in
the chroot (``[baked]``; the given host with ``--hosts``) and in the image booted with
systemd under podman (``[booted]``, tests/image/conftest.py ``booted_image``), where the
tools meet a real /proc and the system as it runs, with no mount from the host. An image
without toolchains (the default) is not booted for these checks.

The expected versions are Debian 12's (WSClean 3.1, AOFlagger 3.1) and the dp3 pin of the
role; the casacore check writes a table with python3-casacore and reads it with taql, two
independent consumers of the same on-disk format.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from testinfra.host import Host

from tests.image.conftest import PODMAN

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

# Every toolchain role of spotcube.bake.variant has checks here (tests/bake/test_variant.py).
TOOLCHAINS = ("wsclean", "aoflagger", "casacore_tools", "dp3")
MS_ON_HOST = "/tmp/spotcube-toolchain-check.ms"


@pytest.fixture(scope="module", params=["baked", "booted"])
def image_host(request: pytest.FixtureRequest, image_host: Host) -> Host:
    """Each check's host: the image as baked (conftest's image_host), or booted under podman."""
    if request.param == "booted":
        if not _baked_toolchains(image_host):
            pytest.skip("the image has no toolchains: nothing to check booted")
        return request.getfixturevalue("booted_image").host
    return image_host


def _baked_toolchains(host: Host) -> set[str]:
    doc = json.loads(host.file("/etc/spotcube/image.json").content_string)
    return set(doc.get("toolchains", []))


@pytest.fixture(scope="module")
def toolchains(image_host: Host) -> set[str]:
    """The toolchain roles the image under test was baked with."""
    return _baked_toolchains(image_host)


def need(toolchains: set[str], role: str) -> None:
    if role not in toolchains:
        pytest.skip(f"the image has no {role} toolchain (bake it with --image-config)")


def test_wsclean_runs(image_host: Host, toolchains: set[str]) -> None:
    need(toolchains, "wsclean")
    out = image_host.run("wsclean --version")
    assert out.rc == 0, out.stderr
    assert "WSClean version 3." in out.stdout


def test_aoflagger_runs_with_mwa_strategy(image_host: Host, toolchains: set[str]) -> None:
    need(toolchains, "aoflagger")
    out = image_host.run("aoflagger --version")
    assert out.rc == 0, out.stderr
    assert out.stdout.startswith("AOFlagger 3.")
    assert image_host.file("/usr/share/aoflagger/strategies/mwa-default.lua").is_file


def test_casacore_table_written_and_read(image_host: Host, toolchains: set[str]) -> None:
    need(toolchains, "casacore_tools")
    table = "/tmp/spotcube-casacore-check.tab"
    write = (
        "import casacore.tables as t; "
        "d = t.maketabdesc([t.makescacoldesc('X', 0.0)]); "
        f"tb = t.table('{table}', d, nrow=3, ack=False); tb.putcol('X', [1.5, 2.5, 3.5]); "
        "tb.close()"
    )
    assert image_host.run(f'python3 -c "{write}"').rc == 0
    out = image_host.run(f"taql 'select gsum(X) as S from {table}' && rm -rf {table}")
    assert out.rc == 0, out.stderr
    assert "7.5" in out.stdout


def test_dp3_averages_a_measurement_set(
    image_host: Host, toolchains: set[str], request: pytest.FixtureRequest
) -> None:
    """DP3.py on a one-step parset (an averager) over a real MWA Measurement Set."""
    need(toolchains, "dp3")
    booted = request.node.callspec.params["image_host"] == "booted"
    rootfs = None if booted else _chroot_root(request)
    if not booted and rootfs is None:
        pytest.skip("the DP3 check copies a Measurement Set into a local image only")
    from tests.mwa_ms import MS_NAME, ms_cache_dir  # the checkout is here

    folder = ms_cache_dir(request)
    cache = Path(folder or "/nonexistent") / MS_NAME
    if not (cache / "table.dat").is_file():
        pytest.skip("no cached MWA Measurement Set: run tests/pipelines first")
    parset = (
        f"msin={MS_ON_HOST}\nmsout={MS_ON_HOST}.avg\nsteps=[avg]\n"
        "avg.type=averager\navg.freqstep=2\nnumthreads=1\n"
    )
    cleanup = f"rm -rf {MS_ON_HOST} {MS_ON_HOST}.avg /tmp/dp3-check.parset"
    if booted:
        name = request.getfixturevalue("booted_image").name
        local_parset = request.getfixturevalue("tmp_path") / "dp3-check.parset"
        local_parset.write_text(parset)
        for source, dest in ((cache, MS_ON_HOST), (local_parset, "/tmp/dp3-check.parset")):
            copied = subprocess.run(
                [*PODMAN, "cp", str(source), f"{name}:{dest}"], capture_output=True, text=True
            )
            assert copied.returncode == 0, copied.stderr
        proc = None
    else:
        assert rootfs is not None
        target = rootfs / MS_ON_HOST.lstrip("/")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(cache, target)
        (rootfs / "tmp" / "dp3-check.parset").write_text(parset)
        # casacore reads /proc (CPU count, memory) when DP3 finishes and segfaults without it;
        # a booted system has /proc, a bare chroot does not: mount it for the check.
        proc = rootfs / "proc"
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    try:
        out = image_host.run("DP3.py /tmp/dp3-check.parset")
        assert out.rc == 0, out.stdout[-2000:] + out.stderr[-2000:]
        spw = image_host.run(f"taql 'select NUM_CHAN from {MS_ON_HOST}.avg/SPECTRAL_WINDOW'")
        if spw.rc == 0:  # taql is there when casacore_tools is
            assert spw.stdout.split()[-1] == "5"  # 10 channels averaged by 2
    finally:
        if proc is not None:
            subprocess.run(["umount", "--lazy", str(proc)], check=False)
        image_host.run(cleanup)


def _chroot_root(request: pytest.FixtureRequest) -> Path | None:
    if request.config.getoption("hosts"):
        return None
    bake = request.getfixturevalue("local_bake")
    return Path(bake.rootfs)
