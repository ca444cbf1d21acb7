"""``spotcube report RUN_ID``: what a run cost and what the spot market did to it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from spotcube.errors import UsageError
from spotcube.stack import add_stack_arguments


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="instance-hours, cost, lost work and the termination rate of a run",
        description=(
            "Read the checkpoint manifests of a run and report instance-hours, estimated "
            "cost, work lost to terminations and the maximum-likelihood termination hazard "
            "(reusable as `spotcube plan --rate from:RUN_ID`)."
        ),
    )
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument(
        "--speedup",
        type=float,
        default=1.0,
        help="time compression of the run (the local demo's), to rescale durations (1)",
    )
    parser.add_argument(
        "--spot-price",
        type=float,
        help="USD per hour for instance types the embedded price table does not know",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_stack_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spotcube.runreport import NothingYetError, spot_price_lookup, summarise_run
    from spotcube.stack import resolve_outputs

    if not args.speedup > 0:
        raise UsageError(f"--speedup must be positive, not {args.speedup}")
    if args.spot_price is not None and not args.spot_price >= 0:
        raise UsageError("--spot-price must be a non-negative price per hour")
    outputs = resolve_outputs(args)
    try:
        report = summarise_run(
            outputs.client("s3"),
            outputs.products_bucket,
            args.run_id,
            speedup=args.speedup,
            price=spot_price_lookup(default=args.spot_price),
        )
    except NothingYetError as exc:
        print(str(exc))  # a correct command on a young run: not a usage error
        return 0
    except LookupError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(report.to_json())
    else:
        sys.stdout.write(render(report))
    return 0


def render(report: Any) -> str:
    """The report as a few lines of text."""
    lines = [
        f"run {report.run_id}: {report.observations_done}/{report.observations} observations "
        f"done, {report.attempts} attempts ({report.open_attempts} still open)",
    ]
    if report.speedup != 1:
        lines.append(f"durations scaled by --speedup {report.speedup:g}")
    lines += [
        f"turnaround: {report.turnaround_hours:.2f} h; instance-hours: "
        f"{report.instance_hours:.2f}; chunk compute kept: {report.chunk_hours:.2f} h; "
        f"lost work: {report.lost_hours:.2f} h",
        f"estimated cost: ${report.estimated_cost:,.2f} at spot prices"
        + (
            f" (+ {report.unpriced_hours:.2f} h of unpriced types)" if report.unpriced_hours else ""
        ),
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())),
    ]
    for name, usage in sorted(report.by_type.items()):
        price = "unpriced" if usage.price_per_hour is None else f"${usage.price_per_hour:.4g}/h"
        lines.append(
            f"  {name}: {usage.attempts} attempts, {usage.terminations} terminated, "
            f"{usage.hours:.2f} h, {price} ({usage.price_source})"
        )
    if report.hazard_per_hour is None:
        lines.append("termination hazard: no finished attempts, nothing to estimate")
    else:
        low, high = report.hazard_interval
        lines.append(
            f"termination hazard (MLE): {report.hazard_per_hour:.4g}/h = "
            f"{report.hazard_percent_per_hour:.3g}%/h, 95% interval {low:.3g}-{high:.3g}/h "
            f"({report.terminations} terminations in {report.exposure_hours:.2f} instance-hours)"
        )
        lines.append(f"reuse: spotcube plan --rate from:{report.run_id} ...")
    if report.progress is not None:
        warning = "WARNING: " if report.progress.outpaced else ""
        lines.append(f"progress: {warning}{report.progress.message}")
    return "\n".join(lines) + "\n"
