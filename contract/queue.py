"""Facts of the job queue that the stack and the embedded local cloud both declare."""

from __future__ import annotations

# A message received this many times goes to the dead-letter queue: the stack's default
# (spotcube:queue.maxReceiveCount) and the local cloud's. SQS counts every receive, including
# those of attempts that were preempted, so a run with many interruptions (the demo) passes a
# larger value.
DEFAULT_MAX_RECEIVE_COUNT = 5
