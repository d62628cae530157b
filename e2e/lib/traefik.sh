#!/usr/bin/env bash
# A real data plane for the local control plane (docs/data-plane.md): Traefik v3 as a process on
# 127.0.0.1 with its Kubernetes Gateway API provider, watching the cluster's API server, plus a
# GatewayClass and a Gateway it accepts. Traefik routes to the EndpointSlice addresses of the
# Services a route names, i.e. to pod IPs. kwok's pods have fake IPs that nothing answers, so `up`
# also makes the kwok nodes' pod CIDRs local to this machine (Linux AnyIP:
# `ip route add local <cidr> dev lo`, root only): a connection to any pod IP then reaches a socket
# bound to 0.0.0.0, where a test's listener answers as the pod whose IP was dialled
# (tests/common/traffic.rs). Those routes are machine-wide; `down` removes the ones `up` added
# (a second cluster instance, whose kwok nodes have the same CIDRs, uses the first one's routes).
#
# Usage: e2e/lib/traefik.sh up | down | status | env
#   up      idempotent: builds Traefik once (e2e/lib/build-traefik.sh), applies the GatewayClass and
#           Gateway, adds the AnyIP routes, starts Traefik, waits until the Gateway is Programmed
#   down    stops Traefik, removes the AnyIP routes it added and the Gateway objects (if the API
#           server still answers); verifies that no Traefik process of this run directory is left
#   status  prints the state of each part; exit 0 only if Traefik runs
#   env     prints `export ...` lines for the tests (nothing if Traefik is not running)
# Environment: the run directory as in e2e/cluster.sh (SAFEDEPLOY_CACHE, SAFEDEPLOY_CLUSTER_NAME,
# SAFEDEPLOY_RUN_DIR), whose kubeconfig Traefik uses; SAFEDEPLOY_TRAEFIK_PORT (19080, the
# Gateway's HTTP listener and Traefik's entry point), SAFEDEPLOY_TRAEFIK_ADMIN_PORT (19082: ping
# and the read-only API, loopback only). Logs: $RUN_DIR/traefik/traefik.log.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
CLUSTER_NAME="${SAFEDEPLOY_CLUSTER_NAME:-safedeploy}"
if [ "$CLUSTER_NAME" = safedeploy ]; then default_run_dir="$CACHE_ROOT/cluster"; else default_run_dir="$CACHE_ROOT/$CLUSTER_NAME"; fi
RUN_DIR="${SAFEDEPLOY_RUN_DIR:-$default_run_dir}"
KUBECONFIG_PATH="$RUN_DIR/kubeconfig"
DIR="$RUN_DIR/traefik"
PORT="${SAFEDEPLOY_TRAEFIK_PORT:-19080}"
ADMIN_PORT="${SAFEDEPLOY_TRAEFIK_ADMIN_PORT:-19082}"
# The ports `up` used are recorded, so that `env`, `status` and `down` find them without the same
# environment variables.
[ -n "${SAFEDEPLOY_TRAEFIK_PORT:-}" ] || [ ! -f "$DIR/port" ] || PORT="$(cat "$DIR/port")"
[ -n "${SAFEDEPLOY_TRAEFIK_ADMIN_PORT:-}" ] || [ ! -f "$DIR/admin-port" ] || ADMIN_PORT="$(cat "$DIR/admin-port")"
GATEWAY_NAMESPACE=safedeploy-gateway
GATEWAY_NAME=safedeploy
GATEWAY_CLASS="safedeploy-traefik-$CLUSTER_NAME"
# The AnyIP routes `up` added, one CIDR a line: `down` removes exactly these.
ROUTES_FILE="$DIR/anyip-routes"

log() { echo "traefik.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=wait.sh
source "$REPO/e2e/lib/wait.sh"

kubectl_() { "$("$REPO/e2e/lib/build-control-plane.sh" --print-bin-dir)/kubectl" --kubeconfig "$KUBECONFIG_PATH" --request-timeout=10s "$@"; }

# Traefik's pid, if alive and started with our config file.
traefik_pid() {
  local pid
  [ -f "$DIR/traefik.pid" ] || return 1
  pid="$(cat "$DIR/traefik.pid")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F -- "--configFile=$DIR/traefik.yml" >/dev/null || return 1
  echo "$pid"
}

pinged() { curl -fsS --max-time 2 "http://127.0.0.1:$ADMIN_PORT/ping" >/dev/null 2>&1; }

gateway_programmed() {
  [ "$(kubectl_ get gateway "$GATEWAY_NAME" -n "$GATEWAY_NAMESPACE" \
    -o 'jsonpath={.status.conditions[?(@.type=="Programmed")].status}' 2>/dev/null)" = True ]
}

apply_gateway() {
  kubectl_ apply --server-side --field-manager=safedeploy-e2e -f - >/dev/null <<EOF || die "could not apply the GatewayClass and Gateway"
apiVersion: v1
kind: Namespace
metadata:
  name: $GATEWAY_NAMESPACE
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: $GATEWAY_CLASS
spec:
  controllerName: traefik.io/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: $GATEWAY_NAME
  namespace: $GATEWAY_NAMESPACE
spec:
  gatewayClassName: $GATEWAY_CLASS
  listeners:
    - name: http
      protocol: HTTP
      port: $PORT
      allowedRoutes:
        namespaces:
          from: All
EOF
}

# The pod CIDRs of the kwok nodes, which kwok assigns pod IPs from (10.0.<n>.0/24 by default).
kwok_pod_cidrs() {
  kubectl_ get nodes -o 'jsonpath={range .items[*]}{.metadata.annotations.kwok\.x-k8s\.io/node}{" "}{.spec.podCIDR}{"\n"}{end}' |
    awk '$1 == "fake" && $2 != "" { print $2 }'
}

add_anyip_routes() {
  local cidr existing
  if [ "$(id -u)" != 0 ]; then
    log "warning: not root, so no AnyIP routes: requests to pod IPs will fail (the data-plane tests say so)"
    return
  fi
  touch "$ROUTES_FILE"
  for cidr in $(kwok_pod_cidrs); do
    case "$cidr" in 127.*) die "pod CIDR $cidr is loopback: EndpointSlice validation rejects such pod IPs" ;; esac
    if ip route show table local type local | awk '{print $2}' | grep -xF "$cidr" >/dev/null; then
      grep -qxF "$cidr" "$ROUTES_FILE" || log "AnyIP route for $cidr exists and is not ours: leaving it"
      continue
    fi
    # A pod CIDR that overlaps a network this machine really uses (e.g. a real node's bridge)
    # must not be captured: refuse rather than break that network.
    existing="$(ip -o route show match "${cidr%/*}" | grep -v '^default' || true)"
    [ -z "$existing" ] || die "pod CIDR $cidr overlaps a route of this machine: $existing"
    ip route add local "$cidr" dev lo || die "could not add the AnyIP route for $cidr"
    grep -qxF "$cidr" "$ROUTES_FILE" || echo "$cidr" >>"$ROUTES_FILE"
    log "pod IPs of $cidr are now local (AnyIP on lo)"
  done
}

remove_anyip_routes() {
  local cidr
  [ -f "$ROUTES_FILE" ] || return 0
  while read -r cidr; do
    [ -n "$cidr" ] || continue
    ip route del local "$cidr" dev lo 2>/dev/null || log "AnyIP route for $cidr was already gone"
  done <"$ROUTES_FILE"
  rm -f "$ROUTES_FILE"
}

write_config() {
  cat >"$DIR/traefik.yml.tmp" <<EOF
# Written by e2e/lib/traefik.sh.
global:
  checkNewVersion: false
  sendAnonymousUsage: false
entryPoints:
  web:
    address: "127.0.0.1:$PORT"
  traefik:
    address: "127.0.0.1:$ADMIN_PORT"
ping:
  entryPoint: traefik
api:
  insecure: true
  dashboard: false
providers:
  kubernetesGateway:
    statusAddress:
      ip: 127.0.0.1
log:
  level: INFO
  noColor: true
EOF
  mv "$DIR/traefik.yml.tmp" "$DIR/traefik.yml"
}

cmd_up() {
  local bin start=$SECONDS
  [ -f "$KUBECONFIG_PATH" ] || die "no cluster at $RUN_DIR (start it with e2e/cluster.sh up)"
  bin="$("$REPO/e2e/lib/build-traefik.sh")"
  mkdir -p "$DIR"
  apply_gateway
  add_anyip_routes
  if traefik_pid >/dev/null && pinged; then
    log "Traefik already running on 127.0.0.1:$PORT"
  else
    write_config
    # KUBECONFIG makes Traefik's provider use client-go's kubeconfig loader (client certificates
    # work); the in-cluster variables would take precedence, so they are removed.
    env -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT KUBECONFIG="$KUBECONFIG_PATH" \
      setsid "$bin" --configFile="$DIR/traefik.yml" </dev/null >"$DIR/traefik.log" 2>&1 &
    echo $! >"$DIR/traefik.pid"
    echo "$PORT" >"$DIR/port"
    echo "$ADMIN_PORT" >"$DIR/admin-port"
    wait_until 30 "Traefik to answer its ping (log: $DIR/traefik.log)" pinged
  fi
  wait_until 60 "Traefik to program Gateway $GATEWAY_NAMESPACE/$GATEWAY_NAME (log: $DIR/traefik.log)" gateway_programmed
  log "Traefik $("$bin" version 2>/dev/null | awk '/^Version/ {print $2}') on http://127.0.0.1:$PORT, Gateway $GATEWAY_NAMESPACE/$GATEWAY_NAME programmed, up in $((SECONDS - start))s"
}

cmd_down() {
  local pid
  if pid="$(traefik_pid)"; then
    log "stopping Traefik (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ ! -d "/proc/$pid" ] || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/traefik.pid"
  remove_anyip_routes
  if [ -f "$KUBECONFIG_PATH" ] && kubectl_ get --raw /readyz >/dev/null 2>&1; then
    kubectl_ delete gateway "$GATEWAY_NAME" -n "$GATEWAY_NAMESPACE" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    kubectl_ delete gatewayclass "$GATEWAY_CLASS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  ! traefik_pid >/dev/null || die "Traefik is still running"
  rm -f "$DIR/port" "$DIR/admin-port"
  log "down: Traefik stopped, AnyIP routes removed"
}

cmd_status() {
  local pid
  if pid="$(traefik_pid)"; then
    echo "traefik:    running (pid $pid) on http://127.0.0.1:$PORT (log: $DIR/traefik.log)"
  else
    echo "traefik:    not running"
  fi
  local routes
  routes="$([ ! -f "$ROUTES_FILE" ] || tr '\n' ' ' <"$ROUTES_FILE")"
  echo "anyip:      ${routes:-none added by this instance}"
  traefik_pid >/dev/null
}

cmd_env() {
  traefik_pid >/dev/null || return 0
  echo "export SAFEDEPLOY_TRAEFIK_URL=http://127.0.0.1:$PORT"
  echo "export SAFEDEPLOY_GATEWAY=$GATEWAY_NAMESPACE/$GATEWAY_NAME"
  echo "export SAFEDEPLOY_TRAEFIK_API_URL=http://127.0.0.1:$ADMIN_PORT"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *)
    echo "usage: $0 up | down | status | env" >&2
    exit 2
    ;;
esac
