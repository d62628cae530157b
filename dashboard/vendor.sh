#!/bin/sh
# Copies the pinned uPlot (package-lock.json) into dashboard/vendor/ (committed; the binary
# embeds it next to dashboard/src/, which is served as written: there is no build step):
#   cd dashboard && npm ci && sh vendor.sh
set -eu
cd "$(dirname "$0")"
test -f node_modules/uplot/dist/uPlot.iife.min.js || { echo "run npm ci first" >&2; exit 1; }
mkdir -p vendor
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css vendor/
echo "dashboard/vendor updated:"; ls -l vendor | tail -n +2
