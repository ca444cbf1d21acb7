"""Support of the hostile-corpus tests: an isolated CLI run and an independent oracle.

``run_isolated`` runs ``python -m payload``'s ``main`` in a child forked from a
multiprocessing fork server (its imports are preloaded once, so a run costs its own work
only), with a timeout for hangs and the exit status of a crash (a negative signal number)
kept apart from an exit code. Not forked from the test process itself: by the time these
tests run, earlier tests have started thread pools there (mwa-hyperbeam's Rust pool among
them), and a child forked from a threaded process inherits their locks without their
threads — the MWA beam then waited forever on a futex, holding the GIL.

``expected_centre`` is the oracle the products are checked against. It does not use the
payload's code: the dirty image's pixel at the phase centre (l = m = 0, where every phase
term and the w term vanish) is, for natural weighting, exactly the weighted mean of the
real parts of the visibilities, Σ w Re V / Σ w, with w = nsamples where the rule for values
(docs/imaging.md, "Values") keeps a visibility and 0 elsewhere. Reading is done by h5py
(uvh5) or by pyuvdata (every other format), in numpy here.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
from astropy.io import fits

# Imported once by the fork server so that every run inherits them instead of importing
# them again (the CLI, combine's plotting and power spectrum modules: seconds per run).
_PRELOAD = ["payload.cli", "payload.commands.image", "payload.plots", "payload.powerspec"]
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(_PRELOAD)

XX, YY = -5, -6
# ducc0's gridding error is bounded by epsilon (1e-6 by default) times Σ|w V|; the
# products are float32 (relative precision 6e-8). 1e-5 leaves a margin on both.
RTOL = 1e-5


@dataclass(frozen=True)
class Run:
    status: int | None  # None: killed after the timeout
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stderr.splitlines()


def _child(argv: list[str], err_path: str) -> None:
    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    try:
        from payload.cli import main

        status = main(argv)
    except BaseException as exc:  # a traceback would have reached the user: report it
        import traceback

        traceback.print_exc()
        status = 99 if not isinstance(exc, SystemExit) else int(exc.code or 0)
    sys.stderr.flush()
    os._exit(status)


def run_isolated(argv: list[str], err_path: Path, *, timeout: float = 180.0) -> Run:
    """``main(argv)`` in a child of the fork server; its exit status and stderr."""
    process = _CONTEXT.Process(target=_child, args=(argv, str(err_path)))
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        return Run(None, err_path.read_text() if err_path.exists() else "")
    return Run(process.exitcode, err_path.read_text() if err_path.exists() else "")


@dataclass(frozen=True)
class Expected:
    """What the products of an input must hold, from the oracle."""

    centre: dict[int, npt.NDArray[np.float64]]  # pol code -> per-channel centre pixel
    tolerance: dict[int, npt.NDArray[np.float64]]
    nonfinite_visibilities: int
    bad_nsamples: int

    @property
    def anything_left(self) -> bool:
        return any(np.any(t > 0) for t in self.tolerance.values())


def rule_weights(
    vis: npt.NDArray[Any], flags: npt.NDArray[Any], nsamples: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.float64], int, int]:
    """Weights by the documented rule, and the counts of what it flags (written again here)."""
    vis = np.asarray(vis, dtype=np.complex128)
    ns = np.asarray(nsamples, dtype=np.float64)
    open_ = ~np.asarray(flags, dtype=bool)
    finite = np.isfinite(vis.real) & np.isfinite(vis.imag)
    ns_ok = np.isfinite(ns) & (ns > 0)
    nonfinite = int((open_ & ~finite).sum())
    bad = int((open_ & finite & ~ns_ok).sum())
    return np.where(open_ & finite & ns_ok, ns, 0.0), nonfinite, bad


def expected_from_arrays(
    cross: npt.NDArray[np.bool_],
    pols: npt.NDArray[Any],
    vis: npt.NDArray[Any],
    flags: npt.NDArray[Any],
    nsamples: npt.NDArray[Any],
) -> Expected:
    """The oracle from (Nblts, Nfreqs, Npols) arrays of any reader."""
    centre, tolerance = {}, {}
    nonfinite = bad = 0
    codes = [int(p) for p in np.asarray(pols).ravel()]
    for code in (XX, YY):
        i = codes.index(code)
        v = np.asarray(vis[cross][:, :, i], dtype=np.complex128)
        w, n_nonfinite, n_bad = rule_weights(v, flags[cross][:, :, i], nsamples[cross][:, :, i])
        nonfinite, bad = nonfinite + n_nonfinite, bad + n_bad
        v = np.where(w > 0, v, 0.0)
        total = w.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            centre[code] = np.where(total > 0, (w * v.real).sum(axis=0) / total, 0.0)
            tolerance[code] = np.where(
                total > 0, RTOL * (w * np.abs(v)).sum(axis=0) / total + 1e-30, 0.0
            )
    return Expected(centre, tolerance, nonfinite, bad)


def expected_uvh5(path: Path) -> Expected:
    """The oracle of a uvh5 file, read with h5py alone."""
    with h5py.File(path, "r") as handle:
        header, data = handle["Header"], handle["Data"]
        cross = header["ant_1_array"][()] != header["ant_2_array"][()]
        return expected_from_arrays(
            cross,
            header["polarization_array"][()],
            data["visdata"][()],
            data["flags"][()],
            data["nsamples"][()],
        )


def expected_pyuvdata(target: str | list[str], *, phase_to_middle: bool = False) -> Expected:
    """The oracle of any format pyuvdata reads (drift data phased to the middle time)."""
    from pyuvdata import UVData

    uvd = UVData()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uvd.read(target, run_check_acceptability=False)
        if phase_to_middle:
            times = np.unique(uvd.time_array)
            uvd.phase_to_time(float(times[len(times) // 2]))
    cross = uvd.ant_1_array != uvd.ant_2_array
    return expected_from_arrays(
        cross, uvd.polarization_array, uvd.data_array, uvd.flag_array, uvd.nsample_array
    )


def check_products(out: Path, expected: Expected) -> None:
    """The products of a run that exited 0 agree with the oracle."""
    import json

    provenance = json.loads((out / "provenance.json").read_text())
    counts = provenance["flagged_by_value_rule"]
    assert counts["nonfinite_visibilities"] == expected.nonfinite_visibilities, counts
    assert counts["bad_nsamples"] == expected.bad_nsamples, counts
    with fits.open(out / "image_cube.fits") as hdul:
        by_pol = {int(hdu.header["CRVAL4"]): hdu for hdu in hdul}
        for code in (XX, YY):
            hdu = by_pol[code]
            cube = np.asarray(hdu.data, dtype=np.float64)[0]
            assert np.isfinite(cube).all(), f"non-finite pixels in pol {code}"
            y, x = int(hdu.header["CRPIX2"]) - 1, int(hdu.header["CRPIX1"]) - 1
            _close(cube[:, y, x], expected, code)


def _close(got: npt.NDArray[np.float64], expected: Expected, code: int) -> None:
    want, tol = expected.centre[code], expected.tolerance[code]
    # float32 products: at least a float32 rounding of the value itself.
    allowed = tol + 1.2e-7 * np.abs(want)
    bad = np.abs(got - want) > allowed
    assert not bad.any(), (
        f"pol {code}: centre pixel of channels {np.flatnonzero(bad).tolist()} is "
        f"{got[bad].tolist()}, the oracle says {want[bad].tolist()} (+- {allowed[bad].tolist()})"
    )


def assert_outcome(run: Run, out: Path, expected: Expected | None) -> str:
    """The invariant: exit 0 with products the oracle agrees with, or 65 with one line."""
    assert run.status is not None, "the run hung (killed after its timeout)"
    assert "Traceback" not in run.stderr, run.stderr
    if run.status == 65:
        assert len(run.lines) == 1, run.lines
        # The one line names the input (or an option): "payload image: <what>: <problem>".
        assert str(out.parent) in run.lines[0] or "--" in run.lines[0], run.lines
        visible = [p for p in out.iterdir() if not p.name.startswith(".")] if out.exists() else []
        assert visible == [], f"a refused input left products: {visible}"
        return "invalid"
    assert run.status == 0, (run.status, run.stderr)
    assert expected is not None, "exit 0, but the oracle cannot read the input"
    assert expected.anything_left, "exit 0, but the rule leaves nothing to image"
    check_products(out, expected)
    return "done"
