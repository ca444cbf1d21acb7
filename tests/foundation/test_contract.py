"""The contract package: the one home of the facts payload, infra and spotcube share.

Its place in the import graph (lowest layer, standard library only) is checked by the
import-linter contracts (tests/foundation/test_import_graph.py); here: that it also loads
nothing else at run time, that a Lambda zip (its handler plus the contract) imports on its
own, and the values of the names a deployed stack already carries, which renaming would
orphan.
"""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import contract
from contract import names
from contract.instances import ON_DEMAND_USD_PER_HOUR, shape_on_demand_usd_per_hour
from contract.jobs import CHUNKED_KINDS, JobKind
from contract.settings import env_name
from infra.lambdafn import lambda_code

CONTRACT_MODULES = sorted(f"contract.{m.name}" for m in pkgutil.iter_modules(contract.__path__))


def test_the_contract_loads_nothing_but_the_standard_library() -> None:
    # What importing every contract module adds to what the interpreter had at startup (the
    # venv's own startup hooks, such as the editable install's finder, are not the contract's).
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        f"for name in {CONTRACT_MODULES!r}: __import__(name)\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    roots = {name.partition(".")[0] for name in loaded}
    assert {"contract", *CONTRACT_MODULES} <= set(loaded)
    assert not roots & {"payload", "infra", "spotcube", "boto3", "botocore", "numpy"}
    assert roots - {"contract"} <= set(sys.stdlib_module_names)


@pytest.mark.parametrize("module", ["brake", "meter", "quarantine"])
def test_a_lambda_zip_imports_on_its_own(tmp_path: Path, module: str) -> None:
    """What the Lambda runtime sees: the zip's files at the top of the path, nothing more."""
    for name, source in lambda_code(module).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, tmp_path / name)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        f"import {module}, contract\n"
        f"assert callable({module}.handler)\n"
        "assert contract.__file__.startswith(sys.argv[1]), contract.__file__\n"
    )
    subprocess.run(
        [sys.executable, "-I", "-c", code, str(tmp_path)], cwd=tmp_path, check=True, timeout=60
    )


def test_the_stack_names_are_the_deployed_ones() -> None:
    """Physical names of a stack that exists: a rename would orphan its resources."""
    n = names.StackNames(owner="alice", stack="dev")
    assert n.asg == "spotcube-alice-dev-fleet"
    assert n.brake_function == "spotcube-alice-dev-fleet-brake"
    assert n.meter_function == "spotcube-alice-dev-fleet-meter"
    assert n.brake_topic == "spotcube-alice-dev-brake"
    assert n.quarantine_function == "spotcube-alice-dev-quarantine"
    assert n.worker_log_group == "/spotcube/spotcube-alice-dev/workers"
    assert n.cost_tags == {"Project": "spotcube", "Owner": "alice", "Stack": "dev"}
    assert names.stack_prefix_of_asg(n.asg) == n.prefix


@pytest.mark.parametrize(
    ("setting", "variable"),
    [
        ("region", "SPOTCUBE_REGION"),
        ("queue_url", "SPOTCUBE_QUEUE_URL"),
        ("dlq_url", "SPOTCUBE_DLQ_URL"),
        ("products_bucket", "SPOTCUBE_PRODUCTS_BUCKET"),
        ("asg_name", "SPOTCUBE_ASG_NAME"),
        ("lifecycle_hook", "SPOTCUBE_LIFECYCLE_HOOK"),
        ("checkpoint_interval", "SPOTCUBE_CHECKPOINT_INTERVAL"),
    ],
)
def test_the_worker_variables_the_stack_writes(setting: str, variable: str) -> None:
    """Images already baked read these names from /etc/spotcube/worker.env."""
    assert env_name(setting) == variable


def test_every_chunked_kind_has_its_job() -> None:
    """The worker has code for each chunked kind the contract names, and for no other."""
    from payload.jobs import CHUNKED_JOBS

    assert set(CHUNKED_JOBS) == CHUNKED_KINDS
    assert JobKind.COMMAND not in CHUNKED_KINDS


@pytest.mark.parametrize(
    ("vcpus", "memory_gib", "reference", "usd"),
    [
        (16, 32.0, "c6i.4xlarge", 0.68),
        (16, 64.0, "m6i.4xlarge", 0.768),
        (16, 128.0, "r6i.4xlarge", 1.008),
    ],
    ids=["2GiB-per-vCPU", "4GiB-per-vCPU", "8GiB-per-vCPU"],
)
def test_the_stack_prices_a_shape_from_the_one_price_table(
    vcpus: int, memory_gib: float, reference: str, usd: float
) -> None:
    """The brake's price of a fleet's shape is the reference type's row of the table plan
    reads: the same figures the per-vCPU bands held before they were derived."""
    assert shape_on_demand_usd_per_hour(vcpus, memory_gib) == ON_DEMAND_USD_PER_HOUR[reference]
    assert ON_DEMAND_USD_PER_HOUR[reference] == usd
