"""``spotcube resume``: release the brake, re-arming the budget brake for the rest of the month."""

from __future__ import annotations

import argparse

from spotcube.stack import add_deployed_stack_arguments, resolve_outputs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "resume",
        help="release the brake: re-arm the budget brake, restore the fleet's sizes",
        description=(
            "After the brake (or `spotcube down`) scaled the fleet to zero: re-arm the budget "
            "brake for the rest of the month (AWS Budgets notify once per period, so the 100% "
            "notification that fired will not fire again), then restore the group's sizes "
            "from the stack config. `pulumi up` cannot do this: the brake changed the group "
            "outside Pulumi. Refuses while the burn-rate alarm is still in ALARM, or when the "
            "month's spend has reached the budget (raise spotcube:budget.monthlyUsd and "
            "`pulumi up` first). The re-armed notification is the one Pulumi declares, so a "
            "later `pulumi up --refresh` keeps it."
        ),
    )
    add_deployed_stack_arguments(parser)
    parser.add_argument(
        "--force",
        action="store_true",
        help="resume even while the burn-rate alarm is in ALARM (resets it to OK)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spotcube.account import stackconfig
    from spotcube.account.preflight import caller
    from spotcube.account.resume import apply_resume, describe, plan_resume
    from spotcube.account.session import Aws, first_call, refuse_on_error

    outputs = resolve_outputs(args)
    config = stackconfig.load(config_file=args.config, stack=args.stack)
    aws = Aws(outputs.region, args.profile, endpoint_url=outputs.endpoint_url)
    account = first_call(aws, lambda: caller(aws))
    plan = refuse_on_error(
        aws,
        lambda: plan_resume(
            aws,
            outputs,
            config,
            account_id=account.account_id,
            force=args.force,
        ),
    )
    for line in describe(plan):
        print(line)
    if args.dry_run:
        print("dry run: nothing changed")
        return 0
    refuse_on_error(
        aws,
        lambda: apply_resume(aws, plan, account_id=account.account_id),
    )
    print(f"resumed: {plan.asg} may grow to {plan.target_max} instances")
    return 0
