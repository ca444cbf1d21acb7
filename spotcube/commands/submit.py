"""``spotcube submit``: queue observations for processing on a stack or the local cloud."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from contract.jobs import JOB_KINDS, JobKind
from payload.records import ObservationRef
from spotcube.errors import UsageError
from spotcube.stack import add_stack_arguments, resolve_outputs
from spotcube.submit import (
    build_run,
    check_run_id_free,
    check_run_options,
    check_s3_inputs,
    check_stack,
    layout_hints,
    parse_params,
    plan_inputs,
    publish_run,
    selftest_input,
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
    parser.add_argument("--kind", choices=JOB_KINDS, default=JobKind.IMAGE.value, help="job kind")
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
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="an input, as INPUT (repeatable; with --job folders such as Measurement Sets too)",
    )
    parser.add_argument(
        "--job",
        type=Path,
        metavar="FILE",
        help="run your own pipeline: the job file `spotcube demo --job` runs (JSON with kind "
        "and params; {input} and {job_dir} replaced), one job per input. On AWS {job_dir} is "
        "/opt/spotcube/pipelines/<the file's folder name>: bake an image variant that lists "
        "the folder under `pipelines`; with --endpoint it is the folder here",
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
    if args.job is not None:
        return _run_job(args)
    params = parse_params(args.params, args.param)
    inputs = [*args.inputs, *map(str, args.input)]
    # Everything a worker would refuse is refused before anything is uploaded or written:
    # options first (no cloud needed), then the stack, then the inputs and the run id.
    if args.selftest is not None:
        if args.inputs:
            raise UsageError("--selftest takes no INPUT; drop the inputs or the option")
        if args.selftest < 1:
            raise UsageError(f"--selftest {args.selftest}: give at least 1 job")
        kind, planned = JobKind.SELFTEST.value, []
    else:
        kind, planned = args.kind, plan_inputs(inputs)
    check_run_options(kind, params, args.run_id)
    outputs = resolve_outputs(args)
    local = args.selftest is not None or any(not item.startswith("s3://") for _, item in planned)
    check_stack(outputs, raw_bucket=local)
    check_s3_inputs(outputs, planned)
    if args.run_id is not None:
        obs_ids = [obs_id for obs_id, _ in planned] or _selftest_ids(args.selftest)
        check_run_id_free(outputs, args.run_id, kind=kind, params=params, obs_ids=obs_ids)
    if args.selftest is not None:
        uri = selftest_input(outputs)
        observations = [ObservationRef(o, uri) for o in _selftest_ids(args.selftest)]
    else:
        for hint in layout_hints(planned, kind=kind, params=params):
            _to_stderr(hint)
        observations = upload_inputs(outputs, inputs, log=_to_stderr)
    record, messages = build_run(observations, kind=kind, params=params, run_id=args.run_id)
    run_id = record.run_id
    if args.run_id is None:
        _to_stderr(f"run id {run_id}: should this submit fail, repeat it with --run-id {run_id}")
    published = publish_run(outputs, record, messages)
    if published.already:
        print(f"run {run_id} was already submitted; nothing sent", flush=True)
    elif published.resumed:
        print(
            f"resumed run {run_id}: sent the {published.sent_now} of "
            f"{len(published.messages)} {kind} job(s) an earlier submit had not sent",
            flush=True,
        )
    else:
        print(f"submitted {len(messages)} {kind} job(s) as run {run_id}", flush=True)
    print(run_id)
    return 0


def _run_job(args: argparse.Namespace) -> int:
    """``--job FILE``: the demo's job file on a stack, one job per input."""
    # Imported here: the job file brings the command job's parameter check with it.
    from spotcube.jobdef import JobDefinition, for_local_cloud, prepare_inputs, submit_job

    conflicting = {
        "--kind": args.kind != JobKind.IMAGE,
        "--params": args.params,
        "--param": args.param,
        "--selftest": args.selftest is not None,
    }
    for option, given in conflicting.items():
        if given:
            raise UsageError(f"--job takes kind and params from {args.job}; drop {option}")
    paths = [Path(p) for p in args.inputs if not p.startswith("s3://")] + list(args.input)
    uris = [p for p in args.inputs if p.startswith("s3://")]
    if not paths and not uris:
        raise UsageError("--job needs --input: the files or folders to run it on")
    job = JobDefinition.load(args.job)
    outputs = resolve_outputs(args)
    # The local cloud's instances are processes on this machine: they find the job's folder
    # where it is. An AWS instance finds it where the image variant put it.
    job = for_local_cloud(job, outputs) if outputs.endpoint_url else job.on_image()
    with tempfile.TemporaryDirectory(prefix="spotcube-submit-") as packed:
        inputs = prepare_inputs(paths, Path(packed))
        observations = upload_inputs(outputs, [*map(str, inputs), *uris], log=_to_stderr)
    run_id, messages = submit_job(outputs, observations, job, run_id=args.run_id)
    print(f"submitted {len(messages)} {job.kind} job(s) of {args.job} as run {run_id}", flush=True)
    print(run_id)
    return 0


def _selftest_ids(count: int) -> list[str]:
    return [f"selftest-{i:03d}" for i in range(count)]


def _to_stderr(line: str) -> None:
    # stdout's last line is the run id, for scripts; progress goes to stderr.
    print(line, file=sys.stderr, flush=True)
