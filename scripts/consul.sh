#!/usr/bin/env bash
# The Consul binary of `goship lab up --consul` (and its tests), built once from the Go
# module proxy into ~/.cache/goship/consul/<version>/: minutes from an empty Go cache, a
# no-op when that cache holds it. Needs Go and .venv (scripts/install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
.venv/bin/python -m goship.lab.consul_build
