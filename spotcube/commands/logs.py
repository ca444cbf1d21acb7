"""``spotcube logs RUN_ID [OBS_ID]``: the log each attempt shipped to the products bucket.

Workers upload each attempt's log at its start, at every chunk boundary and at its end
(:mod:`payload.logship`), so the log of a reclaimed or failed instance is still there. Without
OBS_ID the command lists the run's attempts and their logs; with it, prints one attempt's log
(the latest by default) and with ``--follow`` keeps printing as new parts arrive, across
attempts, until the observation is done or failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from spotcube.errors import SpotcubeError, UsageError
from spotcube.stack import add_stack_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="print the logs attempts shipped to S3 (they outlive the instance)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("obs_id", nargs="?", metavar="OBS_ID", help="default: list the attempts")
    parser.add_argument(
        "--attempt", type=int, metavar="N", help="attempt number (1 = first; default: latest)"
    )
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing until the observation is done or failed (Ctrl-C stops)",
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="--follow polling (2)"
    )
    add_stack_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spotcube.runstate import read_run
    from spotcube.stack import resolve_outputs

    if args.attempt is not None and args.attempt < 1:
        raise UsageError(f"--attempt {args.attempt}: attempts are numbered from 1")
    if not args.interval > 0:
        raise UsageError(f"--interval {args.interval}: must be positive")
    if args.obs_id is None and (args.attempt is not None or args.follow):
        raise UsageError("--attempt and --follow need an OBS_ID; run without them to list")
    outputs = resolve_outputs(args)
    s3 = outputs.client("s3")
    bucket = outputs.products_bucket

    def read() -> Any:
        try:
            return read_run(s3, bucket, args.run_id)
        except LookupError as exc:
            raise UsageError(str(exc)) from None

    if args.obs_id is None:
        sys.stdout.write(listing(read()))
        return 0
    try:
        read().obs(args.obs_id)
    except LookupError as exc:
        raise UsageError(str(exc)) from None
    printer = LogPrinter(lambda: read().obs(args.obs_id), s3, bucket, sys.stdout)
    if not args.follow:
        printer.print_once(args.attempt)
        return 0
    printer.follow(args.attempt, interval=args.interval)
    return 0


def listing(run: Any) -> str:
    """One line per attempt: observation, number, state, instance, log key."""
    lines = []
    for obs in run.observations:
        if not obs.attempts:
            lines.append(f"{obs.obs_id}: no attempts yet ({obs.phase.value})")
        for a in obs.attempts:
            where = f"s3://…/{a.log_key}" if a.log_key else "no log recorded"
            lines.append(
                f"{obs.obs_id} attempt {a.number}: {a.state.value} on {a.record.instance_id}, "
                f"{where}"
            )
    lines.append(f"print one: spotcube logs {run.run_id} OBS_ID [--attempt N] [--follow]")
    return "\n".join(lines) + "\n"


class LogPrinter:
    """Prints an observation's attempt logs from S3; ``follow`` is bounded by the observation.

    Parameters
    ----------
    observe : callable
        Returns the observation's current :class:`spotcube.runstate.ObsState`.
    """

    def __init__(
        self, observe: Callable[[], Any], s3: Any, bucket: str, out: TextIO = sys.stdout
    ) -> None:
        self.observe = observe
        self.s3 = s3
        self.bucket = bucket
        self.out = out

    def _attempt(self, obs: Any, number: int | None) -> Any:
        attempts = obs.attempts
        if not attempts:
            return None
        if number is None:
            return attempts[-1]
        if number > len(attempts):
            raise UsageError(
                f"--attempt {number}: {obs.obs_id} has {len(attempts)} attempt(s) so far"
            )
        return attempts[number - 1]

    def _fetch(self, key: str | None) -> bytes | None:
        from spotcube.runstate import read_object

        return None if key is None else read_object(self.s3, self.bucket, key)

    def print_once(self, number: int | None) -> None:
        obs = self.observe()
        attempt = self._attempt(obs, number)
        if attempt is None:
            raise SpotcubeError(f"{obs.obs_id} has no attempts yet ({obs.phase.value})")
        data = self._fetch(attempt.log_key)
        if data is None:
            raise SpotcubeError(
                f"attempt {attempt.number} of {obs.obs_id} ({attempt.state.value}) shipped no "
                "log: it ended before its first upload, or ran a payload without log shipping"
            )
        self.out.write(data.decode("utf-8", errors="replace"))
        self.out.flush()

    def follow(self, number: int | None, *, interval: float) -> None:
        """Print new log bytes as they arrive until the attempt (or observation) is over."""
        current = number
        printed = 0
        headed = False
        settled = False  # the attempt's end was seen one poll ago: its last upload is in
        # Bounded: each pass sleeps; it returns once the followed attempt has ended and,
        # without --attempt, the observation has finished. Ctrl-C ends it earlier.
        while True:
            obs = self.observe()
            attempt = self._attempt(obs, current)
            if attempt is None:
                if obs.finished:
                    return
                time.sleep(interval)
                continue
            current = attempt.number
            if not headed:
                self.out.write(
                    f"--- {obs.obs_id} attempt {attempt.number} on {attempt.record.instance_id}\n"
                )
                headed = True
            data = self._fetch(attempt.log_key) or b""
            if len(data) > printed:
                self.out.write(data[printed:].decode("utf-8", errors="replace"))
                printed = len(data)
            self.out.flush()
            if attempt.state.ended:
                # The worker uploads the log once more after it records the attempt's end,
                # so one more poll is taken before moving on.
                if not settled:
                    settled = True
                    time.sleep(interval)
                    continue
                if number is not None or obs.finished:
                    return
                if len(obs.attempts) > attempt.number:
                    current, printed, headed, settled = attempt.number + 1, 0, False, False
                    continue
            time.sleep(interval)
