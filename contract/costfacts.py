"""AWS billing facts that the stack, its policy pack and the operator side share.

One home for each (DESIGN.md, "Facts to encode"): ``infra.fleet`` provisions at the gp3
baseline, ``infra.policy.rules`` refuses more, and both read the same numbers here; the cost
tags are the keys :class:`contract.names.StackNames` writes, the policy pack requires, the
budget filters on and ``spotcube check`` asks to be active cost allocation tags.
"""

from __future__ import annotations

# gp3 volumes include 3,000 IOPS and 125 MB/s; anything above is billed (Amazon EBS User
# Guide, "General Purpose SSD volumes").
GP3_BASELINE_IOPS = 3000
GP3_BASELINE_THROUGHPUT_MBPS = 125

# Every resource that costs money carries these tags; a budget filters on Owner.
OWNER_TAG = "Owner"
PROJECT_TAG = "Project"
STACK_TAG = "Stack"
COST_TAG_KEYS = (OWNER_TAG, PROJECT_TAG, STACK_TAG)
