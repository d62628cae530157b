#!/usr/bin/env bash
# Scale benchmark on the local control plane: N SafeDeployments side by side (default 1000, one
# pod each), measured for
#   - the time until all N are Healthy (initial rollout) and until all N promote a new revision,
#   - the operator's start-up with N objects in the cache (phases, from its own timing log line),
#   - its resident memory at rest and its reconcile latency (from its /metrics histogram).
# Usage: e2e/bench-scale.sh [N]   (PROFILE=debug to use the debug build; default release;
#        BENCH_BIN=path to use an already built binary; CONFIG=1 gives every SafeDeployment a
#        ConfigMap of its own (envFrom) and makes the second rollout an edit of all N ConfigMaps
#        with no spec change, which exercises the configuration versioning path)
# The numbers are printed, not asserted: they are for the README and the issue notes.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
ns=safedeploy-bench
profile=${PROFILE:-release}
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  kubectl delete safedeploymentpolicy "$ns" --ignore-not-found >/dev/null 2>&1 || true
  KWOK_WORKDIR="${run_dir:-$HOME/.cache/safedeploy/cluster}/kwok" kwokctl --name safedeploy scale node --replicas 3 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

e2e/cluster.sh up >/dev/null
eval "$(e2e/cluster.sh env)"
if [ -n "${BENCH_BIN:-}" ]; then
  sd=$BENCH_BIN   # an already built binary (skips the build)
else
  if [ "$profile" = release ]; then cargo build --release --quiet --bin safedeploy; else cargo build --quiet --bin safedeploy; fi
  sd="${CARGO_TARGET_DIR:-target}/$profile/safedeploy"
fi
run_dir=${SAFEDEPLOY_RUN_DIR:-$HOME/.cache/safedeploy/cluster}
# shellcheck source=e2e/lib/bench.sh
source e2e/lib/bench.sh
bench_nodes "$run_dir" safedeploy "$n" >/dev/null
"$sd" crds | kubectl apply --server-side --force-conflicts --field-manager=safedeploy-install -f - >/dev/null
kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
bench_namespace "$ns"

manifests() {
  local image=$1
  for i in $(seq 1 "$n"); do
    cat <<EOF
---
apiVersion: safedeploy.dev/v1alpha1
kind: SafeDeployment
metadata: {name: app-$i, namespace: $ns}
spec:
  replicas: 1
  minReadySeconds: 0
  selector: {matchLabels: {app: app-$i}}
  template:
    metadata: {labels: {app: app-$i}}
    spec: {containers: [{name: app, image: "$image"$(env_from "$i")}]}
  strategy: {canary: {steps: [{setWeight: 100}]}}
EOF
  done
}

env_from() {
  [ "${CONFIG:-0}" = 1 ] && echo ", envFrom: [{configMapRef: {name: app-$1-config}}]" || true
}

config_maps() {
  local greeting=$1
  for i in $(seq 1 "$n"); do
    cat <<EOF
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-$i-config, namespace: $ns}
data: {GREETING: "$greeting"}
EOF
  done
}

# "name phase stable" per SafeDeployment, for count_done_since (e2e/lib/bench.sh).
stables() {
  kubectl -n "$ns" get sd -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.phase}{" "}{.status.stableRevision}{"\n"}{end}'
}
count_healthy() { # [old-stables-file]
  stables | count_done_since "${1:-}"
}

wait_all() {
  local exclude=$1 start=$SECONDS healthy=0
  while [ $((SECONDS - start)) -lt 1800 ]; do
    healthy=$(count_healthy "$exclude")
    [ "$healthy" -ge "$n" ] && break
    sleep 2
  done
  echo $((SECONDS - start))
}

metric() { curl -s "http://$addr/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status"; }
start_operator() {
  "$sd" controller --namespace "$ns" --http-addr 127.0.0.1:0 > "$work/operator.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    addr=$(grep -o '"addr":"[0-9.:]*"' "$work/operator.log" | head -1 | cut -d'"' -f4 || true)
    [ -n "$addr" ] && break
    sleep 0.1
  done
}

echo "== $n SafeDeployments, $profile build${CONFIG:+, CONFIG=$CONFIG}"
manifests "registry.local/app:v1" > "$work/v1.yaml"
if [ "${CONFIG:-0}" = 1 ]; then
  config_maps hello-v1 > "$work/config-v1.yaml"
  kubectl apply --server-side -f "$work/config-v1.yaml" >/dev/null
fi
start_operator
t0=$SECONDS
kubectl apply --server-side -f "$work/v1.yaml" >/dev/null
echo "applied $n objects in $((SECONDS - t0)) s"
initial=$(wait_all "")
echo "initial rollout: all $n Healthy after ${initial} s"
sleep 5
echo "operator RSS at rest: $(rss_mib) MiB"
stable="$work/v1-stables"
stables >"$stable"

if [ "${CONFIG:-0}" = 1 ]; then
  config_maps hello-v2 > "$work/v2.yaml"   # configuration only: the SafeDeployments are untouched
else
  manifests "registry.local/app:v2" > "$work/v2.yaml"
fi
t0=$SECONDS
kubectl apply --server-side -f "$work/v2.yaml" >/dev/null
second=$(wait_all "$stable")
echo "canary rollout of a new revision: all $n promoted after ${second} s (apply took part of it)"
echo "operator RSS after the rollout: $(rss_mib) MiB"
count=$(metric safedeploy_reconcile_duration_seconds_count)
sum=$(metric safedeploy_reconcile_duration_seconds_sum)
echo "reconciles: $count, mean reconcile duration: $(awk -v s="$sum" -v c="$count" 'BEGIN {printf "%.2f ms", 1000*s/c}')"
curl -s "http://$addr/metrics" | grep '^safedeploy_reconcile_duration_seconds_bucket' \
  | awk -v c="$count" '{split($0, a, "le=\""); split(a[2], b, "\""); v=$NF; if (!p50 && v >= c*0.5) p50=b[1]; if (!p99 && v >= c*0.99) p99=b[1]} END {print "reconcile latency p50 <= " p50 " s, p99 <= " p99 " s (histogram buckets)"}'

echo "== restart with $n objects in the cache"
kill "$pid"; wait "$pid" 2>/dev/null || true
start_operator
for _ in $(seq 1 200); do grep -q 'start-up timing' "$work/operator.log" && break; sleep 0.1; done
grep 'start-up timing' "$work/operator.log" | sed 's/.*"fields"://' | cut -c1-300
sleep 3
echo "operator RSS after restart and resync: $(rss_mib) MiB"
