#!/usr/bin/env bash
# sops and age/age-keygen for `run.env_file` sops files and their tests, built once from their
# Go modules into ~/.cache/goship/{sops,age}/<version>/bin: minutes from an empty Go cache, a
# no-op when that cache holds them. goship looks for sops on PATH first, then in that cache.
set -euo pipefail
export PATH="$PATH:/usr/local/go/bin"
SOPS_VERSION="v3.13.3"
AGE_VERSION="v1.3.2"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/goship"

build() {  # build DIR PKG@VERSION...
  local dir="$1"; shift
  local want=()
  for pkg in "$@"; do
    local name="${pkg%@*}"; name="${name##*/}"
    [ -x "$dir/bin/$name" ] || want+=("$pkg")
  done
  [ "${#want[@]}" -eq 0 ] && return 0
  mkdir -p "$dir/bin"
  # GOBIN into a temp dir, then rename: an interrupted build never leaves a half binary cached.
  local tmp; tmp="$(mktemp -d "$dir/.build.XXXXXX")"
  for pkg in "${want[@]}"; do
    echo "building $pkg" >&2
    GOBIN="$tmp" CGO_ENABLED=0 go install "$pkg"
  done
  mv "$tmp"/* "$dir/bin/" && rmdir "$tmp"
}

build "$cache/sops/$SOPS_VERSION" "github.com/getsops/sops/v3/cmd/sops@$SOPS_VERSION"
build "$cache/age/$AGE_VERSION" "filippo.io/age/cmd/age@$AGE_VERSION" \
  "filippo.io/age/cmd/age-keygen@$AGE_VERSION"
