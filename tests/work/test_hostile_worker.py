"""Bad inputs through a real worker against the local cloud: ``invalid`` after one attempt.

Issue 10 found three inputs that the worker retried three times as ``transient`` before the
dead-letter queue (NaN uvw, 0 Hz channels, a header claiming 10^9 channels), one with a
multi-line C++ dump as its reason, and a FAILED.json naming the worker's temporary copy
instead of the ``s3://`` input. Each must now fail once: FAILED.json with outcome
``invalid``, a one-line message naming the ``s3://`` input, one attempt in the manifest, the
message in the DLQ, no DONE.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from contract.layout import ObsLayout
from payload.records import InputIdentity, JobMessage, Manifest
from payload.synth import preset_params, write_preset
from tests.work.conftest import RUN, Plane

pytestmark = pytest.mark.slow


def _nan_uvw(handle: h5py.File) -> None:
    uvw = handle["Header/uvw_array"][()]
    cross = handle["Header/ant_1_array"][()] != handle["Header/ant_2_array"][()]
    uvw[np.flatnonzero(cross)[:4]] = np.nan
    handle["Header/uvw_array"][...] = uvw


def _zero_hz(handle: h5py.File) -> None:
    handle["Header/freq_array"][...] = 0.0


def _billion_channels(handle: h5py.File) -> None:
    del handle["Header/Nfreqs"]
    handle["Header"].create_dataset("Nfreqs", data=np.int64(10**9))


CASES: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "nan-uvw": (_nan_uvw, "not finite"),
    "zero-hz": (_zero_hz, "impossible channel frequencies"),
    "billion-channels": (_billion_channels, "Nfreqs = 1000000000"),
}


def test_bad_inputs_fail_once_as_invalid_naming_the_s3_input(plane: Plane, tmp_path: Path) -> None:
    good = tmp_path / "good.uvh5"
    write_preset(good, "tiny", seed=5)
    uris = {}
    for obs_id, (damage, _) in CASES.items():
        path = tmp_path / f"{obs_id}.uvh5"
        path.write_bytes(good.read_bytes())
        with h5py.File(path, "r+") as handle:
            damage(handle)
        uris[obs_id] = plane.put_input(path.name, path.read_bytes())
        message = JobMessage.create(
            run_id=RUN,
            obs_id=obs_id,
            input=uris[obs_id],
            kind="image",
            params=preset_params("tiny"),
        )
        plane.sqs.send_message(QueueUrl=plane.queue_url, MessageBody=message.to_json())
    worker = plane.start_worker("--preload", "image", "--idle-exit", "3")
    assert worker.wait(timeout=240) == 0, plane.log_of()
    assert plane.queue_depth() == 0
    assert plane.queue_depth(plane.dlq_url) == len(CASES)
    log = plane.log_of()
    for obs_id, (_, words) in CASES.items():
        layout = ObsLayout(RUN, obs_id)
        failed = json.loads(plane.get(layout.failed) or b"{}")
        assert failed["outcome"] == "invalid", failed
        assert failed["error_class"] == "InvalidInputError"
        message = failed["message"]
        assert "\n" not in message
        assert message.startswith(uris[obs_id] + ":"), message
        assert str(plane.tmp) not in message, "names the worker's local copy"
        assert words in message, message
        assert [a["reason"] for a in failed["attempts"]] == ["invalid"]
        assert plane.get(layout.done) is None
    # Each refused once, at once: no transient retry before the refusal.
    assert sorted(e["obs"] for e in plane.events(event="job.invalid")) == sorted(CASES), log
    assert plane.events(event="job.transient") == [], log


def test_a_replaced_input_never_resumes_the_old_inputs_chunks(plane: Plane) -> None:
    """The manifest keeps the input's ETag; a new object of the same size is refused.

    S3's ETag of an object uploaded in one PUT without SSE-KMS is the MD5 of its content
    (S3 API Reference, "Object" data type, ``ETag``: "The ETag reflects changes only to the
    contents of an object, not its metadata"), so equal sizes do not hide a replacement.
    """
    params = {"chunks": 3, "chunk_seconds": 0.1, "chunk_bytes": 1024}
    message = plane.submit("replaced", params, data=b"A" * 3000)
    bucket, key = "work-raw", "replaced.dat"
    head = plane.s3.head_object(Bucket=bucket, Key=key)
    identity = InputIdentity(uri=message.input, etag=head["ETag"], size=head["ContentLength"])
    layout = ObsLayout(RUN, "replaced")
    plane.s3.put_object(
        Bucket="work-products",
        Key=layout.manifest,
        Body=Manifest.new(message, identity).to_json(),
    )
    plane.s3.put_object(Bucket=bucket, Key=key, Body=b"B" * 3000)  # same size, new content
    worker = plane.start_worker("--idle-exit", "2")
    assert worker.wait(timeout=60) == 0, plane.log_of()
    failed = json.loads(plane.get(layout.failed) or b"{}")
    assert failed["outcome"] == "invalid"
    assert "changed since the checkpoint" in failed["message"]
    assert plane.get(layout.done) is None
