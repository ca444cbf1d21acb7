"""Every ``spotcube`` command, in-process: one line and a documented status, never a traceback.

The statuses are ``spotcube.errors.ExitStatus`` (httpie's ``ExitStatus`` pattern,
``httpie/status.py``): 0 ok, 1 internal error, 2 usage, 3 refused, 4 observations failed,
5 cloud unreachable, 130 interrupted. The clouds here are real servers, not stubs: a loopback
port that nothing listens on (connection refused, as for a stopped ``spotcube demo --hold``),
an HTTP server that is not AWS (a wrong ``--endpoint``), and moto's server without the stack
(a wrong stack). botocore raises what it raises for each; the CLI must turn it into one line.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from spotcube.cli import build_parser
from spotcube.errors import ExitStatus
from tests.clirunner import CliResult, run_cli

PLAN = ["plan", "--jobs", "2", "--runtime", "1h"]
AWS_PRICES = [
    "--rate",
    "9%/h",
    "--aws-prices",
    "--instance",
    "m7a.4xlarge",
    "--on-demand-price",
    "1",
]
# Commands that take no cloud endpoint, and why.
NO_ENDPOINT = {
    "demo": "starts its own local cloud",
    "preflight": "reads the account through the credential chain; an unreachable endpoint is"
    " tested in tests/operator/test_preflight.py (AWS_ENDPOINT_URL)",
}
EXAMPLE_CONFIG = str(Path(__file__).resolve().parents[2] / "Pulumi.example.yaml")


def _subcommands() -> set[str]:
    action = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    return set(action.choices)


@pytest.fixture
def dead_endpoint() -> str:
    """A loopback URL whose port was just free: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's own settings: two attempts, so a refused connection fails in a second."""
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")


@pytest.fixture(params=[404, 200], ids=["html-404", "html-200"])
def not_aws(request: pytest.FixtureRequest) -> Iterator[str]:
    """An HTTP server on loopback that answers every request with an HTML page.

    A 404 reaches botocore as a ClientError; a 200 whose body is not AWS's XML or JSON as a
    parser error.
    """
    status: int = request.param

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = b"<html><body>Not Found</body></html>"
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _cloud_commands(endpoint: str, data: Path) -> dict[str, list[list[str]]]:
    """For each command that talks to a cloud, command lines that reach ``endpoint``."""
    return {
        "submit": [
            ["submit", "--endpoint", endpoint, str(data)],
            ["submit", "--endpoint", endpoint, "s3://some-bucket/obs.uvh5"],
            ["submit", "--endpoint", endpoint, "--selftest", "2"],
        ],
        "status": [
            ["status", "--endpoint", endpoint],
            ["status", "--endpoint", endpoint, "--list"],
            ["status", "--endpoint", endpoint, "run-1", "--json"],
        ],
        "report": [["report", "run-1", "--endpoint", endpoint]],
        "down": [["down", "--endpoint", endpoint], ["down", "--endpoint", endpoint, "--dry-run"]],
        "plan": [
            [*PLAN, "--rate", "from:run-1", "--endpoint", endpoint],
            [*PLAN, *AWS_PRICES, "--endpoint", endpoint],
        ],
        "logs": [["logs", "run-1", "--endpoint", endpoint]],
        "check": [["check", "--endpoint", endpoint, "--config", EXAMPLE_CONFIG]],
        "resume": [["resume", "--endpoint", endpoint, "--config", EXAMPLE_CONFIG]],
        "bake": [["bake", "--target", "aws", "--region", "us-east-1", "--endpoint-url", endpoint]],
    }


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "obs.uvh5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    return path


def _assert_one_line(result: CliResult, command: str, status: ExitStatus) -> str:
    assert result.status == status, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr_lines) == 1, result.stderr
    line = result.stderr_lines[0]
    assert line.startswith(f"spotcube {command}: "), line
    return line


def test_every_cloud_command_has_a_dead_endpoint_case(tmp_path: Path) -> None:
    covered = set(_cloud_commands("http://x", tmp_path)) | set(NO_ENDPOINT)
    assert _subcommands() == covered, "add the new command to _cloud_commands or NO_ENDPOINT"


@pytest.mark.usefixtures("fast_retries")
@pytest.mark.parametrize("command", sorted(_cloud_commands("http://x", Path())))
def test_dead_endpoint_is_one_line_naming_it_and_what_to_do(
    command: str, dead_endpoint: str, data: Path
) -> None:
    for argv in _cloud_commands(dead_endpoint, data)[command]:
        line = _assert_one_line(run_cli(argv), command, ExitStatus.UNREACHABLE)
        assert dead_endpoint.removeprefix("http://") in line, argv
        assert "spotcube demo --hold" in line, argv


@pytest.mark.usefixtures("fast_retries")
@pytest.mark.parametrize("where", ["before", "after"], ids=["spotcube --debug", "status --debug"])
def test_debug_shows_the_traceback_and_keeps_the_status(dead_endpoint: str, where: str) -> None:
    argv = ["status", "--endpoint", dead_endpoint]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    result = run_cli(argv)
    assert result.status == ExitStatus.UNREACHABLE
    assert "Traceback (most recent call last)" in result.stderr
    assert "EndpointConnectionError" in result.stderr
    assert result.stderr_lines[-1].startswith("spotcube status: cannot reach")


@pytest.mark.usefixtures("fast_retries")
@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--endpoint", "{url}"],
        ["report", "run-1", "--endpoint", "{url}"],
        ["down", "--endpoint", "{url}"],
        ["submit", "--endpoint", "{url}", "s3://b/obs.uvh5"],
    ],
    ids=["status", "report", "down", "submit"],
)
def test_an_endpoint_that_is_not_aws_is_one_line(argv: list[str], not_aws: str) -> None:
    result = run_cli([a.format(url=not_aws) for a in argv])
    line = _assert_one_line(result, argv[0], ExitStatus.UNREACHABLE)
    assert not_aws.removeprefix("http://") in line


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["report", "run-1"],
        ["down"],
        ["submit", "s3://b/obs.uvh5"],
    ],
    ids=["status", "report", "down", "submit"],
)
def test_the_local_cloud_without_the_stack_is_one_line(argv: list[str], cloud: str) -> None:
    """moto answers NoSuchBucket / QueueDoesNotExist: the endpoint is up, the stack is not."""
    result = run_cli([*argv, "--endpoint", cloud])
    line = _assert_one_line(result, argv[0], ExitStatus.UNREACHABLE)
    assert cloud in line


def test_an_unknown_profile_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """botocore raises ProfileNotFound for an AWS_PROFILE missing from the config files."""
    (tmp_path / "config").write_text("[profile other]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    argv = ["plan", "--jobs", "2", "--runtime", "1h", "--rate", "9%/h", "--aws-prices"]
    line = _assert_one_line(run_cli([*argv, "--instance", "m7a.4xlarge"]), "plan", 5)
    assert "'no-such-profile'" in line
    assert "aws configure --profile no-such-profile" in line


def test_missing_credentials_are_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No keys, no profile, no instance metadata: botocore's NoCredentialsError on signing."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    line = _assert_one_line(
        run_cli(["bake", "--target", "aws", "--region", "us-east-1"]), "bake", 5
    )
    assert "aws configure" in line


@pytest.mark.parametrize(
    ("argv", "status", "names"),
    [
        ([], ExitStatus.USAGE, None),
        (["no-such-command"], ExitStatus.USAGE, None),
        (["plan"], ExitStatus.USAGE, None),
        (["plan", "--jobs", "x", "--runtime", "1h", "--rate", "9%/h"], ExitStatus.USAGE, None),
        (["plan", "--jobs", "1", "--runtime", "1h", "--rate", "ninety"], 2, "--rate"),
        (["plan", "--jobs", "1", "--runtime", "soon", "--rate", "9%/h"], 2, "--runtime"),
        (["plan", "--jobs", "0", "--runtime", "1h", "--rate", "9%/h"], 2, "--jobs"),
        (["plan", "--jobs", "10", "--runtime", "633m", "--rate", "99.9999%/h"], 3, "--rate"),
        (["plan", "--jobs", "10", "--runtime", "1000000h", "--rate", "9%/h"], 3, "--runtime"),
        (["plan", "--jobs", "100000000", "--runtime", "633m", "--rate", "9%/h"], 3, "--jobs"),
        (["plan", "--jobs", "1000", "--runtime", "633m", "--rate", "9%/h"], 3, "--runs 400 "),
        (["plan", "--jobs", "1", "--runtime", "1h", "--rate", "9%/h", "--cluster", "a"], 2, None),
        (
            ["plan", "--jobs", "1", "--runtime", "1h", "--rate", "9%/h", "--cluster", "-5,1"],
            2,
            None,
        ),
        (["status", "--endpoint", "{dead}", "--watch", "0"], ExitStatus.USAGE, "--watch"),
        (["status", "--endpoint", "{dead}", "--outputs", "x.json"], ExitStatus.USAGE, None),
        (["status", "--outputs", "{tmp}/missing.json"], ExitStatus.USAGE, "--outputs"),
        (["down", "--outputs", "{tmp}/missing.json"], ExitStatus.USAGE, "--outputs"),
        (["submit", "--endpoint", "{dead}"], ExitStatus.USAGE, "no inputs"),
        (["submit", "--endpoint", "{dead}", "{tmp}/missing.uvh5"], 2, "missing.uvh5"),
        (["submit", "--endpoint", "{dead}", "s3://b/x", "--param", "novalue"], 2, "--param"),
        (["submit", "--endpoint", "{dead}", "s3:/b", "s3://b/x"], ExitStatus.USAGE, "s3:/b"),
        (["submit", "--endpoint", "{dead}", "--selftest", "0"], ExitStatus.USAGE, "--selftest"),
        (["report", "run-1", "--endpoint", "{dead}", "--speedup", "0"], 2, "--speedup"),
        (["demo", "--out", "{tmp}/demo", "--workers", "0"], ExitStatus.USAGE, "--workers"),
        (["bake", "--target", "cloud"], ExitStatus.USAGE, None),
    ],
)
def test_bad_arguments_get_usage_or_refused_and_one_line(
    argv: list[str], status: int, names: str | None, dead_endpoint: str, tmp_path: Path
) -> None:
    argv = [a.format(dead=dead_endpoint, tmp=tmp_path) for a in argv]
    result = run_cli(argv)
    assert result.status == status, result.stderr
    assert "Traceback" not in result.stderr
    if names is not None:  # our own messages are one line naming the option or input
        assert len(result.stderr_lines) == 1, result.stderr
        assert names in result.stderr_lines[0]


@pytest.mark.parametrize("argv", [["--version"], ["plan", "--help"], ["status", "--help"]])
def test_version_and_help_exit_ok(argv: list[str]) -> None:
    result = run_cli(argv)
    assert result.status == ExitStatus.OK
    assert result.stdout


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rate=st.text(max_size=24), cluster=st.text(max_size=24))
def test_hostile_plan_options_never_crash(rate: str, cluster: str) -> None:
    """Arbitrary text for --rate and --cluster: an answer or one line, never a traceback."""
    assume(not rate.startswith("from:"))  # that reads a run from a stack
    argv = ["plan", "--jobs", "1", "--runtime", "1h", "--runs", "1", "--rate", rate]
    result = run_cli([*argv, f"--cluster={cluster}"])
    assert result.status in (ExitStatus.OK, ExitStatus.USAGE, ExitStatus.REFUSED), result.stderr
    assert "Traceback" not in result.stderr


def test_an_unexpected_error_is_internal_and_says_how_to_report_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug (here: the simulation raising something no one expected) is status 1, one line."""
    from spotcube import planning

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(planning, "make_plan", broken)
    argv = ["plan", "--jobs", "1", "--runtime", "1h", "--rate", "9%/h"]
    line = _assert_one_line(run_cli(argv), "plan", ExitStatus.INTERNAL_ERROR)
    assert "ZeroDivisionError: float division by zero" in line
    assert "--debug" in line
    assert "Traceback" in run_cli([*argv, "--debug"]).stderr


def test_a_multi_line_library_message_is_joined_into_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from spotcube import planning
    from spotcube.errors import RefusedError

    def refuse(*args: object, **kwargs: object) -> None:
        raise RefusedError("2 problem(s):\n  - first\n  - second\n")

    monkeypatch.setattr(planning, "make_plan", refuse)
    argv = ["plan", "--jobs", "1", "--runtime", "1h", "--rate", "9%/h"]
    line = _assert_one_line(run_cli(argv), "plan", ExitStatus.REFUSED)
    assert line == "spotcube plan: 2 problem(s):; - first; - second"
