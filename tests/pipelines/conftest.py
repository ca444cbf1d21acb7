"""Fixtures of the pipeline tests: the field's tools and a real MWA Measurement Set.

The Measurement Set is ``1102865728_small.ms`` (MWA, Fornax A field, 121 tiles, 10 channels,
one time) from the pyuvdata 3.2.3 wheel, fetched once with ``pip download`` and kept in the
pytest cache; without a reachable package registry the tests that need it skip and say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PYUVDATA_WHEEL = "pyuvdata==3.2.3"
MS_NAME = "1102865728_small.ms"
MS_PREFIX = f"pyuvdata/data/{MS_NAME}/"
INSTALL_HINT = (
    "install them with `sudo bash scripts/system-deps.sh radio-tools` (wsclean, aoflagger, "
    "casacore-tools, make) and `.venv/bin/pip install -c constraints.txt -e '.[pipelines]'` "
    "(DP3.py)"
)


def tool_path() -> str:
    """PATH with this venv's bin first: DP3.py comes from the dp3 wheel installed here."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


@pytest.fixture(scope="session")
def radio_tools() -> dict[str, str]:
    """Absolute paths of make, aoflagger, DP3.py and wsclean; skip when one is missing."""
    found = {name: shutil.which(name, path=tool_path()) for name in TOOLS}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: {INSTALL_HINT}")
    return {name: str(path) for name, path in found.items()}


TOOLS = ("make", "aoflagger", "DP3.py", "wsclean")


def ms_cache_dir(request: pytest.FixtureRequest) -> Path | None:
    """Where the Measurement Set is kept between sessions (None with ``-p no:cacheprovider``)."""
    cache = getattr(request.config, "cache", None)
    return None if cache is None else Path(cache.mkdir("pyuvdata-3.2.3-ms"))


@pytest.fixture(scope="session")
def mwa_ms(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The MWA Measurement Set, unpacked from the pyuvdata wheel into the pytest cache."""
    cache = ms_cache_dir(request) or tmp_path_factory.mktemp("pyuvdata-ms")
    ms = cache / MS_NAME
    if (ms / "table.dat").is_file():
        return ms
    wheels = cache / "wheel"
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", PYUVDATA_WHEEL, "--no-deps", "-q",
             "-d", str(wheels)],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot download {PYUVDATA_WHEEL} (is the package registry reachable?): {exc}")
    wheel = next(wheels.glob("pyuvdata-3.2.3-*.whl"))
    partial = cache / f".{MS_NAME}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith(MS_PREFIX) and not member.endswith("/"):
                target = partial / member[len(MS_PREFIX) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(member))
    partial.replace(ms)  # a download cut short leaves no half Measurement Set behind
    shutil.rmtree(wheels)
    return ms
