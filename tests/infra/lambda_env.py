"""Helpers for running the Lambda handlers against the moto server over HTTP."""

from __future__ import annotations

import json
from typing import Any

from spotcube.local.motoserver import local_client


def topic_with_inbox(endpoint: str, name: str) -> tuple[str, str]:
    """An SNS topic with an SQS queue subscribed to it, to read what a handler published."""
    sns = local_client("sns", endpoint)
    sqs = local_client("sqs", endpoint)
    topic = sns.create_topic(Name=name)["TopicArn"]
    inbox = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, inbox


def published(endpoint: str, inbox: str) -> list[dict[str, Any]]:
    """SNS notifications that reached ``inbox`` (drained)."""
    sqs = local_client("sqs", endpoint)
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        for message in batch:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=inbox, ReceiptHandle=message["ReceiptHandle"])
