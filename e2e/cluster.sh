#!/usr/bin/env bash
# The project's local Kubernetes control plane for integration tests and the demo: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kwok (3 fake nodes, pod life cycles
# with annotation-driven faults) with the Gateway API CRDs (e2e/lib/gateway-api.sh) run as plain processes on 127.0.0.1 through `kwokctl --runtime
# binary`; optionally a real Prometheus (Debian package) scraping the metrics emitter
# (`safedeploy emitter`); optionally a real node (`--real-nodes`: containerd, runc, CNI bridge,
# kubelet, kube-proxy; see e2e/lib/real-node.sh and docs/real-pods.md). Binaries come from
# e2e/lib/build-control-plane.sh (cached).
#
# Usage: e2e/cluster.sh up [--with-prometheus|--prometheus-only] [--real-nodes] [--with-traefik]
#                          [--with-metrics-server]
#        | down [--only-prometheus] | status | env
#   up      idempotent: starts what is not running and waits until it is ready;
#           `up --prometheus-only` starts only Prometheus and the emitter (e.g. next to kind);
#           `up --real-nodes` adds one real node (root only) next to the kwok nodes, and kwok
#           then manages only its own fake nodes (annotated kwok.x-k8s.io/node=fake); with
#           --with-prometheus too, Prometheus is built from its Go module (Debian's lacks
#           Kubernetes service discovery) and also scrapes pods annotated prometheus.io/scrape;
#           `up --with-traefik` adds the data plane (e2e/lib/traefik.sh: Traefik and a Gateway,
#           AnyIP routes for the kwok pod IPs; docs/data-plane.md);
#           `up --with-metrics-server` (at creation) adds the resource metrics API for a real
#           HPA: metrics-server (e2e/lib/build-metrics-server.sh) scraping kwok's simulated
#           kubelet resource metrics, with pod CPU usage set by ClusterResourceUsage objects
#           (docs/autoscaling.md)
#   down    stops everything this script started (cluster, Prometheus, emitter, Traefik);
#           `down --only-prometheus` stops only Prometheus and the emitter
#   status  prints the state of every part; exit 0 only if the cluster is ready
#   env     prints `export ...` lines: eval "$(e2e/cluster.sh env)"
# Environment: SAFEDEPLOY_CACHE (default ~/.cache/safedeploy), SAFEDEPLOY_CLUSTER_NAME (default
# safedeploy; another name is another instance), SAFEDEPLOY_RUN_DIR (default
# $SAFEDEPLOY_CACHE/cluster, or $SAFEDEPLOY_CACHE/<name> for another cluster name),
# SAFEDEPLOY_PROMETHEUS_PORT (19090), SAFEDEPLOY_EMITTER_PORT (19464), SAFEDEPLOY_BIN (a built
# safedeploy binary; default: cargo build of this repo). kwokctl picks free ports for etcd, the
# API server and the rest by itself, so two instances do not clash there. The real node's own
# settings (subnet, kubelet port) are in e2e/lib/real-node.sh. SAFEDEPLOY_AUDIT_POLICY (a file)
# turns on the API server's audit log ($KWOK_WORKDIR/clusters/<name>/logs/audit.log) at creation.
# SAFEDEPLOY_DISABLE_QPS_LIMITS=1 lifts the control plane components' client rate limits (the
# benchmarks; kwokctl's disableQPSLimits).
# SAFEDEPLOY_REAL_PODS_PROMETHEUS=debian: with --real-nodes, Debian's Prometheus, which does not
# scrape the real pods (see scrapes_real_pods).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
CLUSTER_NAME="${SAFEDEPLOY_CLUSTER_NAME:-safedeploy}"
[[ "$CLUSTER_NAME" =~ ^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$ ]] ||
  { echo "cluster.sh: SAFEDEPLOY_CLUSTER_NAME must be 1-32 of [a-z0-9-]" >&2; exit 2; }
if [ "$CLUSTER_NAME" = safedeploy ]; then default_run_dir="$CACHE_ROOT/cluster"; else default_run_dir="$CACHE_ROOT/$CLUSTER_NAME"; fi
RUN_DIR="${SAFEDEPLOY_RUN_DIR:-$default_run_dir}"
# Present while the cluster runs with a real node (kwok manages annotated nodes only).
REAL_NODES_MARK="$RUN_DIR/real-nodes"
NODES=3
PROM_PORT="${SAFEDEPLOY_PROMETHEUS_PORT:-19090}"
EMITTER_PORT="${SAFEDEPLOY_EMITTER_PORT:-19464}"
# The ports `up` used are recorded, so that `env` (and `status`) print them without the same
# environment variables.
[ -n "${SAFEDEPLOY_PROMETHEUS_PORT:-}" ] || [ ! -f "$RUN_DIR/prometheus.port" ] || PROM_PORT="$(cat "$RUN_DIR/prometheus.port")"
[ -n "${SAFEDEPLOY_EMITTER_PORT:-}" ] || [ ! -f "$RUN_DIR/emitter.port" ] || EMITTER_PORT="$(cat "$RUN_DIR/emitter.port")"
KUBECONFIG_PATH="$RUN_DIR/kubeconfig"
PROM_DIR="$RUN_DIR/prometheus"
TARGETS_DIR="$PROM_DIR/targets"
export KWOK_WORKDIR="$RUN_DIR/kwok"

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

bin_dir() { "$REPO/e2e/lib/build-control-plane.sh" --print-bin-dir; }

# A pid file's process, if it is alive and its command line mentions our run directory.
alive_pid() {
  local file="$1" pid
  [ -f "$file" ] || return 1
  pid="$(cat "$file")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F "$RUN_DIR/" >/dev/null || return 1
  echo "$pid"
}

cluster_ready() {
  [ -f "$KUBECONFIG_PATH" ] || return 1
  local b
  b="$(bin_dir)"
  "$b/kubectl" --kubeconfig "$KUBECONFIG_PATH" --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

# shellcheck source=lib/wait.sh
source "$REPO/e2e/lib/wait.sh"

write_kwok_config() {
  local b="$1" real_nodes="$2"
  {
    cat <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeApiserverBinary: $b/kube-apiserver
  kubeControllerManagerBinary: $b/kube-controller-manager
  kubeSchedulerBinary: $b/kube-scheduler
  kubectlBinary: $b/kubectl
  etcdBinary: $b/etcd
  kwokControllerBinary: $b/kwok
EOF
    # An audit log of every request (for the benchmarks' API request counts by user agent).
    if [ -n "${SAFEDEPLOY_AUDIT_POLICY:-}" ]; then echo "  kubeAuditPolicy: $SAFEDEPLOY_AUDIT_POLICY"; fi
    # The benchmarks: kube-controller-manager's and kube-scheduler's client rate limits (20 and
    # 50 requests/s by default) would bound the time to create 10,000 pods, whichever operator
    # runs; kwokctl lifts them.
    if [ "${SAFEDEPLOY_DISABLE_QPS_LIMITS:-}" = 1 ]; then echo "  disableQPSLimits: true"; fi
    # The resource metrics API: kwokctl runs metrics-server and registers its APIService; kwok
    # serves each fake node's /metrics/resource, and a test sets pods' CPU usage with
    # ClusterResourceUsage objects (served as a CRD, so they can change while pods run).
    if $WITH_METRICS_SERVER; then
      cat <<EOF
  enable: [metrics-server]
  metricsServerBinary: $("$REPO/e2e/lib/build-metrics-server.sh")
  metricsServerManifests: ["$("$REPO/e2e/lib/build-metrics-server.sh" --manifests)"]
  enableCRDs: [ClusterResourceUsage]
EOF
    fi
    if $real_nodes || $WITH_METRICS_SERVER; then echo "componentsPatches:"; fi
    if $WITH_METRICS_SERVER; then
      # The fake nodes' InternalIPs (192.0.2.x) lead nowhere; their Hostname (localhost) reaches
      # the kwok controller that serves their /metrics/resource.
      cat <<EOF
  - name: metrics-server
    extraArgs:
      - key: kubelet-preferred-address-types
        value: Hostname
        override: true
EOF
    fi
    if $real_nodes; then
      # By default kwok fakes the pods of every node, racing a real kubelet; kwokctl's fake nodes
      # carry this annotation, a real node does not.
      cat <<EOF
  - name: kwok-controller
    extraArgs:
      - key: manage-all-nodes
        value: "false"
        override: true
      - key: manage-nodes-with-annotation-selector
        value: kwok.x-k8s.io/node=fake
EOF
    fi
    echo "---"
    # Supplying any Stage drops all of kwokctl's defaults: stages.sh includes kwok's own.
    "$REPO/e2e/lib/stages.sh"
  } >"$RUN_DIR/kwok-config.yaml.tmp" || die "cannot assemble the kwok Stages"
  mv "$RUN_DIR/kwok-config.yaml.tmp" "$RUN_DIR/kwok-config.yaml"
}

real_node() {
  RUN_DIR="$RUN_DIR" KUBECONFIG_PATH="$KUBECONFIG_PATH" CLUSTER_NAME="$CLUSTER_NAME" BIN_DIR="$(bin_dir)" \
    "$REPO/e2e/lib/real-node.sh" "$@"
}

kubectl_() { "$(bin_dir)/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# The data plane (e2e/lib/traefik.sh) of this cluster.
traefik() { SAFEDEPLOY_RUN_DIR="$RUN_DIR" SAFEDEPLOY_CLUSTER_NAME="$CLUSTER_NAME" "$REPO/e2e/lib/traefik.sh" "$@"; }

nodes_ready() {
  local n
  n="$(kubectl_ get nodes --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l)"
  [ "$n" -ge "$NODES" ]
}
default_sa_exists() { kubectl_ get serviceaccount default -n default >/dev/null 2>&1; }

# The Gateway API CRDs (standard channel, from its Go module), which route-based rollouts use.
gateway_api_crds() {
  local dir file args=()
  dir="$("$REPO/e2e/lib/gateway-api.sh")" || die "could not fetch the Gateway API CRDs"
  for file in "$dir"/gateway.networking.k8s.io_*.yaml; do
    case "$file" in *_vap_*) ;; *) args+=(-f "$file") ;; esac
  done
  kubectl_ apply --server-side --force-conflicts "${args[@]}" >>"$RUN_DIR/kwokctl.log" 2>&1 ||
    die "could not apply the Gateway API CRDs from $dir (see $RUN_DIR/kwokctl.log)"
}

cluster_up() {
  local real_nodes="$1" b
  if $real_nodes; then
    b="$("$REPO/e2e/lib/build-control-plane.sh" --with-node)"
  else
    b="$("$REPO/e2e/lib/build-control-plane.sh")"
  fi
  export PATH="$b:$PATH"
  mkdir -p "$RUN_DIR"
  if cluster_ready; then
    log "cluster $CLUSTER_NAME already running"
    if $real_nodes && [ ! -f "$REAL_NODES_MARK" ]; then
      die "cluster $CLUSTER_NAME runs without --real-nodes (kwok manages every node): run down first"
    fi
  else
    if [ -d "$KWOK_WORKDIR/clusters/$CLUSTER_NAME" ]; then
      log "removing a stale cluster $CLUSTER_NAME"
      kwokctl --name "$CLUSTER_NAME" delete cluster >>"$RUN_DIR/kwokctl.log" 2>&1 || true
      rm -rf "${KWOK_WORKDIR:?}/clusters/$CLUSTER_NAME"
    fi
    write_kwok_config "$b" "$real_nodes"
    if $real_nodes; then touch "$REAL_NODES_MARK"; else rm -f "$REAL_NODES_MARK"; fi
    rm -f "$KUBECONFIG_PATH"
    log "creating cluster $CLUSTER_NAME (logs: $RUN_DIR/kwokctl.log, $KWOK_WORKDIR/clusters/$CLUSTER_NAME/logs/)"
    if ! kwokctl --name "$CLUSTER_NAME" -c "$RUN_DIR/kwok-config.yaml" create cluster \
      --kubeconfig "$KUBECONFIG_PATH" --wait 120s >>"$RUN_DIR/kwokctl.log" 2>&1; then
      tail -n 20 "$RUN_DIR/kwokctl.log" >&2
      die "kwokctl could not create the cluster"
    fi
    # A self-contained kubeconfig whose current context is this cluster.
    kwokctl --name "$CLUSTER_NAME" get kubeconfig >"$KUBECONFIG_PATH.tmp" 2>>"$RUN_DIR/kwokctl.log"
    mv "$KUBECONFIG_PATH.tmp" "$KUBECONFIG_PATH"
    chmod 600 "$KUBECONFIG_PATH"
    wait_until 120 "the API server" cluster_ready
  fi
  if ! nodes_ready; then
    kwokctl --name "$CLUSTER_NAME" scale node --replicas "$NODES" >>"$RUN_DIR/kwokctl.log" 2>&1 ||
      die "could not create $NODES nodes (see $RUN_DIR/kwokctl.log)"
  fi
  wait_until 60 "$NODES Ready nodes" nodes_ready
  wait_until 60 "the default ServiceAccount (kube-controller-manager)" default_sa_exists
  gateway_api_crds
  if $real_nodes; then real_node up; fi
  log "cluster ready: $NODES nodes, server $(kubectl_ version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -n 1)"
}

safedeploy_bin() {
  if [ -n "${SAFEDEPLOY_BIN:-}" ]; then
    [ -x "$SAFEDEPLOY_BIN" ] || die "SAFEDEPLOY_BIN=$SAFEDEPLOY_BIN is not executable"
    echo "$SAFEDEPLOY_BIN"
    return
  fi
  log "building safedeploy (cargo build) for the emitter"
  (cd "$REPO" && cargo build --quiet --bin safedeploy >&2) || die "cargo build failed"
  echo "${CARGO_TARGET_DIR:-$REPO/target}/debug/safedeploy"
}

http_ok() { curl -fsS --max-time 2 "$1" >/dev/null 2>&1; }

emitter_up() {
  mkdir -p "$RUN_DIR/bin" "$TARGETS_DIR"
  if alive_pid "$RUN_DIR/emitter.pid" >/dev/null && http_ok "http://127.0.0.1:$EMITTER_PORT/healthz"; then
    log "emitter already running on 127.0.0.1:$EMITTER_PORT"
  else
    local src
    src="$(safedeploy_bin)"
    # A private copy: rebuilding the workspace must not touch the running emitter.
    cp "$src" "$RUN_DIR/bin/safedeploy-emitter.tmp"
    mv "$RUN_DIR/bin/safedeploy-emitter.tmp" "$RUN_DIR/bin/safedeploy-emitter"
    setsid "$RUN_DIR/bin/safedeploy-emitter" emitter --listen "127.0.0.1:$EMITTER_PORT" \
      --version stable --version canary </dev/null >"$RUN_DIR/emitter.log" 2>&1 &
    echo $! >"$RUN_DIR/emitter.pid"
    echo "$EMITTER_PORT" >"$RUN_DIR/emitter.port"
    wait_until 30 "the emitter on 127.0.0.1:$EMITTER_PORT" http_ok "http://127.0.0.1:$EMITTER_PORT/healthz"
    log "emitter running on 127.0.0.1:$EMITTER_PORT (log: $RUN_DIR/emitter.log)"
  fi
  printf '[{"targets": ["127.0.0.1:%s"], "labels": {"emitter": "default"}}]\n' "$EMITTER_PORT" \
    >"$TARGETS_DIR/emitter.json"
}

prometheus_scrapes_emitter() {
  curl -fsS --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/query" \
    --data-urlencode 'query=up{job="safedeploy-emitter",emitter="default"} == 1' 2>/dev/null |
    grep -q '"value"'
}

# Whether Prometheus finds the real node's pods (SAFEDEPLOY_REAL_PODS_PROMETHEUS=module, the
# default) or is Debian's without pod discovery (=debian: no 24-minute Go build, for CI; the tests
# that need the pods' own metrics then say SKIPPED).
scrapes_real_pods() {
  case "${SAFEDEPLOY_REAL_PODS_PROMETHEUS:-module}" in
    module) return 0 ;;
    debian) return 1 ;;
    *) die "SAFEDEPLOY_REAL_PODS_PROMETHEUS must be module or debian" ;;
  esac
}

prometheus_up() {
  local prometheus_bin=prometheus
  if [ -f "$REAL_NODES_MARK" ] && scrapes_real_pods; then
    # Debian's Prometheus lacks Kubernetes service discovery: one built from its Go module.
    prometheus_bin="$("$REPO/e2e/lib/build-prometheus.sh")"
  else
    command -v prometheus >/dev/null ||
      die "prometheus is not installed (Debian: apt-get install -y --no-install-recommends prometheus)"
  fi
  mkdir -p "$PROM_DIR/data" "$TARGETS_DIR"
  cat >"$PROM_DIR/prometheus.yml" <<EOF
# Written by e2e/cluster.sh. Extra scrape targets: drop a file_sd JSON file into $TARGETS_DIR.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: safedeploy-emitter
    file_sd_configs:
      - files: ['$TARGETS_DIR/*.json']
        refresh_interval: 1s
EOF
  if [ -f "$REAL_NODES_MARK" ] && scrapes_real_pods; then
    # Real pods, found through Kubernetes service discovery: those annotated
    # prometheus.io/scrape: "true", at their IP and the port of prometheus.io/port.
    cat >>"$PROM_DIR/prometheus.yml" <<EOF
  - job_name: real-pods
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: $KUBECONFIG_PATH
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        regex: "true"
        action: keep
      - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: "(.+);(.+)"
        replacement: "\$1:\$2"
        target_label: __address__
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
EOF
  fi
  if alive_pid "$PROM_DIR/prometheus.pid" >/dev/null && http_ok "http://127.0.0.1:$PROM_PORT/-/ready"; then
    log "Prometheus already running on 127.0.0.1:$PROM_PORT"
    curl -fsS --max-time 5 -X POST "http://127.0.0.1:$PROM_PORT/-/reload" >/dev/null || true
  else
    setsid "$prometheus_bin" --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
      --storage.tsdb.retention.time=6h --web.listen-address="127.0.0.1:$PROM_PORT" \
      --web.enable-lifecycle --log.level=warn </dev/null >"$PROM_DIR/prometheus.log" 2>&1 &
    echo $! >"$PROM_DIR/prometheus.pid"
    echo "$PROM_PORT" >"$RUN_DIR/prometheus.port"
    wait_until 60 "Prometheus on 127.0.0.1:$PROM_PORT" http_ok "http://127.0.0.1:$PROM_PORT/-/ready"
    log "Prometheus running on 127.0.0.1:$PROM_PORT (log: $PROM_DIR/prometheus.log)"
  fi
  wait_until 60 "Prometheus to scrape the emitter" prometheus_scrapes_emitter
}

# Processes of ours, recognised by their command line: the kwok components run from the cluster's
# bin directory, the emitter from $RUN_DIR/bin, Prometheus with our config file.
our_pids() {
  pgrep -f "^($KWOK_WORKDIR/clusters/$CLUSTER_NAME/bin/|$RUN_DIR/bin/|([^ ]*/)?prometheus --config.file=$PROM_DIR/)" || true
}

stop_pidfile() { # stop_pidfile <file> <name>
  local pid
  if pid="$(alive_pid "$1")"; then
    log "stopping $2 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ ! -d "/proc/$pid" ] || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

WITH_METRICS_SERVER=false
cmd_up() {
  local with_cluster=true with_prometheus=false real_nodes=false with_traefik=false arg
  for arg in "$@"; do
    case "$arg" in
      --with-prometheus) with_prometheus=true ;;
      --real-nodes) real_nodes=true ;;
      --with-traefik) with_traefik=true ;;
      --with-metrics-server) WITH_METRICS_SERVER=true ;;
      --prometheus-only) with_prometheus=true with_cluster=false ;;
      *) die "unknown option for up: $arg" ;;
    esac
  done
  local start=$SECONDS
  if $with_cluster; then cluster_up "$real_nodes"; fi
  if $with_prometheus; then
    emitter_up
    prometheus_up
  fi
  if $with_traefik; then traefik up; fi
  log "up in $((SECONDS - start))s. Use: eval \"\$($REPO/e2e/cluster.sh env)\""
}

cmd_down() {
  stop_pidfile "$PROM_DIR/prometheus.pid" Prometheus
  stop_pidfile "$RUN_DIR/emitter.pid" emitter
  rm -f "$TARGETS_DIR/emitter.json" "$RUN_DIR/emitter.port" "$RUN_DIR/prometheus.port"
  if [ "${1:-}" = "--only-prometheus" ]; then
    log "down: Prometheus and the emitter are stopped; the cluster is left running"
    return
  fi
  if [ -d "$RUN_DIR/traefik" ]; then traefik down; fi
  if [ -d "$RUN_DIR/node" ]; then
    log "stopping the real node"
    real_node down
  fi
  rm -f "$REAL_NODES_MARK"
  if [ -d "$KWOK_WORKDIR/clusters/$CLUSTER_NAME" ]; then
    log "deleting cluster $CLUSTER_NAME"
    PATH="$(bin_dir):$PATH" "$(bin_dir)/kwokctl" --name "$CLUSTER_NAME" delete cluster \
      >>"$RUN_DIR/kwokctl.log" 2>&1 || log "kwokctl delete cluster failed (see $RUN_DIR/kwokctl.log)"
  fi
  rm -f "$KUBECONFIG_PATH"
  # Anything of ours still running (e.g. after a failed kwokctl delete): stop it by pid.
  local pids pid
  sleep 0.5
  pids="$(our_pids)"
  if [ -n "$pids" ]; then
    log "stopping leftover processes: $(echo "$pids" | tr '\n' ' ')"
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    sleep 2
    for pid in $(our_pids); do kill -9 "$pid" 2>/dev/null || true; done
  fi
  pids="$(our_pids)"
  [ -z "$pids" ] || die "processes still running: $(echo "$pids" | tr '\n' ' ')"
  log "down: no process of the cluster is running"
}

cmd_status() {
  local ok=0 pid
  if cluster_ready; then
    echo "cluster:    ready ($(kubectl_ get nodes --no-headers 2>/dev/null | awk '$2 == "Ready"' | wc -l) Ready nodes), KUBECONFIG=$KUBECONFIG_PATH"
  else
    echo "cluster:    not running"
    ok=1
  fi
  if pid="$(alive_pid "$PROM_DIR/prometheus.pid")"; then
    echo "prometheus: running (pid $pid) on http://127.0.0.1:$PROM_PORT"
  else
    echo "prometheus: not running"
  fi
  if pid="$(alive_pid "$RUN_DIR/emitter.pid")"; then
    echo "emitter:    running (pid $pid) on http://127.0.0.1:$EMITTER_PORT"
  else
    echo "emitter:    not running"
  fi
  if [ -f "$REAL_NODES_MARK" ]; then real_node status | sed 's/^/real node: /'; fi
  if [ -d "$RUN_DIR/traefik" ]; then traefik status || true; fi
  local procs
  procs="$(our_pids | grep -c . || true)"
  echo "processes:  $procs from $RUN_DIR"
  return $ok
}

cmd_env() {
  echo "export KUBECONFIG=$KUBECONFIG_PATH"
  echo "export PATH=$(bin_dir):\$PATH"
  # The components' binaries and flags (a test starts a second API server from them).
  [ ! -f "$KWOK_WORKDIR/clusters/$CLUSTER_NAME/kwok.yaml" ] ||
    echo "export SAFEDEPLOY_KWOK_CONFIG=$KWOK_WORKDIR/clusters/$CLUSTER_NAME/kwok.yaml"
  if alive_pid "$PROM_DIR/prometheus.pid" >/dev/null; then
    echo "export SAFEDEPLOY_PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT"
    echo "export SAFEDEPLOY_PROMETHEUS_TARGETS_DIR=$TARGETS_DIR"
    if grep -q 'job_name: real-pods' "$PROM_DIR/prometheus.yml" 2>/dev/null; then
      echo "export SAFEDEPLOY_REAL_PODS_SCRAPED=1"
    fi
  fi
  if alive_pid "$RUN_DIR/emitter.pid" >/dev/null; then
    echo "export SAFEDEPLOY_EMITTER_URL=http://127.0.0.1:$EMITTER_PORT"
  fi
  if [ -f "$REAL_NODES_MARK" ]; then
    echo "export SAFEDEPLOY_CONTAINERD_SOCKET=$RUN_DIR/node/containerd.sock"
    # Where pods reach the API server (KUBERNETES_SERVICE_HOST/PORT for in-cluster clients).
    if [ -f "$RUN_DIR/node/api-endpoint" ]; then
      read -r address port <"$RUN_DIR/node/api-endpoint"
      echo "export SAFEDEPLOY_POD_API_SERVER=$address:$port"
    fi
  fi
  if [ -d "$RUN_DIR/traefik" ]; then traefik env; fi
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 up [--with-prometheus|--prometheus-only] [--real-nodes] [--with-traefik] | down [--only-prometheus] | status | env" >&2
    exit 2
    ;;
esac
