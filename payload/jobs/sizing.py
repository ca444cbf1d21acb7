"""Memory and disk an image job needs, estimated from the header and the options before use.

The machine's side (available memory, free disk, shares) is :mod:`payload.resources`; this
module knows the imaging arrays, so it lives with the job, not under the readers.
"""

from __future__ import annotations

from pathlib import Path

from payload.errors import InvalidInputError
from payload.imaging import ImageGeometry
from payload.params import ImagingParams
from payload.reading import ObservationInfo
from payload.resources import (
    MAX_FOV_DEG,
    MEMORY_SHARE,
    Estimate,
    available_memory,
    free_disk,
    size_text,
)

# Bytes per visibility while a chunk is read and prepared: the file's complex + flag +
# nsamples (8 + 1 + 4 as pyuvdata writes them, up to 16 + 1 + 8 once converted), and per
# output polarization the complex128 visibility and float64 weight (24).
READ_BYTES = 25
PREPARED_BYTES = 24
# Bytes per (delay, uv cell) the power spectrum holds at its peak (payload.powerspec:
# the delay transforms of both halves, cross, auto and difference powers, k and bin
# indices, bin weights), and per polarization the bins and weights kept for the output.
# Measured with tracemalloc on 16-channel cubes of 128^2 and 256^2 cells: 284 bytes for
# one polarization, 430 for three (docs/benchmarks.md, "Memory estimate"); with the error
# model's per-cell-pair noise maps, 308 for one (polarizations of the same sampling share
# them: 307 for three).
POWERSPEC_BYTES = 240
POWERSPEC_BYTES_PER_POL = 80
# Bytes per pixel matplotlib holds while drawing image.png (resampled copies and the
# RGBA buffers): measured 55-56 for 1024^2 and 2048^2 images.
PLOT_BYTES_PER_PIXEL = 64
# Resident memory above the arrays counted here: blocks the allocator keeps after they are
# freed (glibc raises its mmap threshold after the first large free, so later arrays of up
# to 32 MiB come from the heaps, one per thread, and freed space stays resident) and the
# libraries' own buffers (ducc0, HDF5). Measured resident increments were 1.1-1.33 times
# the arrays tracemalloc saw, the most for jobs of many 2-8 MiB arrays.
ALLOCATOR_SLACK = 1.5


def estimate_image_job(
    info: ObservationInfo, geometry: ImageGeometry, params: ImagingParams, *, n_segments: int = 1
) -> Estimate:
    """Peak memory of one chunk (or of combining), and the disk of chunks plus products.

    ``n_segments``: drift segments (payload.drift), each a uv cube of its own in the chunk
    files, ``uvcube.h5`` and combine's memory."""
    from payload.uvcube import UVGrid  # numpy-heavy; only when a job is being planned

    n_pol = len(params.polarizations)
    n_read = 2 if "I" in params.polarizations else n_pol
    n_chan = min(params.chunk_channels, info.n_freqs)
    rows = info.n_baselines * info.n_times
    pixels = float(geometry.npix) ** 2
    uv = UVGrid.from_params(params)
    uv_cells = float(uv.n) * (uv.n // 2 + 1)
    # Per channel and polarization of the uv cube (payload.uvcube): even and odd halves
    # (complex128 + float64 each) and their sampling images (float32, 2n x 2n each).
    uv_channel = (2 * 24 * uv_cells + 2 * 4 * (2.0 * uv.n) ** 2) * n_segments

    # The chunk being gridded and the next one, read ahead (payload.jobs.image._read).
    visibilities = 2 * rows * n_chan * (n_read * READ_BYTES + n_pol * PREPARED_BYTES)
    # Per chunk: the shown image's weighted sum per channel (float64); per gridding thread:
    # ducc0's oversampled grid (about (2 npix)^2 complex128) and float64 images of every
    # polarization and the PSF.
    # The chunk's dirty and PSF cubes (float32) are written through maps of the chunk
    # file: their pages are resident in the process until the kernel writes them back.
    mapped = 4 * (n_pol + 1) * n_chan * pixels
    images = pixels * (8 * n_chan + params.nthreads * (4 * 16 + 8 * (n_pol + 1))) + mapped
    uv_chunk = n_pol * n_chan * uv_channel
    chunk_memory = visibilities + images + uv_chunk
    # Combining holds the whole uv cube and, besides, either its concatenation from the
    # chunks or the power spectrum's arrays and then image.png being drawn (after the
    # weighted mean image: float64 sum, float32 copy). The figure is counted on top of the
    # spectrum, not instead: measured, the heap the spectrum freed was not all reused.
    uv_cube = n_pol * info.n_freqs * uv_channel
    spectrum = info.n_freqs * uv_cells * (POWERSPEC_BYTES + POWERSPEC_BYTES_PER_POL * n_pol)
    figure = PLOT_BYTES_PER_PIXEL * pixels
    combine_memory = uv_cube + max(uv_cube, spectrum + figure) + 16 * pixels
    memory = ALLOCATOR_SLACK * max(chunk_memory, combine_memory)
    if combine_memory >= chunk_memory and figure >= max(uv_cube, spectrum):
        memory_option = _image_size_option(params)
    elif combine_memory >= chunk_memory:
        memory_option = "--uv-cell/--uv-max (uv_cell_lambda, uv_max_lambda)"
    elif visibilities >= images:
        memory_option = "--chunk-channels (chunk_channels)"
    else:
        memory_option = _image_size_option(params)

    # Chunk files (dirty + PSF cubes in float32, uv planes) are kept until combine, and
    # the products hold the same cubes again.
    cubes = 2 * 4 * n_pol * info.n_freqs * pixels
    # uvcube.h5 also holds the halves' sums (vis, weights), as schema 1 did.
    uv_cube = n_pol * info.n_freqs * (uv_channel + 24 * uv_cells)
    disk = 2 * (cubes + uv_cube)
    disk_option = _image_size_option(params) if cubes >= uv_cube else "--uv-cell/--uv-max"
    return Estimate(int(memory), memory_option, int(disk), disk_option)


def _image_size_option(params: ImagingParams) -> str:
    if params.image_size is not None:
        return "--image-size (image_size)"
    if params.pixel_scale_arcsec is not None:
        return "--pixel-scale or --fov, or set --image-size (pixel_scale_arcsec, fov_deg)"
    return "--fov, or set --image-size (fov_deg, image_size)"


def check_image_job(
    info: ObservationInfo,
    geometry: ImageGeometry,
    params: ImagingParams,
    workdir: Path,
    *,
    n_segments: int = 1,
) -> None:
    """Refuse a job whose options cannot work, or that would not fit on this machine."""
    if params.image_size is None and not 0 < params.fov_deg <= MAX_FOV_DEG:
        raise InvalidInputError(
            f"--fov (fov_deg) is {params.fov_deg:g} degrees; a field of view is at most "
            f"{MAX_FOV_DEG:g} degrees (the visible sky)"
        )
    needed = estimate_image_job(info, geometry, params, n_segments=n_segments)
    size = f"{geometry.npix} x {geometry.npix} pixels of {geometry.pixsize_arcsec:.3g} arcsec"
    memory = available_memory()
    if needed.memory > MEMORY_SHARE * memory:
        raise InvalidInputError(
            f"imaging {info.source} ({info.n_freqs} channels, {size}) needs about "
            f"{size_text(needed.memory)} of memory, this machine has {size_text(memory)} "
            f"available; lower {needed.memory_option}"
        )
    disk = free_disk(workdir)
    if needed.disk > disk:
        raise InvalidInputError(
            f"imaging {info.source} ({info.n_freqs} channels, {size}) needs about "
            f"{size_text(needed.disk)} of disk under {workdir}, {size_text(disk)} is free; "
            f"lower {needed.disk_option}, or free space there"
        )
