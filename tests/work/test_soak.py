"""The short soak: ``bench/soak.py`` with a few tens of interruptions, and a negative control.

The soak runs real workers on the local cloud under SIGKILLs inside work points, S3 faults
through the proxy, IMDS faults and duplicate deliveries, then checks every product against
a reference the work plane never touched (selftest: computed in the test's process; image:
an uninterrupted run). Before checking, ``--negative-control`` damages three done jobs as
a faulty work plane would (a flipped product byte, a DONE written twice, a DONE deleted): the
check must find exactly those three, which shows it can fail, and every other job must be
done and identical. Interruptions are counted in work, so the run means the same on a
loaded machine; the subprocess timeout is only a hang guard.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
INTERRUPTIONS = 30


def test_short_soak_loses_nothing_and_catches_damage(tmp_path: Path) -> None:
    command = [sys.executable, str(REPO / "bench" / "soak.py")]
    command += ["--interruptions", str(INTERRUPTIONS), "--workers", "3", "--seed", "5"]
    command += ["--image-jobs", "1", "--big-jobs", "2", "--negative-control"]
    command += ["--out", str(tmp_path / "soak")]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1500)
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["target_reached"], summary
    assert summary["drained"], summary
    assert summary["interruptions"] >= INTERRUPTIONS
    assert sum(summary["sigkilled_in_work_point"].values()) > 0
    assert not summary["wall_clock_cap_hit"]
    # Kills driven from outside by the proxy, at the windows the worker announces nothing in.
    proxy_kills = {k for k in summary["sigkilled_in_work_point"] if k.startswith("proxy-")}
    assert proxy_kills, summary["sigkilled_in_work_point"]
    assert summary["image_references"] == 1  # python -m payload image, outside the work plane
    assert summary["jobs_by_kind"].get("image") == 1
    assert summary["big_jobs"] == 2
    assert sum(summary["s3_faults"].values()) > 0
    # Exactly the damage the control did, and nothing else.
    assert (summary["corrupt"], summary["duplicate_done"], summary["lost"]) == (1, 1, 1), summary
    assert summary["done"] == summary["jobs"] - 1
    assert summary["identical"] == summary["jobs"] - 2, summary["problems"]
    assert run.returncode == 1  # the damaged jobs fail the soak, as they must
