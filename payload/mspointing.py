"""An MWA Measurement Set's beamformer delays, which pyuvdata does not carry over.

cotter and Birli write the tiles' analogue beamformer delays into the Measurement Set's
``MWA_TILE_POINTING`` table (columns ``INTERVAL``, ``DELAYS``, ``DIRECTION``; one row per
pointing). pyuvdata 3.2's MS reader leaves that table out, so a uvh5 converted from such a
Measurement Set would have no delays and the power spectrum would take the zenith pattern
centred on the phase centre: for ``1102865728_small.ms`` (delays 6,4,2,0,8,6,...: about
14 deg off zenith) a silent error in the normalisation. The delays are copied into the
converted file's ``extra_keywords["delays"]``, as pyuvdata's FHD reader writes them
("[6, 4, ...]"), where :func:`payload.beams.mwa_delays_from_uvh5` reads them.

A Measurement Set with more than one pointing (several observations concatenated) has no
single beam: it is refused in one line rather than given one of them.
"""

from __future__ import annotations

from pathlib import Path

from payload.beams import MWA_DIPOLES
from payload.errors import InvalidInputError

TABLE = "MWA_TILE_POINTING"


def mwa_ms_delays(ms: Path) -> tuple[int, ...] | None:
    """The one pointing's 16 delays in ``ms``'s ``MWA_TILE_POINTING`` table, or None when the
    table is absent or empty (not an MWA Measurement Set, or one written without it).

    Raises InvalidInputError when the table holds several pointings or malformed delays.
    """
    if not (ms / TABLE / "table.dat").is_file():
        return None
    from casacore import tables  # only a Measurement Set gets here: pyuvdata needed it too

    with tables.table(str(ms / TABLE), ack=False) as table:
        if "DELAYS" not in table.colnames() or table.nrows() == 0:
            return None
        pointings = {tuple(int(d) for d in row) for row in table.getcol("DELAYS")}
    if len(pointings) > 1:
        raise InvalidInputError(
            f"{ms.name}: {TABLE} holds {len(pointings)} different beamformer pointings; a power "
            "spectrum needs one beam: split the Measurement Set by pointing (one per job)"
        )
    (delays,) = pointings
    if len(delays) != MWA_DIPOLES or not all(0 <= d <= 32 for d in delays):
        raise InvalidInputError(
            f"{ms.name}: {TABLE} DELAYS {list(delays)} are not {MWA_DIPOLES} beamformer delays "
            "of 0..32"
        )
    return delays


def delays_keyword(delays: tuple[int, ...]) -> str:
    """The delays as pyuvdata's FHD reader writes them into ``extra_keywords``."""
    return "[" + ", ".join(str(d) for d in delays) + "]"
