#!/usr/bin/env bash
# Creates .venv with goship installed (editable) and its dev tools. Used by the test
# command and the quickstart; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || {
  echo "error: the Go toolchain is missing (goship builds Go services; the tests build the example): install Go (the version examples/hello-gin/go.mod names, e.g. to /usr/local/go) and put its bin on PATH" >&2
  exit 1
}
PY=""
for c in python3.13 python3.12 python3.11 python3; do
  if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PY=$c; break
  fi
done
[ -n "$PY" ] || { echo "goship needs Python 3.11 or newer" >&2; exit 2; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
# actionlint checks the rendered GitHub Actions workflow (tests); pinned, from the module
# proxy, into the venv.
if [ ! -x .venv/bin/actionlint ]; then
  GOBIN="$PWD/.venv/bin" go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
fi
# Bytecode for goship's own modules, as a wheel install gets: an editable install has none,
# and with PYTHONDONTWRITEBYTECODE every command would compile them again (~0.1 s).
.venv/bin/python -m compileall -q src >/dev/null
