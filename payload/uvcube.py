"""uv cubes: gridded visibilities and weights per frequency on a stack-level uv grid.

The grid is fixed by three stack parameters (``uv_cell_lambda`` = du, ``uv_max_lambda``,
``ps_taper_fwhm_deg``), never by the observation, so the cubes of many observations of a
field can be summed cell by cell (:func:`sum_uvcubes`) and divided by the summed weights.

How a channel is gridded: ducc0 makes the exact (to ``epsilon``) dirty image
``D(l) = sum_k w_k V_k exp(-2 pi i u_k.l)`` (the adjoint of the measurement) on N x N
pixels of size 1 / (N du) without w-correction (the uv cube is a flat-sky product within
the taper), the image is multiplied by a Gaussian taper T(l, m) and transformed back to uv.
The result is
``G(u) = sum_k w_k V_k K(u - u_k)`` with K the Fourier transform of T: a Gaussian gridding
kernel of width ``1 / (2 pi sigma_l)`` wavelengths. Weights are gridded the same way
(V = 1). A smooth kernel keeps flat-spectrum foregrounds inside the wedge: a baseline
sliding through a cell with frequency adds no sharp spectral edge.

The image is real, so only the half plane v >= 0 is stored (``numpy.fft.rfft2``).
Visibilities are weighted naturally (nsamples) here whatever the imaging weighting.
Baselines that could reach the grid edge at the observation's highest frequency are left
out at every frequency (so a baseline never appears or disappears mid-band).

Two interleaved halves: visibilities of even time samples are gridded into half 0, odd
ones into half 1 (as FHD/eppsilon do), so that the power spectrum is the cross power of two
data sets with independent noise. Each half also keeps its *sampling image* ``S(l) = sum_k
w_k exp(-2 pi i u_k.l)`` (the dirty image of unit visibilities, untapered) on twice the
grid's field (2n x 2n pixels of the same size), from which :mod:`payload.psnorm` derives the
exact normalisation of every cell for any primary beam.

HDF5 layout (``uvcube.h5``, schema 2): datasets ``vis`` (pol, freq, u, v) complex128 and
``weights`` (pol, freq, u, v) float64 (the sum of both halves, as in schema 1),
``vis_halves`` (2, pol, freq, u, v), ``weights_halves`` (2, pol, freq, u, v),
``sampling`` (2, pol, freq, 2n, 2n) float32, ``freq_hz``, ``u_lambda``, ``v_lambda``; for a
drift scan gridded in segments (:mod:`payload.drift`) those are the sums over the segments,
and ``segment_vis_halves``, ``segment_weights_halves`` and ``segment_sampling`` hold each
segment (leading axis), as the attribute ``drift_segments`` describes;
attributes ``polarizations``, the stack parameters, ``primary_beam`` (the beam spec the
power spectrum is normalised with), ``n_observations``, ``observations`` (JSON list of
input identities) and the provenance attributes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from payload.errors import InvalidInputError
from payload.imaging import ImageGeometry, dirty_image
from payload.params import ImagingParams, StackParams
from payload.reading import C_M_S, VisChunk

# Accuracy of the uv gridding (ducc0's epsilon); below 1e-5, so ducc0 grids in double
# precision.
UV_EPSILON = 1e-7

SCHEMA = 2
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass(frozen=True)
class UVGrid:
    """The stack-level uv grid: N x N cells of du wavelengths, and the image-plane taper."""

    du: float
    n: int
    taper_sigma_l: float

    @classmethod
    def from_params(cls, params: ImagingParams) -> UVGrid:
        n = 2 * math.ceil(params.uv_max_lambda / params.uv_cell_lambda)
        n = max(32, n + n % 2)
        sigma_l = math.sin(math.radians(params.ps_taper_fwhm_deg)) * FWHM_TO_SIGMA
        return cls(du=params.uv_cell_lambda, n=n, taper_sigma_l=sigma_l)

    @property
    def pixsize(self) -> float:
        """Pixel size (direction cosine) of the image whose transform is this grid."""
        return 1.0 / (self.n * self.du)

    @property
    def kernel_sigma_lambda(self) -> float:
        return 1.0 / (2.0 * math.pi * self.taper_sigma_l)

    @property
    def u_lambda(self) -> npt.NDArray[np.float64]:
        return np.asarray((np.arange(self.n) - self.n // 2) * self.du, dtype=np.float64)

    @property
    def v_lambda(self) -> npt.NDArray[np.float64]:
        return np.asarray(np.arange(self.n // 2 + 1) * self.du, dtype=np.float64)

    @property
    def usable_lambda(self) -> float:
        """Largest |u| or |v| a visibility may have: the kernel must not wrap round."""
        return self.n // 2 * self.du - 5.0 * self.kernel_sigma_lambda

    def taper(self) -> npt.NDArray[np.float64]:
        """T(l, m) on the grid's image pixels, indexed like ducc0's images."""
        lm = (np.arange(self.n) - self.n // 2) * self.pixsize
        r2 = lm[:, None] ** 2 + lm[None, :] ** 2
        return np.exp(-0.5 * r2 / self.taper_sigma_l**2)

    def omega_pp(self) -> float:
        """Integral of T^2 over the sky (steradians, flat-sky), the power-spectrum beam."""
        return float((self.taper() ** 2).sum() * self.pixsize**2)


def baseline_mask(
    uvw_m: npt.NDArray[np.float64], max_freq_hz: float, grid: UVGrid
) -> npt.NDArray[np.bool_]:
    """Baselines whose kernel stays on the grid up to the observation's top frequency."""
    scale = max_freq_hz / C_M_S
    reach = np.maximum(np.abs(uvw_m[:, 0]), np.abs(uvw_m[:, 1])) * scale
    return np.asarray(reach <= grid.usable_lambda)


def grid_values(
    uvw_m: npt.NDArray[np.float64],
    freq_hz: float,
    values: npt.NDArray[np.complex128],
    weights: npt.NDArray[np.float64],
    grid: UVGrid,
    *,
    taper: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.complex128]:
    """``sum_k w_k values_k K(u - u_k)`` on the grid, shape (n, n // 2 + 1)."""
    # The image cubes' gridding call and sign convention, flat (no w term).
    dirty = dirty_image(
        uvw_m,
        freq_hz,
        values,
        weights,
        ImageGeometry(npix=grid.n, pixsize_rad=grid.pixsize),
        wgridding=False,
        epsilon=UV_EPSILON,
    )
    window = grid.taper() if taper is None else taper
    return _to_uv(np.asarray(dirty, dtype=np.float64) * window)


def grid_channel(
    uvw_m: npt.NDArray[np.float64],
    freq_hz: float,
    vis: npt.NDArray[np.complex128],
    weights: npt.NDArray[np.float64],
    grid: UVGrid,
) -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.float64]]:
    """Grid one channel: ``(G, W)`` with shape (n, n // 2 + 1), u centred, v >= 0."""
    taper = grid.taper()
    G = grid_values(uvw_m, freq_hz, vis, weights, grid, taper=taper)
    ones = np.ones(len(weights), dtype=np.complex128)
    W = grid_values(uvw_m, freq_hz, ones, weights, grid, taper=taper).real
    return G, np.asarray(W, dtype=np.float64)


def _to_uv(image: npt.NDArray[np.float64]) -> npt.NDArray[np.complex128]:
    """``sum_l image(l) exp(+2 pi i u.l)`` on the grid: the inverse of imaging's transform.

    A dirty image is ``sum_k V_k exp(-2 pi i u_k.l)``, so transforming back with the
    opposite sign puts V_k at +u_k. The image is real, hence conj(rfft2) does it.
    ifftshift puts l = 0 at index 0, so grid index a holds u = a du exactly.
    """
    half = np.conj(np.fft.rfft2(np.fft.ifftshift(image)))
    return np.asarray(np.fft.fftshift(half, axes=0), dtype=np.complex128)


def sky_to_uv(sky_jy: npt.NDArray[np.float64], grid: UVGrid) -> npt.NDArray[np.complex128]:
    """uv plane of a sky image (Jy per pixel, on the grid's image pixels) seen through T.

    With unit weights this is what :func:`grid_channel` tends to for complete uv coverage:
    used to check the power-spectrum normalisation against a sky of known statistics.
    """
    return _to_uv(sky_jy * grid.taper())


@dataclass(frozen=True)
class GriddedChunk:
    """The uv planes of a chunk: (half, pol, chan, ...) arrays, see the module docstring."""

    vis: npt.NDArray[np.complex128]  # (2, pol, chan, n, n // 2 + 1)
    weights: npt.NDArray[np.float64]  # (2, pol, chan, n, n // 2 + 1)
    sampling: npt.NDArray[np.float32]  # (2, pol, chan, 2n, 2n)
    # baselines left out as reaching beyond the grid (baseline_mask), per (pol, chan): how
    # many visibilities, their weight, and the weight of all visibilities given
    beyond_count: npt.NDArray[np.int64] | None = None
    beyond_weight: npt.NDArray[np.float64] | None = None
    given_weight: npt.NDArray[np.float64] | None = None


def time_halves(times: npt.ArrayLike) -> npt.NDArray[np.int8]:
    """0 for rows of even time samples, 1 for odd ones (times numbered in order)."""
    _, index = np.unique(np.asarray(times), return_inverse=True)
    return np.asarray(index % 2, dtype=np.int8)


def grid_chunk(
    chunk: VisChunk,
    grid: UVGrid,
    params: ImagingParams,
    *,
    max_freq_hz: float,
    halves: npt.NDArray[np.int8] | None = None,
) -> GriddedChunk:
    """Grid all channels and polarizations of a chunk into its even and odd halves.

    ``halves`` gives each row's half (:func:`time_halves`); without it every row is in half
    0. As in :func:`payload.imaging.image_chunk`, gridding is linear: polarizations with
    equal weights share the gridded weights, and I is (XX + YY) / 2 of the gridded XX and
    YY when all three have equal weights. Calls run side by side, one ducc0 thread each.
    """
    keep = baseline_mask(chunk.uvw_m, max_freq_hz, grid)
    pols = params.polarizations
    given = np.asarray(
        [[chunk.weights[pol][:, c].sum() for c in range(len(chunk.freq_hz))] for pol in pols]
    )
    beyond_weight = np.asarray(
        [[chunk.weights[pol][~keep, c].sum() for c in range(len(chunk.freq_hz))] for pol in pols]
    )
    beyond_count = np.asarray(
        [
            [int((chunk.weights[pol][~keep, c] > 0).sum()) for c in range(len(chunk.freq_hz))]
            for pol in pols
        ],
        dtype=np.int64,
    )
    uvw = np.ascontiguousarray(chunk.uvw_m[keep])
    half_of = (
        np.zeros(int(keep.sum()), dtype=np.int8) if halves is None else np.asarray(halves)[keep]
    )
    n_chan = len(chunk.freq_hz)
    shape = (2, len(pols), n_chan, grid.n, grid.n // 2 + 1)
    G = np.zeros(shape, dtype=np.complex128)
    W = np.zeros(shape, dtype=np.float64)
    S = np.zeros((2, len(pols), n_chan, 2 * grid.n, 2 * grid.n), dtype=np.float32)
    counts = {"beyond_count": beyond_count, "beyond_weight": beyond_weight, "given_weight": given}
    if not uvw.size:
        return GriddedChunk(G, W, S, **counts)
    weights = {
        (h, pol, c): np.where(half_of == h, chunk.weights[pol][keep, c], 0.0)
        for h in (0, 1)
        for pol in pols
        for c in range(n_chan)
    }
    plan: list[tuple[str, int, str, int]] = []
    owner_of: dict[tuple[int, str, int], str] = {}
    derive_i: set[tuple[int, int]] = set()
    for h in (0, 1):
        for c in range(n_chan):
            same = all(np.array_equal(weights[h, pols[0], c], weights[h, p, c]) for p in pols[1:])
            if same and {"XX", "YY", "I"} <= set(pols):
                derive_i.add((h, c))
            for pol in pols:
                if weights[h, pol, c].sum() <= 0:
                    continue
                if not (pol == "I" and (h, c) in derive_i):
                    plan.append(("vis", h, pol, c))
                owner_of[h, pol, c] = pols[0] if same else pol
                if owner_of[h, pol, c] == pol:
                    plan.append(("wgt", h, pol, c))
    taper = grid.taper()
    geometry = ImageGeometry(npix=grid.n, pixsize_rad=grid.pixsize)
    wide_geometry = ImageGeometry(npix=2 * grid.n, pixsize_rad=grid.pixsize)

    def run(task: tuple[str, int, str, int]) -> tuple[Any, Any]:
        kind, h, pol, c = task
        weight = weights[h, pol, c]
        values = chunk.vis[pol][keep, c] if kind == "vis" else np.ones(len(weight), complex)
        # The image cubes' gridding call and sign convention, flat (no w term).
        dirty = np.asarray(
            dirty_image(
                uvw,
                float(chunk.freq_hz[c]),
                values,
                weight,
                geometry,
                wgridding=False,
                epsilon=UV_EPSILON,
            ),
            dtype=np.float64,
        )
        if kind != "wgt":
            return _to_uv(dirty * taper), None
        # The sampling image on twice the field (see payload.psnorm: the beam's directions
        # shift it by up to half a field).
        wide = dirty_image(
            uvw,
            float(chunk.freq_hz[c]),
            values,
            weight,
            wide_geometry,
            wgridding=False,
            epsilon=UV_EPSILON,
        )
        return _to_uv(dirty * taper), np.asarray(wide, dtype=np.float32)

    with ThreadPoolExecutor(max_workers=params.nthreads) as pool:
        done = dict(zip(plan, pool.map(run, plan), strict=True))
    for h in (0, 1):
        for p, pol in enumerate(pols):
            for c in range(n_chan):
                if (h, pol, c) not in owner_of:
                    continue
                if pol == "I" and (h, c) in derive_i:
                    G[h, p, c] = 0.5 * (done["vis", h, "XX", c][0] + done["vis", h, "YY", c][0])
                else:
                    G[h, p, c] = done["vis", h, pol, c][0]
                uv_weights, sampling = done["wgt", h, owner_of[h, pol, c], c]
                W[h, p, c] = uv_weights.real
                S[h, p, c] = sampling
    return GriddedChunk(G, W, S, **counts)


@dataclass
class UVCube:
    """A uv cube in memory (see the module docstring for the meaning of each part).

    ``vis_halves``/``weights_halves`` are (2, pol, freq, u, v), ``sampling`` (2, pol, freq,
    2n, 2n); ``vis`` and ``weights`` are the sums of the two halves.
    """

    vis_halves: npt.NDArray[np.complex128]
    weights_halves: npt.NDArray[np.float64]
    sampling: npt.NDArray[np.float32]
    freq_hz: npt.NDArray[np.float64]
    polarizations: tuple[str, ...]
    grid: UVGrid
    stack_params: StackParams
    primary_beam: str
    observations: list[Any] = field(default_factory=list)

    @property
    def vis(self) -> npt.NDArray[np.complex128]:
        return np.asarray(self.vis_halves[0] + self.vis_halves[1])

    @property
    def weights(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.weights_halves[0] + self.weights_halves[1])

    def compatibility(self) -> dict[str, Any]:
        """What must agree between cubes that are summed: grid, taper and primary beam."""
        return {**self.stack_params.to_dict(), "primary_beam": self.primary_beam}

    def write(
        self,
        path: Path,
        *,
        attrs: Mapping[str, Any],
        segments: Mapping[str, npt.NDArray[Any]] | None = None,
    ) -> None:
        """Write to ``path`` byte-deterministically (no timestamps, fixed order).

        ``segments`` (``uv_vis``, ``uv_weights``, ``uv_sampling`` with a leading segment
        axis) are the drift segments this cube is the sum of (:mod:`payload.drift`),
        written as ``segment_vis_halves``, ``segment_weights_halves``, ``segment_sampling``.
        """
        with h5py.File(path, "w", track_order=True) as handle:
            kw: dict[str, Any] = {"track_times": False}
            handle.create_dataset("vis", data=self.vis, **kw)
            handle.create_dataset("weights", data=self.weights, **kw)
            handle.create_dataset("vis_halves", data=self.vis_halves, **kw)
            handle.create_dataset("weights_halves", data=self.weights_halves, **kw)
            handle.create_dataset("sampling", data=self.sampling, **kw)
            handle.create_dataset("freq_hz", data=self.freq_hz, **kw)
            handle.create_dataset("u_lambda", data=self.grid.u_lambda, **kw)
            handle.create_dataset("v_lambda", data=self.grid.v_lambda, **kw)
            if segments is not None:
                for name, key in (
                    ("segment_vis_halves", "uv_vis"),
                    ("segment_weights_halves", "uv_weights"),
                    ("segment_sampling", "uv_sampling"),
                ):
                    handle.create_dataset(name, data=segments[key], **kw)
            handle.attrs["schema"] = SCHEMA
            handle.attrs["product"] = "uvcube"
            handle.attrs["polarizations"] = json.dumps(list(self.polarizations))
            handle.attrs["stack_params"] = self.stack_params.to_json()
            handle.attrs["primary_beam"] = self.primary_beam
            handle.attrs["n_observations"] = len(self.observations)
            handle.attrs["observations"] = json.dumps(self.observations, sort_keys=True)
            handle.attrs["vis_units"] = "Jy x weight (natural weights, Gaussian kernel)"
            handle.attrs["halves"] = "0: even time samples, 1: odd time samples"
            for key in sorted(attrs):
                handle.attrs[key] = attrs[key]

    @classmethod
    def read(cls, path: Path) -> UVCube:
        """Read a uv cube; a file that is not one raises InvalidInputError naming it."""
        try:
            with h5py.File(path, "r") as handle:
                if handle.attrs.get("product") != "uvcube":
                    raise InvalidInputError(f"{path}: is not a spotcube uv cube")
                schema = int(handle.attrs.get("schema", 1))
                if schema < SCHEMA:
                    raise InvalidInputError(
                        f"{path}: uv cube schema {schema} has no even/odd halves or sampling "
                        f"images (schema {SCHEMA}); image the observation again"
                    )
                if "segment_vis_halves" in handle:
                    # Its sums are coherent over the whole drift, which no normalisation
                    # here models (payload.drift); segment-wise integration is not written.
                    raise InvalidInputError(
                        f"{path}: a drift scan gridded in "
                        f"{handle['segment_vis_halves'].shape[0]} segments; integrating "
                        "drift-scan uv cubes is not implemented (use each powerspec.h5)"
                    )
                try:
                    stack = StackParams.from_mapping(json.loads(handle.attrs["stack_params"]))
                except InvalidInputError as exc:
                    raise InvalidInputError(f"{path}: {exc}") from None
                n = len(handle["u_lambda"])
                du = float(stack.uv_cell_lambda)
                sigma_l = math.sin(math.radians(stack.ps_taper_fwhm_deg)) * FWHM_TO_SIGMA
                return cls(
                    vis_halves=np.asarray(handle["vis_halves"][()]),
                    weights_halves=np.asarray(handle["weights_halves"][()]),
                    sampling=np.asarray(handle["sampling"][()]),
                    freq_hz=np.asarray(handle["freq_hz"][()]),
                    polarizations=tuple(json.loads(handle.attrs["polarizations"])),
                    grid=UVGrid(du=du, n=n, taper_sigma_l=sigma_l),
                    stack_params=stack,
                    primary_beam=str(handle.attrs["primary_beam"]),
                    observations=json.loads(handle.attrs["observations"]),
                )
        except (OSError, KeyError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"{path}: cannot be read as a uv cube ({exc})") from None


def sum_uvcubes(cubes: Sequence[UVCube], *, names: Sequence[str] | None = None) -> UVCube:
    """Sum cubes cell by cell, half by half, in the given order.

    They must share grid, taper, primary beam, band and polarizations; the first key that
    differs is named.
    """
    if not cubes:
        raise InvalidInputError("no uv cubes to sum")
    labels = list(names) if names is not None else [f"cube {i}" for i in range(len(cubes))]
    first = cubes[0]
    total_vis = first.vis_halves.copy()
    total_w = first.weights_halves.copy()
    total_s = first.sampling.astype(np.float64)
    observations = list(first.observations)
    reference = first.compatibility()
    for cube, label in zip(cubes[1:], labels[1:], strict=True):
        theirs = cube.compatibility()
        for key in sorted(set(reference) | set(theirs)):
            if theirs.get(key) != reference.get(key):
                raise InvalidInputError(
                    f"{label}: {key} is {theirs.get(key)!r} but {reference.get(key)!r} in "
                    f"{labels[0]}; uv cubes made with a different {key} cannot be summed "
                    f"(image them again with the same value)"
                )
        if cube.polarizations != first.polarizations:
            raise InvalidInputError(
                f"{label}: polarizations {cube.polarizations} differ from {first.polarizations}"
            )
        if cube.freq_hz.shape != first.freq_hz.shape or not np.allclose(
            cube.freq_hz, first.freq_hz, rtol=0, atol=1.0
        ):
            raise InvalidInputError(f"{label}: frequency channels differ from {labels[0]}'s")
        total_vis += cube.vis_halves
        total_w += cube.weights_halves
        total_s += cube.sampling
        observations.extend(cube.observations)
    return UVCube(
        vis_halves=total_vis,
        weights_halves=total_w,
        sampling=total_s.astype(np.float32),
        freq_hz=first.freq_hz.copy(),
        polarizations=first.polarizations,
        grid=first.grid,
        stack_params=first.stack_params,
        primary_beam=first.primary_beam,
        observations=observations,
    )
