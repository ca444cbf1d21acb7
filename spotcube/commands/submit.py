"""``spotcube submit``: queue observations for processing on a stack or the local cloud."""

from __future__ import annotations

import argparse
import sys

from payload.contracts import JOB_KINDS
from spotcube.errors import UsageError
from spotcube.stack import add_stack_arguments, resolve_outputs
from spotcube.submit import (
    Observation,
    parse_params,
    selftest_input,
    submit_run,
    upload_inputs,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="upload observations and queue one job per observation",
        description=(
            "Store local files and folders (a Measurement Set, an MWA raw file set) in the "
            "stack's raw bucket by content: each under the SHA-256 of its bytes, never "
            "overwritten, never uploaded twice (s3:// URIs are used in place); "
            "record the run in the products bucket and send one job message per observation. "
            "Prints the run id."
        ),
    )
    add_stack_arguments(parser)
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="file, folder or s3:// URI")
    parser.add_argument("--kind", choices=JOB_KINDS, default="image", help="job kind")
    parser.add_argument(
        "--params", metavar="JSON", help="job params as a JSON object, or @FILE to read one"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one job parameter (VALUE parsed as JSON when it is JSON); repeatable",
    )
    parser.add_argument("--run-id", help="run id (default: run-<UTC time>-<random>)")
    parser.add_argument(
        "--selftest",
        type=int,
        nargs="?",
        const=3,
        metavar="N",
        help="submit N (default 3) selftest jobs to smoke-test a fleet; takes no INPUT",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    params = parse_params(args.params, args.param)
    outputs = resolve_outputs(args)
    if args.selftest is not None:
        if args.inputs:
            raise UsageError("--selftest takes no INPUT; drop the inputs or the option")
        if args.selftest < 1:
            raise UsageError(f"--selftest {args.selftest}: give at least 1 job")
        uri = selftest_input(outputs)
        observations = [Observation(f"selftest-{i:03d}", uri) for i in range(args.selftest)]
        kind = "selftest"
    else:
        observations = upload_inputs(outputs, args.inputs, log=_to_stderr)
        kind = args.kind
    run_id, messages = submit_run(
        outputs, observations, kind=kind, params=params, run_id=args.run_id
    )
    print(f"submitted {len(messages)} {kind} job(s) as run {run_id}", flush=True)
    print(run_id)
    return 0


def _to_stderr(line: str) -> None:
    # stdout's last line is the run id, for scripts; progress goes to stderr.
    print(line, file=sys.stderr, flush=True)
