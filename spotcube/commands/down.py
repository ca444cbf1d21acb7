"""``spotcube down``: scale a stack's compute to zero, keep its data, print what that costs."""

from __future__ import annotations

import argparse

from spotcube.stack import add_stack_arguments, resolve_outputs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "down",
        help="scale the fleet to zero; keep the data and show what it costs per month",
        description=(
            "Scale the stack's Auto Scaling group to zero (min, max and desired), after checking "
            "that no job is in flight and every checkpointed observation is DONE. Buckets, "
            "queues and alarms stay; the report says what they cost per month."
        ),
    )
    add_stack_arguments(parser)
    parser.add_argument(
        "--force",
        action="store_true",
        help="scale down even with jobs in flight or unfinished checkpoints",
    )
    parser.add_argument("--dry-run", action="store_true", help="check and report, change nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spotcube.down import down, render

    report = down(resolve_outputs(args), force=args.force, dry_run=args.dry_run)
    print(render(report))
    return 0
