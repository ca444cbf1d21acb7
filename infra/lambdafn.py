"""One stack Lambda: its log group, role, inline policy and function, built one way.

The brake, the spend meter (infra/budget.py) and the key quarantine (infra/guards.py) each need
the same four resources; only the policy, the handler module and the environment differ. Names
follow the caller's ``base``: ``<base>-logs`` for the log group, ``<base>`` for the rest.

Every zip holds the handler's file and the ``contract`` package beside it: a handler reads the
facts it shares with the stack (the Health event type the rule filters on, say) from there, not
from a copy. The contract imports only the standard library, which the Lambda runtime has.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pulumi
import pulumi_aws as aws

import contract
from infra.fleet import LOG_RETENTION_DAYS, assume_role_policy
from infra.lambdas import LAMBDA_DIR

LAMBDA_RUNTIME = "python3.12"
CONTRACT_DIR = Path(contract.__file__).resolve().parent


def lambda_code(module: str) -> dict[str, Path]:
    """The files of the zip of ``infra/lambdas/<module>.py``: name in the zip -> source.

    The handler at the top (``<module>.handler``) and ``contract/*.py`` beside it, bytecode
    left out (the runtime compiles its own).
    """
    files = {f"{module}.py": LAMBDA_DIR / f"{module}.py"}
    for path in sorted(CONTRACT_DIR.rglob("*.py")):
        if "__pycache__" not in path.parts:
            files[f"contract/{path.relative_to(CONTRACT_DIR).as_posix()}"] = path
    return files


def stack_lambda(
    base: str,
    *,
    parent: pulumi.Resource,
    function_name: str,
    description: str,
    module: str,
    policy: pulumi.Input[str],
    environment: Mapping[str, pulumi.Input[str]],
    tags: Mapping[str, str],
    region: str | None = None,
) -> aws.lambda_.Function:
    """A Lambda running ``infra/lambdas/<module>.py``'s ``handler`` with ``policy``.

    The log group exists before the function (with a retention: a group Lambda creates
    itself never expires), in ``region`` when the function lives outside the stack's.
    """
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(
        f"{base}-logs",
        name=f"/aws/lambda/{function_name}",
        retention_in_days=LOG_RETENTION_DAYS,
        region=region,
        tags=dict(tags),
        opts=child,
    )
    role = aws.iam.Role(
        base,
        assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
        description=description,
        tags=dict(tags),
        opts=child,
    )
    aws.iam.RolePolicy(base, role=role.id, policy=policy, opts=child)
    return aws.lambda_.Function(
        base,
        name=function_name,
        region=region,
        role=role.arn,
        runtime=LAMBDA_RUNTIME,
        handler=f"{module}.handler",
        code=pulumi.AssetArchive(
            {name: pulumi.FileAsset(str(path)) for name, path in lambda_code(module).items()}
        ),
        timeout=60,
        memory_size=128,
        environment={"variables": dict(environment)},
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[log_group]),
    )
