"""The spotcube CrossGuard pack: ``pulumi preview --policy-pack infra/policy``.

Every rule is mandatory. Pack config ``max_iops`` / ``max_throughput`` allow more than the
gp3 baseline on purpose (for example in ``pulumi policy enable ... --config``).
"""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.policy.rules import RESOURCE_RULES, STACK_RULES, Limits, ResourceRule, StackRule

CONFIG_SCHEMA: dict[str, Any] = {
    "max_iops": {"type": "integer", "default": Limits.max_iops},
    "max_throughput": {"type": "integer", "default": Limits.max_throughput},
}


def _limits(config: Any) -> Limits:
    config = config or {}
    return Limits(
        max_iops=int(config.get("max_iops", Limits.max_iops)),
        max_throughput=int(config.get("max_throughput", Limits.max_throughput)),
    )


def _resource_policy(rule: ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for message in rule.check(args.resource_type, args.props, _limits(args.get_config())):
            report(message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties=CONFIG_SCHEMA),
    )


def _stack_policy(rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [(r.resource_type, r.props) for r in args.resources]
        for message in rule.check(resources, _limits(args.get_config())):
            report(message, None)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def main() -> None:
    policies: list[Any] = [_resource_policy(r) for r in RESOURCE_RULES]
    policies += [_stack_policy(r) for r in STACK_RULES]
    PolicyPack(name="spotcube", enforcement_level=EnforcementLevel.MANDATORY, policies=policies)


if __name__ == "__main__":
    main()
