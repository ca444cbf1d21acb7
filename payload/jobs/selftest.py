"""``selftest``: a deterministic chunked job to smoke-test a fleet end to end.

Each chunk waits ``chunk_seconds`` (standing in for compute) and writes ``chunk_bytes`` bytes
derived from the input object's bytes and the chunk index with SHAKE-256, so any instance
that runs a chunk writes the same bytes. ``combine`` concatenates the chunks into
``selftest.bin`` and writes ``selftest.json`` with their digests. A fleet that completes a
selftest run with bit-identical products has working queues, checkpoints and resumes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contract.jobs import JobKind
from payload.errors import InvalidInputError
from payload.jobs.base import JobContext

MAX_CHUNKS = 10_000
MAX_CHUNK_BYTES = 1 << 30


def _int_param(params: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(
            f"selftest parameter {name}={value!r} must be an integer in {low}..{high}"
        )
    return value


def chunk_bytes_for(source: bytes, index: int, size: int) -> bytes:
    """The bytes of chunk ``index``: SHAKE-256 of the input's digest and the index."""
    seed = hashlib.sha256(source).digest() + index.to_bytes(8, "big")
    return hashlib.shake_256(seed).digest(size)


class SelfTestJob:
    """Deterministic chunks from an input object; see the module docstring.

    Parameters (``message.params``)
    -------------------------------
    chunks : int
        Number of chunks (default 8).
    chunk_seconds : float
        Wall time each chunk takes (default 1.0).
    chunk_bytes : int
        Size of each chunk file (default 1 MiB).
    """

    chunk_suffix = "bin"

    def __init__(self, context: JobContext) -> None:
        params = context.message.params
        self.context = context
        self.chunks = _int_param(params, "chunks", 8, 1, MAX_CHUNKS)
        self.chunk_bytes = _int_param(params, "chunk_bytes", 1 << 20, 1, MAX_CHUNK_BYTES)
        seconds = params.get("chunk_seconds", 1.0)
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds <= 3600
        ):
            raise InvalidInputError(f"selftest parameter chunk_seconds={seconds!r} must be 0..3600")
        self.chunk_seconds = float(seconds)
        self._source: bytes | None = None

    def _input(self) -> bytes:
        if self._source is None:
            data = self.context.fetch(self.context.message.input).read_bytes()
            if not data:
                raise InvalidInputError(
                    f"selftest input {self.context.message.input} is empty; give it any bytes"
                )
            self._source = data
        return self._source

    def chunk_ids(self) -> list[str]:
        width = len(str(self.chunks - 1))
        return [f"{i:0{width}d}" for i in range(self.chunks)]

    def run_chunk(self, chunk_id: str, out_path: Path) -> None:
        source = self._input()
        time.sleep(self.chunk_seconds)
        out_path.write_bytes(chunk_bytes_for(source, int(chunk_id), self.chunk_bytes))

    def combine(self, chunk_paths: Mapping[str, Path], out_dir: Path) -> list[Path]:
        ids = self.chunk_ids()
        missing = [cid for cid in ids if cid not in chunk_paths]
        if missing:
            raise ValueError(f"selftest combine lacks chunks {missing}")
        out_dir.mkdir(parents=True, exist_ok=True)
        blob = out_dir / "selftest.bin"
        digest = hashlib.sha256()
        chunk_digests: dict[str, str] = {}
        with blob.open("wb") as out:
            for cid in ids:
                data = chunk_paths[cid].read_bytes()
                chunk_digests[cid] = hashlib.sha256(data).hexdigest()
                digest.update(data)
                out.write(data)
        summary = out_dir / "selftest.json"
        # Provenance but nothing instance-specific: products must be bit-identical wherever
        # the job ran.
        doc = {
            "kind": JobKind.SELFTEST.value,
            "input": self.context.message.input,
            "params_hash": self.context.message.params_hash,
            "chunks": chunk_digests,
            "sha256": digest.hexdigest(),
        }
        summary.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        return [blob, summary]
