"""Put the observation's Measurement Set at DEST: copy a directory, unpack a .tar, or download
an ``s3://`` .tar first. Exit 65 (bad input: spotcube fails the job for good) when SOURCE is
not a Measurement Set; any other failure is left to spotcube's transient retries.

    python fetch_input.py SOURCE DEST

boto3 reads the endpoint from ``AWS_ENDPOINT_URL`` (set by ``spotcube demo`` for the local
cloud; unset on AWS) and credentials from the instance profile.
"""

from __future__ import annotations

import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

BAD_INPUT = 65


def fail(message: str) -> None:
    print(f"fetch_input: {message}", file=sys.stderr)
    sys.exit(BAD_INPUT)


def measurement_set_in(folder: Path) -> Path:
    """The Measurement Set in an unpacked archive: the folder itself or its one subfolder."""
    if (folder / "table.dat").is_file():
        return folder
    children = [p for p in folder.iterdir() if p.is_dir()]
    if len(children) == 1 and (children[0] / "table.dat").is_file():
        return children[0]
    fail(f"the archive holds no Measurement Set (a folder with table.dat): {folder}")
    raise AssertionError  # unreachable: fail() exits


def unpack(archive: Path, dest: Path) -> None:
    with tempfile.TemporaryDirectory(dir=dest.parent) as scratch:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="data")  # no absolute paths, no links out
        except (tarfile.TarError, OSError) as exc:
            fail(f"{archive} is not a readable .tar: {exc}")
        measurement_set_in(Path(scratch)).rename(dest)


def main(source: str, dest_name: str) -> None:
    dest = Path(dest_name).resolve()
    if source.startswith("s3://"):
        import boto3

        bucket, _, key = source[5:].partition("/")
        with tempfile.TemporaryDirectory(dir=dest.parent) as scratch:
            local = Path(scratch) / "input.tar"
            boto3.client("s3").download_file(bucket, key, str(local))
            unpack(local, dest)
        return
    path = Path(source)
    if path.is_dir():
        shutil.copytree(measurement_set_in(path), dest)
    elif path.is_file():
        unpack(path, dest)
    else:
        fail(f"{source}: no such Measurement Set, .tar or s3:// URI")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: fetch_input.py SOURCE DEST")
    main(sys.argv[1], sys.argv[2])
