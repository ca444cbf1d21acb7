"""One private, encrypted, TLS-only data bucket with Glacier-safe lifecycle rules.

The bucket and every setting that keeps it private and cheap are retained on
``pulumi destroy``: data outlives compute, and a bucket left without its public access block
or lifecycle rules would be worse than one left as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from contract.layout import CHECKPOINT_TAG
from contract.names import StackNames
from infra.lifecycle import LifecyclePlan, LifecycleRule, housekeeping_rules
from infra.tags import cost_tags


def rule_filter(rule: LifecycleRule) -> Any:
    """The S3 filter of ``rule``: one predicate directly, several under ``and``."""
    predicates: dict[str, Any] = {}
    if rule.prefix:
        predicates["prefix"] = rule.prefix
    if rule.object_size_greater_than is not None:
        predicates["object_size_greater_than"] = rule.object_size_greater_than
    if rule.object_size_less_than is not None:
        predicates["object_size_less_than"] = rule.object_size_less_than
    if rule.tag is not None:
        predicates["tags"] = {rule.tag[0]: rule.tag[1]}
    if len(predicates) > 1:
        return {"and_": predicates}
    if "tags" in predicates:
        key, value = next(iter(predicates["tags"].items()))
        return {"tag": {"key": key, "value": value}}
    return predicates or {"prefix": ""}


def lifecycle_rules(
    rules: tuple[LifecycleRule, ...],
) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """Planner rules as ``BucketLifecycleConfiguration`` rule inputs."""
    s3 = aws.s3
    return [
        s3.BucketLifecycleConfigurationRuleArgs(
            id=rule.id,
            status="Enabled",
            filter=rule_filter(rule),
            transitions=[
                s3.BucketLifecycleConfigurationRuleTransitionArgs(
                    days=t.days, storage_class=t.storage_class
                )
                for t in rule.transitions
            ]
            or None,
            expiration=None
            if rule.expire_days is None
            else s3.BucketLifecycleConfigurationRuleExpirationArgs(days=rule.expire_days),
            abort_incomplete_multipart_upload=None
            if rule.abort_multipart_days is None
            else s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=rule.abort_multipart_days
            ),
        )
        for rule in rules
    ]


def tls_only_policy(bucket_arn: str) -> str:
    """A bucket policy that refuses every request not made over TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


@dataclass(frozen=True)
class DataBucketArgs:
    bucket_name: str
    names: StackNames
    plan: LifecyclePlan
    checkpoint_expire_days: int | None


class DataBucket(pulumi.ComponentResource):
    """One private, encrypted, TLS-only bucket with Glacier-safe lifecycle rules."""

    bucket_name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: DataBucketArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("spotcube:infra:DataBucket", name, None, opts)
        bucket_name, names, plan = args.bucket_name, args.names, args.plan
        # Data survives `pulumi destroy`: the bucket and every setting that keeps it private
        # and cheap stay in the account, removed only from the stack's state.
        keep = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        bucket = aws.s3.Bucket(
            name,
            bucket=bucket_name,
            force_destroy=False,
            tags=cost_tags(names, Name=bucket_name),
            opts=keep,
        )
        # S3 answers OperationAborted ("A conflicting conditional operation is currently in
        # progress") when settings of a new bucket are written concurrently
        # (hashicorp/terraform-provider-aws#7628, #36873;
        # sevenwestmedia-labs/pulumi-components#46): each setting waits for the previous one.
        # `bucket.bucket` rather than `bucket.id`: the name is known during preview, so the
        # policy pack can pair each setting with its bucket before the bucket exists.
        previous: pulumi.Resource = bucket

        def after_previous() -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions.merge(keep, pulumi.ResourceOptions(depends_on=[previous]))

        previous = aws.s3.BucketPublicAccessBlock(
            f"{name}-private",
            bucket=bucket.bucket,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=after_previous(),
        )
        previous = aws.s3.BucketOwnershipControls(
            f"{name}-owner",
            bucket=bucket.bucket,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=after_previous(),
        )
        # SSE-S3 rather than KMS: KMS bills every request of every worker's many chunk writes.
        previous = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.bucket,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=after_previous(),
        )
        previous = aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.bucket,
            policy=bucket.arn.apply(tls_only_policy),
            opts=after_previous(),
        )
        rules = housekeeping_rules(
            checkpoint_expire_days=args.checkpoint_expire_days, checkpoint_tag=CHECKPOINT_TAG
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.bucket,
            rules=lifecycle_rules(rules + plan.rules),
            transition_default_minimum_object_size=plan.transition_default_minimum_object_size,
            opts=after_previous(),
        )
        self.bucket_name = bucket.bucket
        self.arn = bucket.arn
        self.register_outputs({"bucket_name": bucket.bucket, "arn": bucket.arn})
