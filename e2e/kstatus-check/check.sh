#!/usr/bin/env bash
# How GitOps tools read a SafeDeployment's health, checked on REAL status objects:
#   1. runs the operator (one process per test namespace) on the local control plane and drives
#      SafeDeployments into each state: Healthy, Paused (pause step), Progressing (canary not yet
#      Ready), Degraded (crash-looping canary reverted), Blocked (a namespace no policy opts out:
#      Attested=False), and "generation behind" (spec changed while the operator is stopped);
#   2. captures each object (`kubectl get -o json`) into a directory;
#   3. evaluates docs/argocd-health.lua, the Argo CD health check, on each with Lua 5.1 (gopher-lua,
#      which Argo CD embeds, implements 5.1) and 5.4 when installed, and checks the mapping;
#   4. computes each object's kstatus status with the real library (github.com/fluxcd/cli-utils,
#      Flux's kstatus, through the Go program beside this script) and checks it.
# Usage: e2e/kstatus-check/check.sh                 capture from the cluster, then check
#        e2e/kstatus-check/check.sh --fixtures      check docs/health-fixtures/ only (no cluster)
#        e2e/kstatus-check/check.sh --update-fixtures   capture, check, and refresh the fixtures
# Needs: lua5.1 (or lua5.4) + lua-cjson, jq, go; for capturing the cluster of e2e/cluster.sh and a
# built binary (SAFEDEPLOY_BIN, default target/debug/safedeploy).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO/e2e/kstatus-check"
FIXTURES="$REPO/docs/health-fixtures"
MODE="${1:-capture}"
WORK="$(mktemp -d -t safedeploy-health.XXXXXX)"
PIDS=()
NAMESPACES=()
POLICY=""
cd "$REPO"

log() { echo "health-check: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for ns in "${NAMESPACES[@]}"; do kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true; done
  [ -n "$POLICY" ] && kubectl delete safedeploymentpolicy "$POLICY" --ignore-not-found >/dev/null 2>&1
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# --- tools --------------------------------------------------------------------------------------
LUAS=()
for lua in lua5.1 lua5.4; do command -v "$lua" >/dev/null && LUAS+=("$lua"); done
if [ ${#LUAS[@]} -eq 0 ] || ! "${LUAS[0]}" -e 'require "cjson"' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing lua5.1, lua5.4 and lua-cjson (Debian)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.1 lua5.4 lua-cjson >/dev/null
    LUAS=(lua5.1 lua5.4)
  else
    die "lua5.1 or lua5.4 with lua-cjson is required (apt-get install lua5.1 lua-cjson)"
  fi
fi
command -v jq >/dev/null || die "jq is required"
KSTATUS="$WORK/kstatus-check"
(cd "$HERE" && GOTOOLCHAIN=local go build -o "$KSTATUS" .) || die "building the kstatus checker"

# --- capture ------------------------------------------------------------------------------------
capture() {
  local dir="$1"
  if [ -z "${KUBECONFIG:-}" ]; then eval "$(e2e/cluster.sh env)"; fi
  local bin="${SAFEDEPLOY_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/safedeploy}"
  [ -x "$bin" ] || cargo build --bin safedeploy
  local suffix ns blocked
  suffix="$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  ns="sd-health-$suffix"
  blocked="sd-health-blocked-$suffix"
  for n in "$ns" "$blocked"; do
    kubectl create namespace "$n" >/dev/null
    kubectl label namespace "$n" safedeploy.dev/test=true >/dev/null
    NAMESPACES+=("$n")
  done
  "$bin" crds | kubectl apply --server-side --force-conflicts --field-manager safedeploy-tests -f - >/dev/null
  kubectl wait --for condition=Established crd/safedeployments.safedeploy.dev --timeout 30s >/dev/null
  POLICY="$ns-policy"
  kubectl apply --server-side --field-manager safedeploy-tests -f - >/dev/null <<EOF
apiVersion: safedeploy.dev/v1alpha1
kind: SafeDeploymentPolicy
metadata: {name: $POLICY, labels: {safedeploy.dev/test: "true"}}
spec: {namespaces: [$ns], requireAttestation: false, requirePinnedImages: false}
EOF
  start_operator() {
    RUST_LOG=info,kube=warn "$bin" controller --namespace "$1" --http-addr 127.0.0.1:0 >"$WORK/operator-$1.log" 2>&1 &
    PIDS+=($!)
  }
  start_operator "$ns"
  start_operator "$blocked"

  sd() { # sd <ns> <name> <image> <steps-json> [pod annotations-json] [minReadySeconds]
    kubectl apply --server-side --force-conflicts --field-manager test-user -n "$1" -f - >/dev/null <<EOF
{"apiVersion": "safedeploy.dev/v1alpha1", "kind": "SafeDeployment", "metadata": {"name": "$2"},
 "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "$2"}}, "minReadySeconds": ${6:-1},
  "template": {"metadata": {"labels": {"app": "$2"}, "annotations": ${5:-{\}}},
               "spec": {"containers": [{"name": "app", "image": "$3"}]}},
  "strategy": {"canary": {"steps": $4}}}}
EOF
  }
  wait_phase() { # wait_phase <ns> <name> <phase> [seconds]
    kubectl wait -n "$1" "safedeployment/$2" --for "jsonpath={.status.phase}=$3" --timeout "${4:-90}s" >/dev/null ||
      { kubectl get -n "$1" "safedeployment/$2" -o yaml >&2; die "$1/$2 did not reach phase $3"; }
  }
  save() { # save <ns> <name> <file>
    kubectl get -n "$1" "safedeployment/$2" -o json |
      jq 'del(.metadata.managedFields, .metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp)
          | .metadata.namespace = "demo"' >"$dir/$3.json"
  }

  local pause='[{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]'
  local slow='[{"setWeight": 50}, {"setWeight": 100}]'
  local revert='[{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}]'
  sd "$ns" healthy registry.local/app:v1 '[{"setWeight": 100}]'
  sd "$ns" paused registry.local/app:v1 "$pause"
  sd "$ns" progressing registry.local/app:v1 "$slow"
  sd "$ns" degraded registry.local/app:v1 "$revert"
  sd "$blocked" blocked registry.local/app:v1 '[{"setWeight": 100}]'
  for name in healthy paused progressing degraded; do wait_phase "$ns" "$name" Healthy; done
  sd "$ns" paused registry.local/app:v2 "$pause"
  sd "$ns" progressing registry.local/app:v2 "$slow" '{"safedeploy.dev/ready-after-seconds": "600"}'
  sd "$ns" degraded registry.local/app:v2-bad "$revert" '{"safedeploy.dev/fault": "crash"}' 5
  wait_phase "$ns" paused Paused
  wait_phase "$ns" degraded Degraded
  wait_phase "$blocked" blocked Blocked
  kubectl wait -n "$ns" safedeployment/progressing --for 'jsonpath={.status.canaryWeight}=50' --timeout 60s >/dev/null ||
    die "progressing did not start its canary"
  wait_phase "$ns" progressing Progressing 5
  for name in healthy paused progressing degraded; do save "$ns" "$name" "$name"; done
  save "$blocked" blocked blocked
  # The spec changes while no operator runs: the status describes an older generation.
  kill "${PIDS[0]}"
  wait "${PIDS[0]}" 2>/dev/null || true
  sd "$ns" healthy registry.local/app:v2 '[{"setWeight": 100}]'
  save "$ns" healthy generation-behind
  jq -e '.status.observedGeneration < .metadata.generation' "$dir/generation-behind.json" >/dev/null ||
    die "generation-behind: observedGeneration is not behind"
  log "captured $(ls "$dir" | wc -l) SafeDeployments from the cluster into $dir"
}

# --- checks -------------------------------------------------------------------------------------
# state: expected Argo CD health, expected kstatus status
EXPECTED="healthy Healthy Current
paused Suspended InProgress
progressing Progressing InProgress
degraded Degraded Failed
blocked Degraded Failed
generation-behind Progressing InProgress
no-status Progressing Current
inconclusive Suspended InProgress"
# The last two are derived from captured objects: no status yet (kstatus reads an object without
# status as Current: a known limitation, see docs/health.md), and phase Inconclusive.

check() {
  local dir="$WORK/check" failures=0
  rm -rf "$dir" && mkdir -p "$dir" && cp "$1"/*.json "$dir/"
  jq 'del(.status)' "$dir/healthy.json" >"$dir/no-status.json"
  jq '.status.phase = "Inconclusive"' "$dir/paused.json" >"$dir/inconclusive.json"
  while read -r state argo kstatus; do
    local file="$dir/$state.json"
    [ -f "$file" ] || die "missing $file"
    # Argo CD hands the script the object without JSON nulls.
    jq 'del(.. | nulls)' "$file" >"$WORK/obj.json"
    for lua in "${LUAS[@]}"; do
      local got
      got="$("$lua" "$HERE/argocd-health-runner.lua" "$REPO/docs/argocd-health.lua" "$WORK/obj.json")" ||
        die "$lua failed on $state"
      if [ "${got%%$'\t'*}" = "$argo" ]; then
        log "ok: Argo CD ($lua) $state -> $got"
      else
        log "WRONG: Argo CD ($lua) $state -> $got (want $argo)"
        failures=$((failures + 1))
      fi
    done
    local line
    line="$("$KSTATUS" "$file")"
    local got_k
    got_k="$(cut -f2 <<<"$line")"
    if [ "$got_k" = "$kstatus" ]; then
      log "ok: kstatus $state -> $got_k ($(cut -f3 <<<"$line"))"
    else
      log "WRONG: kstatus $state -> $got_k (want $kstatus): $line"
      failures=$((failures + 1))
    fi
  done <<<"$EXPECTED"
  [ "$failures" = 0 ] || die "$failures health mappings are wrong"
}

# The snippet for argocd-cm in the chart must embed exactly docs/argocd-health.lua.
snippet="$REPO/charts/safedeploy/argocd/argocd-cm-health.yaml"
sed -n '/^    -- Argo CD health check/,$p' "$snippet" | sed 's/^    //' | diff -q - docs/argocd-health.lua >/dev/null ||
  die "$snippet does not embed docs/argocd-health.lua (re-indent it by 4 spaces into the snippet)"

case "$MODE" in
  --fixtures)
    check "$FIXTURES"
    ;;
  capture | --update-fixtures)
    mkdir -p "$WORK/captured"
    capture "$WORK/captured"
    check "$WORK/captured"
    if [ "$MODE" = --update-fixtures ]; then
      mkdir -p "$FIXTURES"
      cp "$WORK/captured/"*.json "$FIXTURES/"
      log "refreshed $FIXTURES"
    fi
    ;;
  *) die "unknown mode $MODE" ;;
esac
log "all health mappings hold"
