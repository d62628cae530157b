#!/usr/bin/env bash
# Builds and caches Traefik v3 from its Go module, for the data-plane tests (docs/data-plane.md):
# Traefik implements the Gateway API in pure Go and runs as a plain process on 127.0.0.1.
# `go install module@version` refuses Traefik (its go.mod has replace directives), so the module
# is downloaded into the Go module cache and built from there. The dashboard's web assets are not
# built in (the module carries a placeholder; the proxy and its API are unaffected).
# Prints the binary's path.
# Usage: build-traefik.sh [--print-path]
set -euo pipefail

TRAEFIK_MODULE_VERSION="${TRAEFIK_MODULE_VERSION:-v3.6.12}"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
BIN_DIR="$CACHE_ROOT/traefik-$TRAEFIK_MODULE_VERSION/bin"
if [ "${1:-}" = "--print-path" ] || [ -x "$BIN_DIR/traefik" ]; then echo "$BIN_DIR/traefik"; exit 0; fi

mkdir -p "$BIN_DIR"
exec 9>"$CACHE_ROOT/.build-traefik.lock"
flock 9
if [ -x "$BIN_DIR/traefik" ]; then echo "$BIN_DIR/traefik"; exit 0; fi
command -v go >/dev/null || { echo "build-traefik: Go is required" >&2; exit 1; }
echo "build-traefik: building Traefik ($TRAEFIK_MODULE_VERSION) from its Go module (once; a few minutes)" >&2
src="$(cd /tmp && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_MODULE_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -f "$src/cmd/traefik/traefik.go" ] || { echo "build-traefik: no Traefik sources in the module at ${src:-?}" >&2; exit 1; }
started=$SECONDS
(cd "$src" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" \
  go build -trimpath -o "$BIN_DIR/traefik.tmp" \
  -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_MODULE_VERSION" ./cmd/traefik) >&2
mv "$BIN_DIR/traefik.tmp" "$BIN_DIR/traefik"
echo "build-traefik: built in $((SECONDS - started)) s" >&2
echo "$BIN_DIR/traefik"
