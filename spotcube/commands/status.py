"""``spotcube status``: per-observation state, attempts, interruptions and the DLQ of a run."""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console
from rich.live import Live

from spotcube.errors import ExitStatus, UsageError
from spotcube.stack import add_stack_arguments, resolve_outputs
from spotcube.status import list_runs, render, run_status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show what a run's observations are doing, and the dead-letter queue",
        description=(
            "Per observation: state (queued/running/done/failed), chunks done, attempts, "
            "spot interruptions and lost compute; plus job queue and dead-letter queue depth."
        ),
    )
    add_stack_arguments(parser)
    parser.add_argument("run_id", nargs="?", metavar="RUN_ID", help="default: the newest run")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--list", action="store_true", help="list the run ids and exit")
    parser.add_argument(
        "--watch",
        type=float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until every observation is done or failed",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.watch is not None and args.watch <= 0:
        raise UsageError(f"--watch {args.watch}: the interval must be positive")
    if args.watch is not None and args.json:
        raise UsageError("--watch and --json do not mix; poll `status --json` instead")
    outputs = resolve_outputs(args)
    if args.list:
        for run_id in list_runs(outputs):
            print(run_id)
        return 0
    status = run_status(outputs, args.run_id)
    if args.json:
        print(json.dumps(status.to_dict(), indent=1))
        return ExitStatus.FAILED if status.count("failed") else ExitStatus.OK
    console = Console()
    if args.watch is None:
        console.print(render(status))
    else:
        with Live(render(status), console=console, auto_refresh=False) as live:
            while not status.finished:
                time.sleep(args.watch)
                status = run_status(outputs, status.run_id)
                live.update(render(status), refresh=True)
    # A failed observation is something to act on: say so in the exit status for scripts.
    return ExitStatus.FAILED if status.count("failed") else ExitStatus.OK
