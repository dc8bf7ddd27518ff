#!/usr/bin/env bash
# The Go-built lab components, in the order the test suite meets them: Consul, Kubernetes,
# then sops/age. Each is built once from the Go module proxy and cached under ~/.cache.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/consul.sh
bash scripts/kubernetes.sh
bash scripts/secrets-tools.sh
