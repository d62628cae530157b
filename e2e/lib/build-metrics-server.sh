#!/usr/bin/env bash
# Builds and caches metrics-server from its Go module (sigs.k8s.io/metrics-server), the
# resource-metrics API (metrics.k8s.io) the kube-controller-manager's HPA controller reads. It
# runs as a host process against the local control plane and scrapes kwok's simulated
# `/metrics/resource` of the fake nodes (see e2e/lib/metrics.sh). Prints the binary's path.
# Usage: build-metrics-server.sh [--print-path]
set -euo pipefail

METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.8.0}"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
BIN_DIR="$CACHE_ROOT/metrics-server-$METRICS_SERVER_VERSION/bin"
if [ "${1:-}" = "--print-path" ] || [ -x "$BIN_DIR/metrics-server" ]; then echo "$BIN_DIR/metrics-server"; exit 0; fi

mkdir -p "$BIN_DIR"
exec 9>"$CACHE_ROOT/.build-metrics-server.lock"
flock 9
if [ -x "$BIN_DIR/metrics-server" ]; then echo "$BIN_DIR/metrics-server"; exit 0; fi
command -v go >/dev/null || { echo "build-metrics-server: Go is required" >&2; exit 1; }
echo "build-metrics-server: building metrics-server ($METRICS_SERVER_VERSION) from its Go module (once; a few minutes)" >&2
GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN="$BIN_DIR" \
  go install -ldflags "-s -w" sigs.k8s.io/metrics-server/cmd/metrics-server@"$METRICS_SERVER_VERSION" >&2
echo "$BIN_DIR/metrics-server"
