"""The commit protocol under generated interleavings (tests/work/interleave.py).

A seeded scheduler drives real workers against the real queue and store (moto over HTTP)
through kills at any S3 request, S3 faults, stopped-and-late instances, duplicate delivery,
replaced inputs and messages that lie about their params, and checks the protocol's
invariants after every step. ``bench/interleavings.py`` runs many more seeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from spotcube.local.motoserver import local_client
from tests.work.interleave import Interleaving

SEEDS = range(4)


@pytest.fixture
def make(cloud: str, tmp_path: Path) -> Iterator[type[Interleaving]]:
    made: list[Interleaving] = []

    def build(seed: int, **kwargs: object) -> Interleaving:
        run = Interleaving(
            local_client("s3", cloud), local_client("sqs", cloud), tmp_path, seed, **kwargs
        )
        made.append(run)
        return run

    yield build  # type: ignore[misc]
    for run in made:
        run.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_commit_invariants_hold_in_every_generated_interleaving(make, seed: int) -> None:
    run = make(seed, p_replace=0.02, p_lie=0.02)
    try:
        run.run()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\ntrace (last 40): {run.trace[-40:]}") from None
