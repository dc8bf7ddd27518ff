#!/usr/bin/env bash
# The Kubernetes components of `goship lab up --kubernetes` (and its tests), built once from
# the Go module proxy into ~/.cache/goship/kubernetes/<version>/, and its metrics-server
# into ~/.cache/goship/metrics-server/<version>/: minutes from an empty Go cache, a no-op
# when the cache holds them. Needs Go and .venv (scripts/install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
.venv/bin/python -m goship.lab.kube_build
.venv/bin/python -m goship.lab.metrics_build
