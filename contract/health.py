"""Where and how AWS Health reports an exposed access key: the stack's rule, the quarantine
Lambda that acts on it and ``spotcube check`` that verifies the rule all use these.
"""

from __future__ import annotations

# AWS Health delivers account-wide risk events to EventBridge in us-east-1 only, so the
# rule (and the Lambda it invokes) live there whatever the stack's region.
HEALTH_REGION = "us-east-1"
# The event AWS sends when it finds one of the account's keys in public (a repository, say).
EXPOSED_KEYS_EVENT_TYPE = "AWS_RISK_CREDENTIALS_EXPOSED"
