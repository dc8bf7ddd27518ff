#!/bin/sh
# The front-end "build": a real project runs npm here; this one only needs sh and sed.
set -eu
cd "$(dirname "$0")"
mkdir -p web/dist
sed "s/@BUILT@/$(date -u +%Y-%m-%dT%H:%M:%SZ)/" web/src/index.html > web/dist/index.html
