#!/usr/bin/env bash
# The main job on the embedded default (this machine, no remote servers), as far as goship
# goes today: install, read the example Gin service, check this machine, show the config
# deploy will use. `goship deploy local` is not built yet (issue #6): this stops there, and
# says so.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
bash scripts/install.sh
G="$PWD/.venv/bin/goship"
cd examples/hello-gin

echo "== goship init --stdout (what goship reads in examples/hello-gin)"
"$G" init --stdout | sed -n '1,20p'
echo "== goship config check"
"$G" config check
echo "== goship doctor local"
"$G" doctor local || echo "(doctor found problems above; each line says how to fix it)"
echo "== goship config show local"
"$G" config show local
echo "== goship deploy local"
set +e
"$G" deploy local
code=$?
set -e
if [ "$code" = 3 ]; then
  echo "quickstart stops here: zero-downtime deploy to this machine lands with issue #6."
  exit 0
fi
exit "$code"
