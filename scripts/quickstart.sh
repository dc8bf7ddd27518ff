#!/usr/bin/env bash
# The main job on the embedded default: deploy examples/hello-gin to this machine behind
# nginx, with no remote server. Then ship a new version the same way, to show the
# zero-downtime switch. Run from anywhere; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
if ! command -v nginx >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx libnginx-mod-http-lua curl >/dev/null
fi
bash scripts/install.sh
G="$PWD/.venv/bin/goship"

# The example as a project of its own: a git repository with a tagged release, the way
# a user's service is.
work=.goship/quickstart/hello-gin
rm -rf "$work"
mkdir -p "$(dirname "$work")"
cp -r examples/hello-gin "$work"
rm -rf "$work/dist"
cd "$work"
export GIT_AUTHOR_NAME=goship GIT_AUTHOR_EMAIL=quickstart@goship.invalid
export GIT_COMMITTER_NAME=goship GIT_COMMITTER_EMAIL=quickstart@goship.invalid
git init -q && git add -A && git commit -qm "hello-gin v1.0.0" && git tag v1.0.0

echo "== goship doctor local"
"$G" doctor local
echo "== goship deploy local"
"$G" deploy local
curl -fsS http://127.0.0.1:8800/version; echo

echo "== a new version: goship deploy local again"
sed -i 's|<h1>hello-gin|<h1>hello-gin (new!)|' templates/index.tmpl
git commit -qam "hello-gin v1.1.0" && git tag v1.1.0
"$G" deploy local
curl -fsS http://127.0.0.1:8800/version; echo
echo "== goship status local"
"$G" status local
echo "open http://127.0.0.1:8800/ ; goship rollback local (in $work) goes back"
