"""``python -m payload integrate CUBE... --out DIR``: sum uv cubes, integrated power spectrum.

The same :class:`~payload.jobs.integrate.IntegrateJob` the worker runs, on local files. Cubes
are summed in the order given; chunk files go to ``DIR/.chunks`` and are reused on a re-run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from contract.jobs import JobKind
from payload.commands.image import LOCAL_PREFIX, local_fetch
from payload.errors import InvalidInputError
from payload.records import JobMessage, canonical_json


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "integrate",
        help="sum the uv cubes of many observations and compute their power spectrum",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("cubes", type=Path, nargs="+", help="uvcube.h5 files of `image` runs")
    parser.add_argument("--out", type=Path, required=True, help="directory for the products")
    parser.add_argument("--cubes-per-chunk", type=int, default=4, help="cubes per chunk")
    parser.add_argument("--k-bins", type=int, default=16, help="power-spectrum bins")
    parser.add_argument(
        "--primary-beam",
        metavar="SPEC",
        help="beam of the normalisation (default: the one the cubes were made with)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from payload.jobs.base import JobContext
    from payload.jobs.integrate import IntegrateJob
    from payload.provenance import local_git_commit

    cubes = [path.resolve() for path in args.cubes]
    for path in cubes:
        if not path.is_file():
            raise InvalidInputError(f"{path}: file does not exist")
    uris = [LOCAL_PREFIX + str(path).lstrip("/") for path in cubes]
    message = JobMessage.create(
        run_id="local",
        obs_id="integrated",
        input=uris[0],
        kind=JobKind.INTEGRATE.value,
        params={
            "uvcubes": uris,
            "cubes_per_chunk": args.cubes_per_chunk,
            "n_k_bins": args.k_bins,
            **({"primary_beam": args.primary_beam} if args.primary_beam else {}),
        },
    )
    out: Path = args.out
    context = JobContext(
        message=message,
        workdir=out / ".work",
        fetch=local_fetch,
        provenance={
            "input_identity": canonical_json([p.name for p in cubes]),
            "git_commit": local_git_commit(),
            "instance_id": "local",
            "ami_id": "none",
        },
    )
    job = IntegrateJob(context)
    chunk_dir = out / ".chunks" / message.params_hash[:16]
    paths = {c: chunk_dir / f"{c}.{job.chunk_suffix}" for c in job.chunk_ids()}
    for chunk_id, path in paths.items():
        if not path.exists():
            job.run_chunk(chunk_id, path)
    for product in job.combine(paths, out):
        print(product)
    return 0
