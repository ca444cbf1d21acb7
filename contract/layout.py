"""The S3 layout of the products bucket: every key is built here and parsed here.

Workers write and the operator reads the same objects; when both sides build keys from
:class:`ObsLayout` and read listings through :func:`parse_key`, a renamed key cannot leave
one side looking in the wrong place. DESIGN.md, "S3 layout"::

    runs/<run>/run.json                                   RunRecord (spotcube submit)
    runs/<run>/obs/<obs>/checkpoint/manifest.json         Manifest (the checkpointer)
    runs/<run>/obs/<obs>/checkpoint/chunks/<chunk>.<ext>  chunk files
    runs/<run>/obs/<obs>/checkpoint/workdir-index.json    WorkdirIndex (command jobs)
    runs/<run>/obs/<obs>/checkpoint/workdir/<path>        a command job's working files
    runs/<run>/obs/<obs>/attempts/<attempt>/products/<name>  an attempt's products (private
                                                          until DONE names them)
    runs/<run>/obs/<obs>/products/<name>                  (older runs: final products)
    runs/<run>/obs/<obs>/logs/attempt-<n>.log             each attempt's log, shipped live
    runs/<run>/obs/<obs>/DONE                             DoneRecord, written last, once
    runs/<run>/obs/<obs>/FAILED.json                      FailedRecord

This module is pure string handling (part of the ``contract`` package, standard library only),
so the worker, the stack (the lifecycle rule and the workers' IAM policy name ``RUNS``) and the
operator CLI all import it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

RUNS = "runs/"
# run and observation ids become S3 key segments and file names: keep them boring.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LOG_NAME = re.compile(r"^attempt-([1-9][0-9]{0,5})\.log$")
WORKDIR_INDEX_NAME = "workdir-index.json"

# Checkpoint objects carry this tag: S3 lifecycle filters cannot match the wildcard path
# runs/*/obs/*/checkpoint/, so the stack's checkpoint-expiry rule selects the tag instead.
CHECKPOINT_TAG = ("spotcube-data", "checkpoint")


def run_prefix(run_id: str) -> str:
    """Prefix of every key of one run."""
    return f"{RUNS}{run_id}/"


def obs_root(run_id: str) -> str:
    """Prefix under which each observation of a run has its own ``<obs>/`` prefix."""
    return f"{run_prefix(run_id)}obs/"


def run_record_key(run_id: str) -> str:
    """What a run submitted (kind, params, observations), written once by ``spotcube submit``."""
    return f"{run_prefix(run_id)}run.json"


@dataclass(frozen=True)
class ObsLayout:
    """Keys of one observation of one run in the products bucket."""

    run_id: str
    obs_id: str

    @property
    def prefix(self) -> str:
        return f"{obs_root(self.run_id)}{self.obs_id}/"

    @property
    def checkpoint_prefix(self) -> str:
        return f"{self.prefix}checkpoint/"

    @property
    def manifest(self) -> str:
        return f"{self.checkpoint_prefix}manifest.json"

    @property
    def workdir_prefix(self) -> str:
        """Where a ``command`` job's working directory is synced."""
        return f"{self.checkpoint_prefix}workdir/"

    @property
    def workdir_index(self) -> str:
        """The index of a ``command`` job's synced files, written after the files it lists."""
        return f"{self.checkpoint_prefix}{WORKDIR_INDEX_NAME}"

    def chunk(self, chunk_id: str, ext: str) -> str:
        return f"{self.checkpoint_prefix}chunks/{chunk_id}.{ext}"

    @property
    def products_prefix(self) -> str:
        return f"{self.prefix}products/"

    def product(self, name: str) -> str:
        """Where products were written before attempts had their own prefix (older runs).

        New products live under :meth:`attempt_product`; readers find them through ``DONE``.
        """
        return f"{self.products_prefix}{name}"

    @property
    def attempts_prefix(self) -> str:
        return f"{self.prefix}attempts/"

    def attempt_product(self, attempt: str, name: str) -> str:
        """Where attempt ``attempt`` (a unique token) writes product ``name``.

        No reader takes an object here for the job's product unless ``DONE`` lists its key:
        an attempt that loses the ``DONE`` race writes nothing anyone reads, and a late one
        cannot overwrite what ``DONE`` lists, because no other attempt has its token.
        """
        if not ID_PATTERN.match(attempt):
            raise ValueError(f"attempt token {attempt!r} is not a key-safe id")
        return f"{self.attempts_prefix}{attempt}/products/{name}"

    @property
    def logs_prefix(self) -> str:
        return f"{self.prefix}logs/"

    def log(self, attempt: int) -> str:
        """The shipped log of attempt number ``attempt`` (1-based, in manifest order)."""
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, not {attempt}")
        return f"{self.logs_prefix}attempt-{attempt}.log"

    @property
    def done(self) -> str:
        """Written last, once, with ``If-None-Match: *``: products are final when it exists."""
        return f"{self.prefix}DONE"

    @property
    def failed(self) -> str:
        return f"{self.prefix}FAILED.json"


def is_checkpoint_key(key: str) -> bool:
    """Whether ``key`` is part of an observation's checkpoint (manifest, chunks, workdir)."""
    parsed = parse_key(key)
    return parsed is not None and parsed.kind in _CHECKPOINT_KINDS


class KeyKind(enum.StrEnum):
    """What an object of the products bucket is."""

    RUN_RECORD = "run-record"
    MANIFEST = "manifest"
    CHUNK = "chunk"
    WORKDIR_INDEX = "workdir-index"
    WORKDIR_FILE = "workdir-file"
    PRODUCT = "product"
    ATTEMPT_PRODUCT = "attempt-product"  # not the job's product unless DONE lists it
    LOG = "log"
    DONE = "done"
    FAILED = "failed"


_CHECKPOINT_KINDS = frozenset(
    {KeyKind.MANIFEST, KeyKind.CHUNK, KeyKind.WORKDIR_INDEX, KeyKind.WORKDIR_FILE}
)


@dataclass(frozen=True)
class ParsedKey:
    """A products-bucket key taken apart.

    ``name`` is the chunk file name, product name, workdir-relative path, or the attempt
    number of a log (as text); ``None`` for the fixed names.
    """

    kind: KeyKind
    run_id: str
    obs_id: str | None = None
    name: str | None = None

    @property
    def layout(self) -> ObsLayout | None:
        return None if self.obs_id is None else ObsLayout(self.run_id, self.obs_id)

    @property
    def attempt(self) -> int | None:
        """The attempt number of a log key."""
        return int(self.name) if self.kind is KeyKind.LOG and self.name else None


def parse_key(key: str) -> ParsedKey | None:
    """Classify a key of the products bucket; ``None`` for keys outside the layout."""
    if not key.startswith(RUNS):
        return None
    parts = key[len(RUNS) :].split("/")
    run_id = parts[0]
    if not ID_PATTERN.match(run_id):
        return None
    if parts[1:] == ["run.json"]:
        return ParsedKey(KeyKind.RUN_RECORD, run_id)
    if len(parts) < 4 or parts[1] != "obs" or not ID_PATTERN.match(parts[2]):
        return None
    obs_id, rest = parts[2], parts[3:]
    fixed = {
        ("DONE",): KeyKind.DONE,
        ("FAILED.json",): KeyKind.FAILED,
        ("checkpoint", "manifest.json"): KeyKind.MANIFEST,
        ("checkpoint", WORKDIR_INDEX_NAME): KeyKind.WORKDIR_INDEX,
    }
    if tuple(rest) in fixed:
        return ParsedKey(fixed[tuple(rest)], run_id, obs_id)
    if any(not part for part in rest):
        return None
    if rest[0] == "products" and len(rest) >= 2:
        return ParsedKey(KeyKind.PRODUCT, run_id, obs_id, "/".join(rest[1:]))
    if rest[0] == "attempts" and len(rest) >= 4 and rest[2] == "products":
        if ID_PATTERN.match(rest[1]):
            return ParsedKey(KeyKind.ATTEMPT_PRODUCT, run_id, obs_id, "/".join(rest[3:]))
        return None
    if rest[0] == "logs" and len(rest) == 2 and (match := _LOG_NAME.match(rest[1])):
        return ParsedKey(KeyKind.LOG, run_id, obs_id, match.group(1))
    if rest[:2] == ["checkpoint", "chunks"] and len(rest) == 3:
        return ParsedKey(KeyKind.CHUNK, run_id, obs_id, rest[2])
    if rest[:2] == ["checkpoint", "workdir"] and len(rest) >= 3:
        return ParsedKey(KeyKind.WORKDIR_FILE, run_id, obs_id, "/".join(rest[2:]))
    return None
