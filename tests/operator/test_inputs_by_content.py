"""Inputs stored by content: ``spotcube submit`` to moto's server, restored as the worker does.

Keys are checked against ``hashlib.sha256`` of the bytes (not the code's own digest), the
"no second upload" against S3 object versions (a second PUT would add a version), and a real
Measurement Set (pyuvdata's ``1102865728_small.ms``, MWA) against pyuvdata reading the restored
copy. Hostile archives are refused by the restore before anything is written outside its folder.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payload import inputs
from payload.errors import InvalidInputError
from payload.store import ObjectStore, s3_client
from spotcube.local.cloud import provision
from spotcube.local.motoserver import local_client
from tests.clirunner import run_cli

RAW = "spotcube-local-demo-raw"


@pytest.fixture
def stack(cloud: str) -> str:
    provision(cloud)
    local_client("s3", cloud).put_bucket_versioning(
        Bucket=RAW, VersioningConfiguration={"Status": "Enabled"}
    )
    return cloud


@pytest.fixture(scope="module")
def small_ms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Measurement Set written by pyuvdata (python-casacore) from a synthetic observation.

    pyuvdata 3.2.8's wheel no longer ships ``1102865728_small.ms``; this is the same kind of
    folder: casacore tables, subtables in subfolders, binary column files.
    """
    pytest.importorskip("casacore.tables", reason="python-casacore writes the MS")
    from pyuvdata import UVData

    from payload.synth import write_preset

    base = tmp_path_factory.mktemp("ms")
    write_preset(base / "tiny.uvh5", "tiny", seed=5)
    uvd = UVData.from_file(str(base / "tiny.uvh5"))
    path = base / "1102865728_tiny.ms"
    uvd.write_ms(str(path))
    return path


def _submit(endpoint: str, *paths: Path, run_id: str) -> list[str]:
    """Submit and return the input URIs of the queued jobs, in argument order."""
    result = run_cli(["submit", "--endpoint", endpoint, *map(str, paths), "--run-id", run_id])
    assert result.status == 0, result.stderr
    uris = [line.rsplit(" as ", 1)[1] for line in result.stderr_lines if " as s3://" in line]
    assert len(uris) == len(paths), result.stderr
    return uris


def _versions(endpoint: str) -> list[dict[str, object]]:
    listing = local_client("s3", endpoint).list_object_versions(Bucket=RAW)
    return list(listing.get("Versions", []))


def _store(endpoint: str) -> ObjectStore:
    return ObjectStore(s3_client(endpoint), RAW)


def test_same_name_other_bytes_do_not_overwrite(stack: str, tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "obs.uvh5", tmp_path / "b" / "obs.uvh5"
    for path, fill in ((first, b"1"), (second, b"2")):
        path.parent.mkdir()
        path.write_bytes(fill * 5000)
    (uri1,) = _submit(stack, first, run_id="r1")
    (uri2,) = _submit(stack, second, run_id="r2")
    assert uri1 != uri2
    s3 = local_client("s3", stack)
    for uri, path in ((uri1, first), (uri2, second)):
        key = uri.removeprefix(f"s3://{RAW}/")
        assert key == f"inputs/sha256/{hashlib.sha256(path.read_bytes()).hexdigest()}"
        got = s3.get_object(Bucket=RAW, Key=key)
        assert got["Body"].read() == path.read_bytes()  # the first run's input is intact
        assert got["Metadata"]["spotcube-name"] == "obs.uvh5"
        # the digest the worker checks before it reads the object by range, unhashed
        assert got["Metadata"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(_versions(stack)) == 2


def test_only_metadata_that_names_the_keys_bytes_vouches_for_them() -> None:
    """A content-keyed object overwritten by another tool carries no spotcube metadata: the
    worker then downloads and hashes it whole rather than trusting it by range."""
    digest = hashlib.sha256(b"x").hexdigest()
    key = inputs.content_key("", digest)
    vouched = {"Metadata": inputs.metadata_for("a.uvh5", inputs.FORM_FILE, sha256=digest)}
    assert inputs.vouched_by_metadata(vouched, key)
    assert not inputs.vouched_by_metadata({"Metadata": {}}, key)
    assert not inputs.vouched_by_metadata({"Metadata": {"sha256": "0" * 64}}, key)
    assert inputs.vouched_by_metadata({}, "data/obs.uvh5")  # no digest named, none to check


def test_the_same_bytes_are_uploaded_once(stack: str, tmp_path: Path) -> None:
    one, other = tmp_path / "one.uvh5", tmp_path / "other-name.uvh5"
    one.write_bytes(b"same bytes" * 1000)
    other.write_bytes(one.read_bytes())
    (uri1,) = _submit(stack, one, run_id="r1")
    result = run_cli(["submit", "--endpoint", stack, str(other), "--run-id", "r2"])
    assert result.status == 0
    assert f"already stored as {uri1}" in result.stderr
    assert len(_versions(stack)) == 1  # no second PUT, not even of identical bytes


def test_a_name_with_spaces_and_unicode_survives(stack: str, tmp_path: Path) -> None:
    path = tmp_path / "Fornax A – 2014 obs.uvfits"
    path.write_bytes(b"x" * 300)
    (uri,) = _submit(stack, path, run_id="r1")
    restored = inputs.restore(
        _store(stack), uri.removeprefix(f"s3://{RAW}/"), tmp_path / "w", uri=uri
    )
    assert restored.name == path.name
    assert restored.read_bytes() == path.read_bytes()


@pytest.mark.slow
def test_a_measurement_set_folder_round_trips_and_pyuvdata_reads_it(
    stack: str, small_ms: Path, tmp_path: Path
) -> None:
    from pyuvdata import UVData

    (uri,) = _submit(stack, small_ms, run_id="ms")
    restored = inputs.restore(
        _store(stack), uri.removeprefix(f"s3://{RAW}/"), tmp_path / "work", uri=uri
    )
    assert restored.name == small_ms.name
    assert restored.is_dir()
    original = sorted(p.relative_to(small_ms) for p in small_ms.rglob("*") if p.is_file())
    copied = sorted(p.relative_to(restored) for p in restored.rglob("*") if p.is_file())
    assert copied == original
    for name in original:
        assert (restored / name).read_bytes() == (small_ms / name).read_bytes(), name
    theirs, ours = UVData.from_file(str(small_ms)), UVData.from_file(str(restored))
    np.testing.assert_array_equal(ours.data_array, theirs.data_array)
    np.testing.assert_array_equal(ours.uvw_array, theirs.uvw_array)
    # A copy has other mtimes and owners: the archive, and so the key, depend on bytes only.
    copy = shutil.copytree(small_ms, tmp_path / "copy" / small_ms.name)
    result = run_cli(["submit", "--endpoint", stack, str(copy), "--run-id", "ms2"])
    assert f"already stored as {uri}" in result.stderr
    assert len(_versions(stack)) == 1


def _hostile_tar(member: tarfile.TarInfo, body: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        member.size = len(body) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(body) if member.isfile() else None)
    return buffer.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "archive",
    [
        _hostile_tar(_entry("../escaped.txt"), b"out"),
        _hostile_tar(_entry("link", tarfile.SYMTYPE, "/etc/passwd")),
        _hostile_tar(_entry("up", tarfile.SYMTYPE, "../../..")),
        _hostile_tar(_entry("dev", tarfile.CHRTYPE)),
        b"this is not a tar archive at all" * 40,
        _hostile_tar(_entry("table.dat"), b"x" * 2000)[:700],  # truncated
    ],
    ids=["dotdot", "symlink-abs", "symlink-up", "device", "garbage", "truncated"],
)
def test_hostile_archives_are_invalid_input_and_write_nothing_outside(
    cloud: str, tmp_path: Path, archive: bytes
) -> None:
    """PEP 706's "data" filter is what refuses these (Python docs, tarfile "Extraction filters")."""
    provision(cloud)
    key = inputs.content_key("", hashlib.sha256(archive).hexdigest())
    local_client("s3", cloud).put_object(
        Bucket=RAW, Key=key, Body=archive, Metadata=inputs.metadata_for("x.ms", inputs.FORM_TAR)
    )
    work = tmp_path / "deep" / "work"
    with pytest.raises(InvalidInputError, match="not a usable folder archive"):
        inputs.restore(_store(cloud), key, work, uri=f"s3://{RAW}/{key}")
    outside = {p for p in tmp_path.rglob("*") if work not in p.parents and p != work}
    assert outside == {tmp_path / "deep"}
    assert not (work / "x.ms").exists()


def test_an_absolute_member_lands_inside_the_folder(cloud: str, tmp_path: Path) -> None:
    """The "data" filter strips a leading "/" rather than refusing (PEP 706)."""
    provision(cloud)
    archive = _hostile_tar(_entry("/tmp/spotcube-absolute-escape.txt"), b"in")
    key = inputs.content_key("", hashlib.sha256(archive).hexdigest())
    local_client("s3", cloud).put_object(
        Bucket=RAW, Key=key, Body=archive, Metadata=inputs.metadata_for("x.ms", inputs.FORM_TAR)
    )
    restored = inputs.restore(_store(cloud), key, tmp_path / "w", uri=f"s3://{RAW}/{key}")
    assert (restored / "tmp" / "spotcube-absolute-escape.txt").read_bytes() == b"in"
    assert not Path("/tmp/spotcube-absolute-escape.txt").exists()


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", "a/b", "", "%2e%2e"])
def test_a_hostile_name_in_metadata_falls_back_to_the_key(
    cloud: str, tmp_path: Path, name: str
) -> None:
    provision(cloud)
    body = b"payload"
    key = inputs.content_key("", hashlib.sha256(body).hexdigest())
    metadata = {inputs.NAME_METADATA: name, inputs.FORM_METADATA: inputs.FORM_FILE}
    local_client("s3", cloud).put_object(Bucket=RAW, Key=key, Body=body, Metadata=metadata)
    restored = inputs.restore(_store(cloud), key, tmp_path / "w", uri=f"s3://{RAW}/{key}")
    assert restored == tmp_path / "w" / key.rsplit("/", 1)[1]
    assert restored.read_bytes() == body


def test_an_object_stored_by_name_keeps_its_key_name(cloud: str, tmp_path: Path) -> None:
    """``s3://`` URIs of a group archive have no spotcube metadata: the worker's old naming."""
    provision(cloud)
    local_client("s3", cloud).put_object(Bucket=RAW, Key="mwa/1061316296.uvfits", Body=b"u")
    uri = f"s3://{RAW}/mwa/1061316296.uvfits"
    restored = inputs.restore(_store(cloud), "mwa/1061316296.uvfits", tmp_path, uri=uri)
    assert restored == tmp_path / "1061316296.uvfits"


def test_a_missing_input_is_invalid(cloud: str, tmp_path: Path) -> None:
    provision(cloud)
    with pytest.raises(InvalidInputError, match="does not exist"):
        inputs.restore(_store(cloud), "inputs/sha256/" + "0" * 64, tmp_path, uri="s3://x/y")


def test_a_folder_with_a_symlink_is_refused_at_submit(stack: str, tmp_path: Path) -> None:
    folder = tmp_path / "obs.ms"
    folder.mkdir()
    (folder / "table.dat").write_bytes(b"t")
    (folder / "escape").symlink_to("/etc/hostname")
    result = run_cli(["submit", "--endpoint", stack, str(folder)])
    assert result.status == 2
    assert "only regular files and folders" in result.stderr
    assert _versions(stack) == []


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_archives_restore_inside_or_fail_as_invalid(
    stack: str, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Truncate an archive or overwrite bytes anywhere (headers included): the restore either
    gives a folder whose every path is inside it, or raises InvalidInputError."""
    cloud = stack
    source = tmp_path_factory.mktemp("src") / "obs.ms"
    (source / "ANTENNA").mkdir(parents=True)
    (source / "table.dat").write_bytes(b"main" * 100)
    (source / "ANTENNA" / "table.f0").write_bytes(bytes(range(256)) * 4)
    buffer = io.BytesIO()
    inputs.pack_directory(source, buffer)
    archive = bytearray(buffer.getvalue())
    if data.draw(st.booleans(), label="truncate"):
        archive = archive[: data.draw(st.integers(0, len(archive) - 1), label="keep")]
    else:
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            where = data.draw(st.integers(0, len(archive) - 1), label="where")
            archive[where] = data.draw(st.integers(0, 255), label="byte")
    key = "by-name/obs.ms.tar"  # not a content key: the damage reaches the extraction
    local_client("s3", cloud).put_object(
        Bucket=RAW, Key=key, Body=bytes(archive), Metadata=inputs.metadata_for("obs.ms", "tar")
    )
    work = tmp_path_factory.mktemp("work")
    try:
        restored = inputs.restore(_store(cloud), key, work, uri=f"s3://{RAW}/{key}")
    except InvalidInputError:
        assert not (work / "obs.ms").exists()
    else:
        assert restored == work / "obs.ms"
        for path in restored.rglob("*"):
            assert restored in path.resolve().parents
    assert {p.name for p in work.iterdir()} <= {"obs.ms"}
