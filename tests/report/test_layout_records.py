"""The S3 layout parser and the typed records against hostile keys and damaged JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.layout import KeyKind, ObsLayout, is_checkpoint_key, parse_key
from payload.errors import InvalidInputError
from payload.records import (
    Attempt,
    AttemptState,
    DoneRecord,
    FailedRecord,
    ObservationRef,
    ProductEntry,
    RunRecord,
    WorkdirIndex,
    attempt_states,
)

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
segment = st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True)


@given(
    run=ids,
    obs=ids,
    chunk=segment,
    ext=st.sampled_from(["h5", "npz", "bin"]),
    n=st.integers(1, 999),
)
def test_every_built_key_parses_back_to_what_built_it(
    run: str, obs: str, chunk: str, ext: str, n: int
) -> None:
    layout = ObsLayout(run, obs)
    expected = {
        layout.manifest: (KeyKind.MANIFEST, None),
        layout.done: (KeyKind.DONE, None),
        layout.failed: (KeyKind.FAILED, None),
        layout.workdir_index: (KeyKind.WORKDIR_INDEX, None),
        layout.chunk(chunk, ext): (KeyKind.CHUNK, f"{chunk}.{ext}"),
        layout.product(f"{chunk}.fits"): (KeyKind.PRODUCT, f"{chunk}.fits"),
        layout.workdir_prefix + f"steps/{chunk}": (KeyKind.WORKDIR_FILE, f"steps/{chunk}"),
        layout.log(n): (KeyKind.LOG, str(n)),
    }
    for key, (kind, name) in expected.items():
        parsed = parse_key(key)
        assert parsed is not None, key
        assert (parsed.kind, parsed.run_id, parsed.obs_id, parsed.name) == (kind, run, obs, name)
        assert parsed.layout == layout
        assert is_checkpoint_key(key) == (
            kind in {KeyKind.MANIFEST, KeyKind.CHUNK, KeyKind.WORKDIR_INDEX, KeyKind.WORKDIR_FILE}
        )
    assert parse_key(layout.log(n)).attempt == n  # type: ignore[union-attr]
    record = parse_key(f"runs/{run}/run.json")
    assert record is not None
    assert (record.kind, record.run_id, record.obs_id) == (KeyKind.RUN_RECORD, run, None)


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_any_text_either_parses_or_is_outside_the_layout(key: str) -> None:
    parsed = parse_key(key)
    if parsed is not None:
        assert key.startswith(f"runs/{parsed.run_id}/")


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("runs/../obs/x/DONE", None),
        ("runs/r/obs/../DONE", None),
        ("runs/r/obs//DONE", None),
        ("runs/r/obs/o/logs/attempt-0.log", None),
        ("runs/r/obs/o/logs/attempt-01.log", None),
        ("runs/r/obs/o/logs/attempt-1.log.tmp", None),
        ("runs/r/obs/o/products/", None),
        ("runs/r/obs/o/checkpoint/chunks/a/b", None),
        ("runs/r/obs/o/checkpoint/workdir/", None),
        ("runs/r/obs/o/DONE/", None),
        ("runs/r/run.json/x", None),
        ("other/r/obs/o/DONE", None),
        ("runs/r/obs/o", None),
        # a product named like a manifest is a product: reports must not read it as one
        ("runs/r/obs/o/products/checkpoint/manifest.json", KeyKind.PRODUCT),
        ("runs/r/obs/o/checkpoint/workdir/checkpoint/manifest.json", KeyKind.WORKDIR_FILE),
        ("runs/r/run.json", KeyKind.RUN_RECORD),
    ],
)
def test_hostile_keys(key: str, kind: KeyKind | None) -> None:
    parsed = parse_key(key)
    assert (parsed.kind if parsed else None) == kind


@pytest.mark.parametrize(
    ("attempts", "finished", "expected"),
    [
        # (end, reason) per attempt, oldest first
        ([(None, None)], False, ["running"]),
        ([(None, None)], True, ["killed"]),  # DONE/FAILED since: its instance went away
        ([(None, None), (None, None)], False, ["killed", "running"]),
        ([("t", "preempted"), ("t", "done")], True, ["preempted", "done"]),
        ([("t", "transient"), ("t", "invalid")], True, ["transient", "invalid"]),
        ([("t", "exploded")], True, ["unknown"]),
    ],
    ids=["open", "open-finished", "killed-then-open", "preempted", "failures", "unknown"],
)
def test_attempt_states(
    attempts: list[tuple[str | None, str | None]], finished: bool, expected: list[str]
) -> None:
    records = [Attempt("i", "t", end=end, reason=reason) for end, reason in attempts]
    states = attempt_states(records, finished=finished)
    assert [s.value for s in states] == expected
    interrupted = {AttemptState.PREEMPTED, AttemptState.KILLED}
    assert [s.interrupted for s in states] == [s in interrupted for s in states]


GOOD = {
    DoneRecord: DoneRecord(
        "r", "o", "0" * 64, {"a.fits": ProductEntry("k", 1, "0" * 64)}, "i-1", "t"
    ).to_json(),
    FailedRecord: FailedRecord("InvalidInputError", "bad input").to_json(),
    RunRecord: RunRecord(
        "r", "image", "0" * 64, "t", {}, [ObservationRef("o", "s3://b/k")]
    ).to_json(),
    WorkdirIndex: WorkdirIndex({"steps/1": {"size": 1, "sha256": "0" * 64}}).to_json(),
}


@pytest.mark.parametrize("cls", list(GOOD), ids=lambda c: c.__name__)
def test_records_round_trip(cls: type) -> None:
    record = cls.from_json(GOOD[cls])  # type: ignore[attr-defined]
    assert record.to_json() == GOOD[cls]


@settings(max_examples=200)
@given(cls=st.sampled_from(list(GOOD)), cut=st.integers(0, 400), flip=st.integers(0, 400))
def test_damaged_records_fail_with_one_clear_error(cls: type, cut: int, flip: int) -> None:
    raw = bytearray(GOOD[cls][: max(cut, 1)])
    raw[flip % len(raw)] ^= 0x20
    try:
        cls.from_json(bytes(raw))  # type: ignore[attr-defined]
    except InvalidInputError as exc:  # anything else escapes and fails the test
        message = str(exc)
    else:
        message = "parsed"
    assert message
    assert "\n" not in message


def test_missing_keys_and_other_schemas_are_named() -> None:
    doc = json.loads(GOOD[DoneRecord])
    del doc["products"]
    with pytest.raises(InvalidInputError, match="DONE lacks key\\(s\\): products"):
        DoneRecord.from_json(json.dumps(doc))
    doc = json.loads(GOOD[RunRecord]) | {"schema": 2}
    with pytest.raises(InvalidInputError, match="run record has schema 2"):
        RunRecord.from_json(json.dumps(doc))
    # an older FAILED.json stored a count of attempts: still readable
    old = json.dumps({"error_class": "E", "message": "m", "attempts": 3})
    assert FailedRecord.from_json(old).attempts == []
