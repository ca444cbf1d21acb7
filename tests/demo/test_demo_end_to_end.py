"""``spotcube demo`` end to end: real worker processes, real interruptions, real products.

One demo run (selftest jobs) is shared by the module; each test checks one fact of its report
against what is on disk. The run interrupts instances on a schedule counted in work
(``WorkSchedule``: a spot notice when the worker has computed its 2nd to 4th chunk), not in
wall-clock seconds: on a loaded machine the same seed interrupts the same work, where a
wall-clock rate reclaimed instances faster than they started and finished 2 of 3 jobs in
the time limit (issue 10). The timeout is a bound against hangs, not a speed requirement.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from spotcube.demo import DemoOptions, run_demo
from spotcube.local.fleet import InterruptionModel, WorkSchedule

pytestmark = pytest.mark.slow

OBSERVATIONS = 3
# The rate and speedup set the notice's length and the simulated cost; the schedule below
# decides when instances are interrupted.
RATE, SPEEDUP, SEED = 1.2, 600.0, 7
SCHEDULE = WorkSchedule(points=("chunk-computed",), arrivals=(2, 4), notice_fraction=1.0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("demo")
    options = DemoOptions(
        out=out,
        workers=2,
        observations=OBSERVATIONS,
        kind="selftest",
        params={"chunks": 6, "chunk_seconds": 0.6, "chunk_bytes": 20_000},
        interrupt_rate=RATE,
        speedup=SPEEDUP,
        seed=SEED,
        reference_workers=2,
        timeout=900.0,
        schedule=SCHEDULE,
    )
    # Each test reads the report as report.json has it (the record's document).
    report = json.loads(run_demo(options).to_json())
    return report, out


def test_every_observation_is_done_and_verified(demo: tuple[dict[str, Any], Path]) -> None:
    report, _ = demo
    assert (report["observations"], report["done"], report["failed"]) == (OBSERVATIONS, 3, 0)
    assert not report["timed_out"]
    assert report["verified_identical"] is True
    assert all(o["identical"] and o["products"] for o in report["per_observation"])


def test_instances_were_reclaimed_and_replaced(demo: tuple[dict[str, Any], Path]) -> None:
    report, _ = demo
    assert report["instances_reclaimed"] > 0
    events = report["timeline"]
    delay = report["settings"]["replacement_seconds_wall"]
    # The fleet scales to zero once the last observation is done, so no earlier than this.
    draining = max(e["t"] for e in events if e["kind"] == "done")
    launches = sorted(e["t"] for e in events if e["kind"] == "launch")
    # Like an ASG, the fleet replaces every reclaimed instance after the delay, unless the
    # run was over (the fleet scaling to zero) before the replacement was due.
    due = [e["t"] + delay for e in events if e["kind"] in ("kill", "exit")]
    due = [t for t in due if t < draining - 0.5]
    assert due, "no reclaim early enough to be replaced"
    replacements = launches[2:]  # the first two are the fleet's initial instances
    assert len(replacements) >= len(due)
    for when, launched in zip(sorted(due), replacements, strict=False):
        assert launched >= when - 0.05


def test_reclaim_is_a_sigkill_at_the_notice_deadline(demo: tuple[dict[str, Any], Path]) -> None:
    report, _ = demo
    events = report["timeline"]
    notice_wall = report["settings"]["notice_seconds_wall"]
    kills = [e for e in events if e["kind"] == "kill"]
    assert kills
    for kill in kills:
        notice = next(
            e for e in events if e["kind"] == "notice" and e["instance_id"] == kill["instance_id"]
        )
        assert kill["t"] - notice["t"] >= notice_wall - 0.01
        # killed by SIGKILL, or already gone after handing its job back (EX_TEMPFAIL)
        assert kill["detail"] in ("exit code -9", "exit code 75")


def test_products_on_disk_match_the_report(demo: tuple[dict[str, Any], Path]) -> None:
    report, out = demo
    for obs in report["per_observation"]:
        for name, entry in obs["products"].items():
            data = (out / "products" / obs["obs_id"] / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_report_files_and_timeline_figure(demo: tuple[dict[str, Any], Path]) -> None:
    report, out = demo
    assert json.loads((out / "report.json").read_text()) == report
    markdown = (out / "report.md").read_text()
    assert "verified_identical: **true**" in markdown
    assert "simulated" in markdown
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulated_cost_follows_instance_time(demo: tuple[dict[str, Any], Path]) -> None:
    report, _ = demo
    cost = report["cost"]
    hours = cost["instance_seconds_wall"] * SPEEDUP / 3600
    assert cost["simulated"] is True
    assert cost["instance_hours_simulated"] == pytest.approx(hours, abs=1e-3)
    assert cost["cost_usd_simulated"] == pytest.approx(hours * 0.432, abs=0.01)


def test_interruptions_show_in_the_manifest_attempts(demo: tuple[dict[str, Any], Path]) -> None:
    report, _ = demo
    attempts = sum(o["attempts"] for o in report["per_observation"])
    # every observation was attempted; interrupted attempts are counted per observation
    assert attempts >= OBSERVATIONS + report["attempts_interrupted"]
    assert report["attempts_interrupted"] == sum(
        o["attempts_interrupted"] for o in report["per_observation"]
    )
    # every attempt that shipped a log is linked from report.md
    _, out = demo
    markdown = (out / "report.md").read_text()
    for obs in report["per_observation"]:
        for attempt in obs["attempts_detail"]:
            if attempt["log_file"]:
                assert (out / attempt["log_file"]).is_file()
                assert f"]({attempt['log_file']})" in markdown


def test_notice_floor_keeps_the_compressed_notice_usable() -> None:
    model = InterruptionModel(rate_per_hour=RATE, speedup=SPEEDUP)
    assert model.notice_real == 6.0  # 120 s / 600 would be 0.2 s: too short to react


def test_interruptions_follow_the_seeded_work_schedule(demo: tuple[dict[str, Any], Path]) -> None:
    """Each notice came at the computed chunk the seed drew for that instance, on any machine.

    The draws are replayed here from the seed in launch order, as the fleet makes them (an
    instance id, then the schedule's draw), without the fleet's code.
    """
    report, _ = demo
    rng = random.Random(SEED)
    drawn = {}
    launches = [e["instance_id"] for e in report["timeline"] if e["kind"] == "launch"]
    for instance_id in launches:
        assert instance_id == f"i-{rng.getrandbits(68):017x}"
        drawn[instance_id] = SCHEDULE.draw(rng)
    notices = [e for e in report["timeline"] if e["kind"] == "notice"]
    assert notices
    for notice in notices:
        point, arrival, by_notice = drawn[notice["instance_id"]]
        assert by_notice
        assert notice["detail"] == f"at {point}:{arrival}"


def test_the_report_says_the_fleet_made_progress(demo: tuple[dict[str, Any], Path]) -> None:
    report, out = demo
    progress = report["progress"]
    assert progress["outpaced"] is False
    assert progress["interrupted"] >= 1
    assert f"- progress: {progress['message']}" in (out / "report.md").read_text()
