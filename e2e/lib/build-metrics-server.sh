#!/usr/bin/env bash
# Builds and caches metrics-server from its Go module (sigs.k8s.io/metrics-server), the
# resource-metrics API (metrics.k8s.io) the kube-controller-manager's HPA controller reads. It
# runs as a host process against the local control plane and scrapes kwok's simulated
# `/metrics/resource` of the fake nodes (see e2e/lib/metrics.sh). Prints the binary's path.
# `--manifests` prints the module's kustomize base (RBAC, Service, APIService), which kwokctl
# would otherwise download from GitHub: it rewrites the Service to reach the host process.
# Usage: build-metrics-server.sh [--print-path|--manifests]
set -euo pipefail

METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.8.0}"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
BIN_DIR="$CACHE_ROOT/metrics-server-$METRICS_SERVER_VERSION/bin"
manifests() { echo "$(GOTOOLCHAIN=local go env GOMODCACHE)/sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION/manifests/base"; }
if [ "${1:-}" = "--manifests" ]; then
  "$0" >/dev/null
  [ -f "$(manifests)/kustomization.yaml" ] ||
    GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download sigs.k8s.io/metrics-server@"$METRICS_SERVER_VERSION" >&2
  manifests
  exit 0
fi
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
