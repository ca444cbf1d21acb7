"""Fixtures of the pipeline tests: the field's tools.

The real MWA Measurement Set they run on is the suite-wide fixture ``mwa_ms``
(tests/conftest.py, mechanics in tests/mwa_ms.py): the payload's WSClean comparison uses it too.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

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
