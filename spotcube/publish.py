"""Publish a run all or nothing: the protocol between a submit and the views of a run.

A submit writes two things that must agree: the run record (``runs/<run>/run.json``, read
by ``spotcube status`` and ``report``) and one queue message per observation. Neither S3
nor SQS offers a transaction across the two, so a submit is a protocol whose every crash
point is one the same command, run again, finishes:

1. **Intent** ``submissions/<run>.json`` is written once (``If-None-Match: *``) with the
   run record and the exact message bodies. It lies outside ``runs/``, so no view lists a
   run that is still being published. It claims the run id: a second submit of the same id
   with the same content resumes it; with other content it is refused.
2. **Messages** are sent in batches. After each batch the intent records which messages SQS
   acknowledged, so a re-run resends only what may not have arrived. A message whose
   acknowledgement was lost is sent again: delivery is at least once, which the work plane
   already assumes (SQS itself may deliver twice; ``DONE`` is written once per observation).
3. **Run record** ``run.json`` is written last (``If-None-Match: *``): a view shows the run
   as queued only when every message has been sent.

A re-run after step 3 finds ``run.json`` with the same content and sends nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from contract.layout import run_record_key
from payload.errors import InvalidInputError
from payload.records import SCHEMA, JobMessage, RunRecord, from_doc, to_doc
from spotcube.errors import RefusedError
from spotcube.stack import StackOutputs

SUBMISSIONS = "submissions/"
# SQS SendMessageBatch takes at most ten entries.
_BATCH = 10
_MISSING = ("404", "NoSuchKey", "NotFound")
_TAKEN = ("PreconditionFailed", "412")


def submission_key(run_id: str) -> str:
    """Key of a run's publishing intent in the products bucket (outside ``runs/``)."""
    return f"{SUBMISSIONS}{run_id}.json"


@dataclass
class Submission:
    """The intent of step 1: what the run is, every message body, which ones were sent."""

    record: RunRecord  # what run.json will be
    messages: list[str]  # SQS bodies, in order
    sent: list[int] = field(default_factory=list)  # indexes SQS acknowledged
    schema: int = SCHEMA

    def to_json(self) -> bytes:
        doc = {
            "record": to_doc(self.record),
            "messages": self.messages,
            "sent": sorted(set(self.sent)),
            "schema": self.schema,
        }
        return json.dumps(doc, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, what: str) -> Submission:
        try:
            doc = json.loads(raw)
            return cls(
                record=from_doc(RunRecord, doc["record"], f"{what}: record"),
                messages=[str(m) for m in doc["messages"]],
                sent=[int(i) for i in doc.get("sent", [])],
                schema=int(doc.get("schema", SCHEMA)),
            )
        except (ValueError, TypeError, KeyError, InvalidInputError) as exc:
            raise RefusedError(
                f"{what} is damaged ({exc}); delete it to submit this run id again"
            ) from None


@dataclass(frozen=True)
class Published:
    """What one call of :func:`publish_run` did."""

    messages: list[JobMessage]  # the run's messages (the stored ones when resumed)
    sent_now: int  # messages sent by this call
    resumed: bool  # an earlier submit of the same run had started publishing it
    already: bool  # the run was fully published before this call: nothing was sent


def content(record: RunRecord) -> dict[str, Any]:
    """What makes two submits of a run id the same submit (not the time they were made)."""
    doc = to_doc(record)
    return {k: doc.get(k) for k in ("run_id", "kind", "params", "params_hash", "observations")}


def refuse_other_content(run_id: str, stored: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Raise :class:`RefusedError` if ``stored`` (a run's content) differs from ``wanted``."""
    differs = [k for k in wanted if k in stored and stored.get(k) != wanted.get(k)]
    if differs:
        raise RefusedError(
            f"run {run_id} already exists with other {', '.join(differs)}; "
            "choose another --run-id (the same command with the same inputs resumes or "
            "confirms the run)"
        )


def publish_run(
    outputs: StackOutputs, record: RunRecord, messages: Sequence[JobMessage]
) -> Published:
    """Publish ``record`` and its ``messages`` by the protocol of this module's docstring.

    The one writer of a run record: :func:`spotcube.submit.submit_run` and a job file's runs
    (:func:`spotcube.jobdef.submit_job`) both come here.
    """
    run_id = record.run_id
    s3 = outputs.client("s3")
    bucket = outputs.products_bucket
    wanted = content(record)
    published = _get(s3, bucket, run_record_key(run_id))
    if published is not None:
        stored = RunRecord.from_json(published, what=f"s3://{bucket}/{run_record_key(run_id)}")
        refuse_other_content(run_id, content(stored), wanted)
        return Published([], 0, resumed=True, already=True)

    submission = Submission(record=record, messages=[m.to_json() for m in messages])
    resumed = not _put_once(s3, bucket, submission_key(run_id), submission.to_json())
    if resumed:
        what = f"s3://{bucket}/{submission_key(run_id)}"
        raw = _get(s3, bucket, submission_key(run_id))
        if raw is None:  # deleted between the two calls: start again from nothing
            raise RefusedError(f"{what} vanished while this submit read it; run it again")
        submission = Submission.from_json(raw, what=what)
        refuse_other_content(run_id, content(submission.record), wanted)

    sent_now = _send_unsent(outputs, s3, submission, run_id)
    if not _put_once(s3, bucket, run_record_key(run_id), submission.record.to_json()):
        raw = _get(s3, bucket, run_record_key(run_id)) or b"{}"
        refuse_other_content(run_id, content(RunRecord.from_json(raw)), wanted)
    return Published(
        [JobMessage.from_json(body) for body in submission.messages],
        sent_now,
        resumed=resumed,
        already=False,
    )


def _send_unsent(outputs: StackOutputs, s3: Any, submission: Submission, run_id: str) -> int:
    """Send the messages the intent does not list as sent, recording each batch's result."""
    sqs = outputs.client("sqs")
    bucket = outputs.products_bucket
    todo = [i for i in range(len(submission.messages)) if i not in set(submission.sent)]
    sent_now = 0
    for start in range(0, len(todo), _BATCH):
        batch = todo[start : start + _BATCH]
        entries = [{"Id": str(i), "MessageBody": submission.messages[i]} for i in batch]
        result = sqs.send_message_batch(QueueUrl=outputs.job_queue_url, Entries=entries)
        acknowledged = [int(entry["Id"]) for entry in result.get("Successful", [])]
        sent_now += len(acknowledged)
        submission.sent.extend(acknowledged)
        # A re-run must not resend what SQS acknowledged: record it before the next batch.
        s3.put_object(
            Bucket=bucket,
            Key=submission_key(run_id),
            Body=submission.to_json(),
            ContentType="application/json",
        )
        if result.get("Failed"):
            first = result["Failed"][0]
            raise RefusedError(
                f"the job queue refused {len(result['Failed'])} message(s) of run {run_id}: "
                f"{first.get('Code')}: {first.get('Message')}; the same submit command sends "
                "the rest"
            )
    return sent_now


def _put_once(s3: Any, bucket: str, key: str, body: bytes) -> bool:
    """Write ``key`` if it does not exist; ``False`` if it already did."""
    try:
        s3.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*"
        )
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code", "") in _TAKEN:
            return False
        raise
    return True


def _get(s3: Any, bucket: str, key: str) -> bytes | None:
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code", "") in _MISSING:
            return None
        raise
    return body
