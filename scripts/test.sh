#!/usr/bin/env bash
# The test command (README.md): installs what the tests need, then runs ruff, mypy and pytest.
# Works on a fresh machine; as root it also installs the Debian packages the lab uses.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
bash scripts/packages.sh
bash scripts/install.sh
# Consul, the Kubernetes components and sops/age build from their Go modules (minutes from an
# empty Go cache, nothing once cached): in the background at idle CPU and I/O priority, while ruff,
# mypy and the tests that do not need them run; a test marked `components` waits for them
# (tests/components.py) and fails with the build's log if it failed.
state="$(mktemp -d)"
export GOSHIP_COMPONENTS_STATE="$state"
setsid bash -c 'chrt --idle 0 ionice -c3 bash scripts/components.sh >"$1/log" 2>&1; echo $? >"$1/status.part"
                mv "$1/status.part" "$1/status"' components "$state" &
builder=$!
# A run that ends (or is interrupted) takes the build with it; Go's cache keeps its progress.
trap 'kill -- -"$builder" 2>/dev/null || true' EXIT

echo "== ruff"; .venv/bin/ruff check src tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
# pytest exits 5 when no test ran: that is a failure here too.
.venv/bin/pytest "$@"
