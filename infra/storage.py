"""Storage: the raw bucket (created, or an existing group archive) and the products bucket.

Lifecycle rules come from :mod:`infra.lifecycle`, which has already refused any rule set that
could charge early-deletion or small-object fees; each bucket is an
:class:`infra.bucket.DataBucket`, retained on ``pulumi destroy``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from contract.names import StackNames
from infra.bucket import DataBucket, DataBucketArgs
from infra.config import DataConfig


@dataclass(frozen=True)
class StorageArgs:
    names: StackNames
    data: DataConfig


class Storage(pulumi.ComponentResource):
    """The raw bucket (created, or an existing group archive) and the products bucket."""

    raw_bucket: pulumi.Output[str]
    raw_bucket_arn: pulumi.Output[str]
    raw_prefix: str
    raw_is_existing: bool
    products_bucket: pulumi.Output[str]
    products_bucket_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("spotcube:infra:Storage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        names, data = args.names, args.data
        self.raw_prefix = data.raw_prefix
        self.raw_is_existing = data.raw_bucket is not None
        if data.raw_bucket is not None:
            # A group archive belongs to the group, not to this stack: it is only read, and
            # the stack declares nothing that could change or delete it.
            self.raw_bucket = pulumi.Output.from_input(data.raw_bucket)
            self.raw_bucket_arn = pulumi.Output.from_input(f"arn:aws:s3:::{data.raw_bucket}")
        else:
            raw = DataBucket(
                f"{name}-raw",
                DataBucketArgs(
                    bucket_name=names.raw_bucket,
                    names=names,
                    plan=data.raw,
                    checkpoint_expire_days=None,
                ),
                opts=child,
            )
            self.raw_bucket, self.raw_bucket_arn = raw.bucket_name, raw.arn
        products = DataBucket(
            f"{name}-products",
            DataBucketArgs(
                bucket_name=names.products_bucket,
                names=names,
                plan=data.products,
                checkpoint_expire_days=data.checkpoint_expire_days,
            ),
            opts=child,
        )
        self.products_bucket, self.products_bucket_arn = products.bucket_name, products.arn
        self.register_outputs(
            {"raw_bucket": self.raw_bucket, "products_bucket": self.products_bucket}
        )
