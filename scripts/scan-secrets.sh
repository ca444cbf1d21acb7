#!/usr/bin/env bash
# Scan every tracked file of the git repository in the current directory for secrets
# (AWS key pairs, private keys, tokens). Exits non-zero and prints file:line for each find.
# The same scanner runs as a pre-commit hook (.pre-commit-config.yaml).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The repository's venv carries the pinned detect-secrets; prefer it when it exists.
[[ -x "$here/../.venv/bin/detect-secrets-hook" ]] && PATH="$here/../.venv/bin:$PATH"
git rev-parse --is-inside-work-tree >/dev/null
mapfile -d '' files < <(git ls-files -z)
[[ ${#files[@]} -eq 0 ]] && { echo "secret scan: no tracked files"; exit 0; }
# The stored-record fixtures are documents the workers wrote, full of SHA-256 digests (of
# inputs, products and code), which the hex-entropy detector takes for secrets; there, and
# only there, that one detector is off. Every other detector, the AWS one included, scans them.
digests='^tests/report/fixtures/records/'
plain=() records=()
for f in "${files[@]}"; do
  if [[ $f =~ $digests ]]; then records+=("$f"); else plain+=("$f"); fi
done
scan() { detect-secrets-hook --plugin "$here/secret_detectors/aws_credentials.py" "$@"; }
if scan "${plain[@]}" &&
   { [[ ${#records[@]} -eq 0 ]] || scan --disable-plugin HexHighEntropyString "${records[@]}"; }; then
  echo "secret scan: ${#files[@]} tracked files, no secrets found"
else
  echo "secret scan: FAILED - remove the secret(s) above from git (rotate any real key)," >&2
  echo "or mark a proven false positive with '# pragma: allowlist secret'." >&2
  exit 1
fi
