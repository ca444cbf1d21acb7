#!/bin/sh
# Runs as root on the Packer build instance after ansible/site.yml: installs pytest-testinfra
# into a throw-away venv, checks the image with tests/image (local backend), and removes every
# trace of itself so the snapshot is what the tests saw. Only test_image.py runs here: the other
# modules of tests/image bake and boot the local image and import the checkout.
set -eu
work=/tmp/spotcube-testinfra
trap 'rm -rf "$work" /root/.cache/pip' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --no-cache-dir --constraint "$work/constraints.txt" \
  "pytest-testinfra==$TESTINFRA_VERSION" pytest
cd "$work"
"$work/venv/bin/python" -m pytest -p no:cacheprovider -q image/test_image.py \
  --hosts=local:// --image-constraints="$work/constraints.txt" \
  --image-content-hash="$EXPECTED_CONTENT_HASH"
