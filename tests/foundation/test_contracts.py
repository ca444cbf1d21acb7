"""The versioned contracts between operator, queue, workers and the products bucket."""

from __future__ import annotations

import json

import pytest

from contract.layout import ObsLayout
from payload.errors import InvalidInputError
from payload.outcomes import Outcome
from payload.records import (
    SCHEMA,
    Attempt,
    ChunkRecord,
    InputIdentity,
    JobMessage,
    Manifest,
    params_hash,
    parse_s3_uri,
)


def _message(**overrides: object) -> JobMessage:
    fields: dict[str, object] = {
        "run_id": "run-1",
        "obs_id": "1061316296",
        "input": "s3://raw/obs/1061316296.uvh5",
        "kind": "image",
        "params": {"chunk_channels": 8},
    }
    fields.update(overrides)
    return JobMessage.create(**fields)  # type: ignore[arg-type]


def test_message_round_trips_through_json() -> None:
    message = _message()
    assert JobMessage.from_json(message.to_json()) == message
    assert json.loads(message.to_json())["schema"] == SCHEMA


def test_params_hash_depends_on_kind_params_and_version_not_key_order() -> None:
    base = params_hash("image", {"a": 1, "b": 2})
    assert base == params_hash("image", {"b": 2, "a": 1})
    assert base != params_hash("image", {"a": 1, "b": 3})
    assert base != params_hash("integrate", {"a": 1, "b": 2})
    assert base != params_hash("image", {"a": 1, "b": 2}, payload_version="999")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        pytest.param("not json", "not JSON", id="not-json"),
        pytest.param("[1, 2]", "JSON object", id="not-object"),
        pytest.param('{"run_id": "r"}', "lacks key", id="missing-fields"),
    ],
)
def test_malformed_message_is_invalid(body: str, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        JobMessage.from_json(body)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        pytest.param({"kind": "paint"}, "job kind 'paint' is unknown", id="kind"),
        pytest.param({"obs_id": "../etc"}, "obs_id", id="obs-id-path"),
        pytest.param({"run_id": ""}, "run_id", id="run-id-empty"),
        pytest.param({"input": "/local/file"}, "not an S3 URI", id="input-not-s3"),
    ],
)
def test_bad_fields_name_the_field(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        _message(**overrides)


def test_invalid_error_maps_to_invalid_outcome() -> None:
    with pytest.raises(InvalidInputError) as info:
        _message(kind="paint")
    assert info.value.outcome is Outcome.INVALID
    assert Outcome.INVALID.exit_code != Outcome.DONE.exit_code == 0


def test_layout_keys() -> None:
    layout = ObsLayout("run-1", "obs-7")
    assert layout.manifest == "runs/run-1/obs/obs-7/checkpoint/manifest.json"
    assert layout.chunk("c003", "h5") == "runs/run-1/obs/obs-7/checkpoint/chunks/c003.h5"
    assert layout.product("image_cube.fits") == "runs/run-1/obs/obs-7/products/image_cube.fits"
    assert layout.done == "runs/run-1/obs/obs-7/DONE"
    assert layout.failed == "runs/run-1/obs/obs-7/FAILED.json"
    assert parse_s3_uri("s3://bucket/a/b.uvh5") == ("bucket", "a/b.uvh5")


def test_manifest_round_trip_keeps_chunks_and_attempts() -> None:
    manifest = Manifest.new(_message(), InputIdentity(uri="s3://raw/x", etag="abc", size=10))
    manifest.chunks["c000"] = ChunkRecord(key="k", size=3, sha256="00" * 32, seconds=1.5)
    manifest.attempts.append(
        Attempt(instance_id="i-1", start="2026-01-01T00:00:00Z", reason="preempted")
    )
    again = Manifest.from_json(manifest.to_json())
    assert again.chunks == manifest.chunks
    assert again.attempts == manifest.attempts
    assert again.params_hash == manifest.params_hash


def test_manifest_of_unknown_schema_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="schema"):
        Manifest.from_json(json.dumps({"schema": 99}))
