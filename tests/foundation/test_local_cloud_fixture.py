"""The shared moto fixture really is an HTTP server that boto3 reaches through endpoint_url."""

from __future__ import annotations

from spotcube.local.motoserver import local_client


def test_s3_round_trip_over_http(cloud: str) -> None:
    assert cloud.startswith("http://127.0.0.1:")
    s3 = local_client("s3", cloud)
    s3.create_bucket(Bucket="fixture-check")
    s3.put_object(Bucket="fixture-check", Key="a", Body=b"payload")
    assert s3.get_object(Bucket="fixture-check", Key="a")["Body"].read() == b"payload"


def test_reset_between_tests(cloud: str) -> None:
    s3 = local_client("s3", cloud)
    assert s3.list_buckets()["Buckets"] == []
