"""Names shared by the Pulumi stack, the embedded local cloud and the operator CLI.

Pure code, no Pulumi import: ``spotcube demo`` creates the same buckets and queues on its
local cloud that ``pulumi up`` declares on AWS, ``spotcube submit/status/down`` find them
through the stack outputs named here, and ``spotcube check`` finds the brake, the quarantine
Lambda and the workers' log group by the names the stack gave them (the functions below take
the stack's prefix, which the operator recovers from the fleet's name in the outputs).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from contract.costfacts import OWNER_TAG, PROJECT_TAG, STACK_TAG

PROJECT = "spotcube"
# Image variants (`spotcube bake --image-config`): the AMI tag that names the variant, the
# name of the plain payload image, and what a name may be (it goes into AMI tags, directory
# names and the stack config key `spotcube:variant`).
VARIANT_TAG = "spotcube:variant"
DEFAULT_VARIANT = "default"
VARIANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def image_config_hint(variant: str) -> str:
    """What `spotcube bake` needs besides the region to bake ``variant``."""
    return "" if variant == DEFAULT_VARIANT else f" --image-config <the file naming {variant}>"


# S3 general purpose bucket names are 3..63 characters and global across every AWS account
# of a partition (S3 User Guide, "General purpose bucket naming rules").
MAX_BUCKET_NAME = 63
_HASH_CHARS = 6

# Keys of `pulumi stack output --json` that the operator CLI reads. Changing one is a
# breaking change for every user's stack.
OUTPUT_KEYS = (
    "region",
    "raw_bucket",
    "raw_prefix",
    "products_bucket",
    "job_queue_url",
    "dead_letter_queue_url",
    "asg_name",
    "ami_id",
    "budget_name",
    "alerts_topic_arn",
)


ASG_SUFFIX = "-fleet"


def stack_prefix_of_asg(asg_name: str) -> str:
    """``spotcube-<owner>-<stack>`` from the fleet's group name (the ``asg_name`` output)."""
    return asg_name.removesuffix(ASG_SUFFIX)


def brake_function_name(prefix: str) -> str:
    """The brake Lambda, named after the group it scales to zero."""
    return f"{prefix}{ASG_SUFFIX}-brake"


def meter_function_name(prefix: str) -> str:
    """The spend meter Lambda, named after the group whose spend it publishes."""
    return f"{prefix}{ASG_SUFFIX}-meter"


def quarantine_function_name(prefix: str) -> str:
    return f"{prefix}-quarantine"


def worker_log_group_name(prefix: str) -> str:
    """The CloudWatch log group the workers' journald output goes to."""
    return f"/{PROJECT}/{prefix}/workers"


@dataclass(frozen=True)
class StackNames:
    """Physical names of a stack's resources, derived from owner and stack name."""

    owner: str
    stack: str
    # The 12-digit AWS account the stack deploys to. Bucket names are global across all
    # accounts, so on AWS they carry it; the local cloud (``LOCAL_NAMES``) has none.
    account_id: str = ""

    @property
    def prefix(self) -> str:
        return f"{PROJECT}-{self.owner}-{self.stack}"

    @property
    def raw_bucket(self) -> str:
        return bucket_name(self.owner, self.stack, self.account_id, "raw")

    @property
    def products_bucket(self) -> str:
        return bucket_name(self.owner, self.stack, self.account_id, "products")

    @property
    def job_queue(self) -> str:
        return f"{self.prefix}-jobs"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}-jobs-dlq"

    @property
    def asg(self) -> str:
        return f"{self.prefix}{ASG_SUFFIX}"

    @property
    def brake_function(self) -> str:
        return brake_function_name(self.prefix)

    @property
    def brake_topic(self) -> str:
        return f"{self.prefix}-brake"

    @property
    def meter_function(self) -> str:
        return meter_function_name(self.prefix)

    @property
    def quarantine_function(self) -> str:
        return quarantine_function_name(self.prefix)

    @property
    def worker_log_group(self) -> str:
        return worker_log_group_name(self.prefix)

    @property
    def budget(self) -> str:
        return f"{self.prefix}-monthly"

    @property
    def alerts_topic(self) -> str:
        return f"{self.prefix}-alerts"

    @property
    def cost_tags(self) -> dict[str, str]:
        """Tags on everything that costs money (and cost-allocation tags for the budget)."""
        return {PROJECT_TAG: PROJECT, OWNER_TAG: self.owner, STACK_TAG: self.stack}


def bucket_name(owner: str, stack: str, account_id: str, kind: str) -> str:
    """``spotcube-<owner>-<stack>-<account>-<kind>``, at most 63 characters.

    The account id makes the name unique per account: ``spotcube-alice-dev-raw`` copied from
    the example would otherwise belong to whoever deployed it first. When owner and stack are
    too long together, their end is replaced by a short hash of both, so two stacks never
    share a name and the name stays readable.
    """
    suffix = f"-{account_id}-{kind}" if account_id else f"-{kind}"
    middle = f"{owner}-{stack}"
    room = MAX_BUCKET_NAME - len(PROJECT) - 1 - len(suffix)
    if len(middle) > room:
        digest = hashlib.sha256(middle.encode()).hexdigest()[:_HASH_CHARS]
        middle = f"{middle[: room - _HASH_CHARS - 1].rstrip('-')}-{digest}"
    return f"{PROJECT}-{middle}{suffix}"


LOCAL_NAMES = StackNames(owner="local", stack="demo")
