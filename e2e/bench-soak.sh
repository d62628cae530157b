#!/usr/bin/env bash
# The 24-hour soak, compressed: does the operator's memory stay flat under steady rollout churn?
# N SafeDeployments (one pod each on kwok nodes; steps setWeight 50, pause 10 s, setWeight 100,
# no analysis, as in e2e/bench-peers.sh) are applied and left to become Healthy; then for M
# minutes rollout cycles run back to back: each cycle changes the pod template (an env var
# counter) of a batch (10% of N, rotating through all objects, plus every object the previous
# cycle left Degraded, which gets a good revision), and 1 in 10 of the fresh batch gets a BAD
# revision: the template annotation safedeploy.dev/fault: crash, kwok's crash Stage
# (e2e/lib/pod-stages.yaml), so its canary crashes once Ready and the operator reverts it. A
# cycle ends when every object in it has settled (promoted: Healthy on a new stable revision;
# reverted: Degraded; both at the new generation) or after --settle-timeout seconds.
#
# Measured: the operator's RSS (VmRSS) every 10 s with the elapsed time, the cycles done, its
# reconcile counter (safedeploy_reconciles_total from its /metrics), its CPU seconds and its heap
# in use and free (safedeploy_heap_bytes, glibc builds only), written
# to a samples file; at the end the revisions promoted and reverted, RSS first/min/max/last over
# the soak, the least-squares slope of RSS in MiB per hour after a 5-minute warm-up and over the
# second half of the soak alone, and the operator's CPU seconds. Nothing is asserted.
#
# Usage: e2e/bench-soak.sh [N] [--minutes M] [--batch B] [--settle-timeout S] [--history-limit L]
#                          [--warmup W] [--unlimited-qps]
#   N defaults to 1000, M to 30, B to N/10 (at least 1), S to 300. PROFILE=debug uses the debug
#   build (to check the script, not for numbers); BENCH_BIN=path uses an already built binary,
#   BENCH_BIN=image the image's static binary (e2e/lib/release.sh), built now.
#   L sets every object's revisionHistoryLimit (default: unset, the operator's 10). The warm-up
#   W (seconds of soak before the first slope) defaults to 300, or a third of a soak of 10
#   minutes or less. Every object keeps up to L+1 ReplicaSets and 20 status.history entries, so
#   memory grows until each has had that many revisions: a soak meant to show a flat line uses a
#   small L, B = N and a warm-up past the 20th cycle.
#   --unlimited-qps lifts kube-controller-manager's and kube-scheduler's client rate limits (20 and
#   50 requests/s), which otherwise bound a cycle of B = 1,000 at about 3 minutes.
#   BENCH_WRAPPER="heaptrack -o FILE" runs the operator under a profiler (RSS is still the
#   operator's own process).
# The report goes to target/bench-soak/<date>-n<N>.txt, the samples (-samples.tsv) and the
# operator's log (-operator.log.gz) next to it.
# It runs its own cluster instance (SAFEDEPLOY_CLUSTER_NAME=soak), which it creates and deletes;
# the default test cluster is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

n=1000 minutes=30 batch="" settle_timeout=300 history_limit="" warmup="" qps=kept
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --settle-timeout) settle_timeout=$2; shift 2 ;;
    --history-limit) history_limit=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --unlimited-qps) qps=lifted; export SAFEDEPLOY_DISABLE_QPS_LIMITS=1; shift ;;
    [0-9]*) n=$1; shift ;;
    *) echo "bench-soak: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$batch" ] || batch=$((n / 10))
[ "$batch" -ge 1 ] || batch=1
[ "$batch" -le "$n" ] || batch=$n
bad_every=10 # 1 in 10 of each fresh batch gets a crashing revision

export SAFEDEPLOY_CLUSTER_NAME=soak
export SAFEDEPLOY_PROMETHEUS_PORT=19390 SAFEDEPLOY_EMITTER_PORT=19764
http_port=19975 # the operator's /metrics (outside 19500-19899, which tests/analysis.rs takes for its own Prometheus)
run_dir="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}/soak"
out_dir="$REPO/target/bench-soak"
mkdir -p "$run_dir" "$out_dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report="$out_dir/$stamp-n$n.txt"
samples="$out_dir/$stamp-n$n-samples.tsv"
ns=bench-soak
work=$(mktemp -d)
pid="" sampler="" wrapper="" pod_watch=""
log() { echo "bench-soak: $(date -u +%H:%M:%S) $*" >&2; }
say() { echo "$*" | tee -a "$report"; }

cleanup() {
  [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
  [ -z "$pod_watch" ] || kill "$pod_watch" 2>/dev/null || true
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    if [ -n "$wrapper" ]; then
      wait "$wrapper" 2>/dev/null || true
    else
      wait "$pid" 2>/dev/null || true
    fi
  fi
  e2e/cluster.sh down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=e2e/lib/bench.sh
source e2e/lib/bench.sh
profile=${PROFILE:-release}
sd_bin=$(bench_binary "$profile")
[ -x "$sd_bin" ] || { log "no binary at $sd_bin"; exit 1; }

log "starting cluster $SAFEDEPLOY_CLUSTER_NAME"
e2e/cluster.sh down >/dev/null 2>&1 || true
e2e/cluster.sh up >/dev/null
eval "$(e2e/cluster.sh env)"
bench_nodes "$run_dir" "$SAFEDEPLOY_CLUSTER_NAME" "$n" >"$work/scale.log" 2>&1 ||
  { cat "$work/scale.log" >&2; exit 1; }
"$sd_bin" crds | kubectl apply --server-side --force-conflicts -f - >/dev/null
bench_namespace "$ns"

# ---- the workload ----
# One SafeDeployment; the env var SOAK_REVISION makes every template change a new revision, and
# the fault annotation (read by kwok from the pod) makes the canary crash once Ready.
manifest() { # index revision [fault]
  local annotations=""
  [ -z "${3:-}" ] || annotations=", annotations: {safedeploy.dev/fault: $3}"
  local limit=""
  [ -z "$history_limit" ] || limit="
  revisionHistoryLimit: $history_limit"
  cat <<YAML
---
apiVersion: safedeploy.dev/v1alpha1
kind: SafeDeployment
metadata: {name: app-$1, namespace: $ns}
spec:
  replicas: 1
  minReadySeconds: 0$limit
  selector: {matchLabels: {app: app-$1}}
  template:
    metadata: {labels: {app: app-$1}$annotations}
    spec: {containers: [{name: app, image: "registry.local/app:v1", env: [{name: SOAK_REVISION, value: "$2"}]}]}
  strategy: {canary: {steps: [{setWeight: 50}, {pause: {duration: 10s}}, {setWeight: 100}]}}
YAML
}

# Every SafeDeployment as "name generation observedGeneration phase stable canary" ("-" if unset).
list_state() {
  kubectl -n "$ns" get safedeployments -o jsonpath='{range .items[*]}{.metadata.name}{"|"}{.metadata.generation}{"|"}{.status.observedGeneration}{"|"}{.status.phase}{"|"}{.status.stableRevision}{"|"}{.status.canaryRevision}{"\n"}{end}' |
    awk -F'|' '{for (i = 1; i <= 6; i++) if ($i == "") $i = "-"; print $1, $2, $3, $4, $5, $6}'
}
count_healthy() { { list_state || true; } | awk '$4 == "Healthy" && $5 != "-" {c++} END {print c+0}'; }

# ---- the process ----
clk=$(getconf CLK_TCK)
cpu_seconds() { awk -v t="$clk" '{printf "%.2f", ($14 + $15) / t}' "/proc/$pid/stat" 2>/dev/null || echo NA; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status" 2>/dev/null || echo NA; }
reconciles() {
  curl -fsS --max-time 3 "http://127.0.0.1:$http_port/metrics" 2>/dev/null |
    awk '$1 == "safedeploy_reconciles_total" {v = $2} END {print (v == "" ? "NA" : v)}'
}
heap_mib() { # kind (in_use|free) -> glibc's heap in MiB from the operator's gauge; NA where absent (musl)
  curl -fsS --max-time 3 "http://127.0.0.1:$http_port/metrics" 2>/dev/null |
    awk -v k="$1" '$1 == "safedeploy_heap_bytes{kind=\"" k "\"}" {v = $2} END {print (v == "" ? "NA" : sprintf("%.1f", v / 1048576))}'
}
metric() { # name -> value of an unlabelled counter, or the sum of a labelled family
  curl -fsS --max-time 3 "http://127.0.0.1:$http_port/metrics" 2>/dev/null |
    awk -v m="$1" '$1 == m || index($1, m "{") == 1 {v += $2; seen = 1} END {print (seen ? v : "NA")}'
}
echo 0 >"$work/cycles"
# Every 10 s until the operator ends: epoch, seconds since the operator started, RSS, cycles
# done, reconciles, CPU seconds, and the heap in use and free (so a rising RSS can be told apart
# into live data and the allocator's holes).
sample() {
  local t0=$1 now
  while kill -0 "$pid" 2>/dev/null; do
    now=$(date +%s)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$now" "$((now - t0))" "$(rss_mib)" "$(cat "$work/cycles" 2>/dev/null || echo NA)" \
      "$(reconciles)" "$(cpu_seconds)" "$(heap_mib in_use)" "$(heap_mib free)" >>"$samples"
    sleep 10
  done
}

printf 'epoch\telapsed_s\trss_mib\tcycles\treconciles\tcpu_s\theap_in_use_mib\theap_free_mib\n' >"$samples"
# shellcheck disable=SC2086 # the wrapper is a command line
${BENCH_WRAPPER:-} "$sd_bin" controller --namespace "$ns" --http-addr "127.0.0.1:$http_port" >"$work/operator.log" 2>&1 &
pid=$!
if [ -n "${BENCH_WRAPPER:-}" ]; then
  # The wrapper's child is the operator: measure and stop that process (a profiler writes its
  # data when its program exits).
  for _ in $(seq 1 50); do
    child=$(pgrep -nx "$(basename "$sd_bin")" || true)
    [ -z "$child" ] || break
    sleep 0.2
  done
  [ -n "$child" ] || { log "no operator process under $BENCH_WRAPPER"; exit 1; }
  wrapper=$pid pid=$child
fi
t0=$(date +%s)
sample "$t0" &
sampler=$!
sleep 2
kill -0 "$pid" 2>/dev/null || { log "the operator exited:"; tail -n 20 "$work/operator.log" >&2; exit 1; }

dirty=""
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || dirty=" (with uncommitted changes)"
say "bench-soak: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD)$dirty, safedeploy $profile build ($sd_bin)"
say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); N=$n, ${minutes} min, batch $batch + the previous cycle's reverted, 1 in $bad_every bad, settle timeout ${settle_timeout} s, revisionHistoryLimit ${history_limit:-unset (10)}, control-plane client rate limits $qps${BENCH_WRAPPER:+, under $BENCH_WRAPPER}"

# ---- 1. all N Healthy ----
for i in $(seq 1 "$n"); do manifest "$i" 0; done >"$work/v0.yaml"
t_apply=$(date +%s.%N)
kubectl apply --server-side -f "$work/v0.yaml" >/dev/null
healthy=0
for _ in $(seq 1 1800); do
  healthy=$(count_healthy)
  [ "$healthy" -ge "$n" ] && break
  sleep 2
done
[ "$healthy" -ge "$n" ] || { log "only $healthy of $n Healthy after an hour"; exit 1; }
say "all $n Healthy after apply: $(awk -v a="$t_apply" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s; RSS $(rss_mib) MiB, CPU $(cpu_seconds) s"
cpu_soak0=$(cpu_seconds)
promotions0=$(metric safedeploy_promotions_total)
reverts0=$(metric safedeploy_reverts_total)

# ---- 2. rollout cycles for M minutes ----
# Every pod change as a watch delivers it, stamped with its arrival (UTC): when the canary of a
# bad revision that was promoted first crashed, as the operator's own watch could have seen it.
kubectl -n "$ns" get pods --watch-only --no-headers -o \
  custom-columns='NAME:.metadata.name,RESTARTS:.status.containerStatuses[0].restartCount,EXIT:.status.containerStatuses[0].state.terminated.reason' 2>/dev/null |
  python3 -u -c 'import sys, datetime
for line in sys.stdin:
    print(datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S.%f")[:12], line, end="", flush=True)' \
  >"$work/pod-changes" &
pod_watch=$!
soak_start=$(date +%s)
soak_end=$((soak_start + minutes * 60))
picks=0 cycle=0 # picks: objects taken from the rotation so far
promoted=0 reverted=0 bad_total=0 good_reverted=0 bad_promoted=0 timed_out=0
carry=() # objects the previous cycle left Degraded or unsettled: good revisions this cycle
: >"$work/cycle-times"
log "soak: ${minutes} min of cycles"
while [ "$(date +%s)" -lt "$soak_end" ]; do
  cycle=$((cycle + 1))
  declare -A chosen=()
  : >"$work/batch"
  for i in "${carry[@]}"; do
    chosen[$i]=1
    echo "$i good" >>"$work/batch"
  done
  for _ in $(seq 1 "$batch"); do
    i=$((picks % n + 1)) round=$((picks / n))
    picks=$((picks + 1))
    [ -z "${chosen[$i]:-}" ] || continue
    chosen[$i]=1
    # 1 in bad_every is bad, a different tenth on each pass through the objects.
    if [ $(((i + round) % bad_every)) -eq 0 ]; then echo "$i bad" >>"$work/batch"; else echo "$i good" >>"$work/batch"; fi
  done
  unset chosen
  # Each object's stable revision before the change: a promotion moves it.
  until list_state >"$work/before" && [ -s "$work/before" ]; do sleep 2; done
  while read -r i kind; do
    if [ "$kind" = bad ]; then manifest "$i" "c$cycle" crash; else manifest "$i" "c$cycle"; fi
  done <"$work/batch" >"$work/batch.yaml"
  awk 'NR == FNR {old["app-" $1] = 1; next} ($1 in old) {print $1, $5}' "$work/batch" "$work/before" >"$work/old-stable"
  t_cycle=$(date +%s.%N)
  kubectl apply --server-side -f "$work/batch.yaml" >/dev/null
  deadline=$(($(date +%s) + settle_timeout))
  while :; do
    sleep 2
    if ! list_state >"$work/now" || [ ! -s "$work/now" ]; then
      [ "$(date +%s)" -lt "$deadline" ] || { log "cannot list the SafeDeployments"; exit 1; }
      continue
    fi
    # name expect outcome: promoted, reverted or - (not settled yet)
    awk 'FILENAME == ARGV[1] {want["app-" $1] = $2; next}
         FILENAME == ARGV[2] {old[$1] = $2; next}
         ($1 in want) {
           out = "-"
           if ($2 == $3 && $4 == "Degraded") out = "reverted"
           else if ($2 == $3 && $4 == "Healthy" && $5 != old[$1] && $6 == "-") out = "promoted"
           print $1, want[$1], out
         }' "$work/batch" "$work/old-stable" "$work/now" >"$work/outcome"
    if ! grep -q ' -$' "$work/outcome" || [ "$(date +%s)" -ge "$deadline" ]; then break; fi
  done
  secs=$(awk -v a="$t_cycle" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
  echo "$secs" >>"$work/cycle-times"
  read -r c_prom c_rev c_bad c_gr c_bp c_to < <(awk '
    $3 == "promoted" {p++} $3 == "reverted" {r++} $2 == "bad" {b++}
    $2 == "good" && $3 == "reverted" {gr++} $2 == "bad" && $3 == "promoted" {bp++} $3 == "-" {t++}
    END {print p+0, r+0, b+0, gr+0, bp+0, t+0}' "$work/outcome")
  promoted=$((promoted + c_prom)) reverted=$((reverted + c_rev)) bad_total=$((bad_total + c_bad))
  good_reverted=$((good_reverted + c_gr)) bad_promoted=$((bad_promoted + c_bp)) timed_out=$((timed_out + c_to))
  # Reverted and unsettled objects get a good revision next cycle.
  mapfile -t carry < <(awk '$3 != "promoted" {sub(/^app-/, "", $1); print $1}' "$work/outcome")
  # A bad revision promoted: did its canary crash before the promotion (an operator bug) or only
  # after it (the workload's timing)? The promotion's time against the first crash the pod
  # watch delivered.
  while read -r name; do
    hash=$(kubectl -n "$ns" get safedeployment "$name" -o jsonpath='{.status.history[-1:].hash}' 2>/dev/null || true)
    say "  cycle $cycle: bad revision promoted: $name ($hash) at $(kubectl -n "$ns" get safedeployment "$name" \
      -o jsonpath='{.status.history[-1:].finishedAt}' 2>/dev/null || true); its canary's first crash delivered by a watch at" \
      "$(awk -v p="$name-$hash-" 'index($2, p) == 1 && $4 == "Error" {print $1, $2; exit}' "$work/pod-changes")"
  done < <(awk '$2 == "bad" && $3 == "promoted" {print $1}' "$work/outcome")
  echo "$cycle" >"$work/cycles"
  log "cycle $cycle: $(wc -l <"$work/batch") changed ($c_bad bad): $c_prom promoted, $c_rev reverted, $c_to unsettled, in $secs s; RSS $(rss_mib) MiB; $(kubectl -n "$ns" get replicasets --no-headers 2>/dev/null | wc -l) ReplicaSets"
  kill -0 "$pid" 2>/dev/null || { log "the operator exited:"; tail -n 20 "$work/operator.log" >&2; exit 1; }
done
soak_secs=$(($(date +%s) - soak_start))
sleep 1
# A last sample at the end of the soak.
now=$(date +%s)
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$now" "$((now - t0))" "$(rss_mib)" "$cycle" "$(reconciles)" "$(cpu_seconds)" \
  "$(heap_mib in_use)" "$(heap_mib free)" >>"$samples"
cpu_end=$(cpu_seconds)

# ---- 4. the report ----
say "soak: $soak_secs s, $cycle cycles; revisions changed $((promoted + reverted + timed_out)): $promoted promoted, $reverted reverted ($bad_total bad revisions; $good_reverted good ones reverted, $bad_promoted bad ones promoted, $timed_out not settled within ${settle_timeout} s)"
say "cycle time (apply to all settled): $(sort -n "$work/cycle-times" | awk '{v[NR] = $1; s += $1} END {if (NR) printf "mean %.1f s, p50 %s s, max %s s", s / NR, v[int((NR + 1) / 2)], v[NR]; else print "no cycle"}')"
say "operator counters during the soak: promotions $(awk -v a="$promotions0" -v b="$(metric safedeploy_promotions_total)" 'BEGIN {print (a == "NA" || b == "NA") ? "NA" : b - a}'), reverts $(awk -v a="$reverts0" -v b="$(metric safedeploy_reverts_total)" 'BEGIN {print (a == "NA" || b == "NA") ? "NA" : b - a}'); in all: reconciles $(reconciles), deferred behind the operator's own status write $(metric safedeploy_reconciles_deferred_total), reconcile errors $(metric safedeploy_reconcile_errors_total), 'reconcile failed' log lines $(grep -c '"reconcile failed"' "$work/operator.log" || true)"
# Failed reconciles: by category (the operator's counter) and the commonest messages in its log.
say "reconcile errors by category: $(curl -fsS --max-time 3 "http://127.0.0.1:$http_port/metrics" 2>/dev/null |
  sed -n 's/^safedeploy_reconcile_errors_total{kind="\([^"]*\)"} \([0-9]*\).*/\1 \2/p' | paste -sd, - || true)"
python3 - "$work/operator.log" <<'PY' | tee -a "$report"
import collections, json, re, sys
seen = collections.Counter()
with open(sys.argv[1], errors="replace") as f:
    for line in f:
        if "reconcile failed" not in line:
            continue
        try:
            fields = json.loads(line).get("fields", {})
        except ValueError:
            fields = {"message": line}
        text = str(fields.get("error") or fields.get("message") or "?")
        seen[re.sub(r"app-\d+|\b[0-9a-f]{8,}\b|\b\d+\b", "#", text)[:240]] += 1
for text, count in seen.most_common(3):
    print(f"  {count} x {text}")
PY
gzip -c "$work/operator.log" >"$out_dir/$stamp-n$n-operator.log.gz"
say "end state: $(list_state | awk '{c[$4]++} END {for (p in c) printf "%s %d\n", p, c[p]}' | sort | paste -sd, -)"
if [ -z "$warmup" ]; then
  warmup=300
  [ $((minutes * 60)) -gt 600 ] || warmup=$((minutes * 60 / 3))
fi
python3 - "$samples" "$((soak_start - t0))" "$((soak_start - t0 + soak_secs))" "$warmup" <<'PY' | tee -a "$report"
import sys
path, start, end, warmup = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rows, heap = [], []
with open(path) as f:
    next(f)
    for line in f:
        p = line.rstrip("\n").split("\t")
        try:
            rows.append((float(p[1]), float(p[2])))
        except (ValueError, IndexError):
            continue
        try:
            heap.append((float(p[1]), float(p[6]), float(p[7])))
        except (ValueError, IndexError):
            pass
soak = [(t, r) for t, r in rows if start <= t <= end + 5]
def slope(pts):
    if len(pts) < 3:
        return f"n/a ({len(pts)} samples)"
    mt = sum(t for t, _ in pts) / len(pts)
    mr = sum(r for _, r in pts) / len(pts)
    sxx = sum((t - mt) ** 2 for t, _ in pts)
    sxy = sum((t - mt) * (r - mr) for t, r in pts)
    return f"{sxy / sxx * 3600:+.2f} MiB/h ({len(pts)} samples over {pts[-1][0] - pts[0][0]:.0f} s)"
if not soak:
    print("RSS: no samples during the soak")
    sys.exit()
rss = [r for _, r in soak]
print(f"RSS during the soak (MiB, every 10 s): first {rss[0]:.1f}, min {min(rss):.1f}, max {max(rss):.1f}, last {rss[-1]:.1f}; "
      f"peak over the whole run {max(r for _, r in rows):.1f}")
print(f"RSS slope after a {warmup:.0f} s warm-up: {slope([(t, r) for t, r in soak if t >= start + warmup])}")
print(f"RSS slope over the second half: {slope([(t, r) for t, r in soak if t >= start + (end - start) / 2])}")
heap = [h for h in heap if start <= h[0] <= end + 5]
if heap:
    print(f"heap in use (MiB): first {heap[0][1]:.1f}, max {max(h[1] for h in heap):.1f}, last {heap[-1][1]:.1f}; "
          f"slope after the warm-up {slope([(t, u) for t, u, _ in heap if t >= start + warmup])}; "
          f"free in the heap: first {heap[0][2]:.1f}, max {max(h[2] for h in heap):.1f}, last {heap[-1][2]:.1f}")
else:
    print("heap: no samples (the gauge is absent, as in a musl build)")
PY
say "CPU seconds: $cpu_end in all ($cpu_soak0 to all Healthy, $(awk -v a="$cpu_soak0" -v b="$cpu_end" 'BEGIN {printf "%.2f", b - a}') during the soak: $(awk -v a="$cpu_soak0" -v b="$cpu_end" -v s="$soak_secs" 'BEGIN {printf "%.1f%%", 100 * (b - a) / s}') of one core)"
say "samples: $samples; operator log: $out_dir/$stamp-n$n-operator.log.gz"
log "report: $report"
