#!/usr/bin/env bash
# Side-by-side benchmark: safedeploy and Argo Rollouts (built from its Go module by
# e2e/lib/build-argo-rollouts.sh) on the same local control plane, each ALONE (never competing
# for the cores), with the same workload: N rollouts of one pod each on kwok nodes, the same
# steps (setWeight 50, a timed pause, setWeight 100; no analysis), bulk apply until all are
# Healthy, a bulk template change until all are promoted, then a rest period, then a restart
# with N objects in place.
#
# Measured for each operator (and printed as ratios):
#   - RSS (VmRSS, sampled every second): peak, and steady at the end of the rest period, each split
#     into anonymous and file-backed pages (RssAnon, RssFile);
#   - CPU seconds (utime + stime of the process) per phase and in total;
#   - time to all Healthy and to all promoted, with the control plane's cost in each phase (the bulk
#     apply's duration, kube-apiserver's and etcd's CPU, kube-apiserver's RSS), to compare days;
#   - API requests by verb made by the operator (its user agent), from the API server's audit
#     log; and the writes (create/update/patch/delete) it made during the rest period;
#   - start-up with N objects in place, over --restarts K restarts (default 5): from spawning
#     the process to its caches synced and to its first reconcile, timed as each operator's log
#     lines arrive (by a stamper started before the operator, so that its own start is not
#     measured), and for safedeploy its own clock too; and the first restart's requests (audit
#     log), its RSS after 15 s and its peak RSS since it started (VmHWM).
#
# Usage: e2e/bench-peers.sh [N] [--rest SECONDS] [--only sd|argo] [--unlimited-qps] [--shards K]
#                           [--startup-critical S] [--progress-deadline S] [--restarts K]
#                           [--wait-cap S] [--initial-list paged|streaming|paged,streaming]
#                           [--no-change]
#   N defaults to 1000, the rest period to 600 s (the issue's 10 minutes). PROFILE=debug uses
#   the debug build of safedeploy (for a quick check of the script, not for numbers);
#   BENCH_BIN=path uses an already built safedeploy; BENCH_BIN=image builds and measures the
#   image's static binary (e2e/lib/release.sh: musl, the Dockerfile's flags), what ships.
#   --unlimited-qps lifts kube-controller-manager's and kube-scheduler's client rate limits
#   (20 and 50 requests/s), which otherwise bound the time to create the pods at 10,000 for
#   either operator; the report says which was used.
#   --shards K runs safedeploy alone as K processes, one per shard (`--shard
#   safedeploy.dev/shard=s<i>`, object i labelled s<i mod K>), and reports each process's RSS,
#   CPU and reconciles, and the time for all N (against one operator: a run without --shards).
#   --startup-critical S raises safedeploy's start-up latency gate (pod creation to Ready, default
#   critical 60 s) to S: at 10,000 on 2 cores kwok and the scheduler lag by more than a minute,
#   and the default gate reverts good canaries (Argo Rollouts has no such gate). Acceptable is
#   raised to S - 1 (the schema wants acceptable < critical): a Marginal start-up latency holds
#   the step, and a started pod's latency never improves, so the canary would wait for its
#   progress deadline.
#   --progress-deadline S sets both operators' progress deadline to S seconds (default 10
#   minutes for both): on 2 cores a bulk change of 10,000 leaves canaries Pending for longer.
#   --initial-list paged|streaming sets how safedeploy's watches read the objects at start
#   (`--initial-list` of `safedeploy controller`; default streaming); a comma-separated list times
#   the restarts once per strategy (the first one runs the rollouts).
#   --no-change skips the template change (apply, all Healthy, rest, restarts): the start-up
#   measurement at 10,000 without the half hour of the change.
#   --wait-cap S stops each wait (to all Healthy, to all promoted) after S seconds (default 7200);
#   the report then says NOT FINISHED with the count reached, and the run goes on.
# The numbers are printed (and written to target/bench-peers/<date>-N.txt); nothing is asserted.
# It runs its own cluster instance (SAFEDEPLOY_CLUSTER_NAME=peers, with the audit log on), which
# it creates and deletes; the default test cluster is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

n=1000 rest=600 only="" qps=limited shards=0 startup_critical="" progress_deadline="" restarts=5
initial_lists=streaming change=yes
wait_cap=7200
while [ $# -gt 0 ]; do
  case "$1" in
    --unlimited-qps) qps=unlimited; export SAFEDEPLOY_DISABLE_QPS_LIMITS=1; shift ;;
    --rest) rest=$2; shift 2 ;;
    --restarts) restarts=$2; shift 2 ;;
    --wait-cap) wait_cap=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --shards) shards=$2; only=sd; shift 2 ;;
    --startup-critical) startup_critical=$2; shift 2 ;;
    --progress-deadline) progress_deadline=$2; shift 2 ;;
    --initial-list) initial_lists=$2; shift 2 ;;
    --no-change) change=no; shift ;;
    [0-9]*) n=$1; shift ;;
    *) echo "bench-peers: unknown argument $1" >&2; exit 2 ;;
  esac
done

export SAFEDEPLOY_INITIAL_LIST=${initial_lists%%,*}
export SAFEDEPLOY_CLUSTER_NAME=peers
export SAFEDEPLOY_PROMETHEUS_PORT=19290 SAFEDEPLOY_EMITTER_PORT=19664
run_dir="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}/peers"
out_dir="$REPO/target/bench-peers"
mkdir -p "$run_dir" "$out_dir"
report="$out_dir/$(date -u +%Y%m%dT%H%M%SZ)-n$n.txt"
work=$(mktemp -d)
pid="" shard_pids=()
log() { echo "bench-peers: $*" >&2; }
say() { echo "$*" | tee -a "$report"; }

cat >"$run_dir/audit-policy.yaml" <<'YAML'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
YAML
export SAFEDEPLOY_AUDIT_POLICY="$run_dir/audit-policy.yaml"

cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  [ ${#shard_pids[@]} -eq 0 ] || kill "${shard_pids[@]}" 2>/dev/null || true
  e2e/cluster.sh down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=e2e/lib/bench.sh
source e2e/lib/bench.sh
profile=${PROFILE:-release}
sd_bin=$(bench_binary "$profile")
argo_bin="" argo_crds=""
if [ "$only" != sd ]; then
  argo_bin="$(e2e/lib/build-argo-rollouts.sh)"
  argo_crds="$(e2e/lib/build-argo-rollouts.sh --crds)"
fi

e2e/cluster.sh down >/dev/null 2>&1 || true
e2e/cluster.sh up >/dev/null
eval "$(e2e/cluster.sh env)"
audit_log="$run_dir/kwok/clusters/peers/logs/audit.log"
[ -f "$audit_log" ] || { log "no audit log at $audit_log"; exit 1; }
bench_nodes "$run_dir" peers "$n" >/dev/null
"$sd_bin" crds | kubectl apply --server-side --force-conflicts -f - >/dev/null
[ -z "$argo_crds" ] || for crd in "$argo_crds"/*-crd.yaml; do kubectl apply --server-side --force-conflicts -f "$crd" >/dev/null; done

# ---- the workload, the same for both ----
# The same spec for both operators; only the kind differs.
manifests() { # kind namespace image
  local api_version=safedeploy.dev/v1alpha1 kind=SafeDeployment
  [ "$1" = argo ] && api_version=argoproj.io/v1alpha1 kind=Rollout
  local labels="" health=""
  [ "$1" != sd ] || [ -z "$startup_critical" ] ||
    health="
  health: {startupLatencySeconds: {target: 10, acceptable: $((startup_critical - 1)), critical: $startup_critical}}"
  if [ -n "$progress_deadline" ]; then
    if [ "$1" = sd ]; then health="$health
  progressDeadline: ${progress_deadline}s"; else health="$health
  progressDeadlineSeconds: $progress_deadline"; fi
  fi
  for i in $(seq 1 "$n"); do
    [ "$shards" -eq 0 ] || labels=", labels: {safedeploy.dev/shard: s$((i % shards))}"
    cat <<YAML
---
apiVersion: $api_version
kind: $kind
metadata: {name: app-$i, namespace: $2$labels}
spec:
  replicas: 1
  minReadySeconds: 0
  selector: {matchLabels: {app: app-$i}}
  template:
    metadata: {labels: {app: app-$i}}
    spec: {containers: [{name: app, image: "$3"}]}
  strategy: {canary: {steps: [{setWeight: 50}, {pause: {duration: 10s}}, {setWeight: 100}]}}$health
YAML
  done
}

# How many objects are done (count_done_since in e2e/lib/bench.sh says what that means).
stables() { # kind namespace -> "name phase stable" lines
  case "$1" in
    sd) kubectl -n "$2" get safedeployments -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.phase}{" "}{.status.stableRevision}{"\n"}{end}' ;;
    argo) kubectl -n "$2" get rollouts.argoproj.io -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.status.phase}{" "}{.status.stableRS}{"\n"}{end}' ;;
  esac
}
count_done() { # kind namespace [old-stables-file]
  stables "$1" "$2" | count_done_since "${3:-}"
}
apply_and_wait() { # file kind namespace [old-stables-file] -> seconds (fractional) from the start of the apply
  local start
  start=$(date +%s.%N)
  # A command substitution does not inherit set -e: a rejected apply must stop the run here,
  # not leave it waiting two hours for objects that were never created.
  if ! kubectl apply --server-side -f "$1" >/dev/null; then
    log "the apply of $1 was rejected; stopping"
    return 1
  fi
  # The bulk apply's own duration, for the control-plane line of the report (this runs in a
  # command substitution: a file carries it out).
  awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}' >"$work/apply-seconds"
  shift
  wait_done "$start" "$@"
}
wait_done() { # start kind namespace [old-stables-file] -> seconds (fractional) since start
  local start=$1 now
  shift
  # A list of every object each second costs the API server (and the cores both share) more
  # than the operators at 10,000: poll less often there, at the cost of that much precision.
  # The cap and the log count wall-clock seconds: at 10,000 a list takes seconds of its own.
  local every=$(( n >= 5000 ? 10 : 1 )) done_count=0 began=$SECONDS logged=$SECONDS
  while [ $((SECONDS - began)) -lt "$wait_cap" ]; do
    done_count=$(count_done "$@")
    [ "$done_count" -ge "$n" ] && break
    # A minute-by-minute count shows a long wait is moving (and a stopped run what it reached).
    if [ $((SECONDS - logged)) -ge 60 ]; then
      log "$1: $done_count of $n done after $((SECONDS - began)) s"
      logged=$SECONDS
    fi
    sleep "$every"
  done
  now=$(date +%s.%N)
  if [ "$done_count" -lt "$n" ]; then
    # The time printed is then the cap, not a finish: say so in the report (stdout is the value).
    log "stopped waiting after $wait_cap s: $done_count of $n done"
    echo "  NOT FINISHED: $done_count of $n done when the wait stopped ($wait_cap s); the time below is the cap" >>"$report"
  fi
  awk -v a="$start" -v b="$now" 'BEGIN {printf "%.1f", b - a}'
}

# ---- the process ----
clk=$(getconf CLK_TCK)
cpu_seconds() { awk -v t="$clk" '{printf "%.2f", ($14 + $15) / t}' "/proc/${1:-$pid}/stat"; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/${1:-$pid}/status"; }
# RSS split as the kernel counts it: anonymous (the heap, stacks) and file-backed (the binary's
# and its libraries' pages: code mapped as it runs, clean and reclaimable, but counted).
rss_parts() { awk '/^RssAnon/ {a = $2} /^RssFile/ {f = $2} END {printf "%.1f %.1f", a/1024, f/1024}' "/proc/${1:-$pid}/status"; }
sample_rss() { # [pid file]: writes "epoch rss anon file" lines in MiB (to $work/rss) until the process ends
  local p=${1:-$pid} file=${2:-$work/rss}
  while kill -0 "$p" 2>/dev/null; do
    echo "$(date +%s) $(awk '/^VmRSS/ {r = $2} /^RssAnon/ {a = $2} /^RssFile/ {f = $2}
      END {printf "%.1f %.1f %.1f", r/1024, a/1024, f/1024}' "/proc/$p/status" 2>/dev/null || echo "0 0 0")" >>"$file"
    sleep 1
  done
}
# Prefixes each line the operator writes to the FIFO with the time it arrived (epoch seconds),
# into logfile: the start-up marks of both operators are timed by the same clock (Argo Rollouts'
# own log times have whole seconds only). The interpreter starts, and says so, before the
# operator is spawned: its own start (about 20 ms of CPU) would otherwise fall in the measured
# window, on cores the operator and the API server need.
start_stamper() { # fifo logfile
  local ready="$1.ready"
  rm -f "$1" "$ready"
  mkfifo "$1"
  python3 -u -c 'import sys, time
fifo, ready = sys.argv[1], sys.argv[2]
open(ready, "w").close()
with open(fifo) as lines:
    for line in lines: sys.stdout.write(f"{time.time():.6f} {line}")' "$1" "$ready" >"$2" &
  local _
  for _ in $(seq 1 100); do [ ! -e "$ready" ] || return 0; sleep 0.05; done
  echo "the log stamper did not start" >&2
  return 1
}
start_operator() { # kind namespace logfile [stamped]
  # Stamped (the start-up measurement): each log line is timed on arrival, and Argo Rollouts logs
  # at info, where it says when its caches synced and when a reconcile starts.
  local argo_level=warn
  [ -z "${4:-}" ] || argo_level=info
  local out="$3"
  if [ -n "${4:-}" ]; then
    out="$work/stamp.fifo"
    start_stamper "$out" "$3"
  fi
  spawned=$(date +%s.%N) # the start-up measurement's zero
  case "$1" in
    sd) "$sd_bin" controller --namespace "$2" --http-addr "127.0.0.1:$sd_http_port" >"$out" 2>&1 & ;;
    argo) "$argo_bin" --kubeconfig "$KUBECONFIG" --namespaced --namespace "$2" --leader-elect=false \
            --metricsport 19980 --healthzPort 19981 --loglevel "$argo_level" >"$out" 2>&1 & ;;
  esac
  pid=$!
  : >"$work/rss"
  sample_rss &
}
sd_http_port=19965 # outside 19500-19899, which tests/analysis.rs takes for its own Prometheus
sd_metric() { # name [port] -> an unlabelled safedeploy counter (0 if absent)
  curl -sf "http://127.0.0.1:${2:-$sd_http_port}/metrics" | awk -v m="$1" '$1 == m {print $2; f=1} END {if (!f) print 0}'
}
# safedeploy's reconcile counter (0 for Argo Rollouts, which is not asked): a reconcile at rest
# that makes no request is invisible in the audit log.
reconciles() { # kind [port]
  [ "$1" = sd ] || { echo 0; return; }
  sd_metric safedeploy_reconciles_total "${2:-$sd_http_port}"
}
stop_operator() {
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  # Argo Rollouts v1.10.1 at 10,000 once stayed alive minutes after logging "All rollout workers
  # have stopped": after 30 s the process is killed outright (its timings are already read).
  local _
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}
# The control plane's own cost in each phase. Its speed differs from day to day on the same
# machine (the bulk apply of the change at 10,000 took 17 minutes one day and 33 the next), and
# the operators' times and CPU follow it: these lines let runs of different days be compared.
cp_pid() { pgrep -f "clusters/peers/bin/$1 " | head -n 1; }
cp_usage() { # -> "kube-apiserver-cpu etcd-cpu" (seconds so far)
  local c p out=""
  for c in kube-apiserver etcd; do
    p=$(cp_pid "$c")
    out="$out $( [ -n "$p" ] && cpu_seconds "$p" 2>/dev/null || echo NA)"
  done
  echo "${out# }"
}
cp_report() { # label "usage before" "usage after" seconds
  local apply_s="?"
  [ ! -s "$work/apply-seconds" ] || apply_s=$(cat "$work/apply-seconds")
  say "  control plane, $1: the bulk kubectl apply took $apply_s s; $(awk -v a="$2" -v b="$3" -v s="$4" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    if (x[1] == "NA" || y[1] == "NA") { printf "kube-apiserver CPU not read"; exit }
    printf "kube-apiserver CPU %.1f s (%.0f%% of one core), etcd CPU %.1f s", y[1] - x[1], (s > 0 ? 100 * (y[1] - x[1]) / s : 0), y[2] - x[2] }'); kube-apiserver RSS $(p=$(cp_pid kube-apiserver); [ -n "$p" ] && rss_mib "$p" || echo NA) MiB"
}
median() { printf '%s\n' "$@" | grep -v none | sort -n | awk '{v[NR]=$1} END {print NR ? v[int((NR + 1) / 2)] : "none"}'; }
peak_rss() { awk 'BEGIN {m=0} $2 > m {m=$2} END {printf "%.1f", m}' "${1:-$work/rss}"; }
# The heap and stacks alone, without the code pages (each binary's own size): the peak of
# RssAnon, which need not fall on the peak of RSS.
peak_rss_anon() { awk 'BEGIN {m=0} $3 > m {m=$3} END {printf "%.1f", m}' "${1:-$work/rss}"; }
peak_rss_parts() { # -> "anon A MiB, file-backed F MiB" at the sample of the peak
  awk 'BEGIN {m=-1} $2 > m {m=$2; a=$3; f=$4} END {printf "anonymous %.1f MiB, file-backed %.1f MiB", a, f}' "${1:-$work/rss}"
}

# Requests from user agents that match $1 in the audit log between two RFC 3339 instants, by verb.
audit_counts() { # agent-regex from to
  python3 - "$audit_log" "$1" "$2" "$3" <<'PY'
import glob, json, os, re, sys, collections
path, agent, since, until = sys.argv[1], re.compile(sys.argv[2]), sys.argv[3], sys.argv[4]
verbs = collections.Counter()
by_resource = collections.Counter()
first = None
# The API server rotates its audit log at 100 MB (audit-<time>.log beside it): at 10,000 a run
# writes several, and reading only the current one undercounts.
for log_file in sorted(glob.glob(os.path.join(os.path.dirname(path), "audit*.log"))):
    with open(log_file) as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            at = e.get("requestReceivedTimestamp", "")
            if not (since <= at < until) or not agent.search(e.get("userAgent", "")):
                continue
            verbs[e.get("verb", "?")] += 1
            ref = e.get("objectRef") or {}
            what = ref.get("resource", "?") + ("/" + ref["subresource"] if ref.get("subresource") else "")
            by_resource[f"{e.get('verb', '?')} {what}"] += 1
            first = min(first, at) if first else at
writes = sum(verbs[v] for v in ("create", "update", "patch", "delete", "deletecollection"))
print(" ".join(f"{v}={c}" for v, c in sorted(verbs.items())) or "none", f"| writes={writes}", f"| first={first}")
if by_resource:
    print("    top:", ", ".join(f"{k} {c}" for k, c in by_resource.most_common(8)))
PY
}
now3339() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }

run_one() { # kind
  local kind=$1 ns="bench-$1" agent t_start t_changed t_rest t_end old cpu0 cpu1 cpu2 cpu_settled cpu3 \
    healthy promoted rss_rest cp0 cp1 cp2
  case "$kind" in sd) agent='^safedeploy/' ;; argo) agent='rollouts-controller|argo-rollouts' ;; esac
  bench_namespace "$ns" # Argo Rollouts ignores the policy
  say ""
  say "== $kind: $n rollouts, one pod each"
  t_start=$(now3339)
  start_operator "$kind" "$ns" "$work/$kind.log"
  sleep 2
  manifests "$kind" "$ns" registry.local/app:v1 >"$work/$kind-v1.yaml"
  cpu0=$(cpu_seconds)
  cp0=$(cp_usage)
  healthy=$(apply_and_wait "$work/$kind-v1.yaml" "$kind" "$ns")
  cpu1=$(cpu_seconds)
  cp1=$(cp_usage)
  say "  all Healthy, from the start of the apply: ${healthy} s (CPU ${cpu0} -> ${cpu1} s)"
  cp_report "apply to all Healthy" "$cp0" "$cp1" "$healthy"
  if [ "$change" = yes ]; then
    old="$work/$kind-v1-stables"
    stables "$kind" "$ns" >"$old"
    manifests "$kind" "$ns" registry.local/app:v2 >"$work/$kind-v2.yaml"
    promoted=$(apply_and_wait "$work/$kind-v2.yaml" "$kind" "$ns" "$old")
    cpu2=$(cpu_seconds)
    cp2=$(cp_usage)
    say "  all promoted, from the start of the template change's apply: ${promoted} s (CPU ${cpu1} -> ${cpu2} s)"
    cp_report "change to all promoted" "$cp1" "$cp2" "$promoted"
  else
    promoted=0 cpu2=$cpu1
    say "  no template change (--no-change)"
  fi
  t_changed=$(now3339)
  sleep 10 # the last status writes of the rollout settle (old pods terminate, their events)
  t_rest=$(now3339)
  cpu_settled=$(cpu_seconds)
  local rec_settled rec_tail rec_end
  rec_settled=$(reconciles "$kind")
  # The last 60 s of the rest period are reported apart: after a bulk change the old pods'
  # deletions still arrive for a while (each one a watch event), and that tail is not rest.
  local tail_window=60 cpu_tail
  if [ "$rest" -gt "$tail_window" ]; then
    sleep $((rest - tail_window))
    cpu_tail=$(cpu_seconds)
    rec_tail=$(reconciles "$kind")
    sleep "$tail_window"
  else
    cpu_tail=$cpu_settled
    rec_tail=$rec_settled
    sleep "$rest"
  fi
  t_end=$(now3339)
  cpu3=$(cpu_seconds)
  rec_end=$(reconciles "$kind")
  rss_rest=$(rss_mib)
  # At rest counts from the end of the settle period, as the API requests at rest do.
  say "  RSS: peak $(peak_rss) MiB ($(peak_rss_parts); anonymous alone peaked at $(peak_rss_anon) MiB), at rest $rss_rest MiB ($(rss_parts | awk '{printf "anonymous %s MiB, file-backed %s MiB", $1, $2}')); CPU total $cpu3 s (settling 10 s after promoted: $(awk -v a="$cpu2" -v b="$cpu_settled" 'BEGIN {printf "%.2f", b - a}') s; at rest: $(awk -v a="$cpu_settled" -v b="$cpu3" 'BEGIN {printf "%.2f", b - a}') s over ${rest} s, of which $(awk -v a="$cpu_tail" -v b="$cpu3" 'BEGIN {printf "%.2f", b - a}') s in the last ${tail_window} s)"
  [ "$kind" != sd ] || say "  reconciles at rest: $((rec_end - rec_settled)) in ${rest} s, of which $((rec_end - rec_tail)) in the last ${tail_window} s"
  [ "$kind" != sd ] || say "  reconciles in all: $rec_end; deferred behind the operator's own status write: $(sd_metric safedeploy_reconciles_deferred_total); errors by kind: $(curl -sf "http://127.0.0.1:$sd_http_port/metrics" | sed -n 's/^safedeploy_reconcile_errors_total{kind="\([^"]*\)"} \([0-9]*\).*/\1 \2/p' | paste -sd, - || true)"
  say "  API requests, rollouts (apply to promoted): $(audit_counts "$agent" "$t_start" "$t_changed")"
  say "  API requests at rest (${rest} s): $(audit_counts "$agent" "$t_rest" "$t_end")"
  local rss_peak rss_peak_anon
  rss_peak=$(peak_rss) # before the restarts, which sample anew
  rss_peak_anon=$(peak_rss_anon)
  stop_operator
  # Start-up with N objects in place, $restarts times: from spawning the process to its caches
  # synced and to its first reconcile, read from its log lines as they arrive (safedeploy:
  # "start-up timing" and "first reconcile"; Argo Rollouts: "Starting Rollout workers", which it
  # logs once every informer has synced, and the first "Started syncing rollout"). The first
  # restart also counts its requests, its RSS after 15 s and its peak RSS (VmHWM).
  local t_restart i spawned synced_at first_at synced_ms=() first_ms=() own_ms=() hwm_mib=() synced_mark first_mark
  case "$kind" in
    sd) synced_mark='start-up timing' first_mark='"first reconcile"' ;;
    argo) synced_mark='Starting Rollout workers' first_mark='Started syncing rollout' ;;
  esac
  local strategy strategies=paged
  [ "$kind" != sd ] || strategies=${initial_lists//,/ }
  for strategy in $strategies; do
    [ "$kind" != sd ] || export SAFEDEPLOY_INITIAL_LIST=$strategy
    synced_ms=() first_ms=() own_ms=() hwm_mib=()
    for i in $(seq 1 "$restarts"); do
      # The previous process's connections and watches wind down on the API server first.
      sleep 2
      t_restart=$(now3339)
      start_operator "$kind" "$ns" "$work/$kind-restart-$i.log" stamped
      synced_at="" first_at=""
      for _ in $(seq 1 120); do
        synced_at=$(grep -s -m1 -F "$synced_mark" "$work/$kind-restart-$i.log" | cut -d' ' -f1 || true)
        first_at=$(grep -s -m1 -F "$first_mark" "$work/$kind-restart-$i.log" | cut -d' ' -f1 || true)
        [ -z "$synced_at" ] || [ -z "$first_at" ] || break
        # The marks are timed by the stamper as they arrive; polling slower only keeps this loop
        # off the cores during the start.
        sleep 0.5
      done
      synced_ms+=("$(awk -v a="$spawned" -v b="${synced_at:-0}" 'BEGIN {print (b > 0 ? int((b - a) * 1000) : "none")}')")
      first_ms+=("$(awk -v a="$spawned" -v b="${first_at:-0}" 'BEGIN {print (b > 0 ? int((b - a) * 1000) : "none")}')")
      # safedeploy's own clock, from the start of its controller (no process spawn, no log
      # pipe): its "start-up timing" line, the safedeploy_startup_phase_seconds metric.
      [ "$kind" != sd ] || own_ms+=("$(grep -s -m1 -o '"cache_sync_ms":"[0-9]*"' "$work/$kind-restart-$i.log" | grep -o '[0-9][0-9]*' || echo none)")
      if [ "$i" -eq 1 ]; then
        sleep 15
        say "  restart: process start $t_restart; first request and requests in 15 s: $(audit_counts "$agent" "$t_restart" "$(now3339)")"
        if [ "$kind" = sd ]; then
          say "  restart: $(grep 'start-up timing' "$work/$kind-restart-1.log" | sed 's/.*"fields"://' | cut -c1-300)"
        fi
        # VmHWM: the peak since the process started, its initial lists included, which the
        # run's peak above (sampled from a start with no objects) does not see.
        say "  RSS 15 s after restart: $(rss_mib) MiB; peak since the restart (VmHWM): $(awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$pid/status") MiB"
      fi
      # Each restart's peak so far (its caches filled, its first reconciles begun).
      hwm_mib+=("$(awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$pid/status" 2>/dev/null || echo none)")
      stop_operator
    done
    say "  start-up over $restarts restarts$([ "$kind" != sd ] || echo ", initial list $strategy"), ms from spawning the process: caches synced ${synced_ms[*]} (median $(median "${synced_ms[@]}")); first reconcile ${first_ms[*]} (median $(median "${first_ms[@]}"))$([ "$kind" != sd ] || echo "; caches synced by its own clock (from the controller's start, its start-up timing line) ${own_ms[*]} (median $(median "${own_ms[@]}"))"); peak RSS since the start (VmHWM) at each restart's stop ${hwm_mib[*]} MiB (median $(median "${hwm_mib[@]}"))"
  done
  [ "$kind" != sd ] || export SAFEDEPLOY_INITIAL_LIST=${initial_lists%%,*}
  printf '%s %s %s %s %s %s\n' "$kind" "$healthy" "$promoted" "$rss_peak" "$cpu3" "$rss_peak_anon" >>"$work/summary"
  kubectl delete namespace "$ns" --wait=false >/dev/null
}

# safedeploy as $shards processes, one per shard, side by side on the same objects' namespace.
run_sharded() {
  local ns=bench-sd t_start t_changed t_rest t_end old healthy promoted s port cp0 cp1 cp2
  bench_namespace "$ns"
  say ""
  say "== sd over $shards shards: $n rollouts, one pod each, one process per shard (--shard safedeploy.dev/shard=s<i>)"
  t_start=$(now3339)
  for s in $(seq 0 $((shards - 1))); do
    port=$((sd_http_port + 1 + s))
    "$sd_bin" controller --namespace "$ns" --http-addr "127.0.0.1:$port" \
      --shard "safedeploy.dev/shard=s$s" >"$work/sd-shard-$s.log" 2>&1 &
    shard_pids[s]=$!
    : >"$work/rss-$s"
    sample_rss "${shard_pids[s]}" "$work/rss-$s" &
  done
  sleep 2
  manifests sd "$ns" registry.local/app:v1 >"$work/sd-v1.yaml"
  cp0=$(cp_usage)
  healthy=$(apply_and_wait "$work/sd-v1.yaml" sd "$ns")
  cp1=$(cp_usage)
  say "  all Healthy, from the start of the apply: ${healthy} s"
  cp_report "apply to all Healthy" "$cp0" "$cp1" "$healthy"
  old="$work/sd-v1-stables"
  stables sd "$ns" >"$old"
  manifests sd "$ns" registry.local/app:v2 >"$work/sd-v2.yaml"
  promoted=$(apply_and_wait "$work/sd-v2.yaml" sd "$ns" "$old")
  cp2=$(cp_usage)
  t_changed=$(now3339)
  say "  all promoted, from the start of the template change's apply: ${promoted} s"
  cp_report "change to all promoted" "$cp1" "$cp2" "$promoted"
  sleep 10
  t_rest=$(now3339)
  local -a cpu_settled rec_settled
  for s in $(seq 0 $((shards - 1))); do
    cpu_settled[s]=$(cpu_seconds "${shard_pids[s]}")
    rec_settled[s]=$(reconciles sd $((sd_http_port + 1 + s)))
  done
  sleep "$rest"
  t_end=$(now3339)
  local rss_sum=0 peak_sum=0 cpu_sum=0 cpu rss peak
  for s in $(seq 0 $((shards - 1))); do
    cpu=$(cpu_seconds "${shard_pids[s]}") rss=$(rss_mib "${shard_pids[s]}") peak=$(peak_rss "$work/rss-$s")
    say "  shard s$s: RSS peak $peak MiB, at rest $rss MiB; CPU $cpu s (at rest $(awk -v a="${cpu_settled[s]}" -v b="$cpu" 'BEGIN {printf "%.2f", b - a}') s over ${rest} s); reconciles $(reconciles sd $((sd_http_port + 1 + s))) (at rest $(( $(reconciles sd $((sd_http_port + 1 + s))) - rec_settled[s] ))); $(grep -c '"reconcile failed"' "$work/sd-shard-$s.log" || true) failed reconciles logged"
    rss_sum=$(awk -v a="$rss_sum" -v b="$rss" 'BEGIN {print a + b}')
    peak_sum=$(awk -v a="$peak_sum" -v b="$peak" 'BEGIN {print a + b}')
    cpu_sum=$(awk -v a="$cpu_sum" -v b="$cpu" 'BEGIN {print a + b}')
  done
  say "  all shards: RSS peaks summed $peak_sum MiB, at rest $rss_sum MiB; CPU $cpu_sum s"
  say "  API requests, rollouts (apply to promoted): $(audit_counts '^safedeploy/' "$t_start" "$t_changed")"
  say "  API requests at rest (${rest} s): $(audit_counts '^safedeploy/' "$t_rest" "$t_end")"
  kill "${shard_pids[@]}" 2>/dev/null || true
  wait "${shard_pids[@]}" 2>/dev/null || true
  shard_pids=()
}

say "bench-peers: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), safedeploy $profile build ($sd_bin), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), N=$n, shards $shards (0: one process), start-up latency gate critical ${startup_critical:-60 (default)} s, progress deadline ${progress_deadline:-600 (default)} s, rest ${rest} s, control-plane client rate limits: $qps, safedeploy initial list: $initial_lists"
say "safedeploy $("$sd_bin" --version 2>/dev/null || echo '?'), Argo Rollouts ${argo_bin:+$(basename "$(dirname "$(dirname "$argo_bin")")")}${argo_bin:-not run}"
[ "$shards" -eq 0 ] || { run_sharded; log "report: $report"; exit 0; }
for kind in sd argo; do
  [ -z "$only" ] || [ "$only" = "$kind" ] || continue
  run_one "$kind"
done
if [ -z "$only" ]; then
  say ""
  say "== ratios (Argo Rollouts / safedeploy)"
  awk '{k[NR]=$0} END {split(k[1], s); split(k[2], a);
    printf "  time to Healthy %.2f, time to promoted %.2f, peak RSS %.1fx, peak anonymous RSS %.1fx, CPU seconds %.1fx\n",
      a[2]/s[2], (s[3] > 0 ? a[3]/s[3] : 0), a[4]/s[4], (s[6] > 0 ? a[6]/s[6] : 0), a[5]/s[5]}' "$work/summary" | tee -a "$report"
fi
log "report: $report"
