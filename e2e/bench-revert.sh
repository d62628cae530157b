#!/usr/bin/env bash
# Time to revert under load, on the local control plane: N SafeDeployments at rest (default
# 1000, one pod each) and BUSY more in progress (default 50, paused at a 50% canary); then, TRIALS
# times (default 20), one more SafeDeployment gets a canary that crashes once Ready (kwok's crash
# Stage), and the time is measured from the crash reaching the API server (the pod's error exit
# or restart count, whichever a watch sees first) to the revert being written (its status Degraded, seen by a watch on the
# same client machine). Both are watch observations, so the watches' own delivery delay counts
# on both sides and mostly cancels out.
# Usage: e2e/bench-revert.sh [N] [--busy B] [--trials T]   (PROFILE=debug for the debug build;
#        BENCH_BIN=path to use a built binary). Prints p50, p90, p99 and max; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
n=1000 busy=50 trials=20
while [ $# -gt 0 ]; do
  case "$1" in
    --busy) busy=$2; shift 2 ;;
    --trials) trials=$2; shift 2 ;;
    *) n=$1; shift ;;
  esac
done
ns=safedeploy-bench-revert
profile=${PROFILE:-release}
work=$(mktemp -d)
pid=""
watchers=()
run_dir=${SAFEDEPLOY_RUN_DIR:-$HOME/.cache/safedeploy/cluster}
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  for w in "${watchers[@]}"; do kill "$w" 2>/dev/null || true; done
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  kubectl delete safedeploymentpolicy "$ns" --ignore-not-found >/dev/null 2>&1 || true
  KWOK_WORKDIR="$run_dir/kwok" kwokctl --name safedeploy scale node --replicas 3 >/dev/null 2>&1 || true
  rm -rf "$work"
  # A cluster this run started goes with it (one that was up before is left as it was, less this
  # run's namespace): a test run started next would otherwise share it, the namespace of 1,000
  # SafeDeployments still being deleted.
  [ -z "$started_cluster" ] || e2e/cluster.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

started_cluster=""
e2e/cluster.sh status >/dev/null 2>&1 || started_cluster=1
e2e/cluster.sh up >/dev/null
eval "$(e2e/cluster.sh env)"
if [ -n "${BENCH_BIN:-}" ]; then
  sd=$BENCH_BIN
else
  if [ "$profile" = release ]; then cargo build --release --quiet --bin safedeploy; else cargo build --quiet --bin safedeploy; fi
  sd="${CARGO_TARGET_DIR:-target}/$profile/safedeploy"
fi
total=$((n + busy + trials))
# shellcheck source=e2e/lib/bench.sh
source e2e/lib/bench.sh
bench_nodes "$run_dir" safedeploy "$total" >/dev/null 2>&1
"$sd" crds | kubectl apply --server-side --force-conflicts --field-manager=safedeploy-install -f - >/dev/null
kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
bench_namespace "$ns"

manifest() { # index image [fault]
  local annotations=""
  [ -n "${3:-}" ] && annotations=", annotations: {safedeploy.dev/fault: $3}"
  cat <<EOF
---
apiVersion: safedeploy.dev/v1alpha1
kind: SafeDeployment
metadata: {name: app-$1, namespace: $ns}
spec:
  replicas: 1
  minReadySeconds: 0
  selector: {matchLabels: {app: app-$1}}
  template:
    metadata: {labels: {app: app-$1}$annotations}
    spec: {containers: [{name: app, image: "$2"}]}
  strategy: {canary: {steps: [{setWeight: 50}, {pause: {}}, {setWeight: 100}]}}
EOF
}
count_phase() { # phase
  kubectl -n "$ns" get sd -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -cx "$1" || true
}
wait_count() { # phase count
  for _ in $(seq 1 900); do
    [ "$(count_phase "$1")" -ge "$2" ] && return 0
    sleep 2
  done
  echo "bench-revert: timed out waiting for $2 $1" >&2
  return 1
}

"$sd" controller --namespace "$ns" --http-addr 127.0.0.1:0 >"$work/operator.log" 2>&1 &
pid=$!
echo "== $n at rest, $busy in progress, $trials trials; $profile build"
for i in $(seq 1 "$total"); do manifest "$i" registry.local/app:v1; done >"$work/v1.yaml"
kubectl apply --server-side -f "$work/v1.yaml" >/dev/null
wait_count Healthy "$total"
echo "all $total Healthy"
for i in $(seq $((n + 1)) $((n + busy))); do manifest "$i" registry.local/app:v2; done >"$work/busy.yaml"
if [ "$busy" -gt 0 ]; then
  kubectl apply --server-side -f "$work/busy.yaml" >/dev/null
  wait_count Paused "$busy"
fi
echo "$busy canaries paused at 50%"

# Watches, each line stamped on arrival: pods' restart counts and exit codes (a crash reaches
# the API server as an exit, before the kubelet's restart raises restartCount), SafeDeployments'
# phases.
stamp() { while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done; }
kubectl -n "$ns" get pods -w -o jsonpath='{.metadata.labels.safedeploy\.dev/name} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].state.terminated.exitCode}{"\n"}' \
  2>/dev/null | stamp >"$work/pods.log" &
watchers+=($!)
kubectl -n "$ns" get sd -w -o jsonpath='{.metadata.name} {.status.phase}{"\n"}' 2>/dev/null | stamp >"$work/sds.log" &
watchers+=($!)
sleep 2
latencies=()
for t in $(seq 1 "$trials"); do
  i=$((n + busy + t))
  manifest "$i" registry.local/app:v2-bad crash | kubectl apply --server-side -f - >/dev/null
  crashed="" reverted=""
  for _ in $(seq 1 600); do
    crashed=$(awk -v n="app-$i" '$2 == n && ($3 >= 1 || ($4 != "" && $4 != 0)) {print $1; exit}' "$work/pods.log")
    reverted=$(awk -v n="app-$i" '$2 == n && $3 == "Degraded" {print $1; exit}' "$work/sds.log")
    [ -n "$crashed" ] && [ -n "$reverted" ] && break
    sleep 0.1
  done
  if [ -z "$crashed" ] || [ -z "$reverted" ]; then
    echo "trial $t: app-$i: no crash or no revert seen (crash '$crashed', revert '$reverted')" >&2
    exit 1
  fi
  ms=$(awk -v a="$crashed" -v b="$reverted" 'BEGIN {printf "%d", (b - a) * 1000}')
  latencies+=("$ms")
  echo "trial $t: app-$i reverted $ms ms after its crash was seen"
done
printf '%s\n' "${latencies[@]}" | sort -n | awk -v busy="$busy" -v n="$n" '
  {v[NR] = $1}
  END {
    printf "time to revert (crash seen -> Degraded seen), %d trials, %d at rest, %d in progress:\n", NR, n, busy
    split("50 90 99", qs, " ")
    for (k = 1; k <= 3; k++) { i = int((qs[k] / 100) * NR + 0.999); if (i < 1) i = 1; if (i > NR) i = NR; printf "  p%s %d ms\n", qs[k], v[i] }
    printf "  max %d ms\n", v[NR]
  }'
echo "operator reconcile errors: $(grep -c '"reconcile failed"' "$work/operator.log" || true)"
