"""Preemptions are unlimited: a job handed back more often than the DLQ's receive limit stays
in the work queue instead of being dead-lettered."""

from __future__ import annotations

import json
import signal

from contract.layout import ObsLayout
from payload.outcomes import Outcome
from tests.work.conftest import RUN, Plane, wait_for


def test_preempted_more_often_than_max_receive_count_is_not_dead_lettered(plane: Plane) -> None:
    dlq_arn = plane.sqs.get_queue_attributes(QueueUrl=plane.dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    plane.sqs.set_queue_attributes(
        QueueUrl=plane.queue_url,
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
        },
    )
    plane.submit("obs-r1", {"chunks": 6, "chunk_seconds": 0.3, "chunk_bytes": 1024})
    for round_ in range(3):  # three preemptions, one more than maxReceiveCount allows receives
        name = f"p{round_}"
        worker = plane.start_worker(name=name)
        # this worker's own progress, so SIGTERM lands after its handler is installed
        wait_for(lambda n=name: plane.has_event(n, "chunk.computed"), 30, f"a chunk on {name}")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == Outcome.PREEMPTED.exit_code, plane.log_of(f"p{round_}")
    assert plane.queue_depth(plane.dlq_url) == 0
    final = plane.start_worker("--max-jobs", "1", name="final")
    assert final.wait(timeout=60) == 0, plane.log_of("final")
    assert plane.get(ObsLayout(RUN, "obs-r1").done) is not None
    assert plane.queue_depth(plane.dlq_url) == 0
    reasons = [a["reason"] for a in (plane.manifest("obs-r1") or {})["attempts"]]
    assert reasons.count(Outcome.PREEMPTED.value) == 3
