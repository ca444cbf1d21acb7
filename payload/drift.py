"""Drift scans: the observation split into segments that are gridded apart.

A beam fixed on the ground (a HERA dish, an MWA tile with its delays, any drift-scan array)
sees another patch of sky as the sky drifts through it. Two visibilities of one uv cell
taken a drift D apart share only ``exp(-D^2 / 4 sigma^2)`` of their sky power (sigma the
beam's Gaussian-equivalent width, :func:`payload.psnorm.beam_sky_fit`), while the per-cell
normalisation of a coherently gridded cube takes them as fully shared: over a long drift
the power comes out low (0.76 of the input for a 12 deg beam over an hour).

So the time samples are cut into segments in which the sky drifts at most
``MAX_DRIFT_SIGMA`` x sigma (:func:`plan_segments`); each segment is gridded on its own,
in even and odd halves, with its own frame (where the beam sat during it). Unprojected
(drift) data, which the reader phases to the zenith of the observation's middle time, are
phased again, segment by segment, to the zenith of the segment's middle time
(:func:`rephase`), so that each segment's beam sits on its phase centre and the flat-sky
uv cube holds it as well as a snapshot's; projected data keep their phase centre and each
segment's frame carries the hour angle of its own middle time.
:func:`payload.powerspec.compute_power_spectrum` then forms each segment's even x odd cross
power and averages the segments in power, each cell weighted by its normalisation.

Cost: a segment is a uv cube of its own in the chunk files and in ``uvcube.h5`` (visibilities,
weights and sampling images of both halves, per polarization and channel); the number of
segments is bounded by MAX_SEGMENTS, beyond which the observation is refused with the
length of file that would do.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from payload.beamframe import BeamFrame
from payload.beams import PrimaryBeam
from payload.errors import InvalidInputError
from payload.params import ImagingParams
from payload.psnorm import beam_sky_fit, coherent_seconds
from payload.reading import VisChunk
from payload.uvcube import GriddedChunk, UVGrid, grid_chunk

# A segment is a uv cube: the chunk files, uvcube.h5 and combine's memory hold one per
# segment, so their number is bounded (24: three hours of HERA's airy:14 at 150 MHz).
MAX_SEGMENTS = 24
C_M_S = 299_792_458.0


@dataclass(frozen=True)
class SegmentPlan:
    """Segments of an observation: which time samples (indices into the sorted unique
    times, ``[start, stop)``) each holds, and how long each lasts (s)."""

    bounds: tuple[tuple[int, int], ...]
    seconds: tuple[float, ...]

    @property
    def n_segments(self) -> int:
        return len(self.bounds)

    def segment_of_time(self, n_times: int) -> npt.NDArray[np.int64]:
        """The segment of each unique time index."""
        out = np.empty(n_times, dtype=np.int64)
        for s, (start, stop) in enumerate(self.bounds):
            out[start:stop] = s
        return out


def plan_segments(
    times_jd: npt.ArrayLike, integration_s: float, longest_s: float, *, what: str = "data"
) -> SegmentPlan:
    """Cut the sorted unique times into as few segments as keep each within ``longest_s``
    (first to last sample plus one integration), of near-equal numbers of samples.

    Refuses (InvalidInputError, one line) a segment of one time sample (no even x odd cross
    power is possible) and more than MAX_SEGMENTS segments.
    """
    times = np.unique(np.asarray(times_jd, dtype=np.float64))
    seconds_of = (times - times[0]) * 86400.0
    span = float(seconds_of[-1]) + integration_s
    if span <= longest_s:
        return SegmentPlan(((0, len(times)),), (span,))
    n_seg = max(2, math.ceil(span / longest_s))
    while True:
        edges = np.rint(np.linspace(0, len(times), n_seg + 1)).astype(int)
        bounds = tuple((int(a), int(b)) for a, b in itertools.pairwise(edges))
        lengths = tuple(float(seconds_of[b - 1] - seconds_of[a]) + integration_s for a, b in bounds)
        if max(lengths) <= longest_s * (1 + 1e-9) or n_seg >= len(times):
            break
        n_seg += 1
    if min(b - a for a, b in bounds) < 2 or max(lengths) > longest_s * (1 + 1e-9):
        raise InvalidInputError(
            f"{what}: the sky drifts through the fixed beam so fast that a segment gridded "
            f"coherently may last at most {longest_s:.0f} s, which holds fewer than two of "
            f"the {integration_s:.0f} s time samples: no even x odd cross power is possible"
        )
    if n_seg > MAX_SEGMENTS:
        raise InvalidInputError(
            f"{what}: {span:.0f} s of drift scan needs {n_seg} segments of at most "
            f"{longest_s:.0f} s (the most a job grids is {MAX_SEGMENTS}); split it into "
            f"files of at most {math.floor(MAX_SEGMENTS * longest_s):.0f} s"
        )
    return SegmentPlan(bounds, lengths)


def segment_frames(
    frame: BeamFrame,
    plan: SegmentPlan,
    lst_rad: npt.ArrayLike,
    *,
    rephased: bool,
) -> list[BeamFrame]:
    """Each segment's frame: its duration, and the hour angle of its phase centre at its
    middle time.

    ``frame`` is the observation's (hour angle at the middle time ``len(times) // 2``),
    ``lst_rad`` the local sidereal time of every unique time. A segment ``rephased`` to the
    zenith of its own middle time has the hour angle the observation's phase centre had at
    the observation's middle time (its zenith then); otherwise the phase centre is the
    observation's, seen at the segment's middle time.
    """
    lst = np.unwrap(np.asarray(lst_rad, dtype=np.float64))
    middle = float(lst[len(lst) // 2])
    frames = []
    for (start, stop), seconds in zip(plan.bounds, plan.seconds, strict=True):
        if rephased:
            frames.append(replace(frame, duration_s=seconds))
            continue
        offset = 0.5 * (float(lst[start]) + float(lst[stop - 1])) - middle
        hour_angle = (frame.hour_angle_rad + offset + math.pi) % (2 * math.pi) - math.pi
        frames.append(replace(frame, hour_angle_rad=hour_angle, duration_s=seconds))
    return frames


def segment_offsets(plan: SegmentPlan, lst_rad: npt.ArrayLike) -> list[float]:
    """How far (rad of right ascension) each segment's middle-time zenith lies east of the
    observation's middle-time zenith: the shift :func:`rephase` applies."""
    lst = np.unwrap(np.asarray(lst_rad, dtype=np.float64))
    middle = float(lst[len(lst) // 2])
    return [0.5 * (float(lst[a]) + float(lst[b - 1])) - middle for a, b in plan.bounds]


def rephase(
    uvw_m: npt.NDArray[np.float64],
    vis: dict[str, npt.NDArray[np.complex128]],
    freq_hz: npt.NDArray[np.float64],
    *,
    shift_ra_rad: float,
    dec_rad: float,
) -> tuple[npt.NDArray[np.float64], dict[str, npt.NDArray[np.complex128]]]:
    """Visibilities phased to ``(ra0 + shift_ra_rad, dec)`` instead of ``(ra0, dec)``.

    With pyuvdata's convention (uvw = ant2 - ant1, ``V = int A I exp(+2 pi i b.(s - s0) /
    lambda)``) a phase centre s1 instead of s0 multiplies V by ``exp(-2 pi i (w1 - w0) /
    lambda)``, and the baseline ``b = u e_l0 + v e_m0 + w s0`` is projected on s1's frame
    (``e_l`` towards increasing RA, ``e_m`` towards increasing declination). Both centres
    are fixed on the sky, so one rotation serves every time sample. (Against pyuvdata's
    ``phase_to_time`` between two zeniths 12.5 min apart: uvw within 6 mm, the difference
    of pyuvdata's apparent-place zenith from a pure shift in RA.)
    """
    d = dec_rad
    sd, cd = math.sin(d), math.cos(d)
    # frame of s0 (ra = 0) in equatorial coordinates: rows e_l, e_m, s
    old = np.asarray([[0.0, 1.0, 0.0], [-sd, 0.0, cd], [cd, 0.0, sd]])
    a = shift_ra_rad
    sa, ca = math.sin(a), math.cos(a)
    new = np.asarray([[-sa, ca, 0.0], [-sd * ca, -sd * sa, cd], [cd * ca, cd * sa, sd]])
    b_eq = np.asarray(uvw_m, dtype=np.float64) @ old
    uvw_new = np.ascontiguousarray(b_eq @ new.T)
    dw_m = uvw_new[:, 2] - np.asarray(uvw_m, dtype=np.float64)[:, 2]
    turn = np.exp(-2j * math.pi * dw_m[:, None] * np.asarray(freq_hz)[None, :] / C_M_S)
    return uvw_new, {pol: np.asarray(v * turn, dtype=np.complex128) for pol, v in vis.items()}


def grid_segments(
    chunk: VisChunk,
    grid: UVGrid,
    params: ImagingParams,
    *,
    max_freq_hz: float,
    halves: npt.NDArray[np.int8],
    segment_of_row: npt.NDArray[np.int64],
    n_segments: int,
    shifts_ra_rad: list[float] | None = None,
    dec_rad: float = 0.0,
) -> list[GriddedChunk]:
    """Grid each segment's rows of ``chunk`` on its own (even and odd halves by ``halves``);
    with ``shifts_ra_rad`` (unprojected data) each segment is first phased to its own
    middle-time zenith (:func:`rephase`, :func:`segment_offsets`)."""
    if n_segments == 1 and not shifts_ra_rad:
        # the whole observation: no copy of the chunk's visibilities
        return [grid_chunk(chunk, grid, params, max_freq_hz=max_freq_hz, halves=halves)]
    out = []
    for s in range(n_segments):
        rows = np.flatnonzero(segment_of_row == s)
        uvw = np.ascontiguousarray(chunk.uvw_m[rows])
        vis = {pol: np.ascontiguousarray(v[rows]) for pol, v in chunk.vis.items()}
        if shifts_ra_rad is not None and shifts_ra_rad[s] != 0.0:
            uvw, vis = rephase(
                uvw, vis, chunk.freq_hz, shift_ra_rad=shifts_ra_rad[s], dec_rad=dec_rad
            )
        part = VisChunk(
            uvw_m=uvw,
            freq_hz=chunk.freq_hz,
            vis=vis,
            weights={pol: np.ascontiguousarray(w[rows]) for pol, w in chunk.weights.items()},
        )
        out.append(grid_chunk(part, grid, params, max_freq_hz=max_freq_hz, halves=halves[rows]))
    return out


@dataclass(frozen=True)
class DriftPlan:
    """How an observation is gridded: its segments, each one's frame, and (unprojected
    data) how far each is phased east of the observation's middle-time zenith."""

    segments: SegmentPlan
    frames: tuple[BeamFrame, ...]
    shifts_ra_rad: tuple[float, ...] | None
    coherent_s: float  # the longest segment the beam allows

    def describe(self) -> dict[str, object]:
        return {
            "n_segments": self.segments.n_segments,
            "seconds": [round(s, 3) for s in self.segments.seconds],
            "coherent_limit_s": None if math.isinf(self.coherent_s) else round(self.coherent_s, 3),
            "rephased_to_segment_zenith": self.shifts_ra_rad is not None,
        }


def plan_drift(
    beam: PrimaryBeam,
    band_hz: tuple[float, float],
    grid: UVGrid,
    frame: BeamFrame | None,
    *,
    times_jd: npt.ArrayLike,
    lst_rad: npt.ArrayLike,
    integration_s: float,
    projected: bool,
    what: str = "data",
    refuse: bool = True,
) -> DriftPlan:
    """Segments for this observation, chosen from its phase type and duration.

    A beam that tracks the phase centre (``frame`` None or not fixed) or an observation
    shorter than the coherent limit gives one segment: the whole observation, gridded
    coherently as before. Refuses (InvalidInputError) a beam the power spectrum cannot
    normalise (:func:`payload.psnorm.beam_sky_fit`; not when ``refuse`` is False: data of one
    time sample, whose spectrum is not estimated) and what :func:`plan_segments` refuses.
    """
    times = np.unique(np.asarray(times_jd, dtype=np.float64))
    lst = np.asarray(lst_rad, dtype=np.float64)
    _, sigma = beam_sky_fit(beam, band_hz, grid, frame=frame, refuse=refuse)
    longest = coherent_seconds(frame, sigma)
    plan = plan_segments(times, integration_s, longest, what=what)
    if frame is None:
        return DriftPlan(plan, (), None, longest)
    rephased = not projected and plan.n_segments > 1
    if plan.n_segments == 1:
        # the observation's own frame (hour angle at its middle sample), as before segments
        return DriftPlan(plan, (replace(frame, duration_s=plan.seconds[0]),), None, longest)
    frames = tuple(segment_frames(frame, plan, lst, rephased=rephased))
    shifts = tuple(segment_offsets(plan, lst)) if rephased else None
    return DriftPlan(plan, frames, shifts, longest)


def stack_segments(parts: list[GriddedChunk]) -> GriddedChunk:
    """The segments' uv planes on a leading segment axis (vis, weights, sampling), and
    their counts of visibilities left out summed."""

    def total(name: str) -> npt.NDArray[Any] | None:
        values = [getattr(part, name) for part in parts]
        if any(v is None for v in values):
            return None
        return np.asarray(sum(values[1:], values[0]))

    if len(parts) == 1:  # a view, no copy
        only = parts[0]
        return replace(
            only, vis=only.vis[None], weights=only.weights[None], sampling=only.sampling[None]
        )
    return GriddedChunk(
        vis=np.stack([part.vis for part in parts]),
        weights=np.stack([part.weights for part in parts]),
        sampling=np.stack([part.sampling for part in parts]),
        beyond_count=total("beyond_count"),
        beyond_weight=total("beyond_weight"),
        given_weight=total("given_weight"),
    )
