#!/usr/bin/env bash
# Builds and caches kubeadm at the control plane's Kubernetes version, from a copy of the
# control plane's Go module (e2e/lib/build-control-plane.sh; the shared module is not edited).
# kind's node image runs `kubeadm init` and needs kubeadm next to kubelet and kubectl.
# Prints the binary's path.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
SHARED_MODULE="$CACHE_ROOT/k8s-$KUBE_VERSION-kwok-$KWOK_VERSION/module"
WORK_DIR="$CACHE_ROOT/kind-$KIND_VERSION/k8s-$KUBE_VERSION-module"
BIN="$CACHE_ROOT/kind-$KIND_VERSION/k8s-$KUBE_VERSION/kubeadm"
[ -x "$BIN" ] && { echo "$BIN"; exit 0; }
[ -f "$SHARED_MODULE/go.mod" ] || {
  echo "kind-kubeadm: $SHARED_MODULE is missing: run e2e/lib/build-control-plane.sh --with-node first" >&2
  exit 1
}
mkdir -p "$WORK_DIR" "$(dirname "$BIN")"
cp "$SHARED_MODULE/go.mod" "$SHARED_MODULE/go.sum" "$WORK_DIR/"
cd "$WORK_DIR"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
echo "kind-kubeadm: building kubeadm $KUBE_VERSION" >&2
go get -tool k8s.io/kubernetes/cmd/kubeadm@"$KUBE_VERSION" >&2
minor="$(echo "${KUBE_VERSION#v}" | cut -d. -f2)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ) -X $pkg.gitCommit=module-build"
done
go build -trimpath -ldflags "$ldflags" -o "$BIN.tmp" k8s.io/kubernetes/cmd/kubeadm >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
