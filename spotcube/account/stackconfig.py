"""The stack config a check compares the account with: a ``Pulumi.<stack>.yaml`` or Pulumi's.

Parsing is :func:`infra.config.parse_config`, the function ``pulumi up`` uses, so preflight
judges exactly the values the deploy will use.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from infra.config import NAMESPACE, ConfigError, StackConfig, parse_config
from spotcube.errors import UsageError


def _spotcube_keys(values: dict[str, Any]) -> dict[str, Any]:
    """``spotcube:`` keys without the namespace; every other namespace is not ours."""
    prefix = f"{NAMESPACE}:"
    return {k[len(prefix) :]: v for k, v in values.items() if str(k).startswith(prefix)}


def _parse(raw: dict[str, Any], *, stack: str, source: str) -> StackConfig:
    try:
        return parse_config(raw, stack=stack)
    except ConfigError as exc:
        raise UsageError(f"{source}: {exc}") from None


def stack_name_of(path: Path) -> str:
    """``Pulumi.dev.yaml`` -> ``dev`` (Pulumi's own naming of stack config files)."""
    parts = path.name.split(".")
    if len(parts) != 3 or parts[0] != "Pulumi" or parts[2] not in ("yaml", "yml"):
        raise UsageError(
            f"--config {path}: expected a file named Pulumi.<stack>.yaml (copy "
            "Pulumi.example.yaml to Pulumi.<your-stack>.yaml)"
        )
    return parts[1]


def from_file(path: Path) -> StackConfig:
    """Parse a ``Pulumi.<stack>.yaml`` file's ``config:`` block."""
    stack = stack_name_of(path)
    try:
        import yaml
    except ImportError:
        raise UsageError(
            "reading --config needs PyYAML: `pip install -e '.[infra]'` (or use --stack)"
        ) from None
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read --config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--config {path} is not YAML: {str(exc).splitlines()[0]}") from None
    config = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        raise UsageError(f"--config {path} has no `config:` mapping; see Pulumi.example.yaml")
    return _parse(_spotcube_keys(config), stack=stack, source=str(path))


def from_pulumi(stack: str | None) -> StackConfig:
    """The selected (or named) stack's config through ``pulumi config --json``."""
    if shutil.which("pulumi") is None:
        raise UsageError(
            "the pulumi CLI is not installed: pass --config Pulumi.<stack>.yaml instead"
        )
    command = ["pulumi", "config", "--json"]
    if stack:
        command += ["--stack", stack]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise UsageError(f"`{' '.join(command)}` failed: {detail[0]}")
    values: dict[str, Any] = {}
    for key, entry in json.loads(result.stdout).items():
        # Structured values come as objectValue; plain ones as a string value.
        if isinstance(entry, dict):
            values[key] = entry.get("objectValue", entry.get("value"))
    name = stack or _selected_stack()
    return _parse(_spotcube_keys(values), stack=name, source="pulumi config")


def _selected_stack() -> str:
    result = subprocess.run(
        ["pulumi", "stack", "--show-name"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise UsageError("no Pulumi stack selected: pass --stack NAME or --config FILE")
    # An organization-qualified name (org/project/stack) ends with the stack's own name.
    return result.stdout.strip().rsplit("/", 1)[-1]


def load(*, config_file: Path | None, stack: str | None) -> StackConfig:
    if config_file is not None:
        return from_file(config_file)
    return from_pulumi(stack)
