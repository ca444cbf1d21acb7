"""Stored documents keep their bytes: every record re-dumps a document of the current format as is.

The fixtures in ``fixtures/records/`` were written by the worker and ``spotcube submit`` before
the records were typed (a selftest job preempted once then done, a ``command`` job with its
workdir index, a job failed after two transient attempts, an input that does not exist) and by
hand for what a newer payload may write (an end reason this payload does not know, fields it
does not have). A record must read each of them and, for the same content, write the same bytes:
a worker of this version rewrites manifests that workers of the previous version read. The
demo's report.json and report.md (a selftest demo of the previous version) are rendered from
one record now, and must not change either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from payload.errors import InvalidInputError
from payload.outcomes import Outcome
from payload.records import (
    Attempt,
    AttemptState,
    DoneRecord,
    FailedRecord,
    InputIdentity,
    JobMessage,
    Manifest,
    ObservationRef,
    ProductEntry,
    RunRecord,
    WorkdirFile,
    WorkdirIndex,
    attempt_states,
    from_doc,
)
from spotcube.demoreport import DemoReport, HazardEstimate, HazardUnavailable, render_markdown

FIXTURES = Path(__file__).parent / "fixtures" / "records"


def _message(raw: bytes) -> bytes:
    return JobMessage.from_json(raw.decode()).to_json().encode()


REDUMP: dict[str, Callable[[bytes], bytes]] = {
    "job-message.json": _message,
    "run.json": lambda raw: RunRecord.from_json(raw).to_json(),
    # spotcube submit --job: each observation with its own params hash
    "run-job.json": lambda raw: RunRecord.from_json(raw).to_json(),
    "manifest-selftest.json": lambda raw: Manifest.from_json(raw).to_json(),
    "manifest-command.json": lambda raw: Manifest.from_json(raw).to_json(),
    "manifest-failed.json": lambda raw: Manifest.from_json(raw).to_json(),
    "manifest-unknown-reason.json": lambda raw: Manifest.from_json(raw).to_json(),
    "done-selftest.json": lambda raw: DoneRecord.from_json(raw).to_json(),
    "done-command.json": lambda raw: DoneRecord.from_json(raw).to_json(),
    "failed-transient.json": lambda raw: FailedRecord.from_json(raw).to_json(),
    "failed-invalid.json": lambda raw: FailedRecord.from_json(raw).to_json(),
    "workdir-index.json": lambda raw: WorkdirIndex.from_json(raw).to_json(),
}


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_every_fixture_is_covered() -> None:
    extra = {"manifest-newer-writer.json", "failed-old-count.json"}  # read, not byte-equal
    extra |= {"demo-report.json", "demo-report.md"}
    assert {p.name for p in FIXTURES.iterdir()} == set(REDUMP) | extra


@pytest.mark.parametrize("name", sorted(REDUMP))
def test_a_stored_document_is_rewritten_to_the_same_bytes(name: str) -> None:
    raw = _fixture(name)
    assert REDUMP[name](raw) == raw


def test_the_parts_of_stored_documents_are_records() -> None:
    manifest = Manifest.from_json(_fixture("manifest-selftest.json"))
    assert isinstance(manifest.input_identity, InputIdentity)
    assert manifest.input_identity.uri == "s3://work-raw/obs-a.dat"
    assert manifest.input_identity.sha256 is None  # absent in the document, absent again
    assert [a.reason for a in manifest.attempts] == [Outcome.PREEMPTED, Outcome.DONE]
    assert all(isinstance(a.reason, Outcome) for a in manifest.attempts)
    done = DoneRecord.from_json(_fixture("done-command.json"))
    assert done.input_identity == InputIdentity(uri="local:pipeline")
    (entry,) = done.products.values()
    assert isinstance(entry, ProductEntry)
    assert done.product_key("result.txt") == entry.key
    run = RunRecord.from_json(_fixture("run.json"))
    assert all(isinstance(o, ObservationRef) for o in run.observations)
    assert run.obs_ids == ["obs-1", "obs-2"]
    failed = FailedRecord.from_json(_fixture("failed-transient.json"))
    assert failed.outcome is Outcome.TRANSIENT
    assert [a.outcome for a in failed.attempts] == [Outcome.TRANSIENT, Outcome.TRANSIENT]


def test_an_end_reason_only_a_newer_payload_knows_is_kept_and_unknown() -> None:
    manifest = Manifest.from_json(_fixture("manifest-unknown-reason.json"))
    first = manifest.attempts[0]
    assert first.reason == "hibernated"
    assert first.outcome is None
    states = attempt_states(manifest.attempts, finished=False)
    assert states == [AttemptState.UNKNOWN, AttemptState.DONE, AttemptState.RUNNING]


def test_fields_a_newer_payload_adds_are_ignored_at_every_level() -> None:
    newer = Manifest.from_json(_fixture("manifest-newer-writer.json"))
    known = Manifest.from_json(_fixture("manifest-unknown-reason.json"))
    assert newer == known


def test_a_failed_record_that_stored_a_count_of_attempts_is_read() -> None:
    record = FailedRecord.from_json(_fixture("failed-old-count.json"))
    assert record.attempts == []
    assert record.outcome is Outcome.INVALID


def _without_identity(name: str) -> dict[str, Any]:
    doc = json.loads(_fixture(name))
    del doc["input_identity"]
    return doc


@pytest.mark.parametrize(
    ("cls", "name"),
    [(Manifest, "manifest-selftest.json"), (DoneRecord, "done-selftest.json")],
    ids=["manifest", "DONE"],
)
def test_a_document_from_before_input_identities_keeps_its_bytes(cls: Any, name: str) -> None:
    raw = json.dumps(_without_identity(name), indent=1, sort_keys=True).encode()
    record = cls.from_json(raw)
    assert record.input_identity is None
    assert record.to_json() == raw


def test_an_attempt_built_with_an_outcome_string_holds_the_outcome() -> None:
    assert Attempt("i-1", "t", end="t", reason="preempted").reason is Outcome.PREEMPTED


def test_the_demo_report_is_written_and_rendered_from_one_record_as_before() -> None:
    raw = _fixture("demo-report.json").decode()
    report = from_doc(DemoReport, json.loads(raw), "report.json")
    assert isinstance(report.hazard_from_manifests, HazardEstimate)
    assert report.to_json() == raw
    markdown = render_markdown(report, ["timeline.png"])
    assert markdown == _fixture("demo-report.md").decode()


def test_a_tagged_part_is_read_as_the_record_its_tag_names() -> None:
    doc = json.loads(_fixture("demo-report.json"))
    doc["hazard_from_manifests"] = {"available": False, "reason": "no manifests"}
    report = from_doc(DemoReport, doc, "report.json")
    assert report.hazard_from_manifests == HazardUnavailable(reason="no manifests")
    assert json.loads(report.to_json())["hazard_from_manifests"] == doc["hazard_from_manifests"]


def test_a_workdir_index_lists_typed_files() -> None:
    index = WorkdirIndex.from_json(_fixture("workdir-index.json"))
    entry = index.files["steps/000.txt"]
    assert isinstance(entry, WorkdirFile)
    assert (entry.size, entry.stat) == (8, (8, 1796639296617638862))
    doc = json.loads(_fixture("workdir-index.json"))
    doc["files"]["steps/000.txt"]["stat"] = "yesterday"
    with pytest.raises(InvalidInputError, match="stat 'yesterday' is not \\[size, mtime_ns\\]"):
        WorkdirIndex.from_json(json.dumps(doc))
