"""Every IAM document the stack declares, linted by parliament (duo-labs/parliament).

parliament checks actions, condition keys and resource formats against AWS's own service
authorization reference (bundled with it), and flags risky grants. Its findings on our
documents must be empty except for the known false positives below, each with why.
"""

from __future__ import annotations

import json

import parliament
import pytest

from infra.config import StackConfig
from tests.infra.program import Program

Built = tuple[StackConfig, Program]

POLICY_INPUTS = ("policy", "assumeRolePolicy")

# (logical resource name suffix, input, parliament issue) -> why it is not a problem.
KNOWN_FALSE_POSITIVES: dict[tuple[str, str, str], str] = {
    **{
        (role, "assumeRolePolicy", "MALFORMED"): (
            "a role's trust policy names a Principal and no Resource by design (IAM User "
            "Guide, role trust policies); parliament lints it as an identity policy"
        )
        for role in ("fleet-worker", "cost-brake", "cost-meter", "guards-quarantine")
    },
    ("guards-launch-guard", "policy", "UNKNOWN_ACTION"): (
        "autoscaling:LaunchInstances is newer than parliament's bundled action list; the "
        "operation is in botocore's autoscaling model (tests/infra/test_program.py checks it)"
    ),
    ("guards-quarantine", "policy", "CREDENTIALS_EXPOSURE"): (
        "iam:UpdateAccessKey is the quarantine's job: it deactivates the leaked key"
    ),
    ("guards-quarantine", "policy", "PERMISSIONS_MANAGEMENT_ACTIONS"): (
        "deactivating a key and attaching the quarantine policy are permission management"
    ),
    ("guards-quarantine", "policy", "PRIVILEGE_ESCALATION"): (
        "iam:AttachUserPolicy is limited by ArnEquals iam:PolicyARN to AWS's deny-only "
        "quarantine policy; parliament does not evaluate the condition"
    ),
}


def documents(program: Program) -> list[tuple[str, str, str]]:
    """(logical name, input name, JSON) of every IAM document in the program."""
    return [
        (r.name, key, r.inputs[key])
        for r in program.aws
        for key in POLICY_INPUTS
        if isinstance(r.inputs.get(key), str)
    ]


def test_every_policy_document_is_clean_under_parliament(built: Built) -> None:
    _, program = built
    docs = documents(program)
    # Trust policies, role policies, the launch guard, bucket and topic policies.
    assert len(docs) >= 10
    unexpected = []
    for name, key, document in docs:
        findings = parliament.analyze_policy_string(document, include_community_auditors=True)
        for finding in findings.findings:
            if (name, key, finding.issue) not in KNOWN_FALSE_POSITIVES:
                unexpected.append((name, key, finding.issue, finding.detail))
    assert unexpected == []


def test_every_known_false_positive_still_occurs(programs: dict[str, Built]) -> None:
    """A listed exception that parliament no longer reports is stale: remove it."""
    _, program = programs["full"]
    seen = {
        (name, key, f.issue)
        for name, key, document in documents(program)
        for f in parliament.analyze_policy_string(
            document, include_community_auditors=True
        ).findings
    }
    assert set(KNOWN_FALSE_POSITIVES) <= seen


@pytest.mark.parametrize(
    ("statement", "issue"),
    [
        ({"Action": ["ec2:RunInstancez"], "Resource": "*"}, "UNKNOWN_ACTION"),
        (
            {
                "Action": ["autoscaling:UpdateAutoScalingGroup"],
                "Resource": "*",
                "Condition": {"NumericGreaterThan": {"autoscaling:MaxSizes": "3"}},
            },
            "UNKNOWN_CONDITION_FOR_ACTION",
        ),
    ],
    ids=["misspelt-action", "misspelt-condition-key"],
)
def test_the_linter_catches_what_a_typo_in_the_guard_would_be(
    statement: dict[str, object], issue: str
) -> None:
    """The launch guard's strength is in its action names and condition keys: parliament
    knows both, so a typo in either fails the suite instead of silently guarding nothing."""
    document = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", **statement}]})
    issues = {f.issue for f in parliament.analyze_policy_string(document).findings}
    assert issue in issues
