"""Kept libraries instead of hand-written code, and one table of instance types (issue 12, 8).

Each replacement is checked against a reference the code did not produce: published
Garwood interval values and the interval's definition, ``hashlib.sha256`` over
the old byte scheme, and PEP 508 lines a hand-written regex got wrong.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from scipy.stats import poisson

from contract import instances
from infra.config import DEFAULTS
from payload.provenance import file_identity
from spotcube import prices
from spotcube.bake.provenance import pinned_versions
from spotcube.estimates import poisson_interval


@pytest.mark.parametrize(
    ("count", "low", "high"),
    [(0, 0.0, 3.689), (1, 0.0253, 5.572), (5, 1.623, 11.668), (10, 4.795, 18.390)],
)
def test_poisson_interval_matches_published_values(count: int, low: float, high: float) -> None:
    """Exact 95 % limits for a Poisson count, as tabulated by Ulm (1990, Am. J. Epidemiol.)."""
    assert poisson_interval(count) == pytest.approx((low, high), abs=1e-3)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 20, 50, 200])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_interval_meets_its_definition(count: int, confidence: float) -> None:
    """Garwood's definition, through the Poisson distribution function instead of chi2:
    ``P(X >= k; low) = α/2`` and ``P(X <= k; high) = α/2``."""
    low, high = poisson_interval(count, confidence)
    tail = (1 - confidence) / 2
    assert poisson.cdf(count, high) == pytest.approx(tail, rel=1e-6)
    if count:
        assert poisson.sf(count - 1, low) == pytest.approx(tail, rel=1e-6)
    else:
        assert low == 0.0


def test_the_default_fleet_is_priced() -> None:
    """`spotcube plan --instance T` knows every type a default stack launches."""
    assert set(DEFAULTS["fleet"]["instanceTypes"]) <= set(prices.EMBEDDED)
    assert set(prices.EMBEDDED) == set(instances.ON_DEMAND_USD_PER_HOUR)


def test_file_identity_keeps_its_values(tmp_path: Path) -> None:
    """file_digest feeds the same bytes as the old read loop: recorded identities still match."""
    single = tmp_path / "obs.uvh5"
    single.write_bytes(bytes(range(256)) * 5000)
    assert file_identity(single) == {
        "name": "obs.uvh5",
        "size": 256 * 5000,
        "sha256": hashlib.sha256(single.read_bytes()).hexdigest(),
    }
    folder = tmp_path / "obs.ms"
    (folder / "ANTENNA").mkdir(parents=True)
    (folder / "table.dat").write_bytes(b"main table")
    (folder / "ANTENNA" / "table.f0").write_bytes(b"\x00" * 3000)
    old = hashlib.sha256()
    for relative in ("ANTENNA/table.f0", "table.dat"):
        old.update(relative.encode() + b"\0" + (folder / relative).read_bytes())
    assert file_identity(folder) == {"name": "obs.ms", "size": 3010, "sha256": old.hexdigest()}


def test_pinned_versions_reads_pep_508_lines(tmp_path: Path) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(
        "\n".join(
            [
                "# a comment",
                "numpy==2.3.1",
                "PyYAML == 6.0.3  # spaces and case",
                'tomli==2.2.1 ; python_version < "3.11"',  # a marker: still a pin
                "requests[socks]==2.32.3",  # extras
                "scipy>=1.11,<2",  # a range is not a pin
                "attrs===25.1.0",
                "-r other.txt",
                "--hash sha256:abc",
                "typing_extensions==4.*",  # a wildcard is not one version
                "not a requirement at all ==",
                "",
            ]
        )
    )
    assert pinned_versions(constraints) == {
        "numpy": "2.3.1",
        "pyyaml": "6.0.3",
        "tomli": "2.2.1",
        "requests": "2.32.3",
        "attrs": "25.1.0",
    }
