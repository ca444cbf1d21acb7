"""The payload code's identity: one sha256 over the source of every payload module.

A product is a function of (input bytes, params, code). ``__version__`` names a release, but
nobody bumps it for each change (it stayed 0.1.0 while products changed), so it cannot tell
whether a checkpoint's chunks were made by the code that would resume them. This digest can:
it covers the name and bytes of every ``.py`` file of the ``payload`` package, so any edit to
any of them, product-affecting or not, gives a new identity. Hashing all of them rather than a
hand-kept list of "modules that affect products" is on purpose: a list goes stale the day a
new import is added, a whole-package digest cannot (a change to the worker loop also resets
checkpoints, which costs at most one run's chunks, never a wrong product).

Third-party libraries (numpy, ducc0, pyuvdata) are pinned by ``constraints.txt`` and baked
into the image whose tag is a content hash (``spotcube bake``); they are not hashed here, so
an operator's clone at the same commit submits with the same identity the workers compute.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def code_identity(root: Path = PACKAGE_ROOT) -> str:
    """sha256 (hex) over the relative path and bytes of every ``.py`` file under ``root``.

    Sorted by path so the digest does not depend on the file system's listing order;
    ``__pycache__`` is skipped (bytecode follows the source, and differs by interpreter).
    """
    digest = hashlib.sha256()
    files = sorted(
        (p for p in root.rglob("*.py") if "__pycache__" not in p.parts),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    for path in files:
        name = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        # Length-prefixed so that moving bytes from one file to the next changes the digest.
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


@functools.cache
def current_code_identity() -> str:
    """The identity of the payload code this process imported (computed once, ~1 ms/file)."""
    return code_identity()
