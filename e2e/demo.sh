#!/usr/bin/env bash
# The main job, end to end, on the local control plane:
#   1. start the control plane, install the CRDs, run the operator;
#   2. a trust policy for the demo namespace, and a signing key;
#   3. revision 1 and a good revision 2, both signed by `safedeploy attest` after their local
#      checks pass: 2 goes through every canary step and is promoted;
#   4. a bad revision 3 that passes its local checks (so it is signed) but crash-loops in the
#      canary: the operator reverts it by itself;
#   5. an unsigned revision 4: it never starts (Attested=False, reason Missing);
#   6. the same with traffic routing: a Gateway API HTTPRoute carries the weights (1% on one
#      pod, a testers' header route first); a good revision promotes, a bad one reverts with the
#      route's canary weight set to 0 before any canary pod goes.
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
sd="${CARGO_TARGET_DIR:-$repo/target}/debug/safedeploy"

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

# follow TARGET_PHASE [NAME]: print every change of phase/step/weight of SafeDeployment NAME
# (default web) until the rollout settles in TARGET_PHASE. For shop, also the weights its route
# carries and the pods of each revision, until only one revision has pods.
follow() {
  local target=$1 name=${2:-web} last="" line state deadline=$((SECONDS + 120))
  while [ $SECONDS -lt $deadline ]; do
    state=$(kubectl -n "$ns" get sd "$name" -o jsonpath='{.status.phase} step={.status.stepDisplay} weight={.status.canaryWeight} stable={.status.stableRevision} canary={.status.canaryRevision}' 2>/dev/null || true)
    line=$state
    if [ "$name" = shop ]; then line="$state | route: $(route_weights) | pods: $(pods_of shop)"; fi
    if [ "$line" != "$last" ]; then
      echo "$(stamp)  $line"
      last=$line
    fi
    if [[ "$state" == "$target "* ]] && { [ "$target" != Healthy ] || [[ "$state" == *"canary=" ]]; } &&
       { [ "$name" != shop ] || [[ "$line" != *"pods: "*","* ]]; }; then
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

say "Traffic routing: the same rollout through a Gateway API HTTPRoute (the user's, from Git)"
# The operator changes only the weights of its two backendRefs on rule "main" and adds (then
# removes) its own header rule; hostnames, parentRefs and other rules stay the user's. No
# Gateway answers here, so no request flows: tests/routed_dataplane.rs sends real requests
# through Traefik and counts where they land.
kubectl apply --server-side --field-manager=gitops -f - >/dev/null <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: $ns}
spec:
  parentRefs: [{name: demo-gateway}]
  hostnames: [shop.example]
  rules:
  - name: main
    matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs:
    - {name: shop-stable, port: 80, weight: 100}
    - {name: shop-canary, port: 80, weight: 0}
EOF
# route_weights: the route's rules as "rule: backend=weight ...".
route_weights() {
  kubectl -n "$ns" get httproute shop -o jsonpath='{range .spec.rules[*]}{.name}:{range .backendRefs[*]} {.name}={.weight}{end}; {end}' 2>/dev/null |
    sed 's/shop-//g; s/; $//'
}
# pods_of NAME: pods per revision hash, "hash=n,hash=m" (those being deleted left out).
pods_of() {
  kubectl -n "$ns" get pods -l "safedeploy.dev/name=$1" -o jsonpath='{range .items[*]}{.metadata.labels.safedeploy\.dev/revision}{" "}{.metadata.deletionTimestamp}{"\n"}{end}' 2>/dev/null |
    awk 'NF == 1 {n[$1]++} END {s=""; for (r in n) s = s (s ? "," : "") r "=" n[r]; print s}'
}
shop_manifest() {
  local version=$1 fault=$2 digest annotations=""
  digest=$(printf 'shop:%s' "$version" | sha256sum | cut -c1-64)
  [ -n "$fault" ] && annotations="annotations: {safedeploy.dev/fault: $fault}"
  cat <<EOF
apiVersion: safedeploy.dev/v1alpha1
kind: SafeDeployment
metadata: {name: shop, namespace: $ns}
spec:
  replicas: 10
  minReadySeconds: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata:
      labels: {app: shop}
      $annotations
    spec:
      containers:
      - name: shop
        image: registry.local/shop@sha256:$digest
  strategy:
    canary:
      trafficRouting:
        gatewayAPI: {httpRoutes: [{name: shop, rule: {name: main}}]}
      steps:
      - setHeaderRoute: {name: testers, match: [{headerName: x-canary, value: always}]}
      - pause: {duration: 3s}
      - setWeight: 1
      - pause: {duration: 3s}
      - setWeight: 10
      - pause: {duration: 8s}
      - setWeight: 50
      - pause: {duration: 3s}
  attestation:
    configMapRef: {name: shop-attestation-$version}
EOF
}
sign_shop() {
  local version=$1 fault=$2
  shop_manifest "$version" "$fault" > "$work/shop-$version.yaml"
  "$sd" attest --key "$work/ci.key" --manifest "$work/shop-$version.yaml" \
    --check "unit=true" --check "lint=true" \
    --configmap "shop-attestation-$version" --namespace "$ns" --out "$work/shop-$version-attestation.yaml" >/dev/null
  kubectl apply -f "$work/shop-$version-attestation.yaml" >/dev/null
  echo "$(stamp)  signed shop revision $version (local checks passed)"
}

say "shop v1: 10 pods, the route sends everything to the stable Service"
sign_shop v1 ""
shop_manifest v1 "" | kubectl apply -f - >/dev/null
follow Healthy shop

say "shop v2 (good): a header route for testers, then 1% on ONE pod (the stable keeps all 10), 10%, 50%, promoted"
sign_shop v2 ""
shop_manifest v2 "" | kubectl apply -f - >/dev/null
sleep 1
follow Healthy shop

say "shop v3 (bad): passes its local checks, takes 1% and 10% of the requests, then crash-loops under them"
sign_shop v3 ""
shop_manifest v3 "" | kubectl apply -f - >/dev/null
deadline=$((SECONDS + 60))
until [ "$(kubectl -n "$ns" get sd shop -o jsonpath='{.status.trafficRouting.canaryWeight}')" = 10 ]; do
  [ $SECONDS -lt $deadline ] || { echo "shop v3 never reached 10%" >&2; exit 1; }
  sleep 0.2
done
canary=$(kubectl -n "$ns" get sd shop -o jsonpath='{.status.canaryRevision}')
echo "$(stamp)  at 10%: route: $(route_weights) | pods: $(pods_of shop)"
# What production traffic would do to it: kwok's crash stage takes the Ready pods down.
kubectl -n "$ns" annotate pods -l "safedeploy.dev/name=shop,safedeploy.dev/revision=$canary" \
  safedeploy.dev/fault=crash --overwrite >/dev/null
echo "$(stamp)  the canary's pods start crashing; the route's canary weight goes to 0 first, its pods a drain (10 s) later:"
follow Degraded shop
kubectl -n "$ns" get sd shop -o jsonpath='{.status.message}{"\n"}'

say "History"
for name in web shop; do
  echo "-- $name"
  "$sd" history "$name" -n "$ns"
done
say "Events"
for name in web shop; do
  echo "-- $name"
  # eventTime has microseconds; the creation timestamp only seconds, which mixes up the order
  # of events from the same second.
  kubectl -n "$ns" get events --field-selector "involvedObject.kind=SafeDeployment,involvedObject.name=$name" \
    --sort-by=.eventTime -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message | cut -c1-180
done
say "Done. The cluster keeps running (e2e/cluster.sh down stops it); the operator was stopped."
