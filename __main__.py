"""Pulumi program of one user's spotcube stack: read config, build, export outputs."""

from __future__ import annotations

from typing import Any

import pulumi

from infra.config import DEFAULTS, NAMESPACE, ConfigError, parse_config
from infra.stack import build


def read_config() -> dict[str, Any]:
    """Raw ``spotcube:`` values; structured keys are read as objects."""
    config = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {"owner": config.get("owner")}
    for key, default in DEFAULTS.items():
        raw[key] = config.get_object(key) if isinstance(default, dict) else config.get(key)
    return raw


try:
    settings = parse_config(read_config(), stack=pulumi.get_stack())
except ConfigError as exc:
    # RunError prints the message alone: the list of problems, not a Python traceback.
    raise pulumi.RunError(str(exc)) from None

for key, value in build(settings).items():
    pulumi.export(key, value)
