"""Pure parts of the work plane: selftest determinism, manifests, settled files, the CLI."""

from __future__ import annotations

import ast
import base64
import hashlib
import logging
import os
from pathlib import Path

import pytest

from contract.settings import DEFAULT_CHECKPOINT_INTERVAL
from infra.config import parse_config
from payload.checkpoint import merge_manifests
from payload.cli import build_parser
from payload.commands.worker import env_name
from payload.commands.worker import options as worker_options
from payload.errors import InvalidInputError
from payload.jobs import build_job
from payload.jobs.base import JobContext
from payload.jobs.command import CommandParams, WorkdirSync
from payload.jobs.selftest import SelfTestJob, chunk_bytes_for
from payload.records import Attempt, ChunkRecord, JobMessage, Manifest
from payload.store import ObjectStore, s3_client
from spotcube.local.motoserver import local_client
from tests.infra.configs import ALL
from tests.infra.program import run_program

PAYLOAD = Path(__file__).resolve().parents[2] / "payload"


def _selftest(tmp_path: Path, params: dict[str, object], data: bytes = b"input") -> SelfTestJob:
    source = tmp_path / "in.dat"
    source.write_bytes(data)
    message = JobMessage.create(
        run_id="r", obs_id="o", input="s3://raw/in.dat", kind="selftest", params=params
    )
    job = build_job(JobContext(message=message, workdir=tmp_path, fetch=lambda _u: source))
    assert isinstance(job, SelfTestJob)
    return job


def test_selftest_chunks_are_deterministic_and_input_dependent(tmp_path: Path) -> None:
    job = _selftest(tmp_path, {"chunks": 3, "chunk_seconds": 0, "chunk_bytes": 100})
    assert job.chunk_ids() == ["0", "1", "2"]
    job.run_chunk("1", tmp_path / "a")
    job.run_chunk("1", tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    assert (tmp_path / "a").read_bytes() == chunk_bytes_for(b"input", 1, 100)
    assert chunk_bytes_for(b"input", 1, 100) != chunk_bytes_for(b"input", 2, 100)
    assert chunk_bytes_for(b"input", 1, 100) != chunk_bytes_for(b"other", 1, 100)


def test_selftest_combine_writes_product_and_digests(tmp_path: Path) -> None:
    job = _selftest(tmp_path, {"chunks": 2, "chunk_seconds": 0, "chunk_bytes": 10})
    paths = {}
    for cid in job.chunk_ids():
        paths[cid] = tmp_path / f"{cid}.bin"
        job.run_chunk(cid, paths[cid])
    blob, summary = job.combine(paths, tmp_path / "out")
    assert blob.read_bytes() == paths["0"].read_bytes() + paths["1"].read_bytes()
    assert hashlib.sha256(blob.read_bytes()).hexdigest() in summary.read_text()
    with pytest.raises(ValueError, match="lacks chunks"):
        job.combine({"0": paths["0"]}, tmp_path / "out2")


@pytest.mark.parametrize(
    "params",
    [{"chunks": 0}, {"chunks": "3"}, {"chunk_bytes": -1}, {"chunk_seconds": "x"}, {"chunks": True}],
    ids=["zero", "string", "negative", "seconds", "bool"],
)
def test_selftest_rejects_bad_params(tmp_path: Path, params: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError, match="selftest parameter"):
        _selftest(tmp_path, params)


def test_selftest_rejects_empty_input(tmp_path: Path) -> None:
    job = _selftest(tmp_path, {"chunks": 1, "chunk_seconds": 0}, data=b"")
    with pytest.raises(InvalidInputError, match="empty"):
        job.run_chunk("0", tmp_path / "x")


def _manifest(chunks: dict[str, str], attempts: list[str], params_hash: str = "h") -> Manifest:
    return Manifest(
        run_id="r",
        obs_id="o",
        kind="selftest",
        params_hash=params_hash,
        chunks={c: ChunkRecord(key=f"k/{c}", size=1, sha256=s) for c, s in chunks.items()},
        attempts=[
            Attempt(instance_id=i, start=f"2026-01-0{n + 1}") for n, i in enumerate(attempts)
        ],
    )


def test_merge_keeps_both_workers_chunks_and_attempts() -> None:
    ours = _manifest({"0": "a", "2": "c"}, ["i-b"])
    theirs = _manifest({"0": "a", "1": "b"}, ["i-a"])
    merge_manifests(ours, theirs)
    assert sorted(ours.chunks) == ["0", "1", "2"]
    assert [a.instance_id for a in ours.attempts] == ["i-a", "i-b"]


def test_merge_ignores_other_params() -> None:
    ours = _manifest({"0": "a"}, ["i-b"])
    merge_manifests(ours, _manifest({"1": "b"}, ["i-a"], params_hash="other"))
    assert sorted(ours.chunks) == ["0"]


def test_sync_survives_files_renamed_or_removed_by_the_program(cloud: str, tmp_path: Path) -> None:
    """A pipeline writes ``x.tmp`` and renames it (found by the MWA pipeline example): a name
    the scan saw may be gone by the upload. Not settled, never an attempt-ending traceback;
    and a file the program deleted leaves the index, so a later attempt does not restore it.
    Against moto's S3 server."""
    local_client("s3", cloud).create_bucket(Bucket="sync-test")
    store = ObjectStore(s3_client(cloud, "us-east-1"), "sync-test")
    root = tmp_path / "work"
    root.mkdir()
    sync = WorkdirSync(store=store, prefix="w/", index_key="w.index", root=root)
    (root / "keep.txt").write_text("kept")
    (root / "scratch.txt").write_text("temporary")
    assert sync.sync(["keep.txt", "scratch.txt", "renamed-away.tmp"]) == 2
    (root / "scratch.txt").unlink()
    assert sync.sync([]) == 0
    restored = WorkdirSync(store=store, prefix="w/", index_key="w.index", root=tmp_path / "next")
    assert restored.restore() == 1
    assert sorted(p.name for p in (tmp_path / "next").iterdir()) == ["keep.txt"]


def test_settled_files_only(tmp_path: Path) -> None:
    """Settled files are synced oldest first, and none before an older file that is not
    settled (a step's stamp never before its outputs). Modification times are set
    explicitly: a kernel with coarse timestamps gives files written in one tick equal times."""
    root = tmp_path / "work"
    root.mkdir()
    sync = WorkdirSync(store=None, prefix="p/", index_key="i", root=root)  # type: ignore[arg-type]

    def write(name: str, text: str, second: int) -> None:
        (root / name).write_text(text)
        os.utime(root / name, ns=(second * 10**9, second * 10**9))

    write("done.txt", "final", 1)
    write("open.txt", "partial", 2)
    held = {(root / "open.txt").resolve()}
    assert sync.scan(held) == []  # first sight: nothing is settled yet
    write("growing.txt", "1", 3)
    assert sync.scan(held) == ["done.txt"]  # open.txt is held open; growing.txt is new
    write("growing.txt", "12", 4)
    assert sync.scan(held) == ["done.txt"]  # growing.txt changed since last scan
    # open.txt just closed, not settled yet: growing.txt, written after it, waits for it.
    assert sync.scan(set()) == ["done.txt"]
    assert sync.scan(set()) == ["done.txt", "open.txt", "growing.txt"]
    write("early.txt", "old", 0)  # an old file appears (mv from scratch keeps its mtime)
    assert sync.scan(set()) == []  # it is older than all: everything waits for it
    assert sync.scan(set()) == ["early.txt", "done.txt", "open.txt", "growing.txt"]


def test_command_params_validation() -> None:
    assert CommandParams.parse({"argv": ["fhd", "obs"]}).products == ["products/*"]
    bad_params: list[dict[str, object]] = [
        {},
        {"argv": []},
        {"argv": "ls"},
        {"argv": ["x"], "env": {"A": 1}},
    ]
    for bad in bad_params:
        with pytest.raises(InvalidInputError, match="command job parameter"):
            CommandParams.parse(bad)


def test_worker_options_come_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTCUBE_QUEUE_URL", "http://q")
    monkeypatch.setenv("SPOTCUBE_IDLE_EXIT", "42")
    monkeypatch.setenv("SPOTCUBE_LOG_JSON", "true")
    args = build_parser().parse_args(["worker", "--products-bucket", "b"])
    assert args.queue_url == "http://q"
    assert args.idle_exit == 42.0
    assert args.log_json is True
    assert args.products_bucket == "b"
    assert args.checkpoint_interval == DEFAULT_CHECKPOINT_INTERVAL  # its one home


def test_worker_without_queue_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["worker"])
    # The worker configures the root logger for its process, bound to this test's captured
    # stderr; later tests must not log into that stream once pytest has closed it.
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        assert args.func(args) == 2
    finally:
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
    assert "SPOTCUBE_QUEUE_URL" in capsys.readouterr().err


def _module_imports(path: Path, name: str) -> set[str]:
    """``payload`` modules that ``path`` names in any import statement.

    Every import counts, also those inside functions and under ``if TYPE_CHECKING:``: a
    lazy or annotation-only import still means one module is written against the other, and
    a cycle of those is what the public attempt interface exists to avoid. ``from payload.x
    import y`` counts as ``payload.x``, and as ``payload.x.y`` when that is a module.
    """
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m == "payload" or m.startswith("payload.")}


def test_payload_modules_import_without_cycles() -> None:
    """No payload module needs, at import time, a module that needs it back.

    ``payload.jobs.command`` used to import the worker's private attempt class while the
    worker imported the command job: a cycle that only lazy imports kept from breaking.
    """
    modules = {}
    for path in sorted(PAYLOAD.rglob("*.py")):
        parts = path.relative_to(PAYLOAD.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {name: _module_imports(path, name) & modules.keys() for name, path in modules.items()}
    assert "payload.worker" not in graph["payload.jobs.command"]

    def cycle_from(start: str) -> list[str] | None:
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return [*path, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    cycles = [c for name in graph if (c := cycle_from(name))]
    assert not cycles, " -> ".join(cycles[0])


@pytest.mark.parametrize("label", sorted(ALL))
def test_every_setting_the_user_data_writes_is_a_worker_option(
    label: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stack renders /etc/spotcube/worker.env (infra/fleet.py) for the worker's unit.

    Each ``SPOTCUBE_*`` line must name an option of ``python -m payload worker`` and reach
    it: a renamed option would otherwise be ignored on every instance, silently. Read from
    the launch template the Pulumi program declares under mocks, as EC2 would receive it.
    """
    raw, stack = ALL[label]
    program = run_program(parse_config(raw, stack=stack))
    (template,) = program.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    user_data = base64.b64decode(template.inputs["userData"]).decode()
    # root and the worker unit's group read it; the worker's settings are no one else's
    assert "    owner: 'root:spotcube'\n    permissions: '0640'\n" in user_data
    env_file = base64.b64decode(user_data.split("content: ")[1].strip()).decode()
    settings = dict(line.split("=", 1) for line in env_file.splitlines() if "=" in line)
    written = {k: v for k, v in settings.items() if k.startswith("SPOTCUBE_")}
    assert {"SPOTCUBE_QUEUE_URL", "SPOTCUBE_PRODUCTS_BUCKET"} <= written.keys()
    accepted = {env_name(flag) for flag, *_ in worker_options()}
    assert written.keys() <= accepted, sorted(written.keys() - accepted)
    for name in accepted:
        monkeypatch.delenv(name, raising=False)
    for name, value in written.items():
        monkeypatch.setenv(name, value)
    args = build_parser().parse_args(["worker"])
    for name, value in written.items():
        attr = name.removeprefix("SPOTCUBE_").lower()
        assert str(getattr(args, attr)) == value, name
