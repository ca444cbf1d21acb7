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
from spotcube.errors import CloudUnreachableError, RefusedError

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
        inputs = BakeInputs.read(root)
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


def _local(args: argparse.Namespace, inputs: BakeInputs, cache_dir: Path, started: float) -> int:
    from spotcube.bake.local import bake_local

    out_dir: Path = args.out or cache_dir / "image"
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
            f"{inputs.image_name}: up to date (content hash {inputs.digest.short}), nothing to "
            f"bake ({elapsed:.1f} s)"
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
    print(f"{ami.image_id} ({ami.region}, {state}, content hash {inputs.digest.short})")
    print(f"use it: {ami.pulumi_config_line()}")
    return 0
