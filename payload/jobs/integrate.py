"""The ``integrate`` job: sum the uv cubes of many observations, then one power spectrum.

The second stage of an MWA-style analysis. Params (JSON):

``uvcubes``
    list of uv cube URIs (``s3://bucket/runs/<run>/obs/<obs>/products/uvcube.h5``) in the
    order they are summed; the message's ``input`` is not read (set it to the first URI).
``cubes_per_chunk``
    how many cubes one chunk sums (default 4).
``n_k_bins``
    power-spectrum bins (default 16).
``primary_beam``
    beam spec of the normalisation (:mod:`payload.beams`); default: the one the cubes
    record (they must all record the same).

Chunk ``part-0003`` sums cubes 12-15 into a partial uv cube; ``combine`` adds the partial
sums in chunk order. Every sum runs in a fixed order, so the integrated cube and spectrum
are bit-identical however the chunks were spread over instances. Cubes whose stack
parameters, channels or polarizations differ are rejected with an error naming the cube.
Products: ``uvcube.h5`` (the summed cube), ``powerspec.h5``, ``powerspec.png``,
``provenance.json``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contract.jobs import JobKind
from payload.beams import parse_beam
from payload.errors import InvalidInputError
from payload.jobs.base import JobContext
from payload.plots import plot_power_spectrum
from payload.powerspec import compute_power_spectrum
from payload.provenance import hdf5_attrs, job_provenance, write_provenance_json
from payload.uvcube import UVCube, sum_uvcubes

PRODUCTS = ("uvcube.h5", "powerspec.h5", "powerspec.png", "provenance.json")
_KNOWN = {"uvcubes", "cubes_per_chunk", "n_k_bins", "primary_beam"}


def parse_params(params: Mapping[str, Any]) -> tuple[list[str], int, int, str | None]:
    """Validate integrate params; raise InvalidInputError naming the parameter."""
    unknown = sorted(set(params) - _KNOWN)
    if unknown:
        raise InvalidInputError(f"unknown integrate parameter(s): {', '.join(unknown)}")
    cubes = params.get("uvcubes")
    if not isinstance(cubes, list) or not cubes or not all(isinstance(c, str) and c for c in cubes):
        raise InvalidInputError("parameter uvcubes must be a non-empty list of uv cube URIs")
    if len(set(cubes)) != len(cubes):
        raise InvalidInputError("parameter uvcubes lists a cube twice")
    per_chunk = params.get("cubes_per_chunk", 4)
    n_bins = params.get("n_k_bins", 16)
    for name, value, low in (("cubes_per_chunk", per_chunk, 1), ("n_k_bins", n_bins, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInputError(f"parameter {name} must be an integer >= {low}, got {value!r}")
    beam = params.get("primary_beam")
    if beam is not None:
        if not isinstance(beam, str):
            raise InvalidInputError("parameter primary_beam must be a beam spec string")
        parse_beam(beam)
    return list(cubes), per_chunk, n_bins, beam


class IntegrateJob:
    """Chunked sum of uv cubes (see the module docstring)."""

    chunk_suffix = "h5"

    def __init__(self, context: JobContext) -> None:
        self.context = context
        self.uris, self.per_chunk, self.n_k_bins, self.beam_spec = parse_params(
            context.message.params
        )
        self.provenance = job_provenance(
            context.provenance,
            params_hash=context.message.params_hash,
            kind=JobKind.INTEGRATE.value,
        )

    def chunk_ids(self) -> list[str]:
        n = (len(self.uris) + self.per_chunk - 1) // self.per_chunk
        return [f"part-{i:04d}" for i in range(n)]

    def run_chunk(self, chunk_id: str, out_path: Path) -> None:
        """Sum this chunk's cubes into a partial uv cube at ``out_path``."""
        if chunk_id not in self.chunk_ids():
            raise InvalidInputError(f"chunk id {chunk_id!r} is not a chunk of this job")
        index = int(chunk_id.split("-")[1])
        uris = self.uris[index * self.per_chunk : (index + 1) * self.per_chunk]
        cubes = [UVCube.read(Path(self.context.fetch(uri))) for uri in uris]
        partial = sum_uvcubes(cubes, names=uris)
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out_path.parent, suffix=".chunk.tmp")
        os.close(fd)
        try:
            partial.write(Path(tmp), attrs={"params_hash": self.provenance["params_hash"]})
            os.replace(tmp, out_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def combine(self, chunk_paths: Mapping[str, Path], out_dir: Path) -> list[Path]:
        missing = [c for c in self.chunk_ids() if c not in chunk_paths]
        if missing:
            raise InvalidInputError(f"cannot combine: chunk(s) {', '.join(missing)} missing")
        ids = self.chunk_ids()
        total = sum_uvcubes([UVCube.read(Path(chunk_paths[c])) for c in ids], names=ids)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".products-"))
        try:
            attrs = hdf5_attrs(self.provenance) | {"integrated_uvcubes": len(self.uris)}
            total.write(staging / "uvcube.h5", attrs=attrs)
            beam = parse_beam(self.beam_spec or total.primary_beam)
            ps = compute_power_spectrum(total, n_k_bins=self.n_k_bins, beam=beam)
            ps.write(staging / "powerspec.h5", attrs=attrs)
            show = total.polarizations.index("I") if "I" in total.polarizations else 0
            plot_power_spectrum(ps, staging / "powerspec.png", pol_index=show)
            write_provenance_json(
                staging / "provenance.json",
                {**self.provenance, "primary_beam": beam.spec},
                instance_id=self.context.provenance.get("instance_id", "local"),
                params=dict(self.context.message.params),
                products=list(PRODUCTS),
            )
            paths = []
            for name in PRODUCTS:
                os.replace(staging / name, out_dir / name)
                paths.append(out_dir / name)
            return paths
        finally:
            shutil.rmtree(staging, ignore_errors=True)
