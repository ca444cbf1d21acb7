"""An MWA Measurement Set's beamformer delays reach the power spectrum's beam (issue 19).

Oracle: the real ``1102865728_small.ms`` (pyuvdata's test data, written by cotter) read with
python-casacore's own table API here, not through spotcube: its ``MWA_TILE_POINTING`` table
says where the tiles pointed. Before this, pyuvdata's conversion dropped the table and the
image job took the zenith pattern centred on the phase centre.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from payload.beams import mwa_delays_from_uvh5, resolve_beam
from payload.errors import InvalidInputError
from payload.mspointing import mwa_ms_delays
from payload.reading import prepare_input


def _table_delays(ms: Path) -> tuple[int, ...]:
    from casacore import tables

    with tables.table(str(ms / "MWA_TILE_POINTING"), ack=False) as table:
        rows = table.getcol("DELAYS")
    assert len(rows) == 1
    return tuple(int(d) for d in rows[0])


def test_the_converted_file_carries_the_ms_delays(mwa_ms: Path, tmp_path: Path) -> None:
    expected = _table_delays(mwa_ms)
    assert any(expected), "this observation points off zenith"
    converted = prepare_input(mwa_ms, tmp_path / "cache")
    assert mwa_delays_from_uvh5(converted) == expected
    beam = resolve_beam(None, telescope="MWA", metadata_delays=mwa_delays_from_uvh5(converted))
    assert beam.spec == "mwa:" + ",".join(str(d) for d in expected)


def test_several_pointings_are_refused_in_one_line(mwa_ms: Path, tmp_path: Path) -> None:
    from casacore import tables

    copy = tmp_path / mwa_ms.name
    shutil.copytree(mwa_ms, copy)
    with tables.table(str(copy / "MWA_TILE_POINTING"), readonly=False, ack=False) as table:
        table.addrows(1)
        table.putcell("DELAYS", 1, np.zeros(16, dtype=np.int32))
    with pytest.raises(InvalidInputError) as caught:
        mwa_ms_delays(copy)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{copy.name}: MWA_TILE_POINTING holds 2 different")
    assert "split the Measurement Set by pointing" in message


def test_a_measurement_set_without_the_table_has_no_delays(tmp_path: Path) -> None:
    (tmp_path / "plain.ms").mkdir()
    assert mwa_ms_delays(tmp_path / "plain.ms") is None


def test_the_pointed_ms_still_images_and_records_its_beam(mwa_ms: Path, tmp_path: Path) -> None:
    """With its delays read, this one-integration MS's tile beam spills 15 % of int A^2
    beyond the default grid's field, which would refuse a power spectrum; there is none to
    estimate (one time sample), so the images are made and the spectrum says why it is
    empty, with the pointed beam recorded (found when the delays were first read: the job
    exited 65 and made no images)."""
    import h5py

    from payload.cli import main

    out = tmp_path / "products"
    assert main(["image", str(mwa_ms), "--out", str(out), "--quiet"]) == 0
    with h5py.File(out / "powerspec.h5", "r") as handle:
        assert handle.attrs["primary_beam"] == "mwa:" + ",".join(
            str(d) for d in _table_delays(mwa_ms)
        )
        assert str(handle.attrs["not_estimated"]).startswith("not estimated")
    assert (out / "image_cube.fits").stat().st_size > 0
