"""``python -m payload rechunk INPUT OUTPUT``: store a uvh5 file's visibilities by frequency.

A worker then reads each chunk's channels of the stored file by range instead of
downloading all of it first (docs/work-plane.md, "Large inputs"). Memory stays bounded
(blocks of rows); the values, dtypes and compression are unchanged (:mod:`payload.rechunk`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rechunk",
        help="rewrite a uvh5 file in frequency chunks, for reading by range on a worker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, help="a uvh5 file")
    parser.add_argument("output", type=Path, help="the uvh5 file to write")
    parser.add_argument(
        "--chunk-channels",
        type=int,
        default=8,
        help="channels per HDF5 chunk: at most the job's chunk_channels (default 8)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from payload.rechunk import rechunk

    rechunk(args.input, args.output, chunk_channels=args.chunk_channels)
    print(args.output)
    return 0
