"""Queue: the SQS job queue and its dead-letter queue, encrypted, with an alarm on the DLQ.

A message lands in the dead-letter queue after ``maxReceiveCount`` failed receives or when a
worker reports an invalid job; either way a human should look, so any message there alarms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from contract.names import StackNames
from infra.config import QueueConfig
from infra.tags import cost_tags

# A message keeps its original enqueue timestamp when it moves to the dead-letter queue, so
# the DLQ must keep messages longer than the source queue or a job that fails late expires
# there at once (SQS Developer Guide, "Using dead-letter queues": "always set the retention
# period of a dead-letter queue to be longer than the retention period of the original
# queue"). The DLQ keeps the SQS maximum, 14 days; the job queue 10, so a job failing on its
# last day still waits 4 days for someone to read why, and a braked run keeps its jobs 10 days.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
JOB_RETENTION_SECONDS = 10 * 24 * 3600


@dataclass(frozen=True)
class JobQueueArgs:
    names: StackNames
    queue: QueueConfig
    alerts_topic_arn: pulumi.Input[str]


class JobQueue(pulumi.ComponentResource):
    url: pulumi.Output[str]
    arn: pulumi.Output[str]
    name: pulumi.Output[str]
    dlq_url: pulumi.Output[str]
    dlq_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: JobQueueArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("spotcube:infra:JobQueue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        names = args.names
        dlq = aws.sqs.Queue(
            f"{name}-dlq",
            name=names.dead_letter_queue,
            message_retention_seconds=DLQ_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=cost_tags(names),
            opts=child,
        )
        jobs = aws.sqs.Queue(
            f"{name}-jobs",
            name=names.job_queue,
            message_retention_seconds=JOB_RETENTION_SECONDS,
            visibility_timeout_seconds=args.queue.visibility_timeout_seconds,
            receive_wait_time_seconds=20,  # long polling: fewer empty (billed) receives
            sqs_managed_sse_enabled=True,
            redrive_policy=dlq.arn.apply(
                lambda arn: json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": args.queue.max_receive_count}
                )
            ),
            tags=cost_tags(names),
            opts=child,
        )
        aws.sqs.RedriveAllowPolicy(
            f"{name}-dlq-source",
            queue_url=dlq.url,
            redrive_allow_policy=jobs.arn.apply(
                lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})
            ),
            opts=child,
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-dlq-depth",
            alarm_description="jobs reached the dead-letter queue: inspect FAILED.json and redrive",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": dlq.name},
            statistic="Maximum",
            period=300,
            evaluation_periods=1,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[args.alerts_topic_arn],
            tags=cost_tags(names),
            opts=child,
        )
        self.url, self.arn, self.name = jobs.url, jobs.arn, jobs.name
        self.dlq_url, self.dlq_arn = dlq.url, dlq.arn
        self.register_outputs({"url": jobs.url, "dlq_url": dlq.url})
