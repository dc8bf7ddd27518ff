#!/usr/bin/env bash
# The test command (README.md): installs what the tests need, then runs ruff, mypy and pytest.
# Works on a fresh machine; as root it also installs the Debian packages the lab uses.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

# Debian packages: the lab boots hosts from this machine's own root, so sshd, systemd and
# nginx (with its Lua module, for switches and canaries without reload) must be installed
# here, not running here. docker.io: the image tests start their own dockerd (nothing is
# pulled). wrk: the steady load of the zero-downtime tests.
PKGS=(nginx openssh-server openssh-client systemd iproute2 iptables util-linux procps
      curl git sudo docker.io libnginx-mod-http-lua wrk)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
else
  echo "not root: the lab tests will be skipped (they need root)"
fi

# Python >= 3.11 in a venv of its own, with the package and its dev tools.
bash scripts/install.sh

echo "== ruff"; .venv/bin/ruff check src tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
# pytest exits 5 when no test ran: that is a failure here too.
.venv/bin/pytest "$@"
