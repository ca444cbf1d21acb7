"""Primary beams of the power-spectrum normalisation, evaluated by field packages.

A beam is named by a spec string (``image --primary-beam SPEC``, job parameter
``primary_beam``):

``gaussian:FWHM_DEG``
    Gaussian power pattern of that full width at half maximum, the same at every frequency
    (pyuvdata's ``GaussianBeam``).
``gaussian:FWHM_DEG@FREQ_MHZ``
    the same, FWHM given at FREQ_MHZ and scaling as 1 / frequency.
``airy:DIAMETER_M``
    uniformly illuminated circular aperture (pyuvdata's ``AiryBeam``), e.g. ``airy:14`` for
    a HERA dish.
``mwa`` or ``mwa:D1,...,D16``
    the MWA tile, mwa-hyperbeam's analytic model, pointed with the 16 beamformer delays
    given, or those in the observation's metadata, or at zenith.

The default follows the telescope named in the data (:data:`DEFAULT_BY_TELESCOPE`); any
other telescope needs an explicit spec. The beam multiplies the sky in every visibility
(``V = int A I exp(2 pi i u.l) dl``): it is the *power* pattern A (XX, YY, or their mean for
pseudo-Stokes I), normalised to 1 at the phase centre, which is taken to be the pointing
centre; directions are ``(l, m)`` (east, north) with ``sin(za) = |(l, m)|``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from payload.beamframe import DRIFT_SCAN_TELESCOPES, BeamFrame
from payload.errors import InvalidInputError
from payload.uvh5 import H5Input, open_h5

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
HERA_DISH_M = 14.0
DEFAULT_BY_TELESCOPE = {"MWA": "mwa", "HERA": f"airy:{HERA_DISH_M:g}"}
MWA_DIPOLES = 16
SPEC_FORMS = "gaussian:FWHM_DEG, gaussian:FWHM_DEG@FREQ_MHZ, airy:DIAMETER_M, mwa, mwa:D1,...,D16"

_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_GAUSSIAN = re.compile(rf"^gaussian:{_NUMBER}(?:@{_NUMBER})?$")
_AIRY = re.compile(rf"^airy:{_NUMBER}$")


def _bad(spec: str, why: str) -> InvalidInputError:
    return InvalidInputError(f"primary beam {spec!r}: {why}; use one of {SPEC_FORMS}")


@dataclass(frozen=True)
class PrimaryBeam:
    """A parsed beam spec; :attr:`spec` is its canonical form (recorded in products)."""

    kind: str  # "gaussian", "airy" or "mwa"
    size: float = 0.0  # FWHM in degrees (gaussian) or diameter in metres (airy)
    reference_hz: float | None = None  # gaussian: frequency of ``size``; None: fixed
    delays: tuple[int, ...] = ()
    # False for ``mwa`` without delays (given or in the file): where the tile pointed is
    # unknown, and the beam is taken to be the zenith pattern centred on the phase centre.
    pointing_known: bool = field(default=True, compare=False)

    @property
    def spec(self) -> str:
        if self.kind == "gaussian":
            at = "" if self.reference_hz is None else f"@{self.reference_hz / 1e6:g}"
            return f"gaussian:{self.size:g}{at}"
        if self.kind == "airy":
            return f"airy:{self.size:g}"
        return "mwa:" + ",".join(str(d) for d in self.delays)

    @cached_property
    def _model(self) -> Any:
        if self.kind == "mwa":
            import mwa_hyperbeam

            return mwa_hyperbeam.AnalyticBeam()
        from pyuvdata.analytic_beam import AiryBeam, GaussianBeam

        if self.kind == "airy":
            return AiryBeam(diameter=self.size)
        sigma = math.radians(self.size) * FWHM_TO_SIGMA
        if self.reference_hz is None:
            return GaussianBeam(sigma=sigma, sigma_type="power")
        return GaussianBeam(
            sigma=sigma,
            sigma_type="power",
            spectral_index=-1.0,
            reference_frequency=self.reference_hz,
        )

    def power(
        self,
        l_dir: npt.NDArray[np.float64],
        m_dir: npt.NDArray[np.float64],
        freq_hz: float,
        pol: str = "I",
        *,
        frame: BeamFrame | None = None,
    ) -> npt.NDArray[np.float64]:
        """A(l, m) at ``freq_hz`` for polarization ``pol`` (XX, YY or I).

        Without ``frame`` (or with a tracking one) the beam is centred on the phase centre
        and is 1 there. With a ``frame`` fixed on the ground, each direction is evaluated at
        its true azimuth and zenith angle; the beam is then 1 at the zenith of its
        zenith-pointed self (a dish's peak; for an MWA tile, the beamformer's gain towards
        zenith with all delays 0, so a tile pointed off zenith peaks below 1, as calibrated
        MWA data see it).
        """
        l_dir = np.asarray(l_dir, dtype=np.float64).ravel()
        m_dir = np.asarray(m_dir, dtype=np.float64).ravel()
        if frame is not None and frame.fixed:
            az, za, above = frame.to_az_za(l_dir, m_dir)
        else:
            rho2 = l_dir**2 + m_dir**2
            above = rho2 < 1.0
            za = np.arcsin(np.sqrt(np.clip(rho2, 0.0, 1.0)))
            az = np.arctan2(l_dir, m_dir) % (2 * math.pi)  # from north through east
        # the reference direction, zenith, goes first: the beam is divided by its value there;
        # directions below the horizon are not evaluated (hyperbeam refuses them)
        za = np.concatenate([[0.0], za[above]])
        az = np.concatenate([[0.0], az[above]])
        values = self._evaluate(az, za, float(freq_hz), pol)
        if self.kind == "mwa" and (frame is not None and frame.fixed):
            centre = float(self._evaluate(az[:1], za[:1], float(freq_hz), pol, zenith=True)[0])
        elif self.kind == "mwa" and any(self.delays):
            raise InvalidInputError(
                f"primary beam {self.spec!r} points off zenith: the power spectrum needs the "
                "phase centre's hour angle and declination (a uvh5 input with lst_array)"
            )
        else:
            centre = float(values[0])
        if not centre > 0:
            raise InvalidInputError(f"primary beam {self.spec!r} is zero at the phase centre")
        out = np.zeros(l_dir.shape)
        out[above] = values[1:] / centre
        return out

    def _evaluate(
        self,
        az: npt.NDArray[np.float64],
        za: npt.NDArray[np.float64],
        freq_hz: float,
        pol: str,
        *,
        zenith: bool = False,
    ) -> npt.NDArray[np.float64]:
        """The field package's power pattern (unnormalised) at these az/za; ``zenith``: an
        MWA tile with all delays 0 (the reference of the fixed-beam convention)."""
        if self.kind == "mwa":
            delays = [0] * MWA_DIPOLES if zenith else list(self.delays)
            jones = np.asarray(
                self._model.calc_jones_array(az, za, freq_hz, delays, [1.0] * MWA_DIPOLES, True)
            )
            xx = np.abs(jones[:, 0]) ** 2 + np.abs(jones[:, 1]) ** 2
            yy = np.abs(jones[:, 2]) ** 2 + np.abs(jones[:, 3]) ** 2
        else:
            # pyuvdata's power beam: (axis, feed-pair pol, freq, direction); pols xx, yy, ...
            beam = np.asarray(
                self._model.power_eval(az_array=az, za_array=za, freq_array=np.asarray([freq_hz]))
            ).real
            xx, yy = beam[0, 0, 0], beam[0, 1, 0]
        return np.asarray({"XX": xx, "YY": yy}.get(pol, 0.5 * (xx + yy)), dtype=np.float64)


def parse_beam(spec: str, *, metadata_delays: tuple[int, ...] | None = None) -> PrimaryBeam:
    """Parse a beam spec; raise InvalidInputError naming the spec and the forms accepted."""
    text = spec.strip().lower()
    match = _GAUSSIAN.match(text)
    if match:
        fwhm = float(match.group(1))
        if not 0 < fwhm <= 180:
            raise _bad(spec, f"FWHM {fwhm:g} degrees is not in (0, 180]")
        ref = None if match.group(2) is None else float(match.group(2)) * 1e6
        if ref is not None and ref <= 0:
            raise _bad(spec, "the reference frequency must be positive")
        return PrimaryBeam("gaussian", size=fwhm, reference_hz=ref)
    match = _AIRY.match(text)
    if match:
        diameter = float(match.group(1))
        if diameter <= 0:
            raise _bad(spec, "the diameter must be positive")
        return PrimaryBeam("airy", size=diameter)
    if text == "mwa":
        if metadata_delays is None:
            return PrimaryBeam("mwa", delays=(0,) * MWA_DIPOLES, pointing_known=False)
        return PrimaryBeam("mwa", delays=tuple(int(d) for d in metadata_delays))
    if text.startswith("mwa:"):
        parts = text[4:].split(",")
        if len(parts) != MWA_DIPOLES or not all(p.strip().isdigit() for p in parts):
            raise _bad(spec, f"an MWA pointing is {MWA_DIPOLES} integer beamformer delays")
        delays = tuple(int(p) for p in parts)
        if max(delays) > 32:
            raise _bad(spec, "MWA beamformer delays are 0..32 (32: dipole off)")
        return PrimaryBeam("mwa", delays=delays)
    raise _bad(spec, "not a beam spec")


def resolve_beam(
    spec: str | None, *, telescope: str, metadata_delays: tuple[int, ...] | None = None
) -> PrimaryBeam:
    """The beam to use: ``spec`` if given, else the default of ``telescope``."""
    if spec is None:
        name = telescope.strip().upper()
        default = next((v for k, v in DEFAULT_BY_TELESCOPE.items() if name.startswith(k)), None)
        if default is None:
            raise InvalidInputError(
                f"telescope {telescope!r} has no default primary beam; give one with "
                f"--primary-beam (job parameter primary_beam): {SPEC_FORMS}"
            )
        spec = default
    return parse_beam(spec, metadata_delays=metadata_delays)


def mwa_delays_from_uvh5(path: H5Input) -> tuple[int, ...] | None:
    """The MWA beamformer delays pyuvdata records (extra keyword ``delays``), if any, from a
    local uvh5 file or one read by range."""
    try:
        with open_h5(path) as handle:
            extra = handle.get("Header/extra_keywords")
            if extra is None:
                return None
            for key in extra:
                if key.lower() == "delays":
                    raw = extra[key][()]
                    text = raw.decode() if isinstance(raw, bytes) else str(raw)
                    parts = [p for p in re.split(r"[,\s]+", text.strip("[] ")) if p]
                    if len(parts) == MWA_DIPOLES and all(p.isdigit() for p in parts):
                        return tuple(int(p) for p in parts)
    except (OSError, KeyError, ValueError, TypeError, AttributeError):
        return None
    return None


def is_fixed_on_ground(beam: PrimaryBeam, telescope: str) -> bool:
    """Whether this beam, on this telescope, stays put on the ground while the sky moves.

    An MWA tile does, where its delays are known (given, or in the file); without them the
    tile is taken to point at the phase centre. A Gaussian or Airy beam does on a drift-scan
    array (HERA, pointed at zenith); on any other telescope it is taken to track the phase
    centre.
    """
    if beam.kind == "mwa":
        return beam.pointing_known
    name = telescope.strip().upper()
    return any(name.startswith(t) for t in DRIFT_SCAN_TELESCOPES)
