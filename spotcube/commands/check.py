"""``spotcube check``: exercise a deployed stack's guards without harm."""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime

from spotcube.stack import add_deployed_stack_arguments, resolve_outputs

DEFAULT_SELFTEST_MINUTES = 30.0  # a cold start: spot request, boot, image pull, one job


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check a deployed stack's brake, alarms, launch guard and logs (no harm done)",
        description=(
            "After `pulumi up`: ask the brake Lambda for a dry run (the group must stay as it "
            "was), follow the alarms to the brake, evaluate the launch guard with IAM's policy "
            "simulator (launches in another region, of another type, untagged, for another "
            "owner and through CreateFleet must be denied; the fleet's own must pass), check "
            "the exposed-key rule's target, the budget brake and that worker logs arrive. "
            "--selftest N runs N small jobs through the real fleet (a few cents). Exit status "
            "3 when a check fails."
        ),
    )
    add_deployed_stack_arguments(parser)
    parser.add_argument(
        "--principal",
        metavar="ARN",
        help="simulate the guard for this IAM user or role (SimulatePrincipalPolicy), e.g. "
        "the deploying user, instead of the guard policy alone",
    )
    parser.add_argument(
        "--selftest",
        type=int,
        metavar="N",
        help="also run N selftest jobs through the fleet and wait for them and their logs",
    )
    parser.add_argument(
        "--selftest-minutes",
        type=float,
        default=DEFAULT_SELFTEST_MINUTES,
        metavar="MIN",
        help=f"how long to wait for the selftest (default {DEFAULT_SELFTEST_MINUTES:g})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import boto3

    from spotcube.account import stackconfig
    from spotcube.account.postdeploy import check_worker_logs, run_check, run_selftest
    from spotcube.account.preflight import caller
    from spotcube.account.results import render, to_json
    from spotcube.account.session import Aws, first_call, run_checks
    from spotcube.errors import RefusedError, UsageError

    if args.selftest is not None and args.selftest < 1:
        raise UsageError(f"--selftest {args.selftest}: give at least 1 job")
    if not math.isfinite(args.selftest_minutes) or args.selftest_minutes <= 0:
        raise UsageError(f"--selftest-minutes {args.selftest_minutes:g}: give positive minutes")
    outputs = resolve_outputs(args)
    config = stackconfig.load(config_file=args.config, stack=args.stack)
    aws = Aws(outputs.region, args.profile, endpoint_url=outputs.endpoint_url)
    account = first_call(aws, lambda: caller(aws))
    results = run_check(aws, outputs, config, account, principal=args.principal)
    if args.selftest:
        if args.profile:
            # submit/status build their clients from boto3's default session.
            boto3.setup_default_session(profile_name=args.profile, region_name=outputs.region)
        started = datetime.now(UTC)  # the worker logs must be newer than this
        results += run_checks(
            aws,
            [
                (
                    "selftest",
                    lambda: run_selftest(
                        outputs, args.selftest, timeout_seconds=args.selftest_minutes * 60
                    ),
                )
            ],
        )
        results += run_checks(
            aws, [("worker logs", lambda: check_worker_logs(aws, outputs, since=started))]
        )
    print(to_json(results) if args.json else render(results))
    failures = [r.name for r in results if not r.ok]
    if failures:
        raise RefusedError(
            f"{len(failures)} check(s) failed ({', '.join(failures)}); the fixes are listed above"
        )
    return 0
