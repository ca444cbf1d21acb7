"""Names shared by the Pulumi stack, the embedded local cloud and the operator CLI.

Pure code, no Pulumi import: ``spotcube demo`` creates the same buckets and queues on its
local cloud that ``pulumi up`` declares on AWS, and ``spotcube submit/status/down`` find them
through the stack outputs named here.
"""

from __future__ import annotations

from dataclasses import dataclass

PROJECT = "spotcube"

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


@dataclass(frozen=True)
class StackNames:
    """Physical names of a stack's resources, derived from owner and stack name."""

    owner: str
    stack: str

    @property
    def prefix(self) -> str:
        return f"{PROJECT}-{self.owner}-{self.stack}"

    @property
    def raw_bucket(self) -> str:
        return f"{self.prefix}-raw"

    @property
    def products_bucket(self) -> str:
        return f"{self.prefix}-products"

    @property
    def job_queue(self) -> str:
        return f"{self.prefix}-jobs"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}-jobs-dlq"

    @property
    def asg(self) -> str:
        return f"{self.prefix}-fleet"

    @property
    def budget(self) -> str:
        return f"{self.prefix}-monthly"

    @property
    def alerts_topic(self) -> str:
        return f"{self.prefix}-alerts"

    @property
    def cost_tags(self) -> dict[str, str]:
        """Tags on everything that costs money (and cost-allocation tags for the budget)."""
        return {"Project": PROJECT, "Owner": self.owner, "Stack": self.stack}


LOCAL_NAMES = StackNames(owner="local", stack="demo")
