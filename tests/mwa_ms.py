"""A real MWA Measurement Set for the tests: ``1102865728_small.ms`` from the pyuvdata wheel.

MWA, Fornax A field, 121 tiles, 10 channels of 3.07 MHz from 171.13 MHz, one time. It is
fetched once with ``pip download pyuvdata==3.2.3`` (the wheel carries it as test data) and
kept in the pytest cache; without a reachable package registry the tests that need it skip
and say so. The fixture ``mwa_ms`` (tests/conftest.py) is the way in; this module holds the
mechanics, so that tests that only look for a cached copy can import them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PYUVDATA_WHEEL = "pyuvdata==3.2.3"
MS_NAME = "1102865728_small.ms"
MS_PREFIX = f"pyuvdata/data/{MS_NAME}/"


def ms_cache_dir(request: pytest.FixtureRequest) -> Path | None:
    """Where the Measurement Set is kept between sessions (None with ``-p no:cacheprovider``)."""
    cache = getattr(request.config, "cache", None)
    return None if cache is None else Path(cache.mkdir("pyuvdata-3.2.3-ms"))


def unpack_mwa_ms(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
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
