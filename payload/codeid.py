"""The payload code's identity: one sha256 over the source of every payload and contract module.

A product is a function of (input bytes, params, code). ``__version__`` names a release, but
nobody bumps it for each change (it stayed 0.1.0 while products changed), so it cannot tell
whether a checkpoint's chunks were made by the code that would resume them. This digest can:
it covers the name and bytes of every ``.py`` file of the ``payload`` package, so any edit to
any of them, product-affecting or not, gives a new identity. Hashing all of them rather than a
hand-kept list of "modules that affect products" is on purpose: a list goes stale the day a
new import is added, a whole-package digest cannot (a change to the worker loop also resets
checkpoints, which costs at most one run's chunks, never a wrong product).

The ``contract`` package is hashed too: the payload imports its layout, settings and job kinds
from there, so an edit to it can change what a worker does as surely as an edit to ``payload``
(and it ships in the same wheel). Each file is named with its package (``payload/store.py``,
``contract/layout.py``) so a file moved between the two gives a new identity.

Third-party libraries (numpy, ducc0, pyuvdata) are pinned by ``constraints.txt`` and baked
into the image whose tag is a content hash (``spotcube bake``); they are not hashed here, so
an operator's clone at the same commit submits with the same identity the workers compute.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import contract

PACKAGE_ROOT = Path(__file__).resolve().parent
CONTRACT_ROOT = Path(contract.__file__).resolve().parent
# The packages whose source decides what a worker does.
CODE_ROOTS = (PACKAGE_ROOT, CONTRACT_ROOT)


def code_identity(*roots: Path) -> str:
    """sha256 (hex) over the path and bytes of every ``.py`` file under ``roots``.

    ``roots`` defaults to :data:`CODE_ROOTS`; a path is ``<root's name>/<path under root>``.
    Sorted by path so the digest does not depend on the file system's listing order;
    ``__pycache__`` is skipped (bytecode follows the source, and differs by interpreter).
    """
    digest = hashlib.sha256()
    named = sorted(
        (f"{root.name}/{p.relative_to(root).as_posix()}", p)
        for root in roots or CODE_ROOTS
        for p in root.rglob("*.py")
        if "__pycache__" not in p.parts
    )
    for relative, path in named:
        name = relative.encode()
        data = path.read_bytes()
        # Length-prefixed so that moving bytes from one file to the next changes the digest.
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


@functools.cache
def current_code_identity() -> str:
    """The identity of the code this process imported (computed once, ~1 ms/file)."""
    return code_identity()
