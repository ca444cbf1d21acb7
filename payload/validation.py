"""The rule for values (docs/imaging.md, "Values"), applied by every reader.

Two kinds of damage, told apart because only one of them leaves anything to image:

* **Per visibility** — a visibility that is not finite, or whose ``nsamples`` is not finite
  or not positive, is *flagged*: its weight becomes 0, so it reaches no sum. Each kind is
  counted (among the visibilities that were not flagged already) and the counts go into
  ``provenance.json``. A product made from the rest is right: it is what the same file gives
  with those visibilities flagged by hand.
* **Per observation** — metadata every visibility depends on (frequencies, uvw, the phase
  centre, the shapes of the arrays) is wrong, or nothing is left after flagging. Nothing
  can be imaged correctly, so the input is ``invalid``: one line naming the file and the
  problem, and no product.

This module holds the checks; :mod:`payload.reading` calls them for the h5py fast path and
for the pyuvdata path alike, so the rule cannot differ between formats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from payload.errors import InvalidInputError

# A ground-based array fits on the Earth: a baseline longer than its diameter (12,742 km)
# is a corrupt uvw, not an observation (the payload images MWA, HERA and LOFAR data).
MAX_BASELINE_M = 1.3e7
# Radio interferometers observe from a few MHz (LOFAR LBA ~10 MHz, ionospheric cut-off)
# to a few THz (ALMA band 10, 950 GHz); outside 1 kHz-10 THz a frequency is a corrupt header.
MIN_FREQ_HZ = 1e3
MAX_FREQ_HZ = 1e13


@dataclass(frozen=True)
class FlagCounts:
    """Visibilities flagged by the rule for values, by reason (cross-correlations read)."""

    nonfinite_visibilities: int = 0
    bad_nsamples: int = 0  # not finite, zero or negative, on a finite visibility

    def __add__(self, other: FlagCounts) -> FlagCounts:
        return FlagCounts(
            self.nonfinite_visibilities + other.nonfinite_visibilities,
            self.bad_nsamples + other.bad_nsamples,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "nonfinite_visibilities": self.nonfinite_visibilities,
            "bad_nsamples": self.bad_nsamples,
        }

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> FlagCounts:
        """The counts a chunk file records (0 for chunks of an older payload)."""
        return cls(
            int(attrs.get("flagged_nonfinite_visibilities", 0)),
            int(attrs.get("flagged_bad_nsamples", 0)),
        )

    def attrs(self) -> dict[str, int]:
        return {f"flagged_{key}": value for key, value in self.to_dict().items()}


def usable_weights(
    data: npt.NDArray[Any], flags: npt.NDArray[np.bool_], nsamples: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.float64], FlagCounts]:
    """Weights (nsamples where usable, else 0) and what the rule flagged, counted.

    A visibility is usable when it is not flagged, is finite (both parts) and has a finite
    positive nsamples. Non-finite visibilities are counted first, so a visibility with
    both faults counts once.
    """
    samples = np.asarray(nsamples, dtype=np.float64)
    unflagged = ~np.asarray(flags, dtype=bool)
    finite = np.isfinite(data)
    good_samples = np.isfinite(samples) & (samples > 0)
    nonfinite = unflagged & ~finite
    bad_samples = unflagged & finite & ~good_samples
    usable = unflagged & finite & good_samples
    weights = np.where(usable, samples, 0.0)
    return weights, FlagCounts(int(nonfinite.sum()), int(bad_samples.sum()))


def check_frequencies(freq_hz: npt.NDArray[Any], channel_width_hz: npt.NDArray[Any]) -> None:
    """Frequencies finite and within radio astronomy's range; channel widths finite, non-zero."""
    freq = np.asarray(freq_hz, dtype=np.float64).ravel()
    bad = ~np.isfinite(freq) | (freq < MIN_FREQ_HZ) | (freq > MAX_FREQ_HZ)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"has {int(bad.sum())} impossible channel frequencies (channel {i} is "
            f"{freq[i]:g} Hz; they must be finite, {MIN_FREQ_HZ:g} to {MAX_FREQ_HZ:g} Hz)"
        )
    width = np.asarray(channel_width_hz, dtype=np.float64).ravel()
    if not (np.isfinite(width).all() and (width != 0).all()):
        raise InvalidInputError("has channel widths that are zero or not finite")


def check_phase_centre(entry: Mapping[str, Any]) -> None:
    """The phase centre is a position on the sky: finite RA, |Dec| <= 90 degrees."""
    try:
        lon, lat = float(entry["cat_lon"]), float(entry["cat_lat"])
    except (KeyError, TypeError, ValueError):
        raise InvalidInputError("has no usable phase centre position") from None
    dec = np.degrees(lat)
    if not (np.isfinite(lon) and np.isfinite(lat) and abs(dec) <= 90.0 + 1e-9):
        raise InvalidInputError(
            f"has an impossible phase centre (RA {np.degrees(lon):g}, Dec {dec:g} degrees; "
            "Dec must be within -90..90)"
        )


def check_uvw(uvw_m: npt.NDArray[Any], cross: npt.NDArray[np.bool_]) -> None:
    """uvw of the cross-correlations finite, not all zero, shorter than the Earth."""
    uvw = np.asarray(uvw_m, dtype=np.float64)[cross]
    finite = np.isfinite(uvw).all(axis=1)
    if not finite.all():
        raise InvalidInputError(
            f"has {int((~finite).sum())} cross-correlation uvw coordinates that are not "
            "finite (NaN or infinite); the file's uvw_array is corrupt"
        )
    if not uvw.any():
        raise InvalidInputError(
            "has uvw = 0 for every cross-correlation; the file's uvw_array is missing or corrupt"
        )
    longest = float(np.sqrt((uvw**2).sum(axis=1)).max())
    if longest > MAX_BASELINE_M:
        raise InvalidInputError(
            f"has a {longest:.3g} m baseline, longer than the Earth's diameter; the file's "
            "uvw_array is corrupt"
        )


def check_nothing_left(total_weight: float) -> None:
    """Refuse an observation of which the rule left nothing to image."""
    if not (np.isfinite(total_weight) and total_weight > 0):
        raise InvalidInputError(
            "has no usable cross-correlation visibility (all flagged, not finite, or with "
            "nsamples <= 0)"
        )


def check_finite_products(**arrays: npt.NDArray[Any]) -> None:
    """A product pixel that is not finite came from values too large to sum in float64/32."""
    for name, array in arrays.items():
        # Plane by plane: a chunk's cubes are file maps that may not fit in memory twice.
        planes = array.reshape(-1, *array.shape[-2:]) if array.ndim > 2 else array[None]
        if not all(np.isfinite(plane).all() for plane in planes):
            raise InvalidInputError(
                f"gives non-finite {name} (visibility amplitudes or nsamples too large to "
                "sum); the file's data are corrupt"
            )
