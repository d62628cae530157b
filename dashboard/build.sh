#!/bin/sh
# Rebuilds dashboard/dist/ (committed; the binary embeds it) from src/ and the pinned uPlot:
#   cd dashboard && npm ci && sh build.sh
# Only copies: no bundler, so the output is byte-for-byte the sources and uPlot's own dist.
set -eu
cd "$(dirname "$0")"
test -f node_modules/uplot/dist/uPlot.iife.min.js || { echo "run npm ci first" >&2; exit 1; }
rm -rf dist
mkdir -p dist
cp src/index.html src/app.js src/plots.js src/style.css dist/
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css dist/
echo "dashboard/dist rebuilt:"; ls -l dist | tail -n +2
