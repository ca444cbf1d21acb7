"""The ``image`` job: image cube, PSF cube, uv cube and power spectrum of one observation.

Chunks are contiguous frequency ranges of ``chunk_channels`` channels, named
``ch00000-00008`` (start and stop channel). A chunk file (HDF5) holds the chunk's dirty and
PSF images (in FITS order and byte layout, each distinct PSF once), weight sums and gridded
uv planes for every polarization; it depends only on the input file, the params and the
chunk's channels, and is written with no timestamps, so a chunk computed by any process is
byte-identical. ``combine`` reads the chunks in channel order and writes the products (the
image cubes by copying the chunks' bytes) all or nothing: into a directory through a
temporary one renamed into place, or on a worker (``combine_into``) from the stored chunk
objects by range straight into the store, so the worker's disk never holds the cubes:

``image_cube.fits``, ``psf_cube.fits``, ``uvcube.h5``, ``powerspec.h5``, ``powerspec.png``,
``image.png`` and ``provenance.json``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from contract.jobs import JobKind
from payload.beamframe import BeamFrame, frame_from_uvh5
from payload.beams import PrimaryBeam, is_fixed_on_ground, mwa_delays_from_uvh5, resolve_beam
from payload.chunkset import ChunkSet, LocalChunks
from payload.drift import DriftPlan, grid_segments, plan_drift, stack_segments
from payload.errors import InvalidInputError
from payload.fitsio import Segment, write_cube
from payload.imaging import ImageGeometry, choose_geometry, image_chunk
from payload.jobs.base import JobContext
from payload.jobs.sizing import check_image_job
from payload.params import ImagingParams
from payload.productsink import DirectoryProducts, ProductSink
from payload.provenance import fits_cards, hdf5_attrs, job_provenance, write_provenance_json
from payload.pscheck import check_products, provenance_entry
from payload.reading import (
    ObservationInfo,
    VisChunk,
    open_observation,
    open_observation_by_range,
    range_read_problem,
    read_chunk,
)
from payload.uvcube import UVCube, UVGrid, time_halves
from payload.uvh5 import reader_failure
from payload.validation import FlagCounts, check_finite_products, check_nothing_left

# What combine does, in the names ``on_step`` reports (the uv cube, power spectrum and
# figures are made on a second thread while the image cubes are written).
COMBINE_STEPS = (
    "chunks read",
    "image cube",
    "PSF cube",
    "uv cube",
    "power spectrum",
    "figures",
    "provenance",
)
# Said in powerspec.h5 (``not_estimated``), provenance.json (``power_spectrum``) and the
# log when no uv cell has samples of both halves: P(k) is an even x odd cross power.
NOT_ESTIMATED = (
    "not estimated: no uv cell holds samples of both the even and the odd time samples "
    "({n_times} time sample(s) in the input; the power spectrum is their cross power; a "
    "cross of two sets of baselines is not made instead: it needs calibrated gains, and "
    "sets sharing no antenna, or the sky noise they share biases it; docs/imaging.md)"
)

log = logging.getLogger(__name__)

PRODUCTS = (
    "image_cube.fits",
    "psf_cube.fits",
    "uvcube.h5",
    "powerspec.h5",
    "powerspec.png",
    "image.png",
    "provenance.json",
)
# Per (pol, channel): visibilities beyond the image grid and the uv cube's grid.
BEYOND_GRID_KEYS = (
    "image_beyond_count",
    "image_beyond_weight",
    "image_given_weight",
    "uv_beyond_count",
    "uv_beyond_weight",
    "uv_given_weight",
)
_CHUNK_ID = re.compile(r"^ch(\d{5})-(\d{5})$")
_H5: dict[str, Any] = {"track_times": False}
# Chunk files hold images in FITS order and byte layout since this value was introduced;
# combine refuses chunks without it instead of writing mirrored or byte-swapped cubes.
IMAGE_ORDER = "fits-y-x-big-endian-float32"


def _cubes_in_chunk_file(
    path: str, dirty_shape: tuple[int, ...], psf_shape: tuple[int, ...]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Create the chunk file with its ``dirty`` and ``psf`` datasets; map them as arrays.

    The datasets are contiguous and allocated at creation, so their place in the file is
    fixed before any pixel is written: the gridding threads then write each channel's
    images straight into the file (the page cache) through the maps, and no cube is
    copied into the file afterwards. Never-written pixels (a fully flagged channel) read
    as zeros, as in a fresh array.
    """
    layout = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    layout.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    with h5py.File(path, "w", track_order=True) as handle:
        offsets = [
            handle.create_dataset(
                name, shape=shape, dtype=">f4", dcpl=layout, fill_time="never", **_H5
            ).id.get_offset()
            for name, shape in (("dirty", dirty_shape), ("psf", psf_shape))
        ]
    dirty, psf = (
        np.memmap(path, dtype=">f4", mode="r+", offset=int(offset), shape=shape)
        for offset, shape in zip(offsets, (dirty_shape, psf_shape), strict=True)
    )
    return dirty, psf


def beyond_grid_report(data: Mapping[str, npt.NDArray[Any]]) -> dict[str, Any]:
    """How many visibilities (and what fraction of the weight) were left out as beyond the
    image grid's Nyquist limit and beyond the uv cube's grid, over all channels, for the
    polarization with most dropped."""
    report: dict[str, Any] = {}
    for prefix, what in (
        ("image", "image grid (|u| or |v| > 1 / (2 pixel))"),
        ("uv", "uv cube grid"),
    ):
        count = data[f"{prefix}_beyond_count"].sum(axis=1)
        weight = data[f"{prefix}_beyond_weight"].sum(axis=1)
        given = data[f"{prefix}_given_weight"].sum(axis=1)
        worst = int(np.argmax(weight))
        report[prefix] = {
            "left_out": what,
            "visibilities": int(count[worst]),
            "weight_fraction": float(weight[worst] / given[worst]) if given[worst] > 0 else 0.0,
        }
    return report


def _chunk_failure(chunks: ChunkSet, name: str, exc: BaseException) -> BaseException:
    """What to raise when reading the chunk ``name`` failed with ``exc``: a stored chunk's
    own read error first (rewritten since its upload, S3 still failing after retries)."""
    failure = reader_failure(chunks, exc)
    if failure is exc and isinstance(exc, (OSError, KeyError)):
        return InvalidInputError(f"{name}: chunk file unreadable ({exc})")
    return failure


class ImageJob:
    """Chunked imaging of one observation (see the module docstring)."""

    chunk_suffix = "h5"

    def __init__(self, context: JobContext) -> None:
        self.context = context
        self.params = ImagingParams.from_mapping(context.message.params)
        self.provenance = job_provenance(
            context.provenance, params_hash=context.message.params_hash, kind=JobKind.IMAGE.value
        )
        # The next chunk's visibilities, being read while this chunk is gridded (see _read).
        self._prefetch: tuple[str, Future[VisChunk]] | None = None
        self._reader: ThreadPoolExecutor | None = None
        self.flagged = FlagCounts()  # summed over the chunks by combine
        # Told each of COMBINE_STEPS as combine finishes it (from two threads): the CLI's
        # progress bar, so that minutes of combine are not one silent "1/1".
        self.on_step: Callable[[str], None] = lambda _step: None

    @cached_property
    def info(self) -> ObservationInfo:
        """Input metadata, checked once (fetching and converting the input if needed)."""
        info = self._info_by_range()
        if info is None:
            local = Path(self.context.fetch(self.context.message.input))
            info = open_observation(local, self.context.workdir / "input-cache")
        local = info.path
        if info.n_freqs < 4:
            raise InvalidInputError(
                f"{local}: has {info.n_freqs} channel(s); a power spectrum needs 4"
            )
        steps = np.diff(info.freq_hz)
        if not np.allclose(steps, steps[0], rtol=1e-6, atol=1e-3) or steps[0] <= 0:
            raise InvalidInputError(f"{local}: channels are not evenly spaced in frequency")
        return info

    def _info_by_range(self) -> ObservationInfo | None:
        """The input's metadata read by range from the store, if each chunk can then read
        only its own channels (:func:`payload.reading.range_read_problem`); else ``None``
        and the input is downloaded whole. The log says which, and why, in one line."""
        uri = self.context.message.input
        found = self.context.open_ranged(uri)
        if found is None:
            return None  # not a stored file of this worker's (a folder archive, a local run)
        ranged, shown = found
        problem = range_read_problem(ranged, self.params.chunk_channels)
        how = "downloaded whole" if problem else "read by range, chunk by chunk"
        why = problem or (
            "visdata, flags and nsamples are stored in HDF5 chunks at most "
            f"{self.params.chunk_channels} channels wide"
        )
        log.info(
            "input %s %s: %s",
            uri,
            how,
            why,
            extra={"event": "input.read", "ranged": problem is None, "reason": why},
        )
        return None if problem else open_observation_by_range(ranged, shown)

    @cached_property
    def beam(self) -> PrimaryBeam:
        """The power spectrum's primary beam: the params', else the telescope's default."""
        return resolve_beam(
            self.params.primary_beam,
            telescope=self.info.telescope,
            metadata_delays=mwa_delays_from_uvh5(self.info.h5_input),
        )

    @cached_property
    def beam_frame(self) -> BeamFrame | None:
        """Where a beam fixed on the ground sits relative to the phase centre at the
        observation's middle time (None: it tracks the phase centre)."""
        info = self.info
        if not is_fixed_on_ground(self.beam, info.telescope):
            return None
        return frame_from_uvh5(
            info.path if info.ranged is None else info.ranged.open(),
            ra_deg=info.phase_center_ra_deg,
            dec_deg=info.phase_center_dec_deg,
        )

    @cached_property
    def drift_plan(self) -> DriftPlan:
        """How the power spectrum's uv cube is gridded: in one piece, or (a beam the sky
        drifts through) in segments short enough for the drift (:mod:`payload.drift`).
        Refuses (InvalidInputError) a beam the power spectrum cannot normalise and a drift
        scan that cannot be segmented (:func:`payload.drift.plan_drift`)."""
        info = self.info
        times, lsts, integration_s = self._times
        return plan_drift(
            self.beam,
            (float(info.freq_hz.min()), float(info.freq_hz.max())),
            UVGrid.from_params(self.params),
            self.beam_frame,
            times_jd=times,
            lst_rad=lsts,
            integration_s=integration_s,
            projected=info.projected,
            what=str(info.source),
            refuse=self.estimable,
        )

    @cached_property
    def estimable(self) -> bool:
        """Whether the data can give an even x odd power spectrum at all (two time samples or
        more). One cannot, so its beam is not refused: the images stand, and the power
        spectrum says "not estimated" (NOT_ESTIMATED)."""
        return len(self._times[0]) >= 2

    @cached_property
    def _times(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float]:
        """Sorted unique times (JD), their local sidereal times (rad) and the median
        integration time (s), from the uvh5 header."""
        try:
            with self.info.open_h5() as handle:
                times = np.asarray(handle["Header/time_array"][()], dtype=np.float64)
                lsts = np.asarray(handle["Header/lst_array"][()], dtype=np.float64)
                integration = np.asarray(handle["Header/integration_time"][()], dtype=np.float64)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            self._raise_reader_failure(exc)
            raise InvalidInputError(f"{self.info.source}: times cannot be read ({exc})") from None
        unique, first = np.unique(times, return_index=True)
        return unique, lsts[first], float(np.median(integration))

    @cached_property
    def _row_times(self) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
        """Every row's time and whether it is a cross-correlation, read once for the drift
        segments and the even/odd halves."""
        try:
            with self.info.open_h5() as handle:
                times = np.asarray(handle["Header/time_array"][()])
                cross = np.asarray(handle["Header/ant_1_array"][()]) != np.asarray(
                    handle["Header/ant_2_array"][()]
                )
        except (OSError, KeyError, ValueError, TypeError) as exc:
            self._raise_reader_failure(exc)
            raise InvalidInputError(f"{self.info.source}: times cannot be read ({exc})") from None
        if times.ndim != 1 or times.shape != cross.shape:
            raise InvalidInputError(
                f"{self.info.source}: {times.shape} times for {cross.shape} baseline-times"
            )
        return times, cross

    def _raise_reader_failure(self, exc: BaseException) -> None:
        """Raise the ranged reader's own error (input replaced, store failing) behind ``exc``."""
        failure = reader_failure(self.info.h5_input, exc)
        if failure is not exc:
            raise failure from None

    @cached_property
    def segment_of_row(self) -> npt.NDArray[np.int64]:
        """The drift segment of every cross-correlation row, in read order."""
        times, cross = self._row_times
        _, index = np.unique(times, return_inverse=True)
        plan = self.drift_plan.segments
        return plan.segment_of_time(plan.bounds[-1][1])[np.asarray(index).ravel()[cross]]

    @cached_property
    def halves(self) -> npt.NDArray[np.int8]:
        """Even (0) or odd (1) time sample of every cross-correlation row, in read order."""
        times, cross = self._row_times
        return time_halves(times)[cross]

    @cached_property
    def geometry(self) -> ImageGeometry:
        geometry = choose_geometry(self.info, self.params)
        check_image_job(
            self.info,
            geometry,
            self.params,
            self.context.workdir,
            n_segments=self.drift_plan.segments.n_segments,
        )
        return geometry

    def chunk_ids(self) -> list[str]:
        n = self.info.n_freqs
        step = self.params.chunk_channels
        return [f"ch{start:05d}-{min(start + step, n):05d}" for start in range(0, n, step)]

    def _channels(self, chunk_id: str) -> range:
        match = _CHUNK_ID.match(chunk_id)
        if not match or chunk_id not in self.chunk_ids():
            raise InvalidInputError(f"chunk id {chunk_id!r} is not a chunk of this job")
        return range(int(match.group(1)), int(match.group(2)))

    def _shown(self) -> int:
        """Index of the polarization shown in ``image.png``: I if imaged, else the first."""
        pols = self.params.polarizations
        return pols.index("I") if "I" in pols else 0

    def run_chunk(self, chunk_id: str, out_path: Path) -> None:
        """Image and grid one frequency chunk into ``out_path`` (HDF5).

        ``dirty`` and ``psf`` are stored in FITS pixel order and big-endian float32, in
        contiguous datasets, so that ``combine`` concatenates their bytes into the FITS
        products; ``dirty_weighted_sum`` (sum over the chunk's channels of weight x dirty
        image of the polarization shown in ``image.png``) lets it draw that figure without
        reading the cubes back.
        """
        # The beam is only used by combine; resolving it now makes a telescope without a
        # default beam, or a beam the power spectrum refuses, fail on the first chunk.
        plan = self.drift_plan
        chunk = self._read(chunk_id)
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out_path.parent, suffix=".chunk.tmp")
        os.close(fd)
        try:
            images = image_chunk(
                chunk,
                self.geometry,
                self.params,
                shown=self._shown(),
                allocate=functools.partial(_cubes_in_chunk_file, tmp),
            )
            grid = UVGrid.from_params(self.params)
            if len(self.halves) != len(chunk.uvw_m):
                raise InvalidInputError(
                    f"{self.info.source}: {len(chunk.uvw_m)} cross-correlation rows read but "
                    f"{len(self.halves)} times for them in the header"
                )
            # One uv cube per drift segment (one in all unless the sky drifts through a
            # fixed beam for longer than the beam allows), stacked on a leading axis.
            segments = grid_segments(
                chunk,
                grid,
                self.params,
                max_freq_hz=float(self.info.freq_hz.max()),
                halves=self.halves,
                segment_of_row=self.segment_of_row,
                n_segments=plan.segments.n_segments,
                shifts_ra_rad=None if plan.shifts_ra_rad is None else list(plan.shifts_ra_rad),
                dec_rad=math.radians(self.info.phase_center_dec_deg),
            )
            gridded = stack_segments(segments)
            freq_hz, flagged = chunk.freq_hz, chunk.flagged
            del chunk  # the visibilities are not needed while the file is written
            try:
                check_finite_products(image=images.dirty, psf=images.psf, uv_cube=gridded.vis)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{self.info.source}: {exc}") from None
            with h5py.File(tmp, "r+") as handle:
                handle.attrs["chunk_id"] = chunk_id
                handle.attrs["params_hash"] = self.provenance["params_hash"]
                # What the chunk was made from, not only how: combine refuses another's.
                handle.attrs["input_identity"] = self.provenance["input_identity"]
                handle.attrs.update(flagged.attrs())
                handle.attrs["npix"] = self.geometry.npix
                handle.attrs["pixsize_rad"] = self.geometry.pixsize_rad
                handle.attrs["image_order"] = IMAGE_ORDER
                handle.attrs["psf_rows"] = np.asarray(images.psf_rows, dtype=np.int64)
                handle.create_dataset("freq_hz", data=freq_hz, **_H5)
                handle.create_dataset("weight_sum", data=images.weight_sum, **_H5)
                handle.create_dataset("dirty_weighted_sum", data=images.weighted_sum, **_H5)
                handle.create_dataset("uv_vis", data=gridded.vis, **_H5)
                handle.create_dataset("uv_weights", data=gridded.weights, **_H5)
                handle.create_dataset("uv_sampling", data=gridded.sampling, **_H5)
                for name, value in (
                    ("image_beyond_count", images.beyond_count),
                    ("image_beyond_weight", images.beyond_weight),
                    ("image_given_weight", images.given_weight),
                    ("uv_beyond_count", gridded.beyond_count),
                    ("uv_beyond_weight", gridded.beyond_weight),
                    ("uv_given_weight", gridded.given_weight),
                ):
                    handle.create_dataset(name, data=value, **_H5)
            os.replace(tmp, out_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _read(self, chunk_id: str) -> VisChunk:
        """The chunk's visibilities; then start reading the next chunk in the background.

        Chunks are run in order (by the worker and the CLI alike), and while one is gridded
        the calling thread only waits for the pool: reading the next one then (pyuvdata and
        h5py, about 5% of a chunk's time) takes it off the critical path, at the cost of a
        second chunk's visibilities in memory. A prefetched chunk is used only when the
        chunk asked for is the one prefetched; otherwise it is dropped.
        """
        pending, self._prefetch = self._prefetch, None
        if pending is not None and pending[0] == chunk_id:
            chunk = pending[1].result()
        else:
            chunk = read_chunk(self.info, self._channels(chunk_id), self.params.polarizations)
        ids = self.chunk_ids()
        following = ids.index(chunk_id) + 1
        if following < len(ids):
            if self._reader is None:
                self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
            nxt = ids[following]
            future = self._reader.submit(
                read_chunk, self.info, self._channels(nxt), self.params.polarizations
            )
            self._prefetch = (nxt, future)
        return chunk

    def _read_chunks(self, chunks: ChunkSet) -> dict[str, npt.NDArray[Any]]:
        missing = [c for c in self.chunk_ids() if c not in chunks]
        if missing:
            raise InvalidInputError(f"cannot combine: chunk(s) {', '.join(missing)} missing")
        # Image cubes are not loaded here (see _segments): they are the big part.
        parts: dict[str, list[npt.NDArray[Any]]] = {
            k: []
            for k in (
                "freq_hz",
                "weight_sum",
                "uv_vis",
                "uv_weights",
                "uv_sampling",
                *BEYOND_GRID_KEYS,
            )
        }
        weighted_sum: npt.NDArray[np.float64] | None = None
        flagged = FlagCounts()
        for chunk_id in self.chunk_ids():
            path = chunks.name(chunk_id)
            try:
                with h5py.File(chunks.open(chunk_id), "r") as handle:
                    if handle.attrs["params_hash"] != self.provenance["params_hash"]:
                        raise InvalidInputError(f"{path}: chunk was made with other params")
                    if handle.attrs.get("input_identity") != self.provenance["input_identity"]:
                        raise InvalidInputError(f"{path}: chunk was made from another input")
                    flagged += FlagCounts.from_attrs(handle.attrs)
                    if int(handle.attrs["npix"]) != self.geometry.npix:
                        raise InvalidInputError(f"{path}: chunk has another image size")
                    if handle.attrs.get("image_order") != IMAGE_ORDER:
                        raise InvalidInputError(f"{path}: chunk from an older payload version")
                    for key in parts:
                        parts[key].append(np.asarray(handle[key][()]))
                    # Summed in chunk order, so the result never depends on who made what.
                    part = np.asarray(handle["dirty_weighted_sum"][()], dtype=np.float64)
                    weighted_sum = part if weighted_sum is None else weighted_sum + part
            except Exception as exc:
                raise _chunk_failure(chunks, path, exc) from None
        # (segment, half, pol, chan, ...) for the uv planes, (pol, chan) for the weight sums
        axis = {"freq_hz": 0, "weight_sum": 1} | {k: 1 for k in BEYOND_GRID_KEYS}
        data = {k: np.concatenate(v, axis=axis.get(k, 3)) for k, v in parts.items()}
        assert weighted_sum is not None  # there is always at least one chunk
        data["dirty_weighted_sum"] = weighted_sum
        # The flag scan refused this already; a product of nothing is never written.
        try:
            check_nothing_left(float(data["weight_sum"].sum()))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{self.info.source}: {exc}") from None
        self.flagged = flagged
        return data

    def _segments(self, chunks: ChunkSet, key: str, pol: str) -> Iterator[Segment]:
        """Where one polarization's ``dirty`` or ``psf`` cube lies in the chunk files.

        Each chunk's slab is contiguous in FITS order and byte layout, so it is handed over
        as a byte range of the chunk (copied by the kernel from a local file, fetched by
        range from a stored one); a dataset HDF5 did not store contiguously (which ours
        never are) is read instead.
        """
        index = self.params.polarizations.index(pol)
        for chunk_id in self.chunk_ids():
            try:
                slab = self._slab(chunks, chunk_id, key, index)
            except Exception as exc:
                raise _chunk_failure(chunks, chunks.name(chunk_id), exc) from None
            yield slab

    def _slab(self, chunks: ChunkSet, chunk_id: str, key: str, index: int) -> Segment:
        with h5py.File(chunks.open(chunk_id), "r") as handle:
            dset = handle[key]
            # PSFs are stored once per distinct cube (see ChunkImages.psf_rows).
            row = int(handle.attrs["psf_rows"][index]) if key == "psf" else index
            offset = dset.id.get_offset()
            contiguous = dset.chunks is None and dset.compression is None
            if offset is None or not contiguous or dset.dtype != np.dtype(">f4"):
                return np.asarray(dset[row])
            slab_bytes = int(np.prod(dset.shape[1:])) * 4
            return chunks.segment(chunk_id, int(offset) + row * slab_bytes, slab_bytes)

    def combine(self, chunk_paths: Mapping[str, Path], out_dir: Path) -> list[Path]:
        """Write every product from the chunk files into ``out_dir`` (all or nothing)."""
        sink = DirectoryProducts(out_dir)
        try:
            self.combine_into(LocalChunks(chunk_paths), sink)
            return sink.finish(PRODUCTS)
        finally:
            sink.discard()

    def combine_into(self, chunks: ChunkSet, sink: ProductSink) -> None:
        """Write every product from ``chunks`` into ``sink``: the image cubes as streams
        (never a local copy), the rest as files in ``sink.staging`` handed over when done."""
        data = self._read_chunks(chunks)
        self.on_step("chunks read")
        self._write_products(data, chunks, sink)

    def _write_products(
        self, data: Mapping[str, npt.NDArray[Any]], chunks: ChunkSet, sink: ProductSink
    ) -> None:
        staging = sink.staging
        info, geometry, params = self.info, self.geometry, self.params
        cards = fits_cards(self.provenance) | {
            "WEIGHTNG": params.weighting,
            "WGRIDDNG": params.wgridding,
            "TELESCOP": info.telescope,
        }
        common: dict[str, Any] = {
            "order": params.polarizations,
            "npix": geometry.npix,
            "pixsize_rad": geometry.pixsize_rad,
            "ra_deg": info.phase_center_ra_deg,
            "dec_deg": info.phase_center_dec_deg,
            "freq_hz": data["freq_hz"],
            "frame": info.phase_center_frame,
        }
        # The uv cube, power spectrum and figures are made on a second thread while this
        # one writes the image cubes, which is mostly the kernel copying chunk files
        # (copy_file_range, without the GIL): the two share no data and write other files.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spectrum") as side:
            spectrum = side.submit(self._write_spectrum_and_figures, data, staging)
            for key, name, bunit in (("dirty", "image_cube", "Jy/beam"), ("psf", "psf_cube", "")):

                def segments(pol: str, key: str = key) -> Iterator[Segment]:
                    return self._segments(chunks, key, pol)

                with sink.stream(f"{name}.fits") as out:
                    write_cube(out, segments, bunit=bunit, extra=cards, **common)
                self.on_step("image cube" if key == "dirty" else "PSF cube")
            not_estimated = spectrum.result()
        for name in ("uvcube.h5", "powerspec.png", "image.png"):
            sink.add(name)
        # What the estimator cannot vouch for (uncalibrated, RFI, too few channels), said
        # in the log, powerspec.h5, provenance.json and the summary (payload/pscheck.py).
        ps_warnings = check_products(staging / "powerspec.h5", data, input_uvh5=self.info.h5_input)
        write_provenance_json(
            staging / "provenance.json",
            {
                **self.provenance,
                "primary_beam": self.beam.spec,
                "beyond_grid": json.dumps(beyond_grid_report(data), sort_keys=True),
                "drift_segments": json.dumps(self.drift_plan.describe(), sort_keys=True),
                **({"power_spectrum": not_estimated} if not_estimated else {}),
                **provenance_entry(ps_warnings),
            },
            instance_id=self.context.provenance.get("instance_id", "local"),
            params=params.to_dict(),
            products=list(PRODUCTS),
            flagged=self.flagged.to_dict(),
        )
        sink.add("powerspec.h5")
        sink.add("provenance.json")
        self.on_step("provenance")

    def _write_spectrum_and_figures(
        self, data: Mapping[str, npt.NDArray[Any]], staging: Path
    ) -> str | None:
        """``uvcube.h5``, ``powerspec.h5``, ``powerspec.png`` and ``image.png``; the reason
        when the power spectrum could not be estimated (None when it was)."""
        # Imported here, not at module level: matplotlib and astropy.cosmology take ~1 s to
        # import and only combine needs them, not the processes that run chunks.
        from payload.plots import plot_image, plot_power_spectrum
        from payload.powerspec import DriftSegment, compute_power_spectrum

        geometry, params = self.geometry, self.params
        pols = params.polarizations
        freq = data["freq_hz"]
        attrs = hdf5_attrs(self.provenance)
        grid = UVGrid.from_params(params)
        identity = self.provenance["input_identity"]
        plan = self.drift_plan
        observations = [json.loads(identity) if identity.startswith("{") else identity]

        def cube_of(vis: Any, weights: Any, sampling: Any) -> UVCube:
            return UVCube(
                vis_halves=vis,
                weights_halves=weights,
                sampling=sampling,
                freq_hz=freq,
                polarizations=pols,
                grid=grid,
                stack_params=params.stack_params(),
                primary_beam=self.beam.spec,
                observations=observations,
            )

        segments = [
            DriftSegment(
                cube_of(data["uv_vis"][s], data["uv_weights"][s], data["uv_sampling"][s]),
                plan.frames[s] if plan.frames else None,
                plan.segments.seconds[s],
            )
            for s in range(plan.segments.n_segments)
        ]
        # uvcube.h5: the sum of the segments (the coherent cube, for stacking and for a
        # reader of schema 2), and each segment apart when there are several
        cube = (
            segments[0].cube
            if len(segments) == 1
            else cube_of(
                data["uv_vis"].sum(axis=0),
                data["uv_weights"].sum(axis=0),
                data["uv_sampling"].sum(axis=0, dtype=np.float64).astype(np.float32),
            )
        )
        cube.write(
            staging / "uvcube.h5",
            attrs={**attrs, "drift_segments": json.dumps(plan.describe(), sort_keys=True)},
            segments=None if len(segments) == 1 else data,
        )
        self.on_step("uv cube")
        ps = compute_power_spectrum(
            segments,
            n_k_bins=params.n_k_bins,
            beam=self.beam,
            frame=self.beam_frame,
            refuse=self.estimable,
        )
        # One time sample (a snapshot like pyuvdata's MWA test set) has no odd half: every
        # bin would be NaN. The images stand; the power spectrum says why it is empty.
        not_estimated = None
        if not np.isfinite(ps.p_sph).any():
            not_estimated = NOT_ESTIMATED.format(n_times=self.info.n_times)
            log.warning("power spectrum %s", not_estimated)
        ps.write(
            staging / "powerspec.h5",
            attrs=attrs | ({"not_estimated": not_estimated} if not_estimated else {}),
        )
        self.on_step("power spectrum")
        show = self._shown()
        total = float(data["weight_sum"][show].sum())
        # The weighted mean over channels of the shown dirty image (zero if fully flagged,
        # where every channel's image is zero), already in FITS order.
        mfs = (
            data["dirty_weighted_sum"] / total
            if total > 0
            else np.zeros_like(data["dirty_weighted_sum"])
        ).astype(np.float32)
        plot_power_spectrum(ps, staging / "powerspec.png", pol_index=show)
        plot_image(
            mfs,
            staging / "image.png",
            title=f"Dirty image, {pols[show]}, {freq[0] / 1e6:.2f}-{freq[-1] / 1e6:.2f} MHz",
            pixsize_deg=float(np.degrees(geometry.pixsize_rad)),
        )
        self.on_step("figures")
        return not_estimated
