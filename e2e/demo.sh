#!/usr/bin/env bash
# The main job, end to end, on the local control plane:
#   1. start the control plane, install the CRDs, run the operator;
#   2. a trust policy for the demo namespace, and a signing key;
#   3. revision 1 and a good revision 2, both signed by `safedeploy attest` after their local
#      checks pass: 2 goes through every canary step and is promoted;
#   4. a bad revision 3 that passes its local checks (so it is signed) but crash-loops in the
#      canary: the operator reverts it by itself;
#   5. an unsigned revision 4: it never starts (Attested=False, reason Missing).
# It prints a readable timeline. Usage: e2e/demo.sh   (KEEP_CLUSTER=0 to stop the cluster after)
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
ns=safedeploy-demo
work=$(mktemp -d)
operator_pid=""

cleanup() {
  [ -n "$operator_pid" ] && kill "$operator_pid" 2>/dev/null || true
  if [ "${KEEP_CLUSTER:-1}" = "0" ]; then e2e/cluster.sh down >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
stamp() { date +%H:%M:%S; }

say "Starting the local control plane (first use builds it from Go modules: ~15 min)"
e2e/cluster.sh up
eval "$(e2e/cluster.sh env)"

say "Building safedeploy"
cargo build --quiet --bin safedeploy
sd="$repo/target/debug/safedeploy"

say "Installing the CRDs and a fresh demo namespace"
"$sd" crds | kubectl apply --server-side --force-conflicts --field-manager=safedeploy-install -f - >/dev/null
kubectl wait --for=condition=Established crd/safedeployments.safedeploy.dev --timeout=60s >/dev/null
kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
kubectl create namespace "$ns" >/dev/null
kubectl -n "$ns" wait --for=jsonpath='{.metadata.name}'=default serviceaccount/default --timeout=60s >/dev/null 2>&1 || sleep 2

say "An admin's trust policy: only attestations signed by the CI key, with passing unit tests"
"$sd" keygen --algorithm ecdsa-p256 --out-private "$work/ci.key" --out-public "$work/ci.pub" >/dev/null
{
  echo "apiVersion: safedeploy.dev/v1alpha1"
  echo "kind: SafeDeploymentPolicy"
  echo "metadata: {name: $ns}"
  echo "spec:"
  echo "  namespaces: [$ns]"
  echo "  requireAttestation: true"
  echo "  maxAge: 1h"
  echo "  requiredChecks: [{kind: unit}]"
  echo "  trustedKeys:"
  echo "  - name: ci-2026"
  echo "    algorithm: ecdsa-p256-sha256"
  echo "    publicKeyPem: |"
  sed 's/^/      /' "$work/ci.pub"
} > "$work/policy.yaml"
kubectl apply -f "$work/policy.yaml" >/dev/null

say "Running the operator (log: $work/operator.log)"
"$sd" controller --namespace "$ns" --http-addr 127.0.0.1:0 > "$work/operator.log" 2>&1 &
operator_pid=$!

# manifest VERSION FAULT: a SafeDeployment whose image is pinned by a digest derived from VERSION.
manifest() {
  local version=$1 fault=$2 digest annotations=""
  digest=$(printf 'web:%s' "$version" | sha256sum | cut -c1-64)
  [ -n "$fault" ] && annotations="annotations: {safedeploy.dev/fault: $fault}"
  cat <<EOF
apiVersion: safedeploy.dev/v1alpha1
kind: SafeDeployment
metadata: {name: web, namespace: $ns}
spec:
  replicas: 4
  minReadySeconds: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      $annotations
    spec:
      containers:
      - name: web
        image: registry.local/web@sha256:$digest
  strategy:
    canary:
      steps:
      - setWeight: 25
      - pause: {duration: 3s}
      - setWeight: 50
      - pause: {duration: 3s}
      - setWeight: 100
  attestation:
    configMapRef: {name: web-attestation-$version}
EOF
}

# sign VERSION FAULT: the pipeline runs the local checks and, only if they pass, signs.
sign() {
  local version=$1 fault=$2
  manifest "$version" "$fault" > "$work/$version.yaml"
  "$sd" attest --key "$work/ci.key" --manifest "$work/$version.yaml" \
    --check "unit=true" --check "lint=true" \
    --configmap "web-attestation-$version" --namespace "$ns" --out "$work/$version-attestation.yaml" >/dev/null
  kubectl apply -f "$work/$version-attestation.yaml" >/dev/null
  echo "$(stamp)  signed revision $version (local checks passed)"
}

# follow TARGET_PHASE: print every change of phase/step/weight until the
# rollout settles in TARGET_PHASE.
follow() {
  local target=$1 last="" line deadline=$((SECONDS + 120))
  while [ $SECONDS -lt $deadline ]; do
    line=$(kubectl -n "$ns" get sd web -o jsonpath='{.status.phase} step={.status.stepDisplay} weight={.status.canaryWeight} stable={.status.stableRevision} canary={.status.canaryRevision}' 2>/dev/null || true)
    if [ "$line" != "$last" ]; then
      echo "$(stamp)  $line"
      last=$line
    fi
    if [[ "$line" == "$target "* ]] && { [ "$target" != Healthy ] || [[ "$line" == *"canary=" ]]; }; then
      return 0
    fi
    sleep 0.5
  done
  echo "timed out waiting for phase $target" >&2
  return 1
}

say "Revision v1: signed, applied, scales straight to full size"
sign v1 ""
manifest v1 "" | kubectl apply -f - >/dev/null
follow Healthy

say "Revision v2 (good): signed, canary 25% -> pause -> 50% -> pause -> 100%, promoted"
sign v2 ""
manifest v2 "" | kubectl apply -f - >/dev/null
sleep 1
follow Healthy

say "Revision v3 (bad): passes its local checks, so it is signed, but crash-loops in the canary"
sign v3 crash
manifest v3 crash | kubectl apply -f - >/dev/null
follow Degraded
kubectl -n "$ns" get sd web -o jsonpath='{.status.message}{"\n"}'

say "Revision v4 (unsigned): never starts"
manifest v4 "" | kubectl apply -f - >/dev/null
follow Blocked
kubectl -n "$ns" get sd web -o jsonpath='{range .status.conditions[?(@.type=="Attested")]}Attested={.status} reason={.reason}: {.message}{"\n"}{end}'
pods_v4=$(kubectl -n "$ns" get pods -l app=web -o jsonpath='{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | grep -c "$(printf 'web:%s' v4 | sha256sum | cut -c1-64)" || true)
echo "pods of v4: $pods_v4"

say "History"
"$sd" history web -n "$ns"
say "Events"
kubectl -n "$ns" get events --field-selector involvedObject.kind=SafeDeployment \
  --sort-by=.metadata.creationTimestamp -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message | cut -c1-180
say "Done. The cluster keeps running (e2e/cluster.sh down stops it); the operator was stopped."
