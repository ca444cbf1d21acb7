"""``spotcube bake --target aws``: find the AMI of this content hash, or bake it with Packer.

The hash tag is the only thing that decides whether an AMI exists: names can be reused after
a deregistration, tags are written by the same bake that names the image.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spotcube.bake.artifacts import BuildError, build_wheel
from spotcube.bake.local import extra_vars
from spotcube.bake.provenance import BakeInputs

# Tag keys on the AMI (and its snapshot). infra reads CONTENT_HASH_TAG for `ami: latest`.
CONTENT_HASH_TAG = "spotcube:content-hash"
# `packer init` and `required_plugins` exist from Packer 1.7; the template uses features of
# the amazon plugin that Debian's packer 1.6.6 does not have.
MIN_PACKER = (1, 10, 0)
DEFAULT_INSTANCE_TYPES = ("c6i.large", "c6a.large", "m6i.large", "m6a.large", "c5.large")


@dataclass(frozen=True)
class Ami:
    """An AMI in one region."""

    region: str
    image_id: str
    name: str = ""

    def pulumi_config_line(self) -> str:
        return f"pulumi config set spotcube:ami {self.image_id}"


def find_ami(ec2: Any, digest: str) -> Ami | None:
    """The newest available AMI owned by this account whose hash tag is ``digest``."""
    response = ec2.describe_images(
        Owners=["self"],
        Filters=[
            {"Name": f"tag:{CONTENT_HASH_TAG}", "Values": [digest]},
            {"Name": "state", "Values": ["available"]},
        ],
    )
    images = sorted(response.get("Images", []), key=lambda i: i.get("CreationDate", ""))
    if not images:
        return None
    newest = images[-1]
    return Ami(ec2.meta.region_name, newest["ImageId"], newest.get("Name", ""))


def packer_version(packer: str) -> tuple[int, int, int]:
    """``packer version`` as a tuple; raise :class:`BuildError` if it cannot be run."""
    try:
        out = subprocess.run([packer, "version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"cannot run `{packer} version`: {exc}") from None
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    if not match:
        raise BuildError(f"cannot read a version from `{packer} version`: {out.strip()!r}")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def packer_variables(
    inputs: BakeInputs,
    *,
    region: str,
    instance_types: list[str],
    extra_vars_file: Path,
    manifest: Path,
) -> dict[str, str]:
    """The ``-var`` values of a build: every one is declared in packer/variables.pkr.hcl."""
    facts = inputs.provenance()
    testinfra = inputs.versions.get("pytest-testinfra")
    if testinfra is None:
        raise BuildError("constraints.txt pins no pytest-testinfra (the build host checks itself)")
    return {
        "region": region,
        "spot_instance_types": json.dumps(instance_types),
        "content_hash": facts["content_hash"],
        "payload_version": facts["payload_version"],
        "variant": facts["variant"],
        "git_commit": facts["git_commit"],
        "numpy_version": facts["numpy_version"],
        "pyuvdata_version": facts["pyuvdata_version"],
        "ducc0_version": facts["ducc0_version"],
        "ansible_extra_vars_file": str(extra_vars_file),
        "manifest_path": str(manifest),
        # The build host checks itself with the testinfra the tests here ran with.
        "testinfra_version": testinfra,
    }


def read_manifest(manifest: Path, region: str) -> Ami:
    """The AMI of the last run recorded in Packer's manifest post-processor output."""
    try:
        doc = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot read the Packer manifest {manifest}: {exc}") from None
    builds = doc.get("builds", [])
    last = doc.get("last_run_uuid")
    runs = [b for b in builds if b.get("packer_run_uuid") == last] or builds[-1:]
    if not runs:
        raise BuildError(f"the Packer manifest {manifest} lists no build")
    # artifact_id is "region:ami-id", comma-separated when an image is copied to regions.
    for pair in str(runs[-1].get("artifact_id", "")).split(","):
        where, _, image_id = pair.partition(":")
        if where == region and image_id.startswith("ami-"):
            return Ami(region, image_id, str(runs[-1].get("custom_data", {}).get("ami_name", "")))
    raise BuildError(f"the Packer manifest {manifest} has no AMI in {region}")


def bake_aws(
    inputs: BakeInputs,
    *,
    ec2: Any,
    instance_types: list[str],
    cache_dir: Path,
    packer: str = "packer",
    force: bool = False,
    say: Any = print,
) -> tuple[Ami, bool]:
    """Return the AMI of ``inputs`` and whether it was baked now."""
    region: str = ec2.meta.region_name
    if not force:
        existing = find_ami(ec2, inputs.digest.hexdigest)
        if existing is not None:
            return existing, False
    if shutil.which(packer) is None:
        raise BuildError(
            f"no AMI has content hash {inputs.digest.short} in {region} and `{packer}` is not "
            "installed; install Packer >= 1.10 from HashiCorp"
        )
    version = packer_version(packer)
    if version < MIN_PACKER:
        raise BuildError(
            f"packer {'.'.join(map(str, version))} is too old for packer/ (needs "
            f">= {'.'.join(map(str, MIN_PACKER))} for `packer init` and required_plugins); "
            "Debian's packer only serves `packer fmt`/`validate` in the tests"
        )
    stage = cache_dir / "build" / f"aws-{inputs.digest.short}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    log = stage / "bake.log"
    wheel = build_wheel(inputs.root, stage / "dist", log=log)
    variables_file = stage / "extra-vars.json"
    # No wheelhouse on the build instance: it installs from PyPI with the same constraints.
    variables_file.write_text(json.dumps(extra_vars(inputs, wheel, wheelhouse_dir=""), indent=1))
    manifest = stage / "manifest.json"
    variables = packer_variables(
        inputs,
        region=region,
        instance_types=instance_types,
        extra_vars_file=variables_file,
        manifest=manifest,
    )
    template = inputs.root / "packer"
    say(f"packer init {template}")
    _run([packer, "init", str(template)], what="packer init")
    command = [packer, "build", "-color=false"]
    for key, value in variables.items():
        command += ["-var", f"{key}={value}"]
    command.append(str(template))
    say(f"packer build (spot build instance in {region}; this takes 10-20 minutes)")
    _run(command, what="packer build")
    return read_manifest(manifest, region), True


def _run(command: list[str], *, what: str) -> None:
    # Packer's own progress goes to the terminal: a bake is long and its log is the feedback.
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise BuildError(f"{what} failed with exit status {result.returncode}")
