"""Cosmological conversions for 21 cm power spectra (astropy's Planck18).

Units used throughout: k in Mpc^-1 (not h Mpc^-1), power in mK^2 Mpc^3, distances in Mpc.
The 21 cm line is observed at ``nu = 1420.405751768 MHz / (1 + z)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import astropy.units as u
from astropy.constants import c, k_B
from astropy.cosmology import Planck18

NU21_HZ = 1420.405751768e6
C_M_S = c.to_value(u.m / u.s)
K_BOLTZMANN = k_B.to_value(u.J / u.K)
JY_SI = 1e-26  # W m^-2 Hz^-1


def redshift(freq_hz: float) -> float:
    """Redshift of 21 cm emission observed at ``freq_hz``."""
    return NU21_HZ / freq_hz - 1.0


@dataclass(frozen=True)
class CosmoScales:
    """Conversion factors at the band centre.

    ``x_mpc_per_rad``: comoving transverse distance (Mpc per radian of angle);
    ``y_mpc_per_hz``: comoving line-of-sight distance per Hz of frequency.
    """

    freq_hz: float
    z: float
    x_mpc_per_rad: float
    y_mpc_per_hz: float

    @classmethod
    def at(cls, freq_hz: float) -> CosmoScales:
        z = redshift(freq_hz)
        x = Planck18.comoving_transverse_distance(z).to_value(u.Mpc)
        hz = Planck18.H(z).to_value(u.km / u.s / u.Mpc) * 1e3  # m/s/Mpc
        y = C_M_S * (1.0 + z) ** 2 / (hz * NU21_HZ)
        return cls(freq_hz=freq_hz, z=z, x_mpc_per_rad=x, y_mpc_per_hz=y)

    def k_perp(self, u_lambda: float) -> float:
        """k_perp (Mpc^-1) of a baseline of ``u_lambda`` wavelengths."""
        return 2.0 * math.pi * u_lambda / self.x_mpc_per_rad

    def k_par(self, delay_s: float) -> float:
        """k_parallel (Mpc^-1) of a delay in seconds."""
        return 2.0 * math.pi * delay_s / self.y_mpc_per_hz

    @property
    def horizon_slope(self) -> float:
        """d k_par / d k_perp of the horizon line (delay |b|/c = u / nu)."""
        return self.x_mpc_per_rad / (self.y_mpc_per_hz * self.freq_hz)


def jy_to_mk_sr(freq_hz: float) -> float:
    """mK sr per Jy at ``freq_hz`` (Rayleigh-Jeans: T = I lambda^2 / (2 k_B))."""
    wavelength = C_M_S / freq_hz
    return JY_SI * wavelength**2 / (2.0 * K_BOLTZMANN) * 1e3
