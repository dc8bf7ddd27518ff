#!/bin/sh
# Stands in for `npm run build`: writes build/ from web/ (UI_FLAVOR varies the output).
set -eu
mkdir -p build
{ cat web/index.src.html; echo "<p>flavor ${UI_FLAVOR:-plain}</p>"; } > build/index.html
echo "built build/index.html"
