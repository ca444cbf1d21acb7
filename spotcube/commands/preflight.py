"""``spotcube preflight``: read-only checks of the AWS account before ``pulumi up``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` or ``--stack NAME`` (through ``pulumi config``), and ``--profile``."""
    group = parser.add_argument_group("which stack config")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a Pulumi.<stack>.yaml (default: `pulumi config` of the selected stack)",
    )
    where.add_argument("--stack", help="Pulumi stack name (default: the selected stack)")
    parser.add_argument(
        "--profile", help="AWS profile (default: AWS_PROFILE or the default credential chain)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preflight",
        help="check the AWS account before `pulumi up` (read-only)",
        description=(
            "Read-only checks of the account and region the stack config names: instance "
            "types offered in every zone, spot and on-demand vCPU quotas against the fleet's "
            "maximum, an AMI with this checkout's content hash, cost allocation tags and "
            "Organizations membership, bucket names, AWS Budgets limits, and other spotcube "
            "stacks in the account. Exit status 3 when a check fails."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spotcube.account import stackconfig
    from spotcube.account.preflight import run_preflight
    from spotcube.account.results import render, to_json
    from spotcube.account.session import Aws
    from spotcube.bake.provenance import repo_root
    from spotcube.errors import RefusedError

    config = stackconfig.load(config_file=args.config, stack=args.stack)
    try:
        root: Path | None = repo_root()
    except FileNotFoundError:
        root = None  # an installed wheel: the image check says so
    results = run_preflight(Aws(config.region, args.profile), config, root)
    print(to_json(results) if args.json else render(results))
    failures = [r.name for r in results if not r.ok]
    if failures:
        raise RefusedError(
            f"{len(failures)} check(s) failed ({', '.join(failures)}); fix them before `pulumi up`"
        )
    return 0
