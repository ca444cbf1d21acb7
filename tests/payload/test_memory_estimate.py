"""The memory estimate of an image job against the memory ``python -m payload image`` uses.

:func:`payload.jobs.sizing.estimate_image_job` decides from the header and options whether
a job may start. Here the real command runs in a child process on synthetic observations of
three shapes, each chosen so that another part of the estimate dominates (the uv cube and
power spectrum when combining, the visibilities of a chunk, the images of a chunk), and
the kernel's account of the child's peak resident set size (``ru_maxrss``, the child's
VmHWM) is compared with the estimate.

What the estimate covers is the job's own arrays, not the interpreter, the libraries' code
and the fixed costs of drawing and writing files: those are the peak of a baseline run of
the same command on the smallest job there is (4 channels, one polarization, 32 pixels, a
32-cell uv grid), whose own estimate is a few MiB. A run's increment over that baseline
must be at most its estimate, and the estimate at most ``LOOSEST`` times the increment.
The numbers measured when this was written are in docs/benchmarks.md ("Memory estimate").
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from payload.cli import build_parser
from payload.commands.image import params_from_args
from payload.jobs.image import ImageJob
from payload.jobs.sizing import estimate_image_job
from payload.synth import write_preset
from payload.synth import write_synthetic_observation as write_obs
from tests.payload.conftest import make_context

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MIB = 1024**2
# The estimate may be this many times the measured increment. It counts, at once, what
# the run holds only when the phases coincide (the chunk being gridded and the one read
# ahead, every thread's gridding planes, the larger of the combine steps) and adds a
# quarter for the allocator; measured ratios were 1.1-1.9. A factor of 3 still starts
# every job that needs less than MEMORY_SHARE / 3 (27 %) of the machine.
LOOSEST = 3.0

BASELINE = ["--image-size", "32", "--chunk-channels", "4", "--polarizations", "XX"]
BASELINE += ["--uv-max", "16"]


@dataclass(frozen=True)
class Case:
    observation: str
    options: tuple[str, ...]
    dominant: str  # the option the estimate names: which part of it this case exercises


CASES = {
    # 2,080 baselines x 4 times x 16 channels: combining (uv cube + power spectrum) dominates.
    "combine": Case("mid", ("--image-size", "512", "--chunk-channels", "4"), "--uv-cell"),
    # 8,256 baselines x 4 times, 16 channels in one chunk: the visibilities dominate.
    "visibilities": Case("big", ("--image-size", "128", "--chunk-channels", "16"), "--chunk"),
    # 136 baselines, 1024^2 pixels of 20": the chunk's images and gridding planes dominate.
    "images": Case(
        "tiny",
        (
            "--image-size",
            "1024",
            "--chunk-channels",
            "2",
            "--pixel-scale",
            "20",
            "--polarizations",
            "I",
        ),
        "--image-size",
    ),
}


@pytest.fixture(scope="module")
def observations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("memory")
    paths = {name: root / f"{name}.uvh5" for name in ("tiny", "mid", "big")}
    write_preset(paths["tiny"], "tiny")  # 16 tiles, 16 channels, 2 times
    write_obs(paths["mid"], n_tiles=64, n_freqs=16, n_times=4)
    write_obs(paths["big"], n_tiles=128, n_freqs=16, n_times=4)
    return paths


# Runs the command and prints its peak resident kilobytes. A fresh, small interpreter in
# between, because a child's ru_maxrss starts from the resident size of the process it was
# forked from (Linux keeps the old address space's high-water mark across exec): measured
# from the test process directly, every run would read at least pytest's few hundred MiB.
WRAPPER = (
    "import resource, subprocess, sys\n"
    "status = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(status)\n"
)


def peak_rss(path: Path, options: list[str], out: Path) -> int:
    """Peak resident bytes of ``python -m payload image`` run to completion in a child."""
    argv = [sys.executable, "-m", "payload", "image", str(path), "--out", str(out), "--quiet"]
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, *argv, *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1]) * 1024  # kilobytes on Linux


def estimate(path: Path, options: list[str], workdir: Path) -> tuple[int, str]:
    """The command's own estimate: its params from its own parser, as the job computes it."""
    args = build_parser().parse_args(["image", str(path), "--out", str(workdir), *options])
    job = ImageJob(make_context(path, params_from_args(args), workdir))
    needed = estimate_image_job(job.info, job.geometry, job.params)
    return needed.memory, needed.memory_option


@pytest.fixture(scope="module")
def baseline(observations: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> int:
    root = tmp_path_factory.mktemp("baseline")
    own, _ = estimate(observations["tiny"], BASELINE, root / "work")
    assert own < 8 * MIB  # the baseline's own arrays are negligible next to the cases
    return peak_rss(observations["tiny"], BASELINE, root / "out")


@pytest.mark.parametrize("name", sorted(CASES))
def test_estimate_bounds_the_memory_a_run_uses(
    name: str, observations: dict[str, Path], baseline: int, tmp_path: Path
) -> None:
    case = CASES[name]
    path = observations[case.observation]
    needed, option = estimate(path, list(case.options), tmp_path / "work")
    assert option.startswith(case.dominant), option
    used = peak_rss(path, list(case.options), tmp_path / "out") - baseline
    report = (
        f"{name}: estimate {needed / MIB:.0f} MiB, measured {used / MIB:.0f} MiB over the "
        f"baseline's {baseline / MIB:.0f} MiB"
    )
    print(report)  # shown with pytest -s: the numbers of docs/benchmarks.md
    assert used <= needed, report
    assert needed <= LOOSEST * used, report
