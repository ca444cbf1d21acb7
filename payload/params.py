"""Parameters of the imaging and integration jobs: defaults in one place, validated once.

Params travel in the SQS job message and are hashed into ``params_hash``, so they are plain
JSON values. :meth:`ImagingParams.from_mapping` is the only way in: it fills defaults,
rejects unknown keys and wrong values with an :class:`~payload.errors.InvalidInputError`
naming the parameter, and :meth:`ImagingParams.to_dict` gives the canonical JSON form.

Two groups of parameters:

* per observation (image size, pixel scale, weighting, w-gridding, chunk size);
* stack level (``uv_cell_lambda``, ``uv_max_lambda``, ``ps_taper_fwhm_deg``): they fix the
  uv grid of the uv cube, so every observation of a field that is to be integrated must use
  the same values (the integrate job checks this).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from payload.errors import InvalidInputError

POLARIZATIONS = ("XX", "YY", "I")
WEIGHTINGS = ("natural", "uniform")


@dataclass(frozen=True)
class ImagingParams:
    """Everything that decides what an ``image`` job produces.

    Attributes
    ----------
    chunk_channels
        Frequency channels per chunk (the unit of checkpointing).
    polarizations
        Any of ``XX``, ``YY`` and pseudo-Stokes ``I`` (= (XX + YY) / 2).
    weighting
        ``natural`` (weight = nsamples) or ``uniform`` (divided by the weight sum of the
        visibility's uv cell, WSClean's cells: see ``payload.imaging.uniform_weights``).
    image_size
        Pixels per side (even, >= 32); default: field of view / pixel scale.
    pixel_scale_arcsec
        Pixel size; default: 1 / (``pixels_per_beam`` x longest baseline in wavelengths).
    fov_deg
        Field of view used to choose ``image_size`` when it is not given.
    pixels_per_beam
        Pixels across the synthesised beam when the pixel scale is chosen.
    wgridding
        Full w-gridding (ducc0 ``do_wgridding``); turn off only for narrow fields.
    epsilon
        Requested accuracy of ducc0's gridder.
    uv_cell_lambda, uv_max_lambda
        Stack-level uv grid of the uv cube: cell size and half-width in wavelengths.
    ps_taper_fwhm_deg
        FWHM of the Gaussian image-plane taper applied before the uv cube is formed: it sets
        the uv gridding kernel (width 1 / (2 pi sigma_taper) wavelengths).
    primary_beam
        Beam spec of the power-spectrum normalisation (:mod:`payload.beams`), e.g.
        ``gaussian:25``, ``airy:14``, ``mwa``; default (None): from the telescope's name.
    n_k_bins
        Number of k_perp (cylindrical) and |k| (spherical) bins.
    nthreads
        Threads for gridding; one ducc0 call per thread, so results do not depend on it.
    """

    chunk_channels: int = 8
    polarizations: tuple[str, ...] = POLARIZATIONS
    weighting: str = "natural"
    image_size: int | None = None
    pixel_scale_arcsec: float | None = None
    fov_deg: float = 10.0
    pixels_per_beam: float = 3.0
    wgridding: bool = True
    epsilon: float = 1e-6
    uv_cell_lambda: float = 1.0
    uv_max_lambda: float = 64.0
    ps_taper_fwhm_deg: float = 20.0
    primary_beam: str | None = None
    n_k_bins: int = 16
    nthreads: int = 2

    # Keys that change neither products nor chunks: left out of the hash-relevant dict.
    _NOT_HASHED = ("nthreads",)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any] | None) -> ImagingParams:
        """Validate JSON params (a job message's ``params``) and fill in defaults."""
        params = dict(params or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise InvalidInputError(
                f"unknown imaging parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(names))}"
            )
        if "polarizations" in params:
            pols = params["polarizations"]
            if isinstance(pols, str):
                pols = [p.strip() for p in pols.split(",") if p.strip()]
            if not isinstance(pols, list | tuple):
                raise InvalidInputError("parameter polarizations must be a list of names")
            params["polarizations"] = tuple(str(p).upper() for p in pols)
        try:
            made = cls(**params)
        except TypeError as exc:
            raise InvalidInputError(f"bad imaging parameters: {exc}") from None
        made.validate()
        return made

    def validate(self) -> None:
        """Raise :class:`InvalidInputError` naming the first parameter that is wrong."""
        _int(self, "chunk_channels", low=1)
        _int(self, "n_k_bins", low=2)
        _int(self, "nthreads", low=1)
        if not self.polarizations:
            raise InvalidInputError("parameter polarizations is empty")
        for pol in self.polarizations:
            if pol not in POLARIZATIONS:
                raise InvalidInputError(
                    f"parameter polarizations: {pol!r} is not one of {', '.join(POLARIZATIONS)}"
                )
        if len(set(self.polarizations)) != len(self.polarizations):
            raise InvalidInputError("parameter polarizations lists a polarization twice")
        if self.weighting not in WEIGHTINGS:
            raise InvalidInputError(
                f"parameter weighting: {self.weighting!r} is not one of {', '.join(WEIGHTINGS)}"
            )
        if self.image_size is not None:
            _int(self, "image_size", low=32)
            if self.image_size % 2:
                raise InvalidInputError(f"parameter image_size must be even, got {self.image_size}")
        if self.pixel_scale_arcsec is not None:
            _positive(self, "pixel_scale_arcsec")
        for name in ("fov_deg", "pixels_per_beam", "uv_cell_lambda", "uv_max_lambda"):
            _positive(self, name)
        _positive(self, "ps_taper_fwhm_deg")
        if not isinstance(self.wgridding, bool):
            raise InvalidInputError("parameter wgridding must be true or false")
        _positive(self, "epsilon")
        if not 1e-12 <= self.epsilon <= 1e-2:
            raise InvalidInputError(
                f"parameter epsilon must be in [1e-12, 1e-2], got {self.epsilon}"
            )
        if self.primary_beam is not None:
            from payload.beams import parse_beam

            if not isinstance(self.primary_beam, str):
                raise InvalidInputError("parameter primary_beam must be a beam spec string")
            parse_beam(self.primary_beam)
        if self.uv_max_lambda < 4 * self.uv_cell_lambda:
            raise InvalidInputError("parameter uv_max_lambda must be at least 4 uv cells")

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON form (what is hashed and recorded in products)."""
        doc = dataclasses.asdict(self)
        doc["polarizations"] = list(self.polarizations)
        for name in self._NOT_HASHED:
            doc.pop(name)
        return doc

    def stack_params(self) -> StackParams:
        """The parameters that must agree between uv cubes that are summed."""
        return StackParams(
            uv_cell_lambda=self.uv_cell_lambda,
            uv_max_lambda=self.uv_max_lambda,
            ps_taper_fwhm_deg=self.ps_taper_fwhm_deg,
        )


@dataclass(frozen=True)
class StackParams:
    """The stack-level parameters a uv cube was made with (the module docstring's second
    group): cubes are summed only if these agree. Written to ``uvcube.h5`` as the JSON of
    :meth:`to_dict` (attribute ``stack_params``), read back with :meth:`from_mapping`.

    The values are kept as given (an integer stays an integer), so that the JSON a cube
    records is the JSON its parameters had.
    """

    uv_cell_lambda: float
    uv_max_lambda: float
    ps_taper_fwhm_deg: float

    def to_dict(self) -> dict[str, float]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def to_json(self) -> str:
        """The ``stack_params`` attribute of ``uvcube.h5`` (keys sorted)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> StackParams:
        """From a uv cube's ``stack_params``; InvalidInputError names a missing or
        unknown key, or a value that is not a number."""
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in doc]
        unknown = sorted(set(doc) - set(names))
        if missing or unknown:
            raise InvalidInputError(
                f"stack_params: missing {', '.join(missing) or 'none'}, "
                f"unknown {', '.join(unknown) or 'none'} (expected {', '.join(names)})"
            )
        for name in names:
            value = doc[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInputError(f"stack_params: {name} must be a number, got {value!r}")
        return cls(**{name: doc[name] for name in names})


def _int(params: ImagingParams, name: str, *, low: int) -> None:
    value = getattr(params, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"parameter {name} must be an integer >= {low}, got {value!r}")


def _positive(params: ImagingParams, name: str) -> None:
    value = getattr(params, name)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidInputError(f"parameter {name} must be a positive number, got {value!r}")
