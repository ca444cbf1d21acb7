"""``spotcube demo``: the whole work plane on the embedded local cloud, with spot interruptions.

1. Start moto on 127.0.0.1 and create the stack's buckets and queues (:mod:`.local.cloud`).
2. Write a few synthetic MWA observations (or take ``--input`` files), upload and submit them
   with the code ``spotcube submit`` uses.
3. Run a local fleet (:mod:`.local.fleet`) that AWS-style interrupts and replaces workers,
   and show progress while it drains the queue.
4. Run the same observations again on an uninterrupted fleet and compare every product
   byte for byte: resumed work must give the same answer.
5. Download the products (:mod:`.compare`) and write ``report.md``, ``report.json``
   (:mod:`.demoreport`) and figures under ``--out``.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from contract.jobs import JobKind
from contract.settings import WorkerConfig
from payload import __version__ as payload_version
from payload.records import AttemptState, ObservationRef
from spotcube.demorecords import DemoOptions, PhaseResult
from spotcube.demoreport import DemoReport, build_report, render_markdown, save_attempt_logs
from spotcube.demoverify import verify_run
from spotcube.errors import UsageError
from spotcube.jobdef import JobDefinition, for_local_cloud, prepare_inputs, submit_job
from spotcube.local.cloud import isolated_queues, local_cloud
from spotcube.local.fleet import Fleet, InterruptionModel, WorkerSpec, WorkSchedule
from spotcube.local.inimage import IMAGE_PATH
from spotcube.local.timeline import Timeline, plot_timeline
from spotcube.runstate import read_run
from spotcube.spotsim import percent_from_hazard
from spotcube.stack import StackOutputs
from spotcube.status import RunStatus, render, run_status
from spotcube.submit import submit_run, upload_inputs

FIGURE_PRODUCTS = ("image.png", "powerspec.png")
# What one run writes into --out (inputs/ is a cache kept across runs).
RUN_OUTPUTS = (
    "report.md",
    "report.json",
    "timeline.png",
    *FIGURE_PRODUCTS,
    "products",
    "logs",
    "instances",
    "moto.log",
)
# Every receive counts towards the redrive, preempted ones too; the demo interrupts far more
# often than a real run, so its queue allows more receives before dead-lettering a job.
DEMO_MAX_RECEIVE_COUNT = 20
# Polls in a row with unfinished observations but no job queued, in flight or running:
# the rest can only be in the dead-letter queue, and waiting longer cannot help.
STALL_POLLS = 3


# --- inputs ---------------------------------------------------------------------------------


def make_inputs(options: DemoOptions, console: Console) -> tuple[list[Path], dict[str, Any]]:
    """The input files and the job params: given files, or synthetic observations."""
    params = dict(options.params)
    if options.inputs:
        return list(options.inputs), params
    if options.kind == JobKind.SELFTEST:
        folder = options.out / "inputs"
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(options.observations):
            path = folder / f"selftest-{i:03d}.bin"
            path.write_bytes(hashlib.sha256(f"spotcube demo {options.seed} {i}".encode()).digest())
            paths.append(path)
        return paths, params
    from payload import synth  # heavy (pyuvdata, astropy): only when synthesising

    if options.preset not in synth.PRESETS:
        raise UsageError(
            f"--preset {options.preset!r} is unknown; choose from {', '.join(synth.PRESETS)}"
        )
    # Synthesis takes seconds per file, so a rerun reuses the files: observation i always
    # has the same sky (seed i), and a new payload version writes into a new folder.
    folder = options.out / "inputs" / f"payload-{payload_version}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(options.observations):
        path = folder / f"synth-{options.preset}-{i:02d}.uvh5"
        if not path.exists():
            console.print(f"  synthesising {path.name} (preset {options.preset})")
            partial = path.with_name(f".{path.name}.partial")
            synth.write_preset(partial, options.preset, seed=i)
            partial.replace(path)  # an interrupted synthesis leaves no half file behind
        paths.append(path)
    return paths, synth.preset_params(options.preset) | params


def clear_previous_run(out: Path) -> None:
    """Remove what an earlier demo left in ``out``, except the synthesised inputs (a cache).

    Whatever this run leaves, finished or interrupted, is then this run's alone: no report
    or figure of an earlier run stands beside an interrupted run's logs, and ``instances/``
    (every worker's scratch) does not pile up run after run.
    """
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


# --- running a fleet ------------------------------------------------------------------------


class ChunkWatcher:
    """Turns new chunks and finished observations of the run into timeline events."""

    def __init__(self, outputs: StackOutputs, run_id: str, obs_ids: Sequence[str]) -> None:
        self.s3 = outputs.client("s3")
        self.bucket = outputs.products_bucket
        self.run_id = run_id
        self.seen: dict[str, set[str]] = {o: set() for o in obs_ids}
        self.done: set[str] = set()

    def poll(self, timeline: Timeline, t: float) -> None:
        try:
            run = read_run(self.s3, self.bucket, self.run_id)
        except LookupError:
            return
        for obs in run.observations:
            if obs.manifest is None or obs.obs_id not in self.seen:
                continue
            attempts = obs.attempts
            instance = attempts[-1].record.instance_id if attempts else "unknown"
            for chunk_id in sorted(set(obs.manifest.chunks) - self.seen[obs.obs_id]):
                timeline.add(t, "chunk", instance, f"{obs.obs_id}/{chunk_id}")
                self.seen[obs.obs_id].add(chunk_id)
            ended_done = bool(attempts) and attempts[-1].state is AttemptState.DONE
            if obs.obs_id not in self.done and (obs.done or ended_done):
                # the worker closes its attempt as done just before it writes DONE
                timeline.add(t, "done", instance, obs.obs_id)
                self.done.add(obs.obs_id)


def run_fleet(
    outputs: StackOutputs,
    run_id: str,
    observations: Sequence[ObservationRef],
    fleet: Fleet,
    options: DemoOptions,
    console: Console,
    label: str,
) -> PhaseResult:
    """Run ``fleet`` until every observation of ``run_id`` is done or failed (or timeout)."""
    watcher = ChunkWatcher(outputs, run_id, [o.obs_id for o in observations])
    reported = 0
    last_line = ""
    started = time.monotonic()
    timed_out = stalled = False
    stalled_polls = 0
    next_poll = 0.0
    with fleet:
        status = run_status(outputs, run_id)
        while not status.finished:
            if time.monotonic() - started > options.timeout:
                timed_out = True
                console.print(f"[red]{label}: not finished after --timeout {options.timeout:g} s")
                break
            # The fleet acts on its own deadlines; S3 is polled at most every ``poll``
            # seconds, which keeps this process light next to the workers.
            time.sleep(max(0.0, min(next_poll - fleet.now(), fleet.seconds_to_next_event())))
            fleet.tick()
            if fleet.now() < next_poll:
                continue
            next_poll = fleet.now() + options.poll
            watcher.poll(fleet.timeline, fleet.now())
            for event in fleet.timeline.events[reported:]:
                if event.kind in ("notice", "kill", "exit"):
                    console.print(
                        f"  {label} {event.t:6.1f}s {event.instance_id} {_says(event.kind)}"
                    )
            reported = len(fleet.timeline.events)
            status = run_status(outputs, run_id)
            idle = status.queue.visible + status.queue.in_flight + status.count("running") == 0
            stalled_polls = stalled_polls + 1 if idle and not status.finished else 0
            if stalled_polls >= STALL_POLLS:
                dlq = status.dead_letter.visible if status.dead_letter else 0
                unfinished = len(status.observations) - status.count("done")
                unfinished -= status.count("failed")
                console.print(
                    f"[red]{label}: no job left to run but {unfinished} observation(s) "
                    f"unfinished; {dlq} message(s) in the dead-letter queue"
                )
                stalled = True
                break
            line = _progress_line(status, fleet)
            if line != last_line:
                console.print(f"  {label} {fleet.now():6.1f}s {line}")
                last_line = line
    return PhaseResult(run_id, status, fleet, time.monotonic() - started, timed_out, stalled)


def _says(kind: str) -> str:
    return {
        "notice": "spot notice: instance-action published",
        "kill": "reclaimed: SIGKILL at the deadline",
        "exit": "worker exited; replacing the instance",
    }[kind]


def _progress_line(status: RunStatus, fleet: Fleet) -> str:
    chunks = sum(o.chunks_done for o in status.observations)
    failed = f" failed {status.count('failed')} |" if status.count("failed") else ""
    return (
        f"done {status.count('done')}/{len(status.observations)} | running "
        f"{status.count('running')} |{failed} chunks {chunks} | up {len(fleet.running)} | "
        f"reclaimed {fleet.interruptions()}"
    )


# --- the demo -------------------------------------------------------------------------------


def worker_args(options: DemoOptions) -> list[str]:
    """Worker options on the demo's compressed clock.

    The worker's defaults (:class:`contract.settings.WorkerConfig`) are AWS time scales (a
    300 s checkpoint interval, a 10 s safety margin before the deadline, 30 s retry backoff);
    the demo divides them by the speedup, with floors that keep the local processes from
    spinning.
    """
    defaults = WorkerConfig()

    def scaled(seconds: float, floor: float) -> str:
        return f"{max(floor, seconds / options.speedup):g}"

    return [
        "--checkpoint-interval", scaled(defaults.checkpoint_interval, 1.0),
        "--safety-margin", scaled(defaults.safety_margin, 1.0),
        "--retry-base", scaled(defaults.retry_base, 1.0),
        "--spot-poll-interval", "0.5",
        # A short long-poll lets an idle worker see SIGTERM at once when the fleet stops;
        # a short visibility lets the job of a SIGKILLed worker come back within seconds.
        "--poll-wait", "1",
        "--visibility-timeout", "10",
        # The fleet stops its workers; idle exit is only a backstop.
        "--idle-exit", f"{options.timeout + 60:g}",
    ]  # fmt: skip


def _fleet(
    outputs: StackOutputs,
    root: Path,
    size: int,
    model: InterruptionModel,
    options: DemoOptions,
    schedule: WorkSchedule | None = None,
    clock: str = "wall",
) -> Fleet:
    return Fleet(
        spec=WorkerSpec(
            outputs=outputs, root=root, extra_args=worker_args(options), rootfs=options.rootfs
        ),
        size=size,
        model=model,
        instance_type=options.instance_type,
        schedule=schedule,
        clock=clock,
    )


def demo_console(file: IO[str] | None = None) -> Console:
    """The demo's console: a line is never wrapped when the output is piped.

    rich assumes 80 columns without a terminal, which broke the ``spotcube status --endpoint
    URL`` line a user copies, and tables; piped output keeps its lines whole instead.
    """
    stream = file if file is not None else sys.stdout
    if stream.isatty():
        return Console(file=file)
    return Console(file=file, soft_wrap=True, width=160)


def run_demo(
    options: DemoOptions,
    console: Console | None = None,
    *,
    on_cloud: Callable[[StackOutputs], None] | None = None,
) -> DemoReport:
    """Run the demo end to end and return its report (also written to disk as report.json)."""
    console = console or demo_console()
    started = time.monotonic()
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    clear_previous_run(out)
    with local_cloud(
        log_path=out / "moto.log", max_receive_count=DEMO_MAX_RECEIVE_COUNT
    ) as outputs:
        console.print(
            f"local cloud at {outputs.endpoint_url} — while the demo runs: "
            f"spotcube status --endpoint {outputs.endpoint_url}"
        )
        if on_cloud is not None:
            on_cloud(outputs)
        job = None
        if options.job is not None:
            definition = JobDefinition.load(options.job)
            if options.rootfs is None:
                job = for_local_cloud(definition, outputs)
            else:  # where the image's variant put the job's folder, the image's PATH
                job = for_local_cloud(definition.on_image(), outputs, path=IMAGE_PATH)
            paths, params = prepare_inputs(options.inputs, out / "inputs"), job.params
        else:
            paths, params = make_inputs(options, console)
        observations = upload_inputs(outputs, [str(p) for p in paths])
        run_id = _submit(outputs, observations, options, params, job)
        console.print(
            f"submitted {len(observations)} {options.kind} job(s) as run {run_id}; "
            f"{options.workers} spot workers, interruptions at "
            f"{percent_from_hazard(options.interrupt_rate):.1f}%/h "
            + (
                f"of work (a chunk stands for {options.chunk_work_hours:.2f} h)"
                if options.storm() is not None
                else f"on the wall clock x{options.speedup:g}"
            )
        )
        model = InterruptionModel(
            rate_per_hour=options.interrupt_rate,
            speedup=options.speedup,
            seed=options.seed,
            notice_seconds=options.notice_seconds,
            replacement_delay=options.replacement_delay,
            min_notice_real=options.min_notice_real,
        )
        main = run_fleet(
            outputs,
            run_id,
            observations,
            _fleet(
                outputs,
                out / "instances" / run_id,
                options.workers,
                model,
                options,
                options.storm(),
                options.clock(),
            ),
            options,
            console,
            "spot",
        )
        console.print(render(main.status))
        # The reference must not be able to finish the spot run's jobs: the spot fleet is
        # stopped (``run_fleet`` left its ``with``), its queue is purged, and the reference
        # gets a queue of its own, so none of its workers can receive a spot-run message.
        discard_queue(outputs)
        ref_outputs = isolated_queues(
            outputs, "reference", max_receive_count=DEMO_MAX_RECEIVE_COUNT
        )
        ref_id = _submit(ref_outputs, observations, options, params, job, f"{run_id}-reference")
        console.print(
            f"reference: the same {len(observations)} job(s) uninterrupted on "
            f"{options.reference_workers} worker(s) as run {ref_id}, on a queue of its own"
        )
        quiet = InterruptionModel(rate_per_hour=0.0, speedup=options.speedup)
        reference = run_fleet(
            ref_outputs,
            ref_id,
            observations,
            _fleet(
                ref_outputs, out / "instances" / ref_id, options.reference_workers, quiet, options
            ),
            options,
            console,
            "ref ",
        )
        obs_ids = [o.obs_id for o in observations]
        # products/ holds this run only: a previous demo's observations must not linger
        shutil.rmtree(out / "products", ignore_errors=True)
        spot_instances = {i.instance_id for i in main.fleet.instances}
        verdicts = verify_run(outputs, run_id, ref_id, obs_ids, spot_instances, out / "products")
        report = build_report(
            options, main, reference, verdicts, outputs, time.monotonic() - started
        )
        save_attempt_logs(report, outputs, out)
        figures = write_figures(report, main, out)
        (out / "report.json").write_text(report.to_json())
        (out / "report.md").write_text(render_markdown(report, figures))
        summarise(report, out, console)
        if options.hold:
            console.print(f"--hold: local cloud stays up at {outputs.endpoint_url}; Ctrl-C to stop")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return report


def discard_queue(outputs: StackOutputs) -> None:
    """Purge the spot run's queue and DLQ once its fleet is stopped: nothing is left to take."""
    sqs = outputs.client("sqs")
    for url in (outputs.job_queue_url, outputs.dead_letter_queue_url):
        if url:
            sqs.purge_queue(QueueUrl=url)


def _submit(
    outputs: StackOutputs,
    observations: Sequence[ObservationRef],
    options: DemoOptions,
    params: dict[str, Any],
    job: JobDefinition | None,
    run_id: str | None = None,
) -> str:
    """Queue the observations: with the job file's per-observation params, or ``params``."""
    if job is not None:
        return submit_job(outputs, observations, job, run_id=run_id)[0]
    return submit_run(outputs, observations, kind=options.kind, params=params, run_id=run_id)[0]


def write_figures(report: DemoReport, main: PhaseResult, out: Path) -> list[str]:
    """timeline.png, plus image.png/powerspec.png of the first observation that has them."""
    names = []
    plot_timeline(
        main.fleet.timeline,
        out / "timeline.png",
        title=(
            f"run {main.run_id}: {report.instances_reclaimed} instances reclaimed, "
            f"{report.done}/{report.observations} done"
        ),
        speedup=main.fleet.model.speedup,
    )
    names.append("timeline.png")
    for figure in FIGURE_PRODUCTS:
        for obs in report.per_observation:
            source = out / "products" / obs.obs_id / figure
            if source.is_file():
                shutil.copyfile(source, out / figure)
                names.append(figure)
                break
    return names


def summarise(report: DemoReport, out: Path, console: Console) -> None:
    cost = report.cost
    verdict = "[green]true[/green]" if report.verified_identical else "[red]false[/red]"
    console.print(
        f"done {report.done}/{report.observations}, failed {report.failed}, "
        f"{report.instances_reclaimed} instances reclaimed, "
        f"{report.attempts_interrupted} attempts interrupted, "
        f"{report.lost_chunk_seconds:.1f} lost chunk-seconds, "
        f"wall time {report.total_wall_time_seconds:.1f} s, simulated cost "
        f"${cost.cost_usd_simulated:.2f} ({cost.instance_type} spot); "
        f"verified_identical {verdict}"
    )
    progress = report.progress
    console.print(f"[red]{progress.message}" if progress.outpaced else progress.message)
    if not report.outcome.ok:
        console.print(f"[red]demo failed: {report.outcome.cause}", soft_wrap=True)
    console.print(f"products, report.md, report.json and figures in {out}/")
