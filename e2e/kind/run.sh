#!/usr/bin/env bash
# The integration suite against a kind cluster, for machines with Docker (it cannot run on the
# project's CI machine). Creates the cluster (kept afterwards: `kind delete cluster --name
# safedeploy`), builds the operator image from ./Dockerfile and loads it, installs kwok in the
# cluster with the project's Stages (fake nodes, annotation-driven faults: see e2e/README.md),
# the CRDs and the operator, runs Prometheus and the emitter on this host, then runs
# `cargo test -- --ignored`.
# Needs: docker, kind, kubectl, go (to fetch the kwok module), cargo, prometheus, curl; helm
# if present (charts/safedeploy), else e2e/kind/operator.yaml.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NAME="${KIND_CLUSTER_NAME:-safedeploy}"
IMAGE="${IMAGE:-safedeploy:e2e}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
cd "$REPO"
log() { echo "kind/run.sh: $*" >&2; }
for tool in docker kind kubectl go cargo prometheus curl; do
  command -v "$tool" >/dev/null || { log "error: $tool is required"; exit 1; }
done

kind get clusters 2>/dev/null | grep -qx "$NAME" || kind create cluster --name "$NAME" --wait 180s
export KUBECONFIG="$REPO/target/kind-$NAME.kubeconfig"
mkdir -p "$(dirname "$KUBECONFIG")"
kind get kubeconfig --name "$NAME" >"$KUBECONFIG"

log "building and loading $IMAGE"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$NAME"

log "installing kwok $KWOK_VERSION and the project's Stages"
e2e/lib/stages.sh >/dev/null # fetches the kwok module if needed
kwok_module="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION"
kubectl apply -k "$kwok_module/kustomize/kwok"
kubectl -n kube-system set image deployment/kwok-controller "kwok-controller=registry.k8s.io/kwok/kwok:$KWOK_VERSION"
kubectl -n kube-system rollout status deployment/kwok-controller --timeout 180s
e2e/lib/stages.sh | kubectl apply -f -

# The in-cluster operator only watches its own namespace: the tests start their own
# `safedeploy controller --namespace <test namespace>` processes (tests/operator), and a
# cluster-wide operator would act on their SafeDeployments too. It proves the image, the chart
# (CRDs, RBAC, probes, read-only root file system) and the CRDs work on a real cluster.
log "installing the CRDs and the operator"
if command -v helm >/dev/null; then
  helm upgrade --install safedeploy charts/safedeploy -n safedeploy-system --create-namespace \
    --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" \
    --set watchNamespace=safedeploy-system --wait --timeout 180s
else
  docker run --rm "$IMAGE" crds | kubectl apply --server-side -f -
  sed "s|image: IMAGE|image: $IMAGE|" e2e/kind/operator.yaml | kubectl apply -f -
fi
kubectl -n safedeploy-system wait --for=condition=Available deployment --all --timeout 180s

# Test pods must land on kwok's fake nodes only: cordon the real ones (already-running system
# pods and the operator stay), then add 3 untainted fake nodes.
for node in $(kubectl get nodes -o name -l '!type'); do kubectl cordon "$node"; done
for i in 0 1 2; do
  kubectl apply -f - <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux}
NODE
done
kubectl wait --for=condition=Ready node -l type=kwok --timeout 120s

log "starting Prometheus and the emitter on this host"
trap 'e2e/cluster.sh down --only-prometheus || true' EXIT
e2e/cluster.sh up --prometheus-only
eval "$(e2e/cluster.sh env | grep SAFEDEPLOY_)"

log "running the integration tests"
cargo test -- --ignored
