#!/usr/bin/env bash
# The Go-built lab components, in the order the test suite meets them: Consul, Kubernetes,
# then sops/age. Each is built once from the Go module proxy and cached under ~/.cache.
# Under scripts/test.sh, each one done is marked in $GOSHIP_COMPONENTS_STATE, so the tests
# that need only it start without waiting for the others (tests/components.py).
set -euo pipefail
cd "$(dirname "$0")/.."
step() {  # step NAME SCRIPT
  bash "scripts/$2"
  if [ -n "${GOSHIP_COMPONENTS_STATE:-}" ]; then : >"$GOSHIP_COMPONENTS_STATE/$1.done"; fi
}
step consul consul.sh
step kubernetes kubernetes.sh
step secrets secrets-tools.sh
