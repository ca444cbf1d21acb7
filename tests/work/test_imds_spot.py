"""The IMDSv2 emulator enforces tokens like AWS; the client and the spot watcher use it right."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from payload.imds import ImdsClient, ImdsError, InstanceIdentity, endpoint_from_env
from payload.spot import SpotWatcher, parse_instance_action
from spotcube.local.imds import ImdsEmulator


def _call(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(
        url, method=method, headers=headers or {}, data=b"" if method == "PUT" else None
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 400),
        ({"X-aws-ec2-metadata-token-ttl-seconds": "0"}, 400),
        ({"X-aws-ec2-metadata-token-ttl-seconds": "21601"}, 400),
        ({"X-aws-ec2-metadata-token-ttl-seconds": "abc"}, 400),
        ({"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "1.2.3.4"}, 403),
        ({"X-aws-ec2-metadata-token-ttl-seconds": "1"}, 200),
        ({"X-aws-ec2-metadata-token-ttl-seconds": "21600"}, 200),
    ],
    ids=["no-ttl", "ttl-0", "ttl-too-big", "ttl-junk", "forwarded", "ttl-1", "ttl-max"],
)
def test_token_put_rules(imds: ImdsEmulator, headers: dict[str, str], status: int) -> None:
    assert _call(f"{imds.endpoint}/latest/api/token", "PUT", headers) == status


def test_get_without_or_with_bad_token_is_401(imds: ImdsEmulator) -> None:
    url = f"{imds.endpoint}/latest/meta-data/instance-id"
    assert _call(url) == 401
    assert _call(url, headers={"X-aws-ec2-metadata-token": "forged"}) == 401


def test_token_expiry_is_enforced_and_client_refreshes(imds: ImdsEmulator) -> None:
    client = ImdsClient(imds.endpoint, ttl_seconds=1)
    assert client.get("instance-id") == imds.instance_id
    stale = client.token()
    time.sleep(1.1)
    url = f"{imds.endpoint}/latest/meta-data/instance-id"
    assert _call(url, headers={"X-aws-ec2-metadata-token": stale}) == 401
    assert client.get("instance-id") == imds.instance_id  # refreshed on its own


def test_client_refreshes_after_401(imds: ImdsEmulator) -> None:
    client = ImdsClient(imds.endpoint)
    assert client.get("placement/availability-zone") == "us-east-1a"
    imds.expire_tokens()
    assert client.get("instance-type") == imds.instance_type


def test_identity_and_absent_paths(imds: ImdsEmulator) -> None:
    client = ImdsClient(imds.endpoint)
    identity = InstanceIdentity.from_imds(client)
    assert identity == InstanceIdentity("i-0test000000000001", "c6i.4xlarge", "us-east-1a", None)
    assert client.get("spot/instance-action") is None  # 404 until scheduled


def test_instance_action_document_like_aws(imds: ImdsEmulator) -> None:
    imds.schedule_interruption(in_seconds=120, action="stop")
    body = ImdsClient(imds.endpoint).get("spot/instance-action")
    assert body is not None
    doc = json.loads(body)
    assert doc["action"] == "stop"
    assert doc["time"].endswith("Z")
    with pytest.raises(ValueError, match="hibernate"):
        imds.schedule_interruption(1, action="reboot")


def test_probe_waits_out_a_throttled_imds() -> None:
    """IMDS answering 429 to token requests for a while (throttled, or slow to come up while
    the instance boots): one try says "unreachable", the probe keeps trying and gets there."""
    with ImdsEmulator() as imds:
        imds.refuse_tokens_for(1.5)
        client = ImdsClient(imds.endpoint)
        assert not client.reachable()
        assert client.probe(window_s=60.0)
        assert client.get("instance-id") == imds.instance_id


def test_probe_gives_up_where_there_is_no_imds() -> None:
    client = ImdsClient("http://127.0.0.1:9", timeout=0.2)
    assert not client.probe(window_s=0.6)


def test_endpoint_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", raising=False)
    assert endpoint_from_env() is None
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1/")
    assert endpoint_from_env() == "http://127.0.0.1:1"
    monkeypatch.delenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")
    assert endpoint_from_env() == "http://169.254.169.254"


def test_parse_instance_action_deadline() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    body = '{"action": "terminate", "time": "2026-01-01T00:02:00Z"}'
    assert parse_instance_action(body, now_wall=now, now_mono=100.0) == pytest.approx(220.0)


def _watch(imds: ImdsEmulator) -> SpotWatcher:
    return SpotWatcher(ImdsClient(imds.endpoint, timeout=0.5), interval=0.05)


def test_watcher_sees_interruption_with_deadline(imds: ImdsEmulator) -> None:
    watcher = _watch(imds).start()
    try:
        time.sleep(0.2)
        assert not watcher.terminating.is_set()
        imds.schedule_interruption(in_seconds=30)
        assert watcher.terminating.wait(2)
        notice = watcher.notice
        assert notice is not None
        assert notice.source == "spot"
        assert 27 < notice.seconds_left() <= 31  # whole-second times in the document
    finally:
        watcher.stop()


def test_watcher_rebalance_is_not_termination(imds: ImdsEmulator) -> None:
    watcher = _watch(imds).start()
    try:
        imds.recommend_rebalance()
        assert watcher.rebalance.wait(2)
        assert not watcher.terminating.is_set()
    finally:
        watcher.stop()


def test_watcher_asg_lifecycle_terminated(imds: ImdsEmulator) -> None:
    watcher = _watch(imds)
    watcher.asg_grace = 50
    watcher.start()
    try:
        imds.set_lifecycle_state("Terminated")
        assert watcher.terminating.wait(2)
        assert watcher.notice is not None
        assert watcher.notice.source == "asg"
    finally:
        watcher.stop()


@pytest.mark.parametrize("status", [500, 503, 403])
def test_imds_errors_are_never_notices(imds: ImdsEmulator, status: int) -> None:
    imds.fail_with(status)
    imds.schedule_interruption(in_seconds=30)  # present, but hidden behind errors
    watcher = _watch(imds).start()
    try:
        time.sleep(0.4)
        assert not watcher.terminating.is_set()
        assert not watcher.rebalance.is_set()
        assert watcher.errors >= 3
        imds.fail_with(None)  # the service recovers: the real notice now gets through
        assert watcher.terminating.wait(2)
    finally:
        watcher.stop()


def test_unreachable_imds_is_never_a_notice(imds: ImdsEmulator) -> None:
    endpoint = imds.endpoint
    imds.stop()
    watcher = SpotWatcher(ImdsClient(endpoint, timeout=0.2), interval=0.05).start()
    try:
        time.sleep(0.5)
        assert not watcher.terminating.is_set()
        assert watcher.errors >= 2
    finally:
        watcher.stop()


def test_garbled_instance_action_is_an_error_not_a_notice(imds: ImdsEmulator) -> None:
    watcher = _watch(imds)
    imds._instance_action = {"action": "terminate"}  # no "time": not the documented shape
    watcher.poll_once()
    assert not watcher.terminating.is_set()
    assert watcher.errors == 1


def test_sigterm_notice_and_earliest_deadline_wins() -> None:
    watcher = SpotWatcher(None, sigterm_grace=100)
    watcher.start()
    watcher.notify_sigterm()
    assert watcher.terminating.is_set()
    first = watcher.notice
    assert first is not None
    assert first.source == "sigterm"
    watcher.asg_grace = 5
    watcher._on_lifecycle("Terminated")
    assert watcher.notice is not None
    assert watcher.notice.source == "asg"  # earlier deadline replaces the later one
    watcher.notify_sigterm()
    assert watcher.notice.source == "asg"


def test_client_raises_on_unreachable() -> None:
    client = ImdsClient("http://127.0.0.1:9", timeout=0.2)
    assert not client.reachable()
    with pytest.raises(ImdsError, match="unreachable"):
        client.get("instance-id")
