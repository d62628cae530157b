#!/usr/bin/env bash
# Prints the complete set of kwok Stages the test clusters use, as one multi-document YAML:
# kwok's default node stages (node-initialize, node-heartbeat-with-lease) and pod stages
# (pod-complete, pod-delete) from the kwok module, plus e2e/lib/pod-stages.yaml (pod start,
# readiness and the annotation-driven faults). A Stage list handed to kwokctl replaces all of its
# defaults, so they must all be here. Downloads the kwok module (go mod download) if needed.
set -euo pipefail

KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
gomodcache="$(go env GOMODCACHE 2>/dev/null || echo "$HOME/go/pkg/mod")"
module="$gomodcache/sigs.k8s.io/kwok@$KWOK_VERSION"
if [ ! -d "$module/kustomize/stage" ]; then
  command -v go >/dev/null || { echo "stages.sh: Go is needed to fetch sigs.k8s.io/kwok@$KWOK_VERSION" >&2; exit 1; }
  GOFLAGS=-mod=mod go mod download "sigs.k8s.io/kwok@$KWOK_VERSION" >&2
fi
stages="$module/kustomize/stage"
first=true
for f in "$stages/node/fast/node-initialize.yaml" \
  "$stages/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
  "$stages/pod/fast/pod-complete.yaml" "$stages/pod/fast/pod-delete.yaml" \
  "$HERE/pod-stages.yaml"; do
  [ -f "$f" ] || { echo "stages.sh: missing $f" >&2; exit 1; }
  $first || echo "---"
  first=false
  cat "$f"
done
