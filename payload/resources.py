"""Memory and disk a job needs, estimated from the header and the options before any use.

A job that cannot fit is refused before it allocates anything, with a message that says
how much it needs, how much there is, and which option to change: without this, a 30,000
pixel image pre-allocates a ~115 GB chunk file, and a header claiming 10^9 channels or
groups makes a reader ask for terabytes. The estimates are upper bounds of the big arrays
(visibilities, images, gridding planes, uv cubes), not of every temporary; they decide only
whether to start, so being generous by a factor of ~2 costs nothing on a job that fits.

A job that does not fit is ``invalid``: the same options on the same kind of instance
would fail the same way on every retry.
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from payload.errors import InvalidInputError

if TYPE_CHECKING:
    from payload.imaging import ImageGeometry
    from payload.params import ImagingParams
    from payload.reading import ObservationInfo

GIB = 1024**3
# Bytes per visibility while a chunk is read and prepared: the file's complex + flag +
# nsamples (8 + 1 + 4 as pyuvdata writes them, up to 16 + 1 + 8 once converted), and per
# output polarization the complex128 visibility and float64 weight (24).
_READ_BYTES = 25
_PREPARED_BYTES = 24
# pyuvdata holds a whole non-uvh5 input in memory while converting it: data_array
# (complex128), flag_array, nsample_array (float32), plus the copy it writes from.
_CONVERT_BYTES = 2 * (16 + 1 + 4)
# Share of the available memory a job may plan to use; the rest is left for what the
# estimates leave out (Python, libraries, the page cache of the chunk files).
MEMORY_SHARE = 0.8
# Share the header arrays alone (frequencies, baselines, uvw) may take before any is read.
HEADER_SHARE = 0.25
# A field of view is at most the visible hemisphere.
MAX_FOV_DEG = 180.0


@dataclass(frozen=True)
class Estimate:
    """Bytes of memory and disk a job needs, and the option that drives each most."""

    memory: int
    memory_option: str
    disk: int
    disk_option: str


def size_text(n: float) -> str:
    """A byte count for a person: GiB from 1 GiB up, else MiB or bytes."""
    if n >= GIB:
        return f"{n / GIB:.3g} GiB"
    return f"{n / 1024**2:.3g} MiB" if n >= 1024**2 else f"{int(n)} bytes"


def available_memory() -> int:
    """Bytes this process may still allocate: MemAvailable, within the cgroup's limit."""
    available = _meminfo_available()
    limit = _cgroup_headroom()
    return min(available, limit) if limit is not None else available


def _meminfo_available() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _cgroup_headroom() -> int | None:
    """cgroup v2 memory.max minus memory.current, if this process is limited."""
    try:
        root = Path("/sys/fs/cgroup")
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((root / "memory.current").read_text()))
    except (OSError, ValueError):
        return None


def free_disk(path: Path) -> int:
    """Free bytes on the file system that holds ``path`` (or would, once created)."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def estimate_image_job(
    info: ObservationInfo, geometry: ImageGeometry, params: ImagingParams
) -> Estimate:
    """Peak memory of one chunk (or of combining), and the disk of chunks plus products."""
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
    uv_channel = 2 * 24 * uv_cells + 2 * 4 * (2.0 * uv.n) ** 2

    # The chunk being gridded and the next one, read ahead (payload.jobs.image._read).
    visibilities = 2 * rows * n_chan * (n_read * _READ_BYTES + n_pol * _PREPARED_BYTES)
    # Per chunk: the shown image's weighted sum per channel (float64); per gridding thread:
    # ducc0's oversampled grid (about (2 npix)^2 complex128) and float64 images of every
    # polarization and the PSF.
    images = pixels * (8 * n_chan + params.nthreads * (4 * 16 + 8 * (n_pol + 1)))
    uv_chunk = n_pol * n_chan * uv_channel
    chunk_memory = visibilities + images + uv_chunk
    # Combining holds the whole uv cube, concatenated once more.
    combine_memory = 2 * n_pol * info.n_freqs * uv_channel + 16 * pixels
    memory = max(chunk_memory, combine_memory)
    if combine_memory >= chunk_memory:
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
    info: ObservationInfo, geometry: ImageGeometry, params: ImagingParams, workdir: Path
) -> None:
    """Refuse a job whose options cannot work, or that would not fit on this machine."""
    if params.image_size is None and not 0 < params.fov_deg <= MAX_FOV_DEG:
        raise InvalidInputError(
            f"--fov (fov_deg) is {params.fov_deg:g} degrees; a field of view is at most "
            f"{MAX_FOV_DEG:g} degrees (the visible sky)"
        )
    needed = estimate_image_job(info, geometry, params)
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


def _uvfits_claim(path: Path) -> tuple[int, int] | None:
    """(data bytes, visibilities) a uvfits primary header claims; None if not random groups.

    Reads only the header blocks (astropy parses the cards; no data is touched).
    """
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "may have been truncated": checked below
            header = fits.getheader(path, 0)
    except (OSError, ValueError, TypeError, IndexError, KeyError):
        return None  # not FITS at all: pyuvdata says so in its own words
    if not header.get("GROUPS"):
        return None
    try:
        naxis = int(header["NAXIS"])
        axes = [int(header[f"NAXIS{i}"]) for i in range(2, naxis + 1)]
        groups, params_per_group = int(header.get("GCOUNT", 1)), int(header.get("PCOUNT", 0))
        bitpix = abs(int(header["BITPIX"])) // 8
    except (KeyError, ValueError, TypeError):
        return None
    if min([groups, params_per_group, *axes], default=0) < 0:
        raise InvalidInputError(f"{path}: has a FITS header with negative axis or group counts")
    per_group = math.prod(axes) + params_per_group
    # Visibilities: the axes after the complex (real, imag, weight) axis of 3.
    n_vis = groups * math.prod(axes[1:])
    return groups * per_group * bitpix, n_vis


def check_conversion(path: Path, cache_dir: Path) -> None:
    """Refuse to convert an input whose header lies about its size, or that cannot fit.

    pyuvdata reads non-uvh5 inputs whole; a uvfits header is checked against the file's
    size first (a header claiming 10^9 groups in a small file is a corrupt file, not a
    request for terabytes), then the memory the read needs against what is available.
    Measurement Sets and MWA raw files are estimated from their size on disk.
    """
    on_disk = (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )
    claim = _uvfits_claim(path) if path.is_file() else None
    if claim is not None:
        data_bytes, n_vis = claim
        if data_bytes > on_disk:
            raise InvalidInputError(
                f"{path}: is truncated or its header is corrupt: the header claims "
                f"{size_text(data_bytes)} of data, the file holds {size_text(on_disk)}"
            )
        needed = n_vis * _CONVERT_BYTES
    else:
        # Raw or table data are stored as complex64 (8 bytes) or less per visibility.
        needed = on_disk // 8 * _CONVERT_BYTES
    memory = available_memory()
    if needed > MEMORY_SHARE * memory:
        raise InvalidInputError(
            f"{path}: reading it needs about {size_text(needed)} of memory, this machine has "
            f"{size_text(memory)} available; split the observation (by time or frequency) or use "
            "an instance with more memory"
        )
    disk = free_disk(cache_dir)
    if needed // 2 > disk:
        raise InvalidInputError(
            f"{path}: converting it to uvh5 needs about {size_text(needed // 2)} of disk under "
            f"{cache_dir}, {size_text(disk)} is free"
        )
