"""The operator CLI's edges: bad option values, profiles, clients, one error-code table.

Invariants:
- every option whose value argparse converts (a number, a URL, a choice) answers a
  bad value with exit 2 and one line that names the option: a generator walks every
  subcommand's options, so a new option is covered the day it is added;
- ``--endpoint`` that is not an http(s) URL is such a usage error, on every command;
- every command that reaches a stack honours ``--profile`` and ``AWS_PROFILE``: a profile
  whose ``endpoint_url`` is the local cloud reaches it, an unknown one is named (exit 5);
- a command builds one client per service (not one per call), from one session per profile;
- the CLI has one table of AWS error codes (spotcube.cli) and one debug flag per program.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from contract.names import LOCAL_NAMES
from spotcube.cli import build_parser
from spotcube.errors import ExitStatus
from spotcube.local.cloud import provision
from spotcube.stack import local_outputs
from tests.clirunner import run_cli

BAD = "!bad-value"


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
    return dict(action.choices)  # type: ignore[arg-type]


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's full parser (the CLI builds only the named one's options)."""
    return {name: _choices(build_parser([name]))[name] for name in _choices(build_parser())}


def converted_options() -> list[tuple[str, str]]:
    """(subcommand, option) for every option argparse converts or checks against choices."""
    found = []
    for name, parser in sorted(subcommand_parsers().items()):
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0:
                continue
            # a path or free text is any string: only conversions and choices can refuse one
            if action.type not in (None, str, Path) or action.choices:
                found.append((name, action.option_strings[-1]))
    return found


def test_the_generator_sees_the_options_that_convert() -> None:
    options = set(converted_options())
    assert ("plan", "--jobs") in options
    assert ("status", "--endpoint") in options
    assert ("plan", "--cloud-price") in options


@pytest.mark.parametrize(("command", "option"), converted_options())
def test_a_bad_option_value_is_a_usage_error_in_one_line(command: str, option: str) -> None:
    result = run_cli([command, f"{option}={BAD}"])
    assert result.status == ExitStatus.USAGE, result.stderr
    (line,) = result.stderr_lines
    assert line.startswith(f"spotcube {command}: ")
    assert option in line


@pytest.mark.parametrize(
    "value", ["notaurl", "ftp://x", "http://", "http://host:port", "127.0.0.1"]
)
@pytest.mark.parametrize("command", sorted(c for c, o in converted_options() if o == "--endpoint"))
def test_an_endpoint_that_is_not_a_url_is_a_usage_error(command: str, value: str) -> None:
    result = run_cli([command, "--endpoint", value])
    assert result.status == ExitStatus.USAGE, result.stderr
    (line,) = result.stderr_lines
    assert "--endpoint" in line
    assert "spotcube demo --hold" in line or "port" in line


STACK_COMMANDS = [
    ["status", "--list"],
    ["status", "run-none"],
    ["report", "run-none"],
    ["logs", "run-none"],
    ["down", "--dry-run"],
    ["submit", "s3://somewhere/obs.uvh5", "--run-id", "run-profile-{call}"],
]


@pytest.fixture
def profiles(tmp_path: Path, cloud: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """AWS config with profile `lab` whose endpoint is the local cloud, and an outputs file."""
    (tmp_path / "config").write_text(
        f"[profile lab]\nregion = us-east-1\nendpoint_url = {cloud}\n"
        "[profile elsewhere]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:9\n"
    )
    (tmp_path / "credentials").write_text(
        "[lab]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
        "[elsewhere]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    from spotcube.awssession import aws_session

    aws_session.cache_clear()  # sessions read the config files when made
    provision(cloud)
    local = local_outputs(cloud)
    # what `pulumi stack output` gives: names and URLs, no endpoint
    doc = {
        "region": "us-east-1",
        "raw_bucket": LOCAL_NAMES.raw_bucket,
        "products_bucket": LOCAL_NAMES.products_bucket,
        "job_queue_url": local.job_queue_url,
        "dead_letter_queue_url": local.dead_letter_queue_url,
        "asg_name": LOCAL_NAMES.asg,
    }
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("argv", STACK_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_every_stack_command_honours_profile_and_aws_profile(
    argv: list[str], profiles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spotcube.awssession import aws_session

    def call(n: int, *extra: str) -> list[str]:
        return [a.format(call=n) for a in argv] + ["--outputs", str(profiles), *extra]

    reached = run_cli(call(1, "--profile", "lab"))
    elsewhere = run_cli(call(2, "--profile", "elsewhere"))
    aws_session.cache_clear()
    monkeypatch.setenv("AWS_PROFILE", "lab")
    from_env = run_cli(call(3))
    # The profile decides where the command goes: its endpoint answers like the local cloud,
    # the other profile's port refuses.
    assert "127.0.0.1:9" not in reached.stderr, reached.stderr
    assert elsewhere.status == ExitStatus.UNREACHABLE, elsewhere.stderr
    assert "127.0.0.1:9" in elsewhere.stderr
    assert from_env.status == reached.status
    assert from_env.stdout.replace("-3", "-1") == reached.stdout
    assert reached.status != ExitStatus.UNREACHABLE, reached.stderr


@pytest.mark.parametrize("argv", STACK_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_an_unknown_profile_is_named(argv: list[str], profiles: Path) -> None:
    argv = [a.format(call=0) for a in argv]
    result = run_cli([*argv, "--outputs", str(profiles), "--profile", "no-such"])
    assert result.status == ExitStatus.UNREACHABLE, result.stderr
    (line,) = result.stderr_lines
    assert "'no-such'" in line


def test_one_client_per_service_per_command(cloud: str) -> None:
    outputs = local_outputs(cloud)
    assert outputs.client("s3") is outputs.client("s3")
    assert outputs.client("sqs") is not outputs.client("s3")


def test_one_table_of_aws_error_codes() -> None:
    """The codes are classified once, in spotcube.cli; other modules import that table."""
    root = Path(__file__).resolve().parents[2] / "spotcube"
    holders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if '"InvalidClientTokenId"' in p.read_text() or '"ExpiredToken"' in p.read_text()
    ]
    assert holders == ["awserrors.py"]


def test_payload_takes_debug_and_keeps_traceback_as_its_alias() -> None:
    from payload.cli import build_parser as payload_parser

    parser = payload_parser()
    for flag in ("--debug", "--traceback"):
        assert parser.parse_args([flag, "worker"]).debug is True
