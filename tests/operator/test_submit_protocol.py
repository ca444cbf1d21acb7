"""A submit is all or nothing and retryable, whatever S3/SQS call fails (spotcube.publish).

Invariants, checked against the moto server over HTTP with a fault injected at every call a
submit makes, in both forms a network fault takes (the call never happened; the call
happened and its answer was lost):

* a failed submit exits with one line (no traceback), and no view shows the run as queued
  unless every one of its jobs is in the queue;
* the same command, run again, completes the run: every observation has a message with the
  one body the intent recorded, ``run.json`` is the intent's record, and a message is sent
  twice only where its acknowledgement was lost (at most one batch per lost answer);
* run once more, it sends nothing; with other params it is refused and changes nothing;
* anything the worker refuses is refused before a byte is written (buckets and queue empty).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.layout import run_record_key
from payload.errors import InvalidInputError
from payload.params import ImagingParams
from spotcube.cli import main
from spotcube.local.cloud import provision
from spotcube.local.motoserver import local_client
from spotcube.publish import submission_key
from spotcube.runstate import list_runs, read_run
from spotcube.stack import StackOutputs

PRODUCTS = "spotcube-local-demo-products"
RAW = "spotcube-local-demo-raw"
N_ARCHIVED = 9  # s3:// inputs: with the two local files, 11 jobs = two SQS batches
# Calls that change nothing in the cloud: a lost answer to one is the same as a failed one.
READ_ONLY = {"HeadBucket", "HeadObject", "GetObject", "GetQueueAttributes", "GetQueueUrl"}


class Faults:
    """Counts every API call of every client a submit makes; breaks call number ``at``.

    ``mode`` "before": the call never reaches the cloud; "after": it reaches the cloud and
    succeeds there, and its answer is lost. Every later call fails too (the network is gone),
    so the submit stops at exactly that point.
    """

    def __init__(self, at: int | None = None, mode: str = "before") -> None:
        self.at, self.mode, self.calls = at, mode, 0
        self.names: list[str] = []

    def _broken(self) -> bool:
        return self.at is not None and self.calls >= self.at

    def before(self, event_name: str, **_: Any) -> None:
        self.calls += 1
        self.names.append(event_name.rsplit(".", 1)[-1])  # the operation
        if self._broken() and not (self.mode == "after" and self.calls == self.at):
            raise EndpointConnectionError(endpoint_url="http://injected-fault")

    def after(self, **_: Any) -> None:
        if self.mode == "after" and self.calls == self.at:
            raise EndpointConnectionError(endpoint_url="http://injected-fault")


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Callable[[Faults], None]:
    original = StackOutputs.client

    def use(faults: Faults) -> None:
        hooked: set[int] = set()

        def client(self: StackOutputs, service: str) -> Any:
            made = original(self, service)
            # A command reuses one client per service: hook each client once, or every call
            # on it would be counted (and broken) once per time it was handed out.
            if id(made) not in hooked:
                hooked.add(id(made))
                made.meta.events.register("before-call", faults.before)
                made.meta.events.register("after-call", faults.after)
            return made

        monkeypatch.setattr(StackOutputs, "client", client)

    return use


@pytest.fixture
def inputs(cloud: str, tmp_path: Path) -> list[str]:
    provision(cloud)
    s3 = local_client("s3", cloud)
    s3.create_bucket(Bucket="archive")
    uris = []
    for i in range(N_ARCHIVED):
        s3.put_object(Bucket="archive", Key=f"obs-{i:02d}.uvh5", Body=bytes([i]) * 100)
        uris.append(f"s3://archive/obs-{i:02d}.uvh5")
    files = [tmp_path / "local-a.uvh5", tmp_path / "local-b.uvh5"]
    for i, path in enumerate(files):
        path.write_bytes(bytes([100 + i]) * 1000)
    return [*map(str, files), *uris]


def _argv(cloud: str, inputs: list[str], *extra: str) -> list[str]:
    return [
        "submit", "--endpoint", cloud, *inputs, "--run-id", "r", "--param", "image_size=32", *extra
    ]  # fmt: skip


def _queue_url(cloud: str) -> str:
    return f"{cloud}/123456789012/spotcube-local-demo-jobs"


def peek_queue(cloud: str) -> list[str]:
    """Every message body in the job queue, left in the queue (visible again at once)."""
    sqs = local_client("sqs", cloud)
    bodies, handles = [], []
    while True:
        got = sqs.receive_message(
            QueueUrl=_queue_url(cloud), MaxNumberOfMessages=10, VisibilityTimeout=60
        ).get("Messages", [])
        if not got:
            break
        bodies += [m["Body"] for m in got]
        handles += [m["ReceiptHandle"] for m in got]
    for handle in handles:
        sqs.change_message_visibility(
            QueueUrl=_queue_url(cloud), ReceiptHandle=handle, VisibilityTimeout=0
        )
    return bodies


def _get(cloud: str, key: str) -> dict[str, Any] | None:
    s3 = local_client("s3", cloud)
    try:
        return dict(json.loads(s3.get_object(Bucket=PRODUCTS, Key=key)["Body"].read()))
    except s3.exceptions.NoSuchKey:
        return None


def check_views_never_lie(cloud: str) -> None:
    """What status/report read: a run they show as queued has every job in the queue."""
    s3 = local_client("s3", cloud)
    runs = list_runs(s3, PRODUCTS)
    if not runs:
        return
    state = read_run(s3, PRODUCTS, "r")
    queued = {o.obs_id for o in state.observations}
    in_queue = {json.loads(b)["obs_id"] for b in peek_queue(cloud)}
    assert queued <= in_queue, f"shown queued but not in the queue: {sorted(queued - in_queue)}"


def check_complete(cloud: str, *, lost_answers: int) -> list[str]:
    """After a successful submit: one body per observation, as the intent recorded it."""
    intent = _get(cloud, submission_key("r"))
    record = _get(cloud, run_record_key("r"))
    assert intent is not None
    assert record is not None
    assert record == intent["record"]
    bodies = peek_queue(cloud)
    assert set(bodies) == set(intent["messages"])  # every job, and only the recorded bodies
    assert sorted(intent["sent"]) == list(range(len(intent["messages"])))
    assert len(intent["messages"]) == 2 + N_ARCHIVED
    assert len(bodies) - len(intent["messages"]) <= 10 * lost_answers
    return bodies


def _one_line(err: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("spotcube submit")]
    assert "Traceback" not in err
    assert len(lines) == 1, err


def _clean_call_count(cloud: str, inputs: list[str], install: Callable[[Faults], None]) -> int:
    counter = Faults()
    install(counter)
    assert main(_argv(cloud, inputs)) == 0
    return counter.calls


def _reset(cloud: str, inputs: list[str]) -> None:
    """Empty the products and raw buckets and the queue; the archive's inputs stay."""
    s3 = local_client("s3", cloud)
    for bucket in (PRODUCTS, RAW):
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
    sqs = local_client("sqs", cloud)  # PurgeQueue is allowed once a minute: drain it instead
    while got := sqs.receive_message(QueueUrl=_queue_url(cloud), MaxNumberOfMessages=10).get(
        "Messages"
    ):
        for message in got:
            sqs.delete_message(QueueUrl=_queue_url(cloud), ReceiptHandle=message["ReceiptHandle"])


def test_a_fault_at_any_call_leaves_a_run_the_same_command_completes(
    cloud: str,
    inputs: list[str],
    install: Callable[[Faults], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    total = _clean_call_count(cloud, inputs, install)
    assert total > 20  # checks, uploads, intent, two batches with their records, run.json
    names = Faults()
    install(names)
    _reset(cloud, inputs)
    assert main(_argv(cloud, inputs)) == 0
    for at in range(1, total + 1):
        writes = names.names[at - 1] not in READ_ONLY
        for mode in ("before", "after") if writes else ("before",):
            _reset(cloud, inputs)
            capsys.readouterr()
            faults = Faults(at, mode)
            install(faults)
            status = main(_argv(cloud, inputs))
            where = f"fault {mode} call {at} ({faults.names[at - 1]})"
            assert status in (3, 5), where
            _one_line(capsys.readouterr().err)
            check_views_never_lie(cloud)
            install(Faults())
            assert main(_argv(cloud, inputs)) == 0, where
            # A batch is resent only if its acknowledgement was lost: in the answer, or in
            # the intent's record of it that the fault stopped.
            bodies = check_complete(cloud, lost_answers=1)
            assert main(_argv(cloud, inputs)) == 0, where
            assert "already submitted; nothing sent" in capsys.readouterr().out
            assert sorted(peek_queue(cloud)) == sorted(bodies), where


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(
    faults=st.lists(
        st.tuples(st.integers(1, 40), st.sampled_from(["before", "after"])), min_size=1, max_size=4
    )
)
def test_retries_that_fail_again_still_complete_the_run(
    cloud: str,
    inputs: list[str],
    install: Callable[[Faults], None],
    faults: list[tuple[int, str]],
) -> None:
    """A run of failing retries, each at another step, then one clean run: complete."""
    _reset(cloud, inputs)
    lost = 0
    for at, mode in faults:
        injected = Faults(at, mode)
        install(injected)
        status = main(_argv(cloud, inputs))
        assert status in (0, 3, 5)
        lost += mode == "after" and injected.calls >= at
        check_views_never_lie(cloud)
    install(Faults())
    assert main(_argv(cloud, inputs)) == 0
    check_complete(cloud, lost_answers=max(lost, 1))


def test_a_half_published_run_is_refused_with_other_content_and_left_alone(
    cloud: str,
    inputs: list[str],
    install: Callable[[Faults], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    counter = Faults()
    install(counter)
    assert main(_argv(cloud, inputs)) == 0
    first_batch = counter.names.index("SendMessageBatch") + 2  # the batch and its record
    _reset(cloud, inputs)
    install(Faults(first_batch + 1))  # the second batch never leaves
    assert main(_argv(cloud, inputs)) == 5
    before = (_get(cloud, submission_key("r")), sorted(peek_queue(cloud)))
    install(Faults())
    capsys.readouterr()
    assert main([*_argv(cloud, inputs), "--param", "weighting=uniform"]) == 3
    assert "run r already exists with other params" in capsys.readouterr().err
    assert (_get(cloud, submission_key("r")), sorted(peek_queue(cloud))) == before
    assert list_runs(local_client("s3", cloud), PRODUCTS) == []  # still invisible
    assert main(_argv(cloud, inputs)) == 0
    assert "resumed run r: sent the 1 of 11 image job(s)" in capsys.readouterr().out
    check_complete(cloud, lost_answers=0)


# --- refused before anything is written --------------------------------------------------


def _nothing_written(cloud: str) -> None:
    s3 = local_client("s3", cloud)
    for bucket in (PRODUCTS, RAW):
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0, bucket
    assert peek_queue(cloud) == []


BAD_OPTIONS = {
    "chunk-channels-0": (["--params", '{"chunk_channels": 0}'], 2),
    "weighting-foo": (["--param", "weighting=foo"], 2),
    "unknown-param": (["--param", "imagesize=64"], 2),
    "run-id": (["--run-id", "bad/id"], 2),
    "selftest-chunks": (["--kind", "selftest", "--param", "chunks=0"], 2),
    "command-no-argv": (["--kind", "command"], 2),
    "integrate-no-cubes": (["--kind", "integrate"], 2),
    "missing-input": (["s3://archive/none.uvh5"], 2),
    "missing-local": (["/nonexistent/x.uvh5"], 2),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS), ids=list(BAD_OPTIONS))
def test_what_the_worker_refuses_is_refused_before_any_upload(
    cloud: str, inputs: list[str], case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    extra, status = BAD_OPTIONS[case]
    # The good local files come first: a submit that uploaded as it went would store them.
    positional = [] if extra[0].startswith("-") else extra
    options = extra if extra[0].startswith("-") else []
    argv = ["submit", "--endpoint", cloud, *inputs[:2], *positional, "--run-id", "r", *options]
    assert main(argv) == status
    _one_line(capsys.readouterr().err)
    _nothing_written(cloud)


@pytest.mark.parametrize("missing", ["queue", "products", "raw"])
def test_a_stack_without_its_queue_or_buckets_is_refused_before_any_upload(
    cloud: str, inputs: list[str], missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s3, sqs = local_client("s3", cloud), local_client("sqs", cloud)
    if missing == "queue":
        sqs.delete_queue(QueueUrl=_queue_url(cloud))
    else:
        s3.delete_bucket(Bucket=PRODUCTS if missing == "products" else RAW)
    # A stack resource that is not there is exit 5 for every command (tests/foundation).
    assert main(_argv(cloud, inputs)) == 5
    err = capsys.readouterr().err
    _one_line(err)
    assert ("job queue" if missing == "queue" else f"{missing} bucket") in err
    remaining = {"queue": [PRODUCTS, RAW], "products": [RAW], "raw": [PRODUCTS]}[missing]
    for bucket in remaining:
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0, bucket


_VALUES = st.one_of(
    st.integers(-2, 2048),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["natural", "uniform", "briggs", "foo", "", "XX", "I", None, True]),
    st.lists(st.sampled_from(["XX", "YY", "XY", "I", "Q", "ZZ"]), max_size=3),
)


def _worker_accepts(params: dict[str, Any]) -> bool:
    try:
        ImagingParams.from_mapping(params)
    except InvalidInputError:
        return False
    return True


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    params=st.dictionaries(
        st.sampled_from([*sorted(ImagingParams.__dataclass_fields__), "bogus"]),
        _VALUES,
        max_size=3,
    )
)
def test_submit_accepts_image_params_exactly_when_the_worker_does(params: dict[str, Any]) -> None:
    """The rule is the worker's: no params pass one and fail the other (no cloud needed)."""
    from spotcube.errors import UsageError
    from spotcube.submit import check_run_options

    try:
        check_run_options("image", params, "r")
        accepted = True
    except UsageError:
        accepted = False
    assert accepted == _worker_accepts(params)


def test_faults_counter_sees_every_call(
    cloud: str, inputs: list[str], install: Callable[[Faults], None]
) -> None:
    """The injector's own check: it counts the writes a submit makes (else steps are missed)."""
    counter = Faults()
    install(counter)
    assert main(_argv(cloud, inputs)) == 0
    names = counter.names
    assert names.count("SendMessageBatch") == 2
    assert names.count("PutObject") >= 2 + 2 + 1  # two uploads, intent + 2 progress, run.json
