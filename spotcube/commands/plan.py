"""``spotcube plan``: cost and turnaround of a run on spot versus on-demand, before running it."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from infra.checkpointing import CHECKPOINT_COST_SECONDS
from spotcube.errors import CloudUnreachableError, RefusedError, UsageError
from spotcube.stack import add_stack_arguments

EXAMPLE = "spotcube plan --jobs 100 --runtime 633m --instance m5.4xlarge --rate 9%/h"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="estimate cost and turnaround on spot vs on-demand (Monte Carlo)",
        description=(
            "Simulate a run on on-demand instances, on spot with manual resubmission, and on "
            "spot with spotcube's automatic requeue and checkpoints; recommend a checkpoint "
            f"interval, a fleet cap and a budget. Example: {EXAMPLE}"
        ),
    )
    parser.add_argument("--jobs", type=int, required=True, help="number of observations")
    parser.add_argument("--runtime", required=True, help="compute time of one job, e.g. 633m")
    parser.add_argument("--instance", default="m5.4xlarge", help="instance type (m5.4xlarge)")
    parser.add_argument(
        "--rate",
        required=True,
        help="spot termination rate: 9%%/h (probability per hour), 0.094/h (hazard), "
        "piecewise 5%%/h@0-6h,12%%/h, or from:RUN_ID (estimated by `spotcube report`)",
    )
    parser.add_argument("--overhead", default="2m", help="start/stop time per attempt (2m)")
    parser.add_argument("--fleet-cap", type=int, help="most instances at once (default: --jobs)")
    parser.add_argument(
        "--manual-checkpoints",
        type=int,
        default=2,
        help="evenly spaced checkpoints per job without spotcube (2, as published)",
    )
    parser.add_argument(
        "--manual-lag", default="4h", help="time for a person to resubmit after a round (4h)"
    )
    parser.add_argument(
        "--interval",
        help="spotcube's checkpoint interval (default: the one the stack deploys: from --config, "
        "else a stack's default for fleet.interruptionPercentPerHour 9)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the stack's Pulumi.<stack>.yaml: model the checkpoint interval it deploys",
    )
    parser.add_argument(
        "--checkpoint-cost",
        default=f"{CHECKPOINT_COST_SECONDS:g}s",
        help=f"wall time to write one checkpoint ({CHECKPOINT_COST_SECONDS:g}s)",
    )
    parser.add_argument(
        "--requeue-delay",
        default="3m5s",
        help="termination to restart under spotcube: ASG replacement and boot (3m, assumed) "
        "plus the message becoming visible again (5s)",
    )
    parser.add_argument(
        "--fallback-after", type=int, help="run a job on-demand after this many terminations"
    )
    parser.add_argument("--deadline", help="turnaround the fleet cap must meet at p90, e.g. 24h")
    parser.add_argument("--runs", type=int, default=1000, help="simulated runs (1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--spot-price", type=float, help="spot USD per hour (overrides)")
    parser.add_argument("--on-demand-price", type=float, help="on-demand USD per hour")
    parser.add_argument(
        "--aws-prices",
        action="store_true",
        help="look prices up on AWS (needs credentials; spot history and the price list)",
    )
    parser.add_argument("--region", default="us-east-1", help="region for --aws-prices")
    parser.add_argument(
        "--speedup", type=float, default=1.0, help="time compression of a from:RUN_ID run (1)"
    )
    parser.add_argument(
        "--cloud-price",
        type=float,
        metavar="USD_PER_HOUR",
        help="with --cluster: what the cloud capacity costs you per hour, all in (instances, "
        "disks), instead of the plan's simulated spot cost",
    )
    parser.add_argument(
        "--cluster",
        metavar="INVESTMENT,RUNNING_PER_YEAR",
        help="compare with buying a cluster of the fleet's size (USD, then USD per year for "
        "power, cooling, staff): break-even time, Sabater et al. 2017 eq. 1",
    )
    parser.add_argument(
        "--budget-config",
        type=Path,
        metavar="FILE",
        help="a stack's Pulumi.<stack>.yaml: say whether the run fits its budget and brake",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", metavar="FILE", help="draw cost/turnaround against rate")
    add_stack_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spotcube import planning

    inputs = _inputs(args)
    cluster = _cluster(args)
    try:
        plan = planning.make_plan(inputs)
    except ValueError as exc:  # the simulation's own bounds (a job terminated too often)
        raise RefusedError(f"cannot plan this run: {exc}") from None
    verdict = None
    if cluster is not None:
        from spotcube.breakeven import breakeven

        spotcube = plan.strategies["spot, spotcube"]
        turnaround = spotcube["turnaround"]["mean"]
        cost = spotcube["cost"]["mean"]
        if args.cloud_price is not None:  # the price the user pays, for the same capacity
            cost = args.cloud_price * turnaround
        verdict = breakeven(cluster, cost_per_run=cost, turnaround_hours=turnaround)
    if args.json:
        doc = plan.to_dict()
        if verdict is not None:
            doc["cluster_breakeven"] = verdict.to_dict()
        json.dump(doc, sys.stdout, indent=1)
        print()
    else:
        print(planning.render_table(plan), end="")
        if verdict is not None:
            print(verdict.describe())
        if args.budget_config is not None:
            from spotcube.account import brakefit, stackconfig

            config = stackconfig.from_file(args.budget_config)
            lines = brakefit.plan_lines(config, plan.strategies, spot_usd=inputs.prices.spot)
            print("\n".join(lines))
    if args.plot:
        try:
            planning.plot(inputs, Path(args.plot))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--plot {args.plot}: {exc}") from None
        if not args.json:
            print(f"plot written to {args.plot}")
    return 0


def _inputs(args: argparse.Namespace) -> Any:
    from spotcube import planning

    def duration(option: str) -> float:
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        try:
            return planning.parse_duration(value, option)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    positive = {"--jobs": args.jobs, "--runs": args.runs, "--fleet-cap": args.fleet_cap}
    for option, value in positive.items():
        if value is not None and value < 1:
            raise UsageError(f"{option} must be at least 1, not {value}")
    for option, value in (
        ("--manual-checkpoints", args.manual_checkpoints),
        ("--fallback-after", args.fallback_after),
        ("--seed", args.seed),
    ):
        if value is not None and value < 0:
            raise UsageError(f"{option} must not be negative")
    for option, price in (
        ("--spot-price", args.spot_price),
        ("--on-demand-price", args.on_demand_price),
        ("--cloud-price", args.cloud_price),
    ):
        if price is not None and not (price >= 0 and math.isfinite(price)):
            raise UsageError(f"{option} must be a non-negative price per hour")
    if args.cloud_price is not None and args.cluster is None:
        raise UsageError("--cloud-price is compared with a cluster: give --cluster too")
    if not (args.speedup > 0 and math.isfinite(args.speedup)):
        raise UsageError("--speedup must be a positive number")
    runtime = duration("--runtime")
    if runtime <= 0:
        raise UsageError("--runtime must be positive")
    interval, interval_source = _interval(args, duration)
    deadline = duration("--deadline") if args.deadline else None
    if deadline is not None and deadline <= 0:
        raise UsageError("--deadline must be positive")
    inputs = planning.PlanInputs(
        jobs=args.jobs,
        runtime=runtime,
        hazard=_hazard(args),
        prices=_prices(args),
        overhead=duration("--overhead"),
        fleet_cap=args.fleet_cap,
        manual_checkpoints=args.manual_checkpoints,
        manual_lag=duration("--manual-lag"),
        interval=interval,
        interval_source=interval_source,
        checkpoint_cost=duration("--checkpoint-cost"),
        requeue_delay=duration("--requeue-delay"),
        fallback_after=args.fallback_after,
        deadline=deadline,
        runs=args.runs,
        seed=args.seed,
    )
    try:
        planning.check_bounds(inputs)
    except ValueError as exc:
        raise RefusedError(str(exc)) from None
    return inputs


def _interval(args: argparse.Namespace, duration: Any) -> tuple[float, str]:
    """The work plane's checkpoint interval (hours) and where it comes from."""
    from spotcube import planning

    if args.interval is not None:
        interval = duration("--interval")
        if interval <= 0:
            raise UsageError("--interval must be positive")
        return interval, "--interval"
    if args.config is not None:
        from spotcube.account.stackconfig import from_file

        fleet = from_file(args.config).fleet
        return (
            fleet.checkpoint_interval_seconds / 3600,
            f"the stack's, from {args.config.name}",
        )
    return planning.STACK_DEFAULT_INTERVAL_HOURS, planning.STACK_DEFAULT_INTERVAL_SOURCE


def _cluster(args: argparse.Namespace) -> Any:
    if args.cluster is None:
        return None
    from spotcube.breakeven import ClusterCosts

    try:
        return ClusterCosts.parse(args.cluster)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _hazard(args: argparse.Namespace) -> Any:
    from spotcube import planning
    from spotcube.spotsim import Hazard

    if args.rate.startswith("from:"):
        from spotcube.runreport import summarise_run
        from spotcube.stack import resolve_outputs

        run_id = args.rate[len("from:") :]
        outputs = resolve_outputs(args)
        try:
            report = summarise_run(
                outputs.client("s3"), outputs.products_bucket, run_id, speedup=args.speedup
            )
        except LookupError as exc:
            raise UsageError(f"--rate from:{run_id}: {exc}") from None
        except ValueError as exc:
            raise RefusedError(str(exc)) from None
        if report.hazard_per_hour is None:
            raise RefusedError(f"--rate from:{run_id}: the run has no finished attempts")
        print(
            f"rate from run {run_id}: {report.terminations} terminations in "
            f"{report.exposure_hours:.1f} instance-hours, hazard "
            f"{report.hazard_per_hour:.4g}/h ({report.hazard_percent_per_hour:.3g}%/h)",
            file=sys.stderr,
        )
        return Hazard.constant(report.hazard_per_hour)
    try:
        return planning.parse_rate(args.rate, "--rate")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _prices(args: argparse.Namespace) -> Any:
    from spotcube import prices

    aws = None
    if args.aws_prices and (args.spot_price is None or args.on_demand_price is None):
        aws = _aws_prices(args)
    try:
        return prices.quote(
            args.instance, on_demand=args.on_demand_price, spot=args.spot_price, aws=aws
        )
    except ValueError as exc:
        raise UsageError(f"--instance {args.instance}: {exc}") from None


def _aws_prices(args: argparse.Namespace) -> Any:
    """Clients for live prices: AWS, or the local cloud when ``--endpoint`` is given."""
    from spotcube.awssession import aws_session
    from spotcube.local.motoserver import local_client
    from spotcube.prices import AwsPrices

    if args.endpoint:
        # moto serves spot price history but not the Price List API.
        return AwsPrices(local_client("ec2", args.endpoint), None, args.region)
    session = aws_session(args.profile)
    if session.get_credentials() is None:
        raise CloudUnreachableError(
            "--aws-prices needs AWS credentials (none found); omit it to use the embedded "
            "price table"
        )
    # the Price List API answers from us-east-1 for every region
    return AwsPrices(
        session.client("ec2", region_name=args.region),
        session.client("pricing", region_name="us-east-1"),
        args.region,
    )
