#!/usr/bin/env bash
# A private dockerd for kind (Debian's docker.io), that leaves the machine's other runtimes
# alone: its own data root, exec root, socket and containerd (dockerd starts one under its exec
# root), no iptables rules (--iptables=false: kind only needs the node's published API server
# port, which the userland proxy serves), and the runtime wrapper e2e/lib/kind-runc-wrapper.sh as
# the default runtime (privileged containers fail here without it, see docs/kind.md).
#
#   kind-docker.sh up     start it (idempotent), print `export DOCKER_HOST=...`
#   kind-docker.sh env    print `export DOCKER_HOST=...`
#   kind-docker.sh down   remove every container, stop dockerd and its containerd, unmount what
#                         is left under its roots, delete the bridges it made (the images
#                         stay in the data root, a cache for the next `up`)
#   kind-docker.sh purge  down, then delete the data root too
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA_ROOT="${KIND_DOCKER_DATA_ROOT:-/var/lib/safedeploy-kind-docker}"
EXEC_ROOT="${KIND_DOCKER_EXEC_ROOT:-/run/safedeploy-kind-docker}"
SOCKET="$EXEC_ROOT/docker.sock"
PIDFILE="$EXEC_ROOT/dockerd.pid"
LOG="${KIND_DOCKER_LOG:-$DATA_ROOT.log}"
WRAPPER_DIR="$DATA_ROOT-runtime"
export DOCKER_HOST="unix://$SOCKET"
log() { echo "kind-docker: $*" >&2; }

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

up() {
  command -v dockerd >/dev/null || { log "dockerd is missing (Debian: apt-get install docker.io)"; exit 1; }
  command -v docker >/dev/null || { log "the docker CLI is missing"; exit 1; }
  command -v jq >/dev/null || { log "jq is missing (the runtime wrapper needs it)"; exit 1; }
  if ! running; then
    mkdir -p "$DATA_ROOT" "$EXEC_ROOT" "$WRAPPER_DIR"
    install -m 0755 "$REPO/e2e/lib/kind-runc-wrapper.sh" "$WRAPPER_DIR/runc"
    log "starting dockerd (data root $DATA_ROOT, socket $SOCKET, log $LOG)"
    setsid dockerd --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT" --host "$DOCKER_HOST" \
      --pidfile "$PIDFILE" --iptables=false --ip6tables=false --ip-masq=false \
      --oom-score-adjust 0 --storage-driver overlay2 \
      --add-runtime "kind-runc=$WRAPPER_DIR/runc" --default-runtime kind-runc \
      --log-level warn >"$LOG" 2>&1 </dev/null &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { log "dockerd did not start: tail of $LOG:"; tail -20 "$LOG" >&2; exit 1; }
  fi
  echo "export DOCKER_HOST=$DOCKER_HOST"
}

down() {
  if running; then
    local ids
    ids="$(docker ps -aq)"
    [ -z "$ids" ] || docker rm -f -v $ids >/dev/null || true
    local nets
    nets="$(docker network ls -q --filter type=custom)"
    [ -z "$nets" ] || docker network rm $nets >/dev/null || true
    local pid
    pid="$(cat "$PIDFILE")"
    kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && { log "dockerd $pid did not stop: killing it"; kill -9 "$pid"; }
  fi
  # dockerd's containerd and shims (their command lines name this exec root or data root).
  local p
  for p in $(pgrep -f -- "$EXEC_ROOT|$DATA_ROOT" || true); do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in $(pgrep -f -- "$EXEC_ROOT|$DATA_ROOT" || true); do kill -9 "$p" 2>/dev/null || true; done
  local m
  for m in $(awk -v a="$DATA_ROOT" -v b="$EXEC_ROOT" 'index($2, a) == 1 || index($2, b) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  ip link show docker0 >/dev/null 2>&1 && ip link delete docker0 || true
  local link
  for link in $(ip -o link show type bridge | awk -F': ' '$2 ~ /^br-/ {print $2}'); do ip link delete "$link" || true; done
  rm -rf "$EXEC_ROOT"
  log "stopped"
}

case "${1:-}" in
  up) up ;;
  env) echo "export DOCKER_HOST=$DOCKER_HOST" ;;
  down) down ;;
  purge) down; rm -rf "$DATA_ROOT" "$WRAPPER_DIR" "$LOG"; log "deleted $DATA_ROOT" ;;
  *) echo "usage: $0 up|env|down|purge" >&2; exit 2 ;;
esac
