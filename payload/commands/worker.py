"""``python -m payload worker``: the queue worker service (see :mod:`payload.worker`).

Every option can also come from an environment variable ``SPOTCUBE_<NAME>`` (``--queue-url``
from ``SPOTCUBE_QUEUE_URL``), so the systemd unit reads them from /etc/spotcube/worker.env.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
from typing import Any

from contract.settings import WorkerConfig, env_name

log = logging.getLogger("payload.worker")

_REQUIRED = ("queue_url", "products_bucket")


def options() -> list[tuple[str, type, Any, str]]:
    """``(flag, type, default, help)`` of every option: one per :class:`WorkerConfig` field."""
    return [
        ("--" + f.name.replace("_", "-"), f.metadata["type"], f.default, f.metadata["help"])
        for f in dataclasses.fields(WorkerConfig)
    ]


def _parse_env(flag: str, kind: type, raw: str) -> Any:
    try:
        return kind(raw)
    except ValueError:
        name = kind.__name__
        raise SystemExit(
            f"payload worker: {env_name(flag)}={raw!r} is not a {name}; "
            "fix /etc/spotcube/worker.env"
        ) from None


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "worker",
        help="run the spot-resilient queue worker",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for flag, kind, default, text in options():
        raw = os.environ.get(env_name(flag))
        if kind is bool:
            value = raw.lower() in {"1", "true", "yes"} if raw else default
            parser.add_argument(
                flag, action="store_true", default=value, help=f"{text} [${env_name(flag)}]"
            )
            continue
        value = _parse_env(flag, kind, raw) if raw not in (None, "") else default
        parser.add_argument(flag, type=kind, default=value, help=f"{text} [${env_name(flag)}]")
    parser.set_defaults(func=run)


# Attributes every LogRecord has: whatever else a record carries came from a log call's
# ``extra`` (its ``event`` name and fields, docs/work-plane.md "Log events").
_PLAIN_RECORD = logging.LogRecord("", 0, "", 0, "", None, None)
_RECORD_ATTRIBUTES = frozenset(vars(_PLAIN_RECORD)) | {"message", "asctime", "taskName"}


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a record's event fields.

    The ``event`` name and its fields are the stable part, for machines (tests, log queries);
    the message is prose for people and may be reworded.
    """

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


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
    from payload.worker import Clients, Worker, generated_identity

    _setup_logging(args.log_json)
    missing = [f for f in _REQUIRED if not getattr(args, f)]
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
        if client.probe(args.imds_probe_seconds):
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
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(WorkerConfig)}
    )
    config = dataclasses.replace(
        config,
        poll_wait=max(1, min(20, config.poll_wait)),
        asg_name=config.asg_name or identity.asg_name,
    )
    log.info(
        "worker %s (%s, %s) on %s",
        identity.instance_id,
        identity.instance_type,
        identity.availability_zone,
        config.queue_url,
        extra={"event": "worker.started", "instance_id": identity.instance_id},
    )
    try:
        return Worker(config, clients, watcher, identity).run()
    finally:
        watcher.stop()
