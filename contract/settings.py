"""The worker's settings, their defaults and their environment variables, in one place.

:class:`WorkerConfig` is the only home of a worker default: ``python -m payload worker``
builds one option per field from it (:mod:`payload.commands.worker`, each also read from
``SPOTCUBE_<FIELD>``), the stack's user data (infra/fleet.py) sets some of them by the names
:func:`env_name` gives, and the demo scales the time-like ones. It is in the contract because
the worker reads these names and the stack writes them. This module imports nothing heavy, so
``--help`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

# Seconds between manifest commits while chunks keep arriving (the work a slow link can lose).
DEFAULT_CHECKPOINT_INTERVAL = 300.0
DEFAULT_WORKDIR = Path("/var/lib/spotcube/work")
# S3's smallest non-final part is 5 MiB; 8 MiB parts keep the part count low for
# checkpoint-sized files while still letting several parts travel at once.
DEFAULT_PART_SIZE_MIB = 8


ENV_PREFIX = "SPOTCUBE_"
# Not a setting: names fault points a test's worker pauses at (payload.store.faultpoint); the
# local fleet and the tests set it, production never does.
FAULTPOINT_ENV = ENV_PREFIX + "FAULTPOINT"


def env_name(setting: str) -> str:
    """The environment variable of a :class:`WorkerConfig` field or its option.

    ``checkpoint_interval`` and ``--checkpoint-interval`` both give
    ``SPOTCUBE_CHECKPOINT_INTERVAL``: the worker reads it, the stack's user data writes it.
    """
    name = setting.lstrip("-").replace("-", "_")
    if name not in {f.name for f in fields(WorkerConfig)}:
        raise ValueError(f"{setting!r} is not a worker setting (contract.settings.WorkerConfig)")
    return ENV_PREFIX + name.upper()


@dataclass(frozen=True)
class AttemptSettings:
    """The part of :class:`WorkerConfig` an attempt at a job uses."""

    workdir: Path
    checkpoint_interval: float
    safety_margin: float


def _setting(default: Any, kind: type, text: str) -> Any:
    """A WorkerConfig field: its default (the only one), its option type and help text."""
    return field(default=default, metadata={"type": kind, "help": text})


@dataclass(frozen=True)
class WorkerConfig:
    """Settings of one worker process, and the one home of their defaults.

    ``python -m payload worker`` has one option per field (``--queue-url``) and reads the same
    setting from ``SPOTCUBE_<FIELD>`` (``SPOTCUBE_QUEUE_URL``): see
    :mod:`payload.commands.worker`. The demo scales the time-like defaults from here.
    """

    queue_url: str = _setting(None, str, "SQS job queue URL (required)")
    products_bucket: str = _setting(
        None, str, "S3 bucket for checkpoints, products and logs (required)"
    )
    dlq_url: str | None = _setting(None, str, "dead-letter queue for invalid jobs")
    endpoint_url: str | None = _setting(
        None, str, "S3/SQS endpoint (the local cloud); unset on AWS"
    )
    region: str | None = _setting(None, str, "AWS region (default: from the environment / IMDS)")
    idle_exit: float = _setting(600.0, float, "exit after this many seconds without a job")
    checkpoint_interval: float = _setting(
        DEFAULT_CHECKPOINT_INTERVAL, float, "seconds between manifest commits"
    )
    workdir: Path = field(
        default=DEFAULT_WORKDIR, metadata={"type": Path, "help": "scratch directory for jobs"}
    )
    max_jobs: int | None = _setting(None, int, "exit after handling this many messages")
    visibility_timeout: int = _setting(120, int, "SQS visibility kept by the heartbeat (s)")
    poll_wait: int = _setting(20, int, "SQS long-poll wait (s, 1 to 20)")
    max_transient: int = _setting(3, int, "transient failures of one job before it fails for good")
    retry_base: float = _setting(
        30.0, float, "base of the jittered backoff for transient retries (s)"
    )
    safety_margin: float = _setting(10.0, float, "seconds kept free before a deadline")
    spot_poll_interval: float = _setting(2.0, float, "seconds between IMDS polls")
    imds_probe_seconds: float = _setting(
        30.0, float, "keep trying to reach IMDS this long at start, then run without notices"
    )
    sigterm_grace: float = _setting(
        100.0, float, "deadline after SIGTERM (below systemd's stop timeout)"
    )
    asg_name: str | None = _setting(None, str, "Auto Scaling group (default: the instance's tag)")
    lifecycle_hook: str | None = _setting(None, str, "terminating lifecycle hook to complete")
    part_size_mib: int = _setting(
        DEFAULT_PART_SIZE_MIB, int, "multipart part size (MiB, at least 5)"
    )
    preload: str = _setting(
        "image,integrate", str, "job kinds to import before polling ('' for none)"
    )
    log_json: bool = _setting(False, bool, "log one JSON object per line")

    def attempt_settings(self) -> AttemptSettings:
        return AttemptSettings(
            workdir=self.workdir,
            checkpoint_interval=self.checkpoint_interval,
            safety_margin=self.safety_margin,
        )
