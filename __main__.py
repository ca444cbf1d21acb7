"""Pulumi program of one user's spotcube stack: read config, build, export outputs."""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from infra.config import NAMESPACE, ConfigError, StackSetupError, parse_config
from infra.stack import build

PLAIN_STRINGS = frozenset({"owner", "region", "ami"})


def read_config() -> dict[str, Any]:
    """Every ``spotcube:`` key the stack sets, values parsed as JSON where they are JSON.

    All keys, not only the known ones: a typo such as ``spotcube:regoin`` must reach the
    parser and be reported, not be ignored while the stack deploys to the default region.
    """
    # `pulumi up` hands a Python program its config in the PULUMI_CONFIG environment variable;
    # the Automation API and the test mocks set it with set_all_config. pulumi.Config reads
    # both (pulumi/runtime/config.py, get_config), and so does this.
    given = {**get_config_env(), **(CONFIG.get() or {})}
    raw: dict[str, Any] = {}
    for full_key, value in given.items():
        namespace, _, key = full_key.partition(":")
        if namespace != NAMESPACE:
            continue
        key = key.removeprefix("config:")  # the older "project:config:key" spelling
        if key in PLAIN_STRINGS:
            raw[key] = value  # "007" is an owner, not the number 7
            continue
        try:
            raw[key] = json.loads(value)
        except (TypeError, ValueError):
            raw[key] = value
    return raw


try:
    settings = parse_config(read_config(), stack=pulumi.get_stack())
    for warning in settings.warnings:
        pulumi.log.warn(warning)
    outputs = build(settings)
except (ConfigError, StackSetupError) as exc:
    # RunError prints the message alone: the list of problems, not a Python traceback.
    raise pulumi.RunError(str(exc)) from None

for key, value in outputs.items():
    pulumi.export(key, value)
