"""``python -m payload image INPUT --out DIR``: run the imaging job locally.

The same :class:`~payload.jobs.image.ImageJob` the worker runs, driven chunk by chunk on
this machine with a progress bar. Chunk files go to ``DIR/.chunks``; a chunk already there
is reused, so an interrupted run resumes where it stopped (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import importlib
import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from contract.jobs import JobKind
from payload.errors import InvalidInputError
from payload.records import JobMessage, canonical_json

LOCAL_PREFIX = "s3://local/"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "image",
        help="image cube, PSF, uv cube and power spectrum of one observation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, help="uvh5, uvfits, Measurement Set or MWA raw dir")
    parser.add_argument("--out", type=Path, required=True, help="directory for the products")
    parser.add_argument("--chunk-channels", type=int, help="channels per chunk (default 8)")
    parser.add_argument("--image-size", type=int, help="pixels per side (default: from FOV)")
    parser.add_argument(
        "--pixel-scale", type=float, help="arcsec per pixel (default: from baselines)"
    )
    parser.add_argument("--fov", type=float, help="field of view in degrees (default 10)")
    parser.add_argument("--weighting", choices=("natural", "uniform"), help="default natural")
    parser.add_argument("--polarizations", help="comma-separated subset of XX,YY,I (default all)")
    parser.add_argument("--no-wgridding", action="store_true", help="turn w-gridding off")
    parser.add_argument("--uv-cell", type=float, help="uv cube cell in wavelengths (stack level)")
    parser.add_argument(
        "--uv-max", type=float, help="uv cube half-width in wavelengths (stack level)"
    )
    parser.add_argument(
        "--primary-beam",
        metavar="SPEC",
        help="beam of the power-spectrum normalisation: gaussian:FWHM_DEG[@FREQ_MHZ], "
        "airy:DIAMETER_M, mwa (default: from the telescope in the data)",
    )
    parser.add_argument(
        "--ps-taper",
        type=float,
        metavar="FWHM_DEG",
        help="image-plane taper of the uv cube, sets the uv kernel (stack level; default 20)",
    )
    parser.add_argument("--threads", type=int, help="gridding threads (default 2)")
    parser.add_argument(
        "--epsilon", type=float, help="gridding accuracy (default 1e-6; > 1e-5 is single precision)"
    )
    parser.add_argument("--fresh", action="store_true", help="discard chunks of an earlier run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """JSON params of the job from the command-line options that were given."""
    mapping = {
        "chunk_channels": args.chunk_channels,
        "image_size": args.image_size,
        "pixel_scale_arcsec": args.pixel_scale,
        "fov_deg": args.fov,
        "weighting": args.weighting,
        "polarizations": args.polarizations.split(",") if args.polarizations else None,
        "uv_cell_lambda": args.uv_cell,
        "uv_max_lambda": args.uv_max,
        "ps_taper_fwhm_deg": args.ps_taper,
        "primary_beam": args.primary_beam,
        "nthreads": args.threads,
        "epsilon": args.epsilon,
    }
    params = {k: v for k, v in mapping.items() if v is not None}
    if args.no_wgridding:
        params["wgridding"] = False
    return params


def local_fetch(uri: str) -> Path:
    """The local CLI's ``fetch``: ``s3://local/<absolute path>`` back to the path."""
    if not uri.startswith(LOCAL_PREFIX):
        raise InvalidInputError(f"{uri!r} is not a local input")
    return Path("/" + uri[len(LOCAL_PREFIX) :])


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Import without the cyclic garbage collector, then freeze what was imported.

    The collector would traverse the tens of thousands of objects big imports create again
    at every collection; frozen, they stay out of its sight for the rest of the run.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _import_combine_modules() -> None:
    """Import what only ``combine`` uses; a failure is left for combine to report.

    Without the cyclic garbage collector, as the command's own imports.
    """
    with _collector_paused():
        try:
            importlib.import_module("payload.plots")
            importlib.import_module("payload.powerspec")
            importlib.import_module("astropy.io.fits")
        except Exception:  # combine imports them again and raises there
            pass


def _prepare_out(out: Path) -> None:
    """Create ``--out`` (one line, not a traceback, when it cannot be)."""
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out}: exists and is not a directory; name a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(
            f"--out {out}: cannot create the directory ({exc.strerror or exc})"
        ) from None


def stat_signature(path: Path) -> list[tuple[str, int, int, int, int]]:
    """(name, inode, size, mtime_ns, ctime_ns) of a file or of each file of a folder.

    A replacement (a rename over the path) changes the inode; a rewrite in place changes the
    times. Cheap enough to take before and after a run without reading the data.
    """
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    out = []
    for file in files:
        st = file.stat()
        name = "" if file == path else file.relative_to(path).as_posix()
        out.append((name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return out


def verify_unchanged(
    source: Path, signature: list[tuple[str, int, int, int, int]], identity: dict[str, Any]
) -> None:
    """Raise :class:`InvalidInputError` if ``source`` is no longer the file identified."""
    from payload.provenance import file_identity

    try:
        now_signature = stat_signature(source)
        now = file_identity(source) if now_signature == signature else None
    except OSError as exc:
        raise InvalidInputError(f"{source}: changed while it was read ({exc})") from None
    if now is None or now["sha256"] != identity["sha256"]:
        raise InvalidInputError(
            f"{source}: changed while it was read (replaced or rewritten after the imaging "
            "started); no products were written. Run again on a file nobody is writing."
        )


def run(args: argparse.Namespace) -> int:
    from payload.inputcheck import check_input_path  # standard library only
    from payload.provenance import file_identity, local_git_commit

    # Before anything opens the input (hashing a named pipe would block forever).
    check_input_path(args.input)
    _prepare_out(args.out)
    source = args.input.resolve()
    # Taken before any byte is read: the hash below runs beside the first chunk, so only
    # this signature is sure to describe the file the first chunk reads.
    signature = stat_signature(source)
    # Hash the input and ask git for the commit while the heavy modules import: hashing,
    # file reads and the subprocess run without the GIL, the imports need it.
    background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="provenance")
    identity = background.submit(file_identity, source)
    commit = background.submit(local_git_commit)
    background.shutdown(wait=False)

    # Heavy imports (numpy, h5py, ducc0) only when the command runs.
    with _collector_paused():
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from payload.jobs.base import JobContext
        from payload.jobs.image import ImageJob

    obs_id = re.sub(r"[^A-Za-z0-9._-]", "_", source.name)[:128] or "obs"
    message = JobMessage.create(
        run_id="local",
        obs_id=obs_id if obs_id[0].isalnum() else f"o{obs_id}"[:128],
        input=LOCAL_PREFIX + str(source).lstrip("/"),
        kind=JobKind.IMAGE.value,
        params=params_from_args(args),
    )
    out: Path = args.out
    chunk_dir = out / ".chunks"
    if args.fresh and chunk_dir.exists():
        shutil.rmtree(chunk_dir)
    context = JobContext(
        message=message,
        workdir=out / ".work",
        fetch=local_fetch,
        provenance={
            "input_identity": canonical_json(identity.result()),
            "git_commit": commit.result(),
            "instance_id": "local",
            "ami_id": "none",
        },
    )
    job = ImageJob(context)
    chunk_ids = job.chunk_ids()
    # A chunk is reused only by a run with the same input content and the same params:
    # the directory is named by both (the job also checks both when it combines).
    made_from = canonical_json(
        {"input": identity.result()["sha256"], "params": message.params_hash}
    )
    chunk_dir = chunk_dir / hashlib.sha256(made_from.encode()).hexdigest()[:16]
    paths = {c: chunk_dir / f"{c}.{job.chunk_suffix}" for c in chunk_ids}
    started = time.perf_counter()
    # combine needs matplotlib, astropy.cosmology and astropy.io.fits (~1.4 s of imports):
    # load them in the background while the chunks are gridded (ducc0 runs without the
    # GIL), not after.
    # First the beam's placement, whose reader imports pyuvdata and astropy: two threads
    # importing astropy for the first time at once can deadlock on its module locks
    # (_DeadlockError on astropy.units, seen with an MWA Measurement Set's pointed beam).
    job.drift_plan  # noqa: B018 (cached; run_chunk and combine use it)
    warm = threading.Thread(target=_import_combine_modules, name="warm-imports", daemon=True)
    warm.start()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        disable=args.quiet,
    ) as progress:
        task = progress.add_task(f"imaging {source.name}: chunks", total=len(chunk_ids))
        for chunk_id in chunk_ids:
            if not paths[chunk_id].exists():
                job.run_chunk(chunk_id, paths[chunk_id])
            progress.advance(task)
        # Every chunk re-opens the input by path: it must still be the file identified at
        # the start, or the cube would mix two observations under one provenance.
        verify_unchanged(source, signature, identity.result())
        chunks_done = time.perf_counter()
        warm.join()
        from payload.jobs.image import COMBINE_STEPS

        combine = progress.add_task("writing products", total=len(COMBINE_STEPS))

        def step(done: str) -> None:  # called from combine's two threads; rich locks
            progress.update(combine, advance=1, description=f"writing products: {done}")

        job.on_step = step
        products = job.combine(paths, out)
    summary = {
        "products": [str(p) for p in products],
        "chunks": len(chunk_ids),
        "image_size": job.geometry.npix,
        "pixel_scale_arcsec": round(job.geometry.pixsize_arcsec, 3),
        "seconds": round(time.perf_counter() - started, 2),
        # where the time went: reading, imaging and gridding the chunks; then the products
        # (power spectrum with its errors, figures) — what bench/imaging.py compares
        "chunks_seconds": round(chunks_done - started, 2),
        "combine_seconds": round(time.perf_counter() - chunks_done, 2),
    }
    provenance = json.loads((out / "provenance.json").read_text())
    if "power_spectrum" in provenance:
        summary["power_spectrum"] = provenance["power_spectrum"]  # why it is empty
    if "power_spectrum_warnings" in provenance:  # what it cannot vouch for (pscheck)
        summary["power_spectrum_warnings"] = provenance["power_spectrum_warnings"]
    if "beyond_grid" in provenance:
        # visibilities left out as beyond the image or uv cube grid: say so, never silently
        beyond = provenance["beyond_grid"]  # an object (older payloads: JSON text)
        summary["beyond_grid"] = json.loads(beyond) if isinstance(beyond, str) else beyond
    if not args.quiet:
        print(json.dumps(summary, indent=1))
    return 0
