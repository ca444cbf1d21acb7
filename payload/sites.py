"""Offline astropy set-up: the MWA site in the site registry and no IERS downloads.

astropy fetches its observatory list (``sites.json``) the first time any code asks for a
site by name, and pyuvdata asks for one when it reads a Measurement Set, MWA raw files or
builds a known telescope. Spot instances in a private subnet have no route to the
internet, so we install a registry of our own before anything asks, and turn off the IERS
auto-download (the bundled IERS-B table is enough for uvw and LST at the precision imaging
needs, and a stale table is a warning, not an error).
"""

from __future__ import annotations

import astropy.units as u
from astropy.coordinates import EarthLocation
from astropy.coordinates.sites import SiteRegistry
from astropy.utils import iers

# Values from astropy's own sites.json entry for the MWA (geodetic, WGS84).
MWA_LONGITUDE_DEG = 116.67081524
MWA_LATITUDE_DEG = -26.70331940
MWA_HEIGHT_M = 377.827

_installed = False


def mwa_location() -> EarthLocation:
    """The MWA array centre as an :class:`~astropy.coordinates.EarthLocation`."""
    return EarthLocation.from_geodetic(
        MWA_LONGITUDE_DEG * u.deg, MWA_LATITUDE_DEG * u.deg, MWA_HEIGHT_M * u.m
    )


def install_offline_sites() -> None:
    """Make astropy work without network access; safe to call any number of times.

    Installs a site registry holding the MWA (under the names pyuvdata and users use) if
    astropy has not loaded one yet, and disables IERS downloads.
    """
    global _installed
    if _installed:
        return
    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    # A registry already loaded (from the astropy cache) is kept: it is a superset.
    if not EarthLocation._site_registry:
        registry = SiteRegistry()
        location = mwa_location()
        location.info.name = "Murchison Widefield Array"
        registry.add_site(["mwa", "MWA", "Murchison Widefield Array"], location)
        EarthLocation._site_registry = registry
    _installed = True
