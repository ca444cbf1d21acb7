"""The packages' import graph keeps the contracts in pyproject.toml ([tool.importlinter]).

Invariants: the contract (the one home of every shared fact, at the bottom) imports nothing of
the project and nothing but the standard library; payload (the worker) imports nothing from
infra or spotcube; infra (the stack) imports nothing from spotcube (the operator CLI on top);
spotcube and infra import only the payload's public modules; no two modules or subpackages of
one package import each other, with no exceptions.
The graph is grimp's, built from the source as import-linter builds it for ``lint-imports``;
the second group of tests adds one forbidden arrow to it and checks a contract breaks, so a
contract that no longer checks anything fails here too.
"""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.application import use_cases

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contract", "payload", "infra", "spotcube")


@pytest.fixture(scope="module")
def options() -> use_cases.UserOptions:
    configuration.configure()
    options = use_cases.read_user_options(config_filename=str(ROOT / "pyproject.toml"))
    use_cases._register_contract_types(options)  # as `lint-imports` does before checking
    return options


@pytest.fixture
def graph_source() -> grimp.ImportGraph:
    # A fresh graph per test (each may add an arrow); cache_dir=None writes nothing into the
    # tree, and grimp reads the packages in well under a second. External packages are in the
    # graph (as in pyproject's config) so "the contract imports no boto3" can be checked.
    return grimp.build_graph(*PACKAGES, cache_dir=None, include_external_packages=True)


def broken_contracts(graph: grimp.ImportGraph, options: use_cases.UserOptions) -> list[str]:
    report = use_cases._build_report(  # the pinned import-linter's own check of a given graph
        graph=graph,
        graph_building_duration=0,
        user_options=options,
        limit_to_contracts=(),
        show_timings=False,
        verbose=False,
    )
    assert not report.invalid_contract_options, report.invalid_contract_options
    return sorted(
        contract.name for contract, check in report.get_contracts_and_checks() if not check.kept
    )


def test_the_graph_is_read_from_this_tree(graph_source: grimp.ImportGraph) -> None:
    """The graph is of the packages being tested, not of another checkout on the path."""
    assert Path(grimp.__file__).exists()
    import spotcube

    assert Path(spotcube.__file__).resolve().parent == ROOT / "spotcube"
    assert "spotcube.planning" in graph_source.modules


def test_the_packages_keep_every_contract(
    graph_source: grimp.ImportGraph, options: use_cases.UserOptions
) -> None:
    assert broken_contracts(graph_source, options) == []


def test_there_are_contracts(options: use_cases.UserOptions) -> None:
    kinds = {c["type"] for c in options.contracts_options}
    assert {"layers", "acyclic_siblings", "forbidden"} <= kinds
    ids = {c["id"] for c in options.contracts_options}
    assert {"layers", "no-circles", "contract-stdlib-only", "payload-surface"} <= ids


@pytest.mark.parametrize(
    ("importer", "imported", "contract"),
    [
        ("payload.store", "spotcube.cli", "layers"),
        ("payload.worker", "infra.config", "layers"),
        ("infra.config", "spotcube.prices", "layers"),
        ("spotcube.prices", "spotcube.planning", "no-circles"),  # planning imports prices
        ("payload.store", "payload.worker", "no-circles"),
        # Broken when the local cloud's region and keys moved to contract.localcloud.
        ("spotcube.stack", "spotcube.local.motoserver", "no-circles"),
        # Broken when the demo's records moved to spotcube.demorecords and the command job
        # took a Protocol (payload.jobs.base.CommandRun) instead of JobAttempt: no exceptions.
        ("spotcube.demoreport", "spotcube.demo", "no-circles"),
        ("payload.jobs.command", "payload.attempt", "no-circles"),
        ("contract", "payload.store", "layers"),
        ("contract", "infra.stack", "layers"),
        ("contract", "boto3", "contract-stdlib-only"),
        ("contract", "numpy", "contract-stdlib-only"),
        # jobdef checked a command job's params with payload.jobs.command.CommandParams; it
        # goes through payload.jobparams now, like submit.
        ("spotcube.jobdef", "payload.jobs.command", "payload-surface"),
        ("spotcube.submit", "payload.store", "payload-surface"),
        ("spotcube.local.fleet", "payload.worker", "payload-surface"),
        ("infra.config", "payload.records", "payload-surface"),
    ],
    ids=[
        "payload->spotcube",
        "payload->infra",
        "infra->spotcube",
        "circle-spotcube",
        "circle-payload",
        "circle-stack-local",
        "circle-demo-report",
        "circle-command-attempt",
        "contract->payload",
        "contract->infra",
        "contract->boto3",
        "contract->numpy",
        "spotcube->payload.jobs",
        "spotcube->payload.store",
        "spotcube.local->payload.worker",
        "infra->payload.records",
    ],
)
def test_a_forbidden_arrow_breaks_a_contract(
    graph_source: grimp.ImportGraph,
    options: use_cases.UserOptions,
    importer: str,
    imported: str,
    contract: str,
) -> None:
    graph = graph_source
    assert not graph.direct_import_exists(importer=importer, imported=imported)
    graph.add_import(importer=importer, imported=imported)
    names = {c["id"]: c["name"] for c in options.contracts_options}
    assert names[contract] in broken_contracts(graph, options)
