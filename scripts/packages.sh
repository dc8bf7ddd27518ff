#!/usr/bin/env bash
# Debian packages the tests and benchmarks use. As root: installs what is missing.
# The lab boots hosts from this machine's own root, so sshd, systemd and nginx (with its
# Lua module, for switches and canaries without reload) must be installed here, not
# running here. docker.io: the image tests start their own dockerd (nothing is pulled).
# wrk: the steady load of the zero-downtime tests. The checks of `goship render`:
# prometheus (promtool), rsyslog and logrotate, openssl (throwaway TLS certificates),
# busybox-static (the shell of the stand-in builder image of the Dockerfile test).
# prometheus-node-exporter: lab hosts are copies of this machine, and most monitored
# servers run it on 9100, a port a Gin service's default scheme can want (the port
# preflight's real neighbour). gcc, libc6-dev: cgo builds (SQLite services).
set -euo pipefail
PKGS=(nginx libnginx-mod-http-lua openssh-server openssh-client systemd iproute2 iptables
      util-linux procps curl git sudo docker.io wrk prometheus rsyslog logrotate openssl
      busybox-static prometheus-node-exporter gcc libc6-dev)
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
