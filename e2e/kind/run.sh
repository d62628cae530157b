#!/usr/bin/env bash
# The integration suite (a subset by default) against a kind cluster, on a machine without a
# container registry: every image is built here (docs/kind.md has the log of how, and why).
#
#   1. dockerd: $DOCKER_HOST if it answers, else a private one (e2e/lib/kind-docker.sh: own data
#      root and socket, no iptables rules, the runtime wrapper for the missing CAP_SYS_RESOURCE);
#      a privileged container must start, or the run stops there (kind's nodes are privileged);
#   2. kind from its Go module (e2e/lib/kind-build.sh) if `kind` is not on PATH;
#   3. the node image, unless KIND_NODE_IMAGE names one: a Debian rootfs (mmdebstrap), the
#      component images and a release tarball from the control plane's binaries
#      (e2e/lib/kind-images.sh), kind's base image from that rootfs (e2e/lib/kind-base-image.sh),
#      then `kind build node-image --type file` on them;
#   4. `kind create cluster` (one node; bridge CNI instead of kindnetd; failCgroupV1: false on a
#      cgroup v1 host);
#   5. kwok in the cluster with the project's Stages (3 fake nodes, annotation-driven faults;
#      the real node is cordoned), the operator's image (e2e/image.sh's tar) loaded and the
#      operator installed by its Helm chart (or e2e/kind/operator.yaml without helm);
#   6. Prometheus and the emitter on this host (cluster.sh's own instance "kind-e2e", other
#      ports than the shared cluster's), then `cargo test` of KIND_TESTS (default: smoke, rollout).
#
# Environment: KIND_CLUSTER_NAME (safedeploy-kind), KIND_NODE_IMAGE, KIND_TESTS (cargo test
# arguments before `--`, e.g. "--test smoke --test rollout"; "all" for everything),
# KIND_KEEP=1 (keep the cluster and the private dockerd afterwards; `e2e/kind/run.sh down`
# removes them), CARGO_TARGET_DIR.
# Usage: e2e/kind/run.sh [down]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NAME="${KIND_CLUSTER_NAME:-safedeploy-kind}"
KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
NODE_IMAGE="${KIND_NODE_IMAGE:-safedeploy.local/kind-node:$KUBE_VERSION}"
OPERATOR_IMAGE="registry.local/safedeploy:dev"
KIND_TESTS="${KIND_TESTS:---test smoke --test rollout}"
export SAFEDEPLOY_CLUSTER_NAME=kind-e2e SAFEDEPLOY_PROMETHEUS_PORT="${SAFEDEPLOY_PROMETHEUS_PORT:-29090}"
export SAFEDEPLOY_EMITTER_PORT="${SAFEDEPLOY_EMITTER_PORT:-29464}"
cd "$REPO"
log() { echo "kind/run.sh: [$(date -u +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }
step_start=$SECONDS
step() { log "step done in $((SECONDS - step_start)) s"; step_start=$SECONDS; log "== $*"; }
export KUBECONFIG="$CACHE_ROOT/kind-$KIND_VERSION/$NAME.kubeconfig"

private_docker=false
use_docker() {
  if [ -n "${DOCKER_HOST:-}" ] && docker info >/dev/null 2>&1; then return; fi
  if [ -z "${DOCKER_HOST:-}" ] && docker info >/dev/null 2>&1; then return; fi
  eval "$(e2e/lib/kind-docker.sh up)"
  private_docker=true
}

kind_bin() { if command -v kind >/dev/null; then command -v kind; else e2e/lib/kind-build.sh; fi; }

if [ "${1:-}" = down ]; then
  eval "$(e2e/lib/kind-docker.sh env)"
  if docker info >/dev/null 2>&1; then "$(kind_bin)" delete cluster --name "$NAME" || true; fi
  e2e/cluster.sh down --only-prometheus || true
  e2e/lib/kind-docker.sh down
  exit 0
fi

for tool in docker go jq kubectl cargo curl; do
  command -v "$tool" >/dev/null || die "$tool is required"
done

cleanup() {
  local rc=$?
  [ -z "${kwok_pid:-}" ] || kill "$kwok_pid" 2>/dev/null || true
  if [ "${KIND_KEEP:-0}" = 1 ]; then
    log "kept: the cluster $NAME (KUBECONFIG=$KUBECONFIG) and Prometheus; remove with: e2e/kind/run.sh down"
  else
    e2e/cluster.sh down --only-prometheus >/dev/null 2>&1 || true
    if [ "${created_cluster:-false}" = true ]; then "$KIND" delete cluster --name "$NAME" >&2 || true; fi
    if [ "$private_docker" = true ]; then e2e/lib/kind-docker.sh down || true; fi
  fi
  exit $rc
}
trap cleanup EXIT

log "== 1. dockerd"
use_docker
log "docker: $(docker version --format '{{.Server.Version}}') at ${DOCKER_HOST:-the default socket}"

step "2. kind"
KIND="$(kind_bin)"
log "kind: $("$KIND" version)"

step "3. node image $NODE_IMAGE"
if ! docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
  [ -z "${KIND_NODE_IMAGE:-}" ] || die "KIND_NODE_IMAGE=$KIND_NODE_IMAGE is not in this dockerd (and no registry is assumed)"
  rootfs="$(e2e/lib/kind-base-image.sh rootfs)"
  tarball="$(e2e/lib/kind-images.sh "$rootfs")"
  preload="$(dirname "$tarball")/preload/images.tar"
  base="$(e2e/lib/kind-base-image.sh image "$preload")"
  "$KIND" build node-image --type file --base-image "$base" --image "$NODE_IMAGE" "$tarball"
fi
# The privileged probe: kind's node containers are privileged. Without the runtime wrapper this
# fails here with "unable to apply caps: operation not permitted" (no CAP_SYS_RESOURCE).
docker run --rm --privileged --entrypoint /bin/true "$NODE_IMAGE" ||
  die "a privileged container does not start in this dockerd: kind cannot run here (docs/kind.md, step 3)"

step "4. kind create cluster $NAME"
config="$(mktemp)"
{
  echo "kind: Cluster"
  echo "apiVersion: kind.x-k8s.io/v1alpha4"
  echo "networking: {disableDefaultCNI: true}"
  if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
    # Kubernetes 1.35+ refuses cgroup v1 unless told otherwise; kind's entrypoint handles v1 mounts.
    cat <<'PATCH'
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  failCgroupV1: false
PATCH
  fi
} >"$config"
if ! "$KIND" get clusters 2>/dev/null | grep -x "$NAME" >/dev/null; then
  created_cluster=true
  "$KIND" create cluster --name "$NAME" --image "$NODE_IMAGE" --config "$config" --wait 240s --retain ||
    { "$KIND" export logs "$CACHE_ROOT/kind-$KIND_VERSION/logs-$NAME" --name "$NAME" >&2 || true
      die "kind create cluster failed (node logs in $CACHE_ROOT/kind-$KIND_VERSION/logs-$NAME)"; }
fi
rm -f "$config"
mkdir -p "$(dirname "$KUBECONFIG")"
"$KIND" get kubeconfig --name "$NAME" >"$KUBECONFIG"
# kind's add-ons whose images are stand-ins here (e2e/lib/kind-images.sh): no cluster DNS and no
# local-path storage in this cluster; nothing below needs them.
kubectl -n kube-system scale deployment coredns --replicas 0 >&2
kubectl -n local-path-storage scale deployment local-path-provisioner --replicas 0 >&2
kubectl get nodes -o wide >&2

step "5. kwok, the operator's image and the operator"
bin_dir="$(e2e/lib/build-control-plane.sh --with-node)"
kwok_image="registry.k8s.io/kwok/kwok:$KWOK_VERSION"
if ! docker image inspect "$kwok_image" >/dev/null 2>&1; then
  dir="$(mktemp -d)"
  mkdir -p "$dir/usr/local/bin" "$dir/tmp"
  cp "$bin_dir/kwok" "$dir/usr/local/bin/kwok"
  tar -C "$dir" -c . | docker import --change 'ENTRYPOINT ["/usr/local/bin/kwok"]' - "$kwok_image" >/dev/null
  rm -rf "$dir"
fi
"$KIND" load docker-image "$kwok_image" --name "$NAME"
e2e/lib/stages.sh >/dev/null # fetches the kwok module if needed
kwok_module="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION"
kubectl apply -k "$kwok_module/kustomize/kwok" >&2
kubectl -n kube-system set image deployment/kwok-controller "kwok-controller=$kwok_image" >&2
kubectl -n kube-system rollout status deployment/kwok-controller --timeout 180s >&2
e2e/lib/stages.sh | kubectl apply -f - >&2

operator_tar="$CACHE_ROOT/images/safedeploy.tar"
[ -s "$operator_tar" ] || e2e/image.sh
if ! docker image inspect "$OPERATOR_IMAGE" >/dev/null 2>&1; then
  # e2e/image.sh writes an OCI layout; this dockerd (20.10) loads only docker archives, so the
  # one-layer rootfs is imported with the image's own user, entrypoint and command.
  dir="$(mktemp -d)"
  mkdir -p "$dir/layout"
  tar -C "$dir/layout" -xf "$operator_tar"
  umoci unpack --image "$dir/layout:${OPERATOR_IMAGE##*:}" "$dir/bundle" >&2
  user="$(jq -r '.process.user | "\(.uid):\(.gid)"' "$dir/bundle/config.json")"
  entry="$(jq -c '.process.args[:1]' "$dir/bundle/config.json")"
  args="$(jq -c '.process.args[1:]' "$dir/bundle/config.json")"
  tar -C "$dir/bundle/rootfs" -c . | docker import --change "USER $user" --change "ENTRYPOINT $entry" \
    --change "CMD $args" - "$OPERATOR_IMAGE" >/dev/null
  rm -rf "$dir"
fi
"$KIND" load docker-image "$OPERATOR_IMAGE" --name "$NAME"
# The in-cluster operator only watches its own namespace: the tests start their own
# `safedeploy controller --namespace <test namespace>` processes, and a cluster-wide operator
# would act on their SafeDeployments too. It proves the image, the chart (CRDs, RBAC, probes,
# read-only root file system) and the CRDs on a real kubelet.
if command -v helm >/dev/null; then
  helm upgrade --install safedeploy charts/safedeploy -n safedeploy-system --create-namespace \
    --set image.repository="${OPERATOR_IMAGE%:*}" --set image.tag="${OPERATOR_IMAGE##*:}" \
    --set image.pullPolicy=Never --set watchNamespace=safedeploy-system \
    --set replicaCount=2 --set nodeSelector."kubernetes\.io/hostname"="$NAME-control-plane" \
    --wait --timeout 240s >&2
else
  docker run --rm --entrypoint /usr/local/bin/safedeploy "$OPERATOR_IMAGE" crds | kubectl apply --server-side -f - >&2
  sed "s|image: IMAGE|image: $OPERATOR_IMAGE|" e2e/kind/operator.yaml | kubectl apply -f - >&2
fi
kubectl -n safedeploy-system wait --for=condition=Available deployment --all --timeout 240s >&2
kubectl -n safedeploy-system get pods -o wide >&2
if command -v helm >/dev/null; then
  # Two replicas: leader election through a Lease, one holder.
  holder=""
  for _ in $(seq 60); do
    holder="$(kubectl -n safedeploy-system get lease safedeploy -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)"
    [ -z "$holder" ] || break
    sleep 1
  done
  [ -n "$holder" ] || die "no operator replica took the safedeploy Lease"
  log "the operator's Lease is held by $holder"
fi

# Test pods must land on kwok's fake nodes only: cordon the real one (system pods and the
# operator stay), then add 3 untainted fake nodes.
for node in $(kubectl get nodes -o name -l '!type'); do kubectl cordon "$node" >&2; done
for i in 0 1 2; do
  kubectl apply -f - >&2 <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux}
NODE
done
kubectl wait --for=condition=Ready node -l type=kwok --timeout 120s >&2

step "6. Prometheus and the emitter on this host, then the tests ($KIND_TESTS)"
e2e/cluster.sh up --prometheus-only
eval "$(e2e/cluster.sh env | grep SAFEDEPLOY_)"
tests=()
[ "$KIND_TESTS" = all ] || read -r -a tests <<<"$KIND_TESTS"
cargo test "${tests[@]}" -- --ignored --test-threads 2
step "all steps passed"
