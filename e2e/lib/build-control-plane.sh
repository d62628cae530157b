#!/usr/bin/env bash
# Builds and caches the control-plane binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, kwokctl) from Go modules only, at one pinned release.
# Idempotent: a complete cache is reused as is. Prints the bin directory on stdout.
# Usage: build-control-plane.sh [--print-bin-dir] [--with-node]
#   --print-bin-dir  prints the path without building
#   --with-node      also builds the node binaries for `cluster.sh up --real-nodes`: kubelet,
#                    kube-proxy, crictl (to stop pod sandboxes through the CRI, so that CNI cleans
#                    up) and pause (the sandbox's process: sleeps until SIGTERM/SIGINT)
# Concurrent runs are serialised with a lock; an interrupted module preparation is redone.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
BIN_DIR="$CACHE_ROOT/k8s-$KUBE_VERSION-kwok-$KWOK_VERSION/bin"
WORK_DIR="$CACHE_ROOT/k8s-$KUBE_VERSION-kwok-$KWOK_VERSION/module"
WANTED=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl)
CRI_TOOLS_VERSION="${CRI_TOOLS_VERSION:-v1.34.0}"
NODE_COMMANDS=(kubelet kube-proxy)
if [ "${1:-}" = "--with-node" ]; then WANTED+=("${NODE_COMMANDS[@]}" crictl pause); fi

complete() {
  local b
  for b in "${WANTED[@]}"; do [ -x "$BIN_DIR/$b" ] || return 1; done
}
if [ "${1:-}" = "--print-bin-dir" ]; then echo "$BIN_DIR"; exit 0; fi
if complete; then echo "$BIN_DIR"; exit 0; fi

mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/.build-control-plane.lock"
flock 9
if complete; then echo "$BIN_DIR"; exit 0; fi  # built by a concurrent run while we waited

command -v go >/dev/null || { echo "build-control-plane: Go is required (https://go.dev/dl)" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
mkdir -p "$BIN_DIR" "$WORK_DIR/cmd/etcd"
cd "$WORK_DIR"
log() { echo "build-control-plane: $*" >&2; }

if [ ! -f .prepared ]; then
  log "preparing module for k8s.io/kubernetes $KUBE_VERSION"
  rm -f go.mod go.sum
  go mod init local/safedeploy-control-plane >&2
  go mod download k8s.io/kubernetes@"$KUBE_VERSION" >&2
  kube_mod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBE_VERSION.mod"
  staging_version="v0.${KUBE_VERSION#v1.}"
  # Every staging module must be pinned to its published tag: the kubernetes go.mod points them at ./staging.
  for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$kube_mod"); do
    go mod edit -replace="$m=$m@$staging_version"
  done
  go mod edit -go="$(sed -n 's/^go //p' "$kube_mod")"
  godebug="$(sed -n 's/^godebug //p' "$kube_mod")"
  [ -z "$godebug" ] || go mod edit -godebug="$godebug"
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' > cmd/etcd/main.go
  go get k8s.io/kubernetes@"$KUBE_VERSION" >&2
  go get go.etcd.io/etcd/server/v3@"$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)" >&2
  # Tool directives keep the commands' dependency graphs in go.mod/go.sum (a plain go get would be tidied away).
  go get -tool k8s.io/kubernetes/cmd/kube-apiserver@"$KUBE_VERSION" k8s.io/kubernetes/cmd/kube-controller-manager@"$KUBE_VERSION" \
    k8s.io/kubernetes/cmd/kube-scheduler@"$KUBE_VERSION" k8s.io/kubernetes/cmd/kubectl@"$KUBE_VERSION" >&2
  touch .prepared
fi
if [ "${1:-}" = "--with-node" ] && [ ! -f .prepared-node ]; then
  log "adding the node commands (kubelet, kube-proxy) to the module"
  go get -tool k8s.io/kubernetes/cmd/kubelet@"$KUBE_VERSION" k8s.io/kubernetes/cmd/kube-proxy@"$KUBE_VERSION" >&2
  touch .prepared-node
fi

minor="$(echo "${KUBE_VERSION#v}" | cut -d. -f2)"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date -X $pkg.gitCommit=module-build"
done
commands=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
if [ "${1:-}" = "--with-node" ]; then commands+=("${NODE_COMMANDS[@]}"); fi
for c in "${commands[@]}"; do
  [ -x "$BIN_DIR/$c" ] && continue
  log "building $c (slow on first use)"
  go build -trimpath -ldflags "$ldflags" -o "$BIN_DIR/$c.tmp" "k8s.io/kubernetes/cmd/$c" >&2
  mv "$BIN_DIR/$c.tmp" "$BIN_DIR/$c"
done
if [ ! -x "$BIN_DIR/etcd" ]; then
  log "building etcd"
  go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd.tmp" ./cmd/etcd >&2
  mv "$BIN_DIR/etcd.tmp" "$BIN_DIR/etcd"
fi
if [ ! -x "$BIN_DIR/kwok" ] || [ ! -x "$BIN_DIR/kwokctl" ]; then
  log "installing kwok $KWOK_VERSION"
  GOBIN="$BIN_DIR" GOFLAGS=-buildvcs=false go install -ldflags "-s -w" \
    sigs.k8s.io/kwok/cmd/kwok@"$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwokctl@"$KWOK_VERSION" >&2
fi
if [ "${1:-}" = "--with-node" ]; then
  if [ ! -x "$BIN_DIR/crictl" ]; then
    log "installing crictl $CRI_TOOLS_VERSION"
    GOBIN="$BIN_DIR" go install -ldflags "-s -w" sigs.k8s.io/cri-tools/cmd/crictl@"$CRI_TOOLS_VERSION" >&2
  fi
  if [ ! -x "$BIN_DIR/pause" ]; then
    log "building pause"
    mkdir -p cmd/pause
    printf 'package main\n\nimport (\n\t"os"\n\t"os/signal"\n\t"syscall"\n)\n\nfunc main() {\n\tsignals := make(chan os.Signal, 1)\n\tsignal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)\n\t<-signals\n}\n' >cmd/pause/main.go
    go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/pause.tmp" ./cmd/pause >&2
    mv "$BIN_DIR/pause.tmp" "$BIN_DIR/pause"
  fi
fi
complete || { log "some binaries are missing from $BIN_DIR"; exit 1; }
echo "$BIN_DIR"
