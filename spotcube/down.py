"""``spotcube down``: stop the compute of a stack, keep its data, say what the data costs.

Refuses while jobs are in flight or observations have checkpoints but no DONE (their work
would be paused mid-way), unless forced. Scaling to zero uses the same code as the budget
brake (infra/lambdas/brake.py), so protected instances are released too and terminate
through the group's lifecycle hook, which gives workers time to checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contract.names import PROJECT
from infra.lambdas.brake import apply_brake
from infra.lifecycle import ARCHIVE_OVERHEAD_BYTES, PRICE_PER_GB_MONTH
from spotcube.errors import RefusedError
from spotcube.runstate import list_keys, observations_from_keys
from spotcube.stack import StackOutputs

PRICE_SOURCE = "S3 list prices per GB-month, us-east-1, 2024 (infra/lifecycle.py)"
# Alarms a stack keeps: DLQ depth, burn rate, spot vCPUs, start-from-zero (3 metrics) and
# the two that target tracking creates; CloudWatch bills $0.10 per alarm metric per month.
ALARM_METRICS = 8
ALARM_PRICE = 0.10
_GB = 1024**3
_ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
_STANDARD_OVERHEAD_BYTES = 8 * 1024


@dataclass
class ClassUsage:
    objects: int = 0
    bytes: int = 0


@dataclass
class BucketUsage:
    bucket: str
    prefix: str
    by_class: dict[str, ClassUsage] = field(default_factory=dict)
    group_archive: bool = False  # an existing bucket the stack only reads: not listed, not ours

    def monthly_usd(self) -> float:
        return sum(monthly_cost(c, u.objects, u.bytes) for c, u in self.by_class.items())


def is_stack_bucket(bucket: str) -> bool:
    """Whether ``bucket`` follows the names a stack gives its own buckets (contract.names)."""
    return bucket.startswith(f"{PROJECT}-") and bucket.endswith(("-raw", "-products"))


@dataclass(frozen=True)
class QueueActivity:
    queued: int
    in_flight: int


@dataclass
class DownReport:
    asg: str
    scaled: dict[str, Any] | None  # apply_brake's result, None when there is no group
    queue: QueueActivity
    unsynced: list[str]
    buckets: list[BucketUsage]
    dry_run: bool = False

    def monthly_usd(self) -> float:
        return sum(b.monthly_usd() for b in self.buckets) + ALARM_METRICS * ALARM_PRICE


def monthly_cost(storage_class: str, objects: int, size: int) -> float:
    """USD per month for ``objects`` totalling ``size`` bytes in ``storage_class``."""
    price = PRICE_PER_GB_MONTH.get(storage_class, PRICE_PER_GB_MONTH["STANDARD"])
    cost = price * size / _GB
    if storage_class in _ARCHIVE_CLASSES:
        # Per object: 8 KB of index billed at the Standard price, the rest at the class price.
        at_class = ARCHIVE_OVERHEAD_BYTES - _STANDARD_OVERHEAD_BYTES
        standard = PRICE_PER_GB_MONTH["STANDARD"]
        cost += objects * (at_class * price + _STANDARD_OVERHEAD_BYTES * standard) / _GB
    return cost


def queue_activity(outputs: StackOutputs) -> QueueActivity:
    attributes = outputs.client("sqs").get_queue_attributes(
        QueueUrl=outputs.job_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return QueueActivity(
        queued=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    )


def unsynced_observations(objects: list[dict[str, Any]]) -> list[str]:
    """``run/obs`` of observations with a checkpoint manifest but no DONE (nor FAILED.json).

    Their finished chunks are safe in S3, but the observation is half done: stopping now
    pauses it, and its checkpoints expire after ``data.checkpointExpireDays``.
    """
    found = observations_from_keys(item["Key"] for item in objects)
    return sorted(
        f"{run}/{obs}"
        for (run, obs), state in found.items()
        if state.checkpointed and not state.finished
    )


def usage(bucket: str, prefix: str, objects: list[dict[str, Any]]) -> BucketUsage:
    result = BucketUsage(bucket=bucket, prefix=prefix)
    for item in objects:
        entry = result.by_class.setdefault(item.get("StorageClass", "STANDARD"), ClassUsage())
        entry.objects += 1
        entry.bytes += int(item.get("Size", 0))
    return result


def down(outputs: StackOutputs, *, force: bool, dry_run: bool = False) -> DownReport:
    """Check, then scale the fleet to zero; raise :class:`RefusedError` when refusing."""
    s3 = outputs.client("s3")
    products = list_keys(s3, outputs.products_bucket, "")
    activity = queue_activity(outputs)
    unsynced = unsynced_observations(products)
    reasons = []
    if activity.in_flight:
        reasons.append(f"{activity.in_flight} job(s) in flight")
    if unsynced:
        shown = ", ".join(unsynced[:5]) + (" ..." if len(unsynced) > 5 else "")
        reasons.append(f"{len(unsynced)} observation(s) checkpointed but not DONE ({shown})")
    if reasons and not force:
        raise RefusedError(
            f"refusing: {'; '.join(reasons)}. Wait for `spotcube status` to show them done, "
            "or pass --force (workers checkpoint and their jobs return to the queue)"
        )
    buckets = [usage(outputs.products_bucket, "", products)]
    if outputs.raw_bucket and is_stack_bucket(outputs.raw_bucket):
        raw = list_keys(s3, outputs.raw_bucket, outputs.raw_prefix)
        buckets.insert(0, usage(outputs.raw_bucket, outputs.raw_prefix, raw))
    elif outputs.raw_bucket:
        # A group archive can hold millions of objects and is the group's bill, not the stack's.
        archive = BucketUsage(outputs.raw_bucket, outputs.raw_prefix, group_archive=True)
        buckets.insert(0, archive)
    scaled = None
    if outputs.asg_name:
        autoscaling = outputs.client("autoscaling")
        found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[outputs.asg_name])
        if found["AutoScalingGroups"]:
            if dry_run:
                group = found["AutoScalingGroups"][0]
                scaled = {
                    "asg": outputs.asg_name,
                    "changed": False,
                    "previous": {
                        "min": group["MinSize"],
                        "max": group["MaxSize"],
                        "desired": group["DesiredCapacity"],
                    },
                    "unprotected": [],
                }
            else:
                scaled = apply_brake(outputs.asg_name, autoscaling)
    return DownReport(
        asg=outputs.asg_name,
        scaled=scaled,
        queue=activity,
        unsynced=unsynced,
        buckets=buckets,
        dry_run=dry_run,
    )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    raise AssertionError("unreachable")


def render(report: DownReport) -> str:
    lines = []
    if report.scaled is None:
        lines.append(
            f"no Auto Scaling group {report.asg or '(none in the outputs)'}: nothing to scale"
        )
    else:
        previous = report.scaled["previous"]
        was = f"min {previous['min']}, max {previous['max']}, desired {previous['desired']}"
        if report.dry_run:
            lines.append(f"would scale {report.asg} to zero (now {was})")
        elif report.scaled["changed"]:
            lines.append(f"scaled {report.asg} to zero (was {was}); instances checkpoint and end")
        else:
            lines.append(f"{report.asg} was already at zero")
    if report.queue.queued:
        lines.append(
            f"{report.queue.queued} job(s) stay queued; SQS keeps them 14 days after submission"
        )
    if report.unsynced:
        lines.append(f"{len(report.unsynced)} observation(s) paused mid-way (forced)")
    lines.append(f"What stays, per month ({PRICE_SOURCE}):")
    for bucket in report.buckets:
        where = f"s3://{bucket.bucket}/{bucket.prefix}"
        if bucket.group_archive:
            lines.append(f"  {where:<50} group archive, read-only: not this stack's to keep")
            continue
        if not bucket.by_class:
            lines.append(f"  {where:<50} empty                        $0.00")
        for storage_class, entry in sorted(bucket.by_class.items()):
            cost = monthly_cost(storage_class, entry.objects, entry.bytes)
            lines.append(
                f"  {where:<50} {storage_class:<13} {_size(entry.bytes):>10} "
                f"{entry.objects:>7} objects ${cost:,.2f}"
            )
    lines.append(
        f"  CloudWatch alarms ({ALARM_METRICS} alarm metrics)"
        f"{'':<22}${ALARM_METRICS * ALARM_PRICE:,.2f}"
    )
    lines.append(
        "  queues, topics, budget, Lambda functions, VPC (no NAT), log groups: $0 while idle"
    )
    lines.append(f"  total about ${report.monthly_usd():,.2f} per month")
    lines.append(
        "Data buckets are retained by `pulumi destroy`; `pulumi up` starts the fleet again."
    )
    return "\n".join(lines)
