"""The small interface between a science job and the work plane that drives it.

A job is a fixed, ordered list of deterministic chunks. The worker asks which chunks exist,
runs the ones the manifest does not list yet (each writes exactly one file), makes them
durable, and when all are there asks the job to combine them into products. Because chunks
are deterministic and combining reads only chunk files, a job resumed on another instance
produces bit-identical products.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from payload.records import JobMessage

if TYPE_CHECKING:
    # Annotations only: a job module must not load boto3 to be imported (the local CLI's jobs).
    from contract.layout import ObsLayout
    from contract.settings import AttemptSettings
    from payload.chunkset import ChunkSet
    from payload.imds import InstanceIdentity
    from payload.logship import LogShipper
    from payload.outcomes import Outcome
    from payload.productsink import ProductSink
    from payload.spot import SpotWatcher
    from payload.store import ObjectStore
    from payload.uvh5 import RangeReader


@dataclass(frozen=True)
class JobContext:
    """Everything a job may use besides its message.

    On an instance the worker's :class:`payload.attempt.JobAttempt` builds it
    (:meth:`~payload.attempt.JobAttempt.context`): the attempt owns the manifest, the
    checkpoint, the shipped log and the products, so a job never touches S3 itself.

    ``fetch`` turns an ``s3://`` URI into a local, verified file (the worker downloads and
    caches it; the local CLI passes a function that maps paths to themselves).
    ``open_ranged`` gives the job's own stored input as a file read by range
    (:mod:`payload.ranged`) with the path a download would have given it, or ``None`` (a
    folder archive; the local CLI): the job decides from its layout whether to use it.
    ``provenance`` carries what products must record and the job cannot know itself:
    ``input_identity`` (JSON), ``instance_id``, ``ami_id``, ``git_commit``.
    """

    message: JobMessage
    workdir: Path
    fetch: Callable[[str], Path]
    provenance: Mapping[str, str] = field(default_factory=dict)
    open_ranged: Callable[[str], tuple[RangeReader, Path] | None] = lambda _uri: None


@runtime_checkable
class ChunkedJob(Protocol):
    """A job the work plane can run chunk by chunk and resume anywhere between chunks."""

    chunk_suffix: str  # file extension of a chunk file, e.g. "h5"

    def chunk_ids(self) -> list[str]:
        """All chunk ids, in order; the same list for the same message, every time."""
        ...

    def run_chunk(self, chunk_id: str, out_path: Path) -> None:
        """Compute one chunk and write it to ``out_path`` (the only file it writes)."""
        ...

    def combine(self, chunk_paths: Mapping[str, Path], out_dir: Path) -> list[Path]:
        """Build the products from every chunk file; return the product paths in ``out_dir``."""
        ...


JobFactory = Callable[[JobContext], ChunkedJob]


@runtime_checkable
class StreamingCombine(Protocol):
    """A job that can combine from chunks it does not hold into products it never stores
    locally (the worker's disk bound: docs/work-plane.md, "What a worker's disk holds")."""

    def combine_into(self, chunks: ChunkSet, sink: ProductSink) -> None:
        """Write every product from ``chunks`` into ``sink``."""
        ...


class CommandRun(Protocol):
    """What a ``command`` job uses of the attempt that runs it (:mod:`payload.jobs.command`).

    The worker's :class:`payload.attempt.JobAttempt` is one. A command job keeps a working
    directory instead of chunks, so it needs more of its attempt than a :class:`JobContext`
    gives: the store and layout to sync the directory to, the watcher to act on a notice, the
    log to ship and the publish step. Named here, the job depends on this interface, not on
    the module that builds attempts (which imports every job kind).
    """

    @property
    def message(self) -> JobMessage: ...
    @property
    def number(self) -> int:
        """The attempt's place in the manifest, from 1."""
        ...

    @property
    def identity(self) -> InstanceIdentity: ...
    @property
    def layout(self) -> ObsLayout: ...
    @property
    def store(self) -> ObjectStore: ...
    @property
    def dir(self) -> Path: ...
    @property
    def logs(self) -> LogShipper | None: ...
    @property
    def watcher(self) -> SpotWatcher: ...
    @property
    def settings(self) -> AttemptSettings: ...

    def fetch(self, uri: str) -> Path:
        """A local, verified copy of an ``s3://`` input."""
        ...

    def ship_log(self) -> None:
        """Upload the attempt's log as it is now."""
        ...

    def publish(self, products: list[Path]) -> Outcome:
        """Upload the products and race for ``DONE``."""
        ...
