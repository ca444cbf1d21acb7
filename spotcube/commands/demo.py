"""``spotcube demo``: run everything on the embedded local cloud with spot interruptions."""

from __future__ import annotations

import argparse
from pathlib import Path

from contract.jobs import JobKind
from spotcube.demo import run_demo
from spotcube.demorecords import DEFAULT_INSTANCE_TYPE, DEFAULT_SPOT_PRICE, PACINGS, DemoOptions
from spotcube.errors import ExitStatus, SpotcubeError, UsageError
from spotcube.jobdef import JobDefinition
from spotcube.planning import parse_rate_value
from spotcube.submit import parse_params

# `command` jobs need a command line, not an observation: the demo runs the others.
# Kinds that run on one synthetic or given observation each; `integrate` (the second stage,
# which sums the uv cubes of image jobs) and `command` need inputs of another shape.
DEMO_KINDS = (JobKind.IMAGE.value, JobKind.SELFTEST.value)


def parse_rate(text: str) -> float:
    """Hazard per instance-hour from ``9%/h`` (probability per hour) or ``0.094/h``.

    The same grammar as ``spotcube plan --rate``, so a demo and a plan at "9%/h" model the
    same market.
    """
    try:
        return parse_rate_value(text, "--interrupt-rate")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="process observations on a local cloud with simulated spot interruptions",
        description=(
            "Start moto (S3 + SQS) on 127.0.0.1, synthesise observations, submit them, run "
            "local spot workers that get interrupted and replaced, check every product "
            "against an uninterrupted run, and write report.md/report.json and figures."
        ),
    )
    parser.add_argument("--out", type=Path, default=Path("spotcube-demo"), help="output folder")
    parser.add_argument("--workers", type=int, default=2, help="spot instances (default 2)")
    parser.add_argument(
        "--observations", type=int, default=4, help="synthetic observations (default 4)"
    )
    parser.add_argument(
        "--input",
        nargs="+",
        type=Path,
        default=[],
        metavar="PATH",
        help="use these files (with --job also folders such as Measurement Sets, sent as .tar)",
    )
    parser.add_argument(
        "--job",
        type=Path,
        metavar="FILE",
        help="run your own pipeline: a job definition (JSON with kind and params; {input} "
        "and {job_dir} are replaced), one job per --input; see examples/mwa-pipeline/job.json",
    )
    parser.add_argument("--kind", choices=DEMO_KINDS, default=JobKind.IMAGE.value, help="job kind")
    parser.add_argument("--preset", default="demo", help="synthetic preset (tiny, demo, ...)")
    parser.add_argument("--params", metavar="JSON", help="extra job params (JSON or @FILE)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--interrupt-rate",
        default="9%/h",
        metavar="RATE",
        help="chance of a spot interruption per instance-hour, e.g. 9%%/h (default), "
        "or a hazard such as 0.094/h",
    )
    parser.add_argument(
        "--speedup",
        type=float,
        default=2400.0,
        help="simulated seconds per wall-clock second (default 2400): scales the spot notice, "
        "the replacement delay and the simulated bill, and with --paced-by wall (or --job) "
        "the lifetimes (at 9%%/h an instance is then reclaimed about every 16 s of wall "
        "clock, or of CPU)",
    )
    parser.add_argument(
        "--paced-by",
        choices=PACINGS,
        default="work",
        help="what the interruption clock counts: 'work' (default; computed chunks, or for "
        "--job runs the CPU seconds of each instance's programs, so the same seed interrupts "
        "the same work on a fast or a loaded machine) or 'wall' (wall clock x --speedup)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=10979,
        help="seed of the interruption draws (default 10979)",
    )
    parser.add_argument(
        "--reference-workers", type=int, default=2, help="workers of the uninterrupted run"
    )
    parser.add_argument("--instance-type", default=DEFAULT_INSTANCE_TYPE)
    parser.add_argument(
        "--spot-price",
        type=float,
        default=DEFAULT_SPOT_PRICE,
        help=f"USD per instance-hour for the simulated bill (default {DEFAULT_SPOT_PRICE})",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="give up after SECONDS per fleet run"
    )
    parser.add_argument(
        "--hold", action="store_true", help="keep the local cloud up afterwards (Ctrl-C ends)"
    )
    parser.add_argument(
        "--in-image",
        type=Path,
        metavar="DIR",
        help="run every worker, and the programs of its jobs, inside this locally baked image "
        "(the folder `spotcube bake --target local` prints; Linux, root): the demo then "
        "checks what AWS will run, the variant's tools included",
    )
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> DemoOptions:
    """Check the options and build :class:`DemoOptions`; errors name the option."""
    rate = parse_rate(args.interrupt_rate)
    for name in ("workers", "reference_workers", "observations"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} {getattr(args, name)}: must be at least 1")
    if args.speedup <= 0:
        raise UsageError(f"--speedup {args.speedup:g}: must be positive")
    if args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: must be positive")
    if args.spot_price < 0:
        raise UsageError(f"--spot-price {args.spot_price:g}: must not be negative")
    kind = args.kind
    if args.job is not None:
        if not args.input:
            raise UsageError("--job needs --input: the files or folders to run it on")
        try:
            kind = JobDefinition.load(args.job).kind
        except SpotcubeError as exc:
            raise UsageError(str(exc)) from None
    for path in args.input:
        if not (path.is_file() or (args.job is not None and path.is_dir())):
            raise UsageError(f"--input {path}: no such file")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a folder")
    rootfs = None
    if args.in_image is not None:
        from spotcube.local import inimage

        try:
            rootfs = inimage.find_rootfs(args.in_image)
            inimage.check_current(rootfs)
            if args.job is not None:
                inimage.check_job_dir(rootfs, JobDefinition.load(args.job))
        except inimage.ImageError as exc:
            raise UsageError(str(exc)) from None
    return DemoOptions(
        out=args.out,
        workers=args.workers,
        observations=len(args.input) or args.observations,
        inputs=tuple(args.input),
        kind=kind,
        job=args.job,
        preset=args.preset,
        params=parse_params(args.params, args.param),
        interrupt_rate=rate,
        speedup=args.speedup,
        seed=args.seed,
        paced_by=args.paced_by,
        reference_workers=args.reference_workers,
        instance_type=args.instance_type,
        spot_price=args.spot_price,
        timeout=args.timeout,
        hold=args.hold,
        rootfs=rootfs,
    )


def run(args: argparse.Namespace) -> int:
    report = run_demo(options_from_args(args))
    # One verdict (spotcube.demoreport.outcome), the same report.md shows and summarise prints.
    return ExitStatus.OK if report.outcome.ok else ExitStatus.FAILED
