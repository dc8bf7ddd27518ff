#!/usr/bin/env bash
# The test command (README.md): installs what the tests need, then runs ruff, mypy and pytest.
# Works on a fresh machine; as root it also installs the Debian packages the lab uses.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
bash scripts/packages.sh
bash scripts/install.sh
bash scripts/kubernetes.sh  # the Kubernetes lab's components: built once, then cached
bash scripts/secrets-tools.sh  # sops and age (run.env_file sops files and their tests): built once, then cached
bash scripts/consul.sh  # the Consul lab's binary: built once, then cached

echo "== ruff"; .venv/bin/ruff check src tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
# pytest exits 5 when no test ran: that is a failure here too.
.venv/bin/pytest "$@"
