#!/usr/bin/env bash
# Builds and caches the kind CLI from its Go module (sigs.k8s.io/kind), for e2e/kind/run.sh on
# machines without a kind release binary or without access to GitHub releases. Prints the path.
# Usage: kind-build.sh [--print-path]
set -euo pipefail

KIND_VERSION="${KIND_VERSION:-v0.33.0}"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
BIN_DIR="$CACHE_ROOT/kind-$KIND_VERSION/bin"
if [ "${1:-}" = "--print-path" ] || [ -x "$BIN_DIR/kind" ]; then echo "$BIN_DIR/kind"; exit 0; fi

mkdir -p "$BIN_DIR"
exec 9>"$CACHE_ROOT/.build-kind.lock"
flock 9
if [ -x "$BIN_DIR/kind" ]; then echo "$BIN_DIR/kind"; exit 0; fi
command -v go >/dev/null || { echo "kind-build: Go is required" >&2; exit 1; }
echo "kind-build: building kind ($KIND_VERSION) from its Go module (once)" >&2
GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN="$BIN_DIR" \
  go install -ldflags "-s -w" sigs.k8s.io/kind@"$KIND_VERSION" >&2
echo "$BIN_DIR/kind"
