"""``spotcube bake``: build the payload image, only when something that goes into it changed.

``--target local`` bakes a Debian 12 rootfs here (root, mmdebstrap); ``--target aws`` finds the
AMI tagged with the content hash in the region, or bakes it with Packer on a spot instance.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from spotcube.bake.artifacts import BuildError
from spotcube.bake.provenance import BakeInputs, repo_root
from spotcube.bake.variant import DEFAULT_VARIANT, ImageVariant
from spotcube.errors import CloudUnreachableError, RefusedError, UsageError

# Relative to the checkout; .cache/ is gitignored.
DEFAULT_CACHE = Path(".cache/spotcube")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bake",
        help="build the payload image (AMI or local rootfs) if its inputs changed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--target",
        choices=("local", "aws"),
        default="local",
        help="local: Debian 12 rootfs + tarball here; aws: AMI via Packer (default: local)",
    )
    parser.add_argument(
        "--image-config",
        type=Path,
        metavar="FILE",
        help="bake a variant: the payload plus the toolchains, packages and roles FILE lists "
        "(see images/radio-tools.yaml); its name is tagged on the AMI and the local image",
    )
    parser.add_argument(
        "--lint",
        action="store_true",
        help="lint the roles --image-config FILE names under roles: (ansible-lint, production "
        "profile, as make lint does the project's) and exit; nothing is baked",
    )
    parser.add_argument("--force", action="store_true", help="bake even if the hash is current")
    parser.add_argument("--print-hash", action="store_true", help="print the content hash and exit")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="base tarball, wheelhouse and build staging (default: <checkout>/.cache/spotcube)",
    )
    local = parser.add_argument_group("--target local")
    local.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="image directory: rootfs/, image.tar.zst, metadata.json (default: <cache>/image)",
    )
    local.add_argument(
        "--check-idempotence",
        action="store_true",
        help="run the playbook a second time and fail unless it changes nothing",
    )
    aws = parser.add_argument_group("--target aws")
    aws.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    aws.add_argument(
        "--instance-types",
        metavar="LIST",
        help="comma-separated spot instance types for the build instance",
    )
    aws.add_argument("--packer", default="packer", help="Packer executable (>= 1.10)")
    aws.add_argument(
        "--endpoint-url", metavar="URL", help="EC2 endpoint override (the local cloud in tests)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        root = repo_root()
        variant = ImageVariant.load(args.image_config) if args.image_config else None
    except (OSError, ValueError) as exc:  # the file given on the command line is wrong
        raise UsageError(f"--image-config: {exc}") from None
    if args.lint:
        if variant is None:
            raise UsageError(
                "--lint checks a variant's own roles: give --image-config FILE "
                "(the project's roles: make lint)"
            )
        return _lint(variant)
    try:
        inputs = BakeInputs.read(root, variant)
    except (OSError, ValueError) as exc:
        raise RefusedError(str(exc)) from None
    if args.print_hash:
        print(inputs.digest.hexdigest)
        return 0
    cache_dir: Path = args.cache_dir or root / DEFAULT_CACHE
    try:
        if args.target == "local":
            return _local(args, inputs, cache_dir, started)
        return _aws(args, inputs, cache_dir)
    except BuildError as exc:
        raise RefusedError(str(exc)) from None


def _lint(variant: ImageVariant) -> int:
    from spotcube.bake.rolelint import PROFILE, LintUnavailableError, lint_variant_roles

    try:
        results = lint_variant_roles(variant)
    except LintUnavailableError as exc:
        raise RefusedError(f"--lint: {exc}") from None
    if not results:
        print(f"{variant.path}: no roles of its own to lint (roles: is empty)")
        return 0
    failed = [r for r in results if r.failed]
    for result in results:
        print(f"{result.role}: {'problems' if result.failed else 'clean'}")
        for finding in result.findings:
            print(f"  {finding}")
    if failed:
        problems = sum(len(r.findings) for r in failed)
        names = ", ".join(r.role.name for r in failed)
        raise RefusedError(
            f"--lint: ansible-lint ({PROFILE} profile) found {problems} problem(s) in role(s) "
            f"{names} that {variant.path} names under roles:; fix them as listed above"
        )
    return 0


def _local(args: argparse.Namespace, inputs: BakeInputs, cache_dir: Path, started: float) -> int:
    from spotcube.bake.local import bake_local

    # Each variant keeps its own image directory, so baking one never discards another.
    suffix = "" if inputs.variant_name == DEFAULT_VARIANT else f"-{inputs.variant_name}"
    out_dir: Path = args.out or cache_dir / f"image{suffix}"
    image, built = bake_local(
        inputs,
        out_dir=out_dir,
        cache_dir=cache_dir,
        force=args.force,
        check_idempotence=args.check_idempotence,
    )
    elapsed = time.monotonic() - started
    if not built:
        print(
            f"{inputs.image_name} ({inputs.variant_name}): up to date (content hash "
            f"{inputs.digest.short}), nothing to bake ({elapsed:.1f} s)"
        )
    else:
        print(f"{inputs.image_name}: baked in {elapsed:.0f} s")
    print(f"rootfs:   {image.rootfs}")
    print(f"tarball:  {image.tarball}")
    print(f"metadata: {image.metadata_path}")
    return 0


def _aws(args: argparse.Namespace, inputs: BakeInputs, cache_dir: Path) -> int:
    import boto3

    from spotcube.bake.aws import DEFAULT_INSTANCE_TYPES, bake_aws

    session = boto3.session.Session(region_name=args.region)
    if not session.region_name:
        raise CloudUnreachableError("no AWS region: pass --region or set AWS_REGION")
    ec2 = session.client("ec2", endpoint_url=args.endpoint_url)
    types = [t.strip() for t in (args.instance_types or "").split(",") if t.strip()]
    ami, built = bake_aws(
        inputs,
        ec2=ec2,
        instance_types=types or list(DEFAULT_INSTANCE_TYPES),
        cache_dir=cache_dir,
        packer=args.packer,
        force=args.force,
    )
    state = "baked" if built else "exists"
    print(
        f"{ami.image_id} ({ami.region}, {state}, variant {inputs.variant_name}, "
        f"content hash {inputs.digest.short})"
    )
    print(f"use it: {ami.pulumi_config_line()}")
    return 0
