#!/usr/bin/env bash
# Install the Debian packages that some parts of spotcube need. Runs apt only as root and
# only for the parts named; without root it says what to install and exits 0, and the tests
# that need the missing tools skip with the same advice.
#
#   image    mmdebstrap, podman, runc, fuse-overlayfs  (local image bake, testinfra, boot test)
#   packer   packer                                     (packer fmt / validate of packer/)
#   wsclean  wsclean                                    (imaging benchmark peer)
#   radio-tools  wsclean aoflagger casacore-tools casacore-data make  (examples/mwa-pipeline and its tests;
#                DP3.py comes from pip: .venv/bin/pip install -c constraints.txt -e '.[pipelines]')
set -euo pipefail

declare -A PACKAGES=(
  [image]="mmdebstrap podman runc fuse-overlayfs"
  [packer]="packer"
  [wsclean]="wsclean"
  [radio-tools]="wsclean aoflagger casacore-tools casacore-data make"
)
declare -A COMMANDS=(
  [image]="mmdebstrap podman runc"
  [packer]="packer"
  [wsclean]="wsclean"
  [radio-tools]="wsclean aoflagger taql make"
)
# Packages with no command to look for (data): checked with dpkg.
declare -A DATA_PACKAGES=(
  [radio-tools]="casacore-data"
)

wanted=()
for part in "$@"; do
  [[ -n "${PACKAGES[$part]:-}" ]] || { echo "system-deps: unknown part '$part' (image, packer, wsclean, radio-tools)" >&2; exit 2; }
  missing=0
  for cmd in ${COMMANDS[$part]}; do
    command -v "$cmd" >/dev/null || { missing=1; break; }
  done
  for pkg in ${DATA_PACKAGES[$part]:-}; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing=1
  done
  [[ $missing -eq 0 ]] || wanted+=(${PACKAGES[$part]})
done
[[ ${#wanted[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "system-deps: not root; tests needing these will skip. To enable them run:"
  echo "  sudo apt-get update && sudo apt-get install -y ${wanted[*]}"
  exit 0
fi
echo "system-deps: installing ${wanted[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null
