"""Where the primary beam is, seen from the phase centre, and how far the sky drifts through it.

The power spectrum works in the phase centre's tangent plane: ``(l, m)`` with l towards
increasing right ascension (east) and m towards increasing declination (north). A beam that
is fixed on the ground (an MWA tile with its beamformer delays, a HERA dish, any drift-scan
array) has to be evaluated at each direction's true azimuth and zenith angle, which depend on
the phase centre's hour angle and declination and the site's latitude; a beam that tracks the
phase centre (a steerable dish) is centred on it.

Spherical astronomy used (any textbook, e.g. Thompson, Moran & Swenson, *Interferometry and
Synthesis in Radio Astronomy*, 3rd ed., sec. 4.1): in the frame x towards (H = 0, dec = 0),
y towards H = -6 h (east), z towards the celestial pole, the phase centre is
``s0 = (cos d cos H, -cos d sin H, sin d)``, the unit vectors of increasing RA and dec are
``e_l = (sin H, cos H, 0)`` and ``e_m = (-sin d cos H, sin d sin H, cos d)``, and a direction
``l e_l + m e_m + n s0`` has east, north and up components ``(y, -sin(lat) x + cos(lat) z,
cos(lat) x + sin(lat) z)``.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from payload.errors import InvalidInputError

SIDEREAL_RAD_PER_S = 2.0 * math.pi / 86164.0905


@dataclass(frozen=True)
class BeamFrame:
    """The phase centre of the data relative to the ground, at the observation's mid-time.

    ``fixed``: the beam stays put on the ground (drift scan, beamformer delays) rather than
    tracking the phase centre. ``duration_s``: the span of the time samples, over which a
    fixed beam drifts across the sky by ``duration_s`` x the sidereal rate x cos(dec).
    """

    latitude_rad: float
    hour_angle_rad: float
    dec_rad: float
    duration_s: float
    fixed: bool = True

    def to_az_za(
        self, l_dir: npt.NDArray[np.float64], m_dir: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Azimuth (north through east), zenith angle (rad) and "above the horizon" of the
        tangent-plane directions ``(l, m)`` (``l^2 + m^2 <= 1``)."""
        l_dir = np.asarray(l_dir, dtype=np.float64)
        m_dir = np.asarray(m_dir, dtype=np.float64)
        n_dir = np.sqrt(np.clip(1.0 - l_dir**2 - m_dir**2, 0.0, None))
        h, d, lat = self.hour_angle_rad, self.dec_rad, self.latitude_rad
        x = (
            l_dir * math.sin(h)
            - m_dir * math.sin(d) * math.cos(h)
            + n_dir * math.cos(d) * math.cos(h)
        )
        y = (
            l_dir * math.cos(h)
            + m_dir * math.sin(d) * math.sin(h)
            - n_dir * math.cos(d) * math.sin(h)
        )
        z = m_dir * math.cos(d) + n_dir * math.sin(d)
        east = y
        north = -math.sin(lat) * x + math.cos(lat) * z
        up = math.cos(lat) * x + math.sin(lat) * z
        az = np.arctan2(east, north) % (2.0 * math.pi)
        za = np.arccos(np.clip(up, -1.0, 1.0))
        return az, za, (up > 0) & (l_dir**2 + m_dir**2 <= 1.0)

    @property
    def drift_rad(self) -> float:
        """Angle a fixed beam moves across the sky during the observation (0 if it tracks)."""
        if not self.fixed:
            return 0.0
        return self.duration_s * SIDEREAL_RAD_PER_S * abs(math.cos(self.dec_rad))

    @property
    def zenith_angle_rad(self) -> float:
        """Zenith angle of the phase centre."""
        _, za, _ = self.to_az_za(np.zeros(1), np.zeros(1))
        return float(za[0])


# Arrays of dishes fixed at zenith, whose Gaussian or Airy beams the sky drifts through.
DRIFT_SCAN_TELESCOPES = ("HERA",)


def frame_from_uvh5(path: Path | io.RawIOBase, *, ra_deg: float, dec_deg: float) -> BeamFrame:
    """The frame of a beam fixed on the ground: site latitude, the phase centre's hour angle
    at the middle time (local sidereal time from the file; ``ra_deg``/``dec_deg`` as the
    reader reports them, for unprojected data the zenith of the middle time) and the span of
    the times. Raises InvalidInputError, one line, if the file does not say.

    Precession between the catalogue (ICRS) and apparent positions, a fraction of a degree,
    is left out: it moves the beam by that much across the field.
    """
    from pyuvdata import UVData
    from pyuvdata.uvdata.uvh5 import FastUVH5Meta

    shown = path if isinstance(path, Path) else getattr(path, "name", "the input")
    try:
        if isinstance(path, Path):
            uvd = UVData.from_file(str(path), read_data=False)
        else:  # a file read by range (payload.ranged): pyuvdata's reader wants a path
            with h5py.File(path, "r") as handle:
                uvd = FastUVH5Meta(handle).to_uvdata()
        times, index = np.unique(uvd.time_array, return_index=True)
        lsts = np.asarray(uvd.lst_array, dtype=np.float64)[index]
        integration_s = float(np.median(np.asarray(uvd.integration_time, dtype=np.float64)))
        latitude = float(uvd.telescope.location.lat.rad)
    except Exception as exc:  # any reader failure: the file cannot place the beam
        raise InvalidInputError(
            f"{shown}: cannot place the fixed primary beam on the sky ({type(exc).__name__} "
            "reading time_array, lst_array or the telescope location); the file must hold them"
        ) from None
    middle = len(times) // 2
    duration_s = float(times[-1] - times[0]) * 86400.0 + integration_s
    hour_angle = (float(lsts[middle]) - math.radians(ra_deg) + math.pi) % (2 * math.pi) - math.pi
    return BeamFrame(
        latitude_rad=latitude,
        hour_angle_rad=hour_angle,
        dec_rad=math.radians(dec_deg),
        duration_s=duration_s,
    )
