#!/usr/bin/env bash
# Builds and caches the Argo Rollouts controller from its Go module, for the side-by-side
# benchmark (e2e/bench-peers.sh), the way the control plane is built: a consumer module that
# copies the upstream go.mod's `replace` directives, then `go build` of cmd/rollouts-controller.
# v1.10.1 is the newest v1.10.x that builds with the machine's Go (v1.10.2 asks for go 1.26.10).
# Prints the binary's path; `--crds` prints the directory of its CRD manifests instead.
# Usage: build-argo-rollouts.sh [--print-path|--crds]
set -euo pipefail

ARGO_ROLLOUTS_VERSION="${ARGO_ROLLOUTS_VERSION:-v1.10.1}"
MODULE=github.com/argoproj/argo-rollouts
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
ROOT="$CACHE_ROOT/argo-rollouts-$ARGO_ROLLOUTS_VERSION"
BIN="$ROOT/bin/rollouts-controller"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
log() { echo "build-argo-rollouts: $*" >&2; }

source_dir() {
  (cd /tmp && GOFLAGS=-mod=mod go mod download -json "$MODULE@$ARGO_ROLLOUTS_VERSION") |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

case "${1:-}" in
  --print-path) echo "$BIN"; exit 0 ;;
  --crds) dir="$(source_dir)"; echo "$dir/manifests/crds"; exit 0 ;;
esac
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
command -v go >/dev/null || { log "Go is required"; exit 1; }
mkdir -p "$ROOT/module" "$ROOT/bin"
exec 9>"$CACHE_ROOT/.build-argo-rollouts.lock"
flock 9
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
cd "$ROOT/module"
if [ ! -f .prepared ]; then
  log "preparing a module for $MODULE $ARGO_ROLLOUTS_VERSION"
  rm -f go.mod go.sum
  go mod init local/safedeploy-argo-rollouts >&2
  go mod download "$MODULE@$ARGO_ROLLOUTS_VERSION" >&2
  upstream="$(go env GOMODCACHE)/cache/download/$MODULE/@v/$ARGO_ROLLOUTS_VERSION.mod"
  go mod edit -go="$(sed -n 's/^go //p' "$upstream")"
  # The replace block: `old => new version` lines, one per module.
  sed -n '/^replace (/,/^)/p' "$upstream" | sed -n 's#^[[:space:]]*\([^ ]*\) => \([^ ]*\) \([^ ]*\)$#\1=\2@\3#p' |
    while read -r r; do go mod edit -replace="$r"; done
  go get -tool "$MODULE/cmd/rollouts-controller@$ARGO_ROLLOUTS_VERSION" >&2
  touch .prepared
fi
log "building rollouts-controller $ARGO_ROLLOUTS_VERSION (once; several minutes)"
go build -ldflags "-s -w" -o "$BIN.tmp" "$MODULE/cmd/rollouts-controller" >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
