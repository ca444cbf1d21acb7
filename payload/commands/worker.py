"""``python -m payload worker``: the queue worker service (see :mod:`payload.worker`).

Every option can also come from an environment variable ``SPOTCUBE_<NAME>`` (``--queue-url``
from ``SPOTCUBE_QUEUE_URL``), so the systemd unit reads them from /etc/spotcube/worker.env.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from payload.checkpoint import DEFAULT_INTERVAL

log = logging.getLogger("payload.worker")

# (flag, type, default, help); the env var is SPOTCUBE_ + the flag in upper snake case.
_OPTIONS: list[tuple[str, type, Any, str]] = [
    ("--queue-url", str, None, "SQS job queue URL (required)"),
    ("--products-bucket", str, None, "S3 bucket for checkpoints and products (required)"),
    ("--dlq-url", str, None, "dead-letter queue for invalid jobs"),
    ("--endpoint-url", str, None, "S3/SQS endpoint (the local cloud); unset on AWS"),
    ("--region", str, None, "AWS region (default: from the environment / IMDS)"),
    ("--idle-exit", float, 600.0, "exit after this many seconds without a job"),
    ("--checkpoint-interval", float, DEFAULT_INTERVAL, "seconds between manifest commits"),
    ("--workdir", Path, Path("/var/lib/spotcube/work"), "scratch directory for jobs"),
    ("--max-jobs", int, None, "exit after handling this many messages"),
    ("--visibility-timeout", int, 120, "SQS visibility kept by the heartbeat (s)"),
    ("--poll-wait", int, 20, "SQS long-poll wait (s, at most 20)"),
    ("--max-transient", int, 3, "transient failures of one job before it fails for good"),
    ("--retry-base", float, 30.0, "base of the jittered backoff for transient retries (s)"),
    ("--safety-margin", float, 10.0, "seconds kept free before a deadline"),
    ("--spot-poll-interval", float, 2.0, "seconds between IMDS polls"),
    ("--sigterm-grace", float, 100.0, "deadline after SIGTERM (below systemd's stop timeout)"),
    ("--asg-name", str, None, "Auto Scaling group (default: the instance's tag)"),
    ("--lifecycle-hook", str, None, "terminating lifecycle hook to complete"),
    ("--part-size-mib", int, 8, "multipart part size (MiB, at least 5)"),
    ("--preload", str, "image,integrate", "job kinds to import before polling ('' for none)"),
]


def env_name(flag: str) -> str:
    return "SPOTCUBE_" + flag.lstrip("-").replace("-", "_").upper()


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="run the spot-resilient queue worker",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for flag, kind, default, text in _OPTIONS:
        raw = os.environ.get(env_name(flag))
        value = kind(raw) if raw not in (None, "") else default
        parser.add_argument(flag, type=kind, default=value, help=f"{text} [${env_name(flag)}]")
    log_json = os.environ.get("SPOTCUBE_LOG_JSON", "").lower() in {"1", "true", "yes"}
    parser.add_argument(
        "--log-json",
        action="store_true",
        default=log_json,
        help="log one JSON object per line [$SPOTCUBE_LOG_JSON]",
    )
    parser.set_defaults(func=run)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def _setup_logging(as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    """Build the worker from ``args`` and run it; the exit code says the last outcome."""
    import boto3

    from payload.imds import ImdsClient, ImdsError, InstanceIdentity, endpoint_from_env
    from payload.jobs import preload_job_kinds
    from payload.spot import SpotWatcher
    from payload.store import MIB, s3_client
    from payload.worker import Clients, Worker, WorkerConfig, generated_identity

    _setup_logging(args.log_json)
    missing = [f for f in ("queue_url", "products_bucket") if not getattr(args, f)]
    if missing:
        flags = ["--" + m.replace("_", "-") for m in missing]
        names = ", ".join(env_name(f) for f in flags)
        print(f"payload worker: {', '.join(flags)} required (or set {names})", file=sys.stderr)
        return 2
    imds = None
    identity = generated_identity()
    endpoint = endpoint_from_env()
    if endpoint is not None:
        client = ImdsClient(endpoint)
        if client.reachable():
            try:
                identity = InstanceIdentity.from_imds(client)
                imds = client
            except ImdsError as exc:
                log.error("IMDS answers tokens but not the instance id (%s)", exc)
                imds = client
    if imds is None:
        log.warning(
            "instance metadata not reachable: running without spot notices as %s",
            identity.instance_id,
        )
    watcher = SpotWatcher(imds, interval=args.spot_poll_interval, sigterm_grace=args.sigterm_grace)
    signal.signal(signal.SIGTERM, lambda _sig, _frame: watcher.notify_sigterm())
    watcher.start()
    preload_job_kinds([kind for kind in args.preload.split(",") if kind])
    session_kwargs: dict[str, Any] = {"region_name": args.region}
    if args.endpoint_url:
        session_kwargs["endpoint_url"] = args.endpoint_url
    # Used only when the instance belongs to a group (its tag, or --asg-name): on the demo's
    # local cloud there is none, and the calls are skipped.
    autoscaling = boto3.client("autoscaling", **session_kwargs)
    clients = Clients(
        s3=s3_client(args.endpoint_url, args.region),
        sqs=boto3.client("sqs", **session_kwargs),
        autoscaling=autoscaling,
        part_size=max(5, args.part_size_mib) * MIB,
    )
    config = WorkerConfig(
        queue_url=args.queue_url,
        products_bucket=args.products_bucket,
        dlq_url=args.dlq_url,
        idle_exit=args.idle_exit,
        checkpoint_interval=args.checkpoint_interval,
        workdir=args.workdir,
        max_jobs=args.max_jobs,
        visibility_timeout=args.visibility_timeout,
        poll_wait=max(1, min(20, args.poll_wait)),
        max_transient=args.max_transient,
        retry_base=args.retry_base,
        safety_margin=args.safety_margin,
        asg_name=args.asg_name or identity.asg_name,
        lifecycle_hook=args.lifecycle_hook,
    )
    log.info(
        "worker %s (%s, %s) on %s",
        identity.instance_id,
        identity.instance_type,
        identity.availability_zone,
        config.queue_url,
    )
    try:
        return Worker(config, clients, watcher, identity).run()
    finally:
        watcher.stop()
