"""``spotcube plan``: option parsing, the table, JSON, the plot and price sources."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from infra.checkpointing import TAIL_SHORTENING
from spotcube.cli import main
from spotcube.local.motoserver import local_client
from spotcube.planning import describe_hazard, parse_duration, parse_rate
from spotcube.prices import AwsPrices, on_demand_from_price_list, quote
from spotcube.spotsim import hazard_from_percent


@pytest.mark.parametrize(
    ("text", "hours"),
    [("633m", 10.55), ("10.5h", 10.5), ("1h30m", 1.5), ("300s", 300 / 3600), ("2d", 48.0)],
)
def test_parse_duration(text: str, hours: float) -> None:
    assert parse_duration(text, "--runtime") == pytest.approx(hours)


@pytest.mark.parametrize("text", ["633", "ten hours", "5x", ""])
def test_bad_duration_names_the_option(text: str) -> None:
    with pytest.raises(ValueError, match="--runtime"):
        parse_duration(text, "--runtime")


def test_parse_constant_and_piecewise_rates() -> None:
    assert parse_rate("9%/h").rates == pytest.approx((hazard_from_percent(9),))
    assert parse_rate("0.094/h").rates == (0.094,)
    hazard = parse_rate("5%/h@0-6h, 12%/h@6h-12h, 1%/h")
    assert hazard.starts == (0.0, 6.0, 12.0)
    assert hazard.rates == pytest.approx(tuple(hazard_from_percent(p) for p in (5, 12, 1)))
    assert parse_rate("2%/h@0-90m,4%/h@90m-").starts == (0.0, 1.5)
    assert parse_rate(describe_hazard(hazard)).rates == pytest.approx(hazard.rates)
    assert describe_hazard(parse_rate("9%/h")) == "9%/h"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9%", "not a rate"),
        ("100%/h", "below 100%"),
        ("5%/h@1h-6h,2%/h", "must start at 0h"),
        ("5%/h@0-6h,2%/h@7h-", "must start at 6h"),
        ("5%/h,2%/h", "only the last"),
        ("5%/h@0-6h@", "not a duration"),
    ],
)
def test_bad_rates_name_the_option(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_rate(text, "--rate")
    assert "--rate" in str(info.value)


def test_plan_prints_table_and_recommendations(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--jobs", "100", "--runtime", "633m", "--instance", "m5.4xlarge"]
    assert main([*argv, "--rate", "9%/h", "--runs", "300"]) == 0
    out = capsys.readouterr().out
    for text in (
        "on-demand",
        "spot, manual",
        "spot, spotcube",
        "recommended checkpoint interval",
        "recommended fleet cap: 100",
        "budget to set",
        "$0.432/h",
        "embedded table",
    ):
        assert text in out
    assert "$813" in out  # 100 x 635 min x $0.768/h


def test_plan_json_is_consistent(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--jobs", "40", "--runtime", "5h", "--rate", "3%/h@0-6h,10%/h", "--json"]
    assert main([*argv, "--runs", "200", "--deadline", "30h", "--fallback-after", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == 1
    assert doc["inputs"]["hazard_per_hour"]["starts_h"] == [0.0, 6.0]
    s = doc["strategies"]
    assert s["on-demand"]["cost"]["mean"] == pytest.approx(40 * (5 + 2 / 60) * 0.768)
    assert s["spot, spotcube"]["cost"]["mean"] < s["on-demand"]["cost"]["mean"]
    rec = doc["recommended"]
    assert rec["budget_usd"] >= s["spot, spotcube"]["cost"]["p99"]
    caps = {int(k): v for k, v in rec["fleet_cap_p90_turnaround_hours"].items()}
    assert caps[rec["fleet_cap"]] <= 30
    assert all(caps[c] > 30 for c in caps if c < rec["fleet_cap"])
    # Young's sqrt(2 C M) at the highest rate, shortened by the stack's rule (infra.checkpointing)
    assert rec["checkpoint_interval_hours"] == pytest.approx(
        TAIL_SHORTENING * math.sqrt(2 * (10 / 3600) / hazard_from_percent(10)), rel=0.1
    )


def test_plan_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "plan.png"
    argv = ["plan", "--jobs", "10", "--runtime", "2h", "--rate", "5%/h", "--runs", "50"]
    assert main([*argv, "--plot", str(target)]) == 0
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plot written" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rate", "nine"], "--rate"),
        (["--rate", "9%/h", "--jobs", "0"], "--jobs must be at least 1"),
        (["--rate", "9%/h", "--runtime", "soon"], "--runtime"),
        (["--rate", "9%/h", "--instance", "x9.huge"], "--instance x9.huge"),
        (["--rate", "9%/h", "--spot-price", "-1"], "--spot-price"),
    ],
)
def test_plan_errors_name_the_option(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["plan", "--jobs", "5", "--runtime", "1h", "--runs", "10", *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_prices_override_and_assumption_is_labelled() -> None:
    q = quote("m5.4xlarge", spot=0.5)
    assert (q.spot, q.spot_source, q.on_demand) == (0.5, "--spot-price", 0.768)
    unknown_spot = quote("r5.4xlarge")
    assert unknown_spot.on_demand == 1.008
    assert unknown_spot.spot_source.startswith("ASSUMED")
    assert quote("x1.weird", on_demand=1.0, spot=0.3).spot == 0.3
    with pytest.raises(ValueError, match="--on-demand-price"):
        quote("x1.weird")


def test_spot_price_history_from_the_local_cloud(cloud: str) -> None:
    """moto serves describe_spot_price_history (at a token price); the Price List API it lacks."""
    live = AwsPrices(local_client("ec2", cloud), None, "us-east-1")
    price = live.spot("m5.4xlarge")
    assert price is not None
    assert 0 < price < 0.01
    assert live.on_demand("m5.4xlarge") is None
    q = quote("m5.4xlarge", aws=live)
    assert q.spot == price
    assert "AWS spot price history" in q.spot_source
    assert q.on_demand == 0.768  # fell back to the table


def test_plan_aws_prices_on_local_cloud(cloud: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--jobs", "5", "--runtime", "1h", "--rate", "1%/h", "--runs", "20"]
    assert main([*argv, "--aws-prices", "--endpoint", cloud, "--json"]) == 0
    assert "AWS spot price history" in json.loads(capsys.readouterr().out)["prices"]["spot_source"]


def test_price_list_documents_are_parsed() -> None:
    # the shape of one Price List API product (trimmed to what the parser reads)
    document = {
        "product": {"attributes": {"instanceType": "m5.4xlarge"}},
        "terms": {
            "OnDemand": {
                "ABC.JRTCKXETXF": {
                    "priceDimensions": {
                        "ABC.JRTCKXETXF.6YS6EN2CT7": {
                            "unit": "Hrs",
                            "pricePerUnit": {"USD": "0.7680000000"},
                        }
                    }
                }
            }
        },
    }
    assert on_demand_from_price_list([json.dumps(document)]) == 0.768
    assert on_demand_from_price_list([json.dumps({"terms": {}})]) is None
