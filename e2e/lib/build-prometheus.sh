#!/usr/bin/env bash
# Builds and caches Prometheus from its Go module, for the real-node tier: Debian's package is
# built without Kubernetes service discovery (`kubernetes_sd_configs` is "not found" there), and
# the real tier's Prometheus finds the pods through it. The web UI's assets are not built in
# (the HTTP API, which the tests and the operator use, is). Prints the binary's path.
# Usage: build-prometheus.sh [--print-path]
set -euo pipefail

PROMETHEUS_MODULE_VERSION="${PROMETHEUS_MODULE_VERSION:-v0.316.0}"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
BIN_DIR="$CACHE_ROOT/prometheus-$PROMETHEUS_MODULE_VERSION/bin"
if [ "${1:-}" = "--print-path" ] || [ -x "$BIN_DIR/prometheus" ]; then echo "$BIN_DIR/prometheus"; exit 0; fi

mkdir -p "$BIN_DIR"
exec 9>"$CACHE_ROOT/.build-prometheus.lock"
flock 9
if [ -x "$BIN_DIR/prometheus" ]; then echo "$BIN_DIR/prometheus"; exit 0; fi
command -v go >/dev/null || { echo "build-prometheus: Go is required" >&2; exit 1; }
echo "build-prometheus: building Prometheus ($PROMETHEUS_MODULE_VERSION) from its Go module (once; a few minutes)" >&2
GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN="$BIN_DIR" \
  go install -ldflags "-s -w" github.com/prometheus/prometheus/cmd/prometheus@"$PROMETHEUS_MODULE_VERSION" >&2
echo "$BIN_DIR/prometheus"
