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
# haproxy, caddy: the proxies bench/ compares goship's nginx config with; their own
# services are disabled (lab hosts boot this root, and Caddy's default site takes :80).
# redis-server: canary.state = "redis" (tests start their own on a lab host; the lab masks
# the packaged service). Debian has no lua-resty-redis: nginx speaks RESP itself.
# upx is not in Debian bookworm (upx-ucl was dropped), so its test is an allowed skip
# (README.md, Tests); where Debian has it, it is installed and the test runs.
# etcd-server, containerd, runc, containernetworking-plugins: `goship lab up --kubernetes`
# (etcd on h1; containerd, runc and the CNI plugins on every node). Debian enables etcd on
# install: disabled here, lab hosts mask it, `up --kubernetes` runs it on h1 only.
# Fails, naming what is missing, when it cannot install (not root, or no apt-get).
set -euo pipefail
PKGS=(nginx libnginx-mod-http-lua openssh-server openssh-client systemd iproute2 iptables
      util-linux procps curl git sudo docker.io wrk prometheus rsyslog logrotate openssl
      busybox-static prometheus-node-exporter gcc libc6-dev haproxy caddy redis-server
      etcd-server containerd runc containernetworking-plugins)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
upx=()
if ! command -v upx >/dev/null && command -v apt-cache >/dev/null; then
  for p in upx-ucl upx; do
    if apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then upx=("$p"); break; fi
  done
fi
if [ ${#missing[@]} -gt 0 ] || [ ${#upx[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "error: missing Debian packages: ${missing[*]}; run as root on Debian (apt-get) or install them" >&2
    exit 1
  fi
  echo "installing: ${missing[*]} ${upx[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" "${upx[@]}" >/dev/null
  for s in haproxy caddy redis-server etcd-server; do
    if [[ " ${missing[*]} " == *" $s "* ]]; then
      # the unit is the package's name, or without -server (etcd)
      systemctl disable --now "$s" >/dev/null 2>&1 || true
      systemctl disable --now "${s%-server}" >/dev/null 2>&1 || true
    fi
  done
fi
