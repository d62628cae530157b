#!/usr/bin/env bash
# A real node for the local control plane (`e2e/cluster.sh up --real-nodes`): Debian's containerd
# and runc as a private instance (own root, state and socket under the run directory), a CNI
# bridge network made here (bridge, host-local addresses, no iptables), a kubelet at the control
# plane's version, and kube-proxy (iptables mode, so that Services carry traffic). The node is
# tainted `safedeploy.dev/real-node:NoSchedule` and labelled `safedeploy.dev/tier=real`: only pods
# that ask for it land there, and kwok never manages it (it manages annotated fake nodes only).
#
# Usage: real-node.sh up | down | status | check
#   check  says which host packages are missing (exit 1 if any)
#   down   stops the pod sandboxes through the CRI (so that CNI deletes their network namespaces
#          and veths), then the processes, then removes every mount under the node directory,
#          leftover namespaces and veths of the subnet, the bridge, and the Node object; it then
#          verifies that nothing is left and fails otherwise.
# Environment (set by cluster.sh): RUN_DIR, KUBECONFIG_PATH, CLUSTER_NAME, BIN_DIR;
# SAFEDEPLOY_POD_SUBNET (default 10.244.99.0/24; the bridge gets .1 and the node uses it as its
# IP), SAFEDEPLOY_KUBELET_PORT (default 19250; the healthz port is the next one, kube-proxy's
# metrics and healthz ports the two after).
set -euo pipefail

: "${RUN_DIR:?}" "${KUBECONFIG_PATH:?}" "${CLUSTER_NAME:?}" "${BIN_DIR:?}"
LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE_DIR="$RUN_DIR/node"
NODE_NAME="${SAFEDEPLOY_REAL_NODE_NAME:-real-0}"
SUBNET="${SAFEDEPLOY_POD_SUBNET:-10.244.99.0/24}"
PREFIX="${SUBNET%.*}"          # 10.244.99
NODE_IP="$PREFIX.1"
BRIDGE="sd-${CLUSTER_NAME:0:12}"
KUBELET_PORT="${SAFEDEPLOY_KUBELET_PORT:-19250}"
SOCKET="$NODE_DIR/containerd.sock"
PAUSE_IMAGE="registry.local/pause:3.10"
CNI_NETWORK="safedeploy-$CLUSTER_NAME"

log() { echo "real-node: $*" >&2; }
die() { log "error: $*"; exit 1; }

check() {
  local missing=() cmd
  for cmd in containerd containerd-shim-runc-v2 runc ctr umoci iptables conntrack ip; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
  done
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] ||
    missing+=("CNI plugins in /usr/lib/cni")
  if [ "${#missing[@]}" -gt 0 ]; then
    log "missing: ${missing[*]}"
    log "Debian: apt-get install -y --no-install-recommends containerd runc containernetworking-plugins umoci iptables conntrack iproute2"
    return 1
  fi
  [ "$(id -u)" = 0 ] || { log "a real node needs root (containerd, runc, network devices)"; return 1; }
}

# A pid file's process, if alive and its command line mentions the node directory.
alive() {
  local pid
  [ -f "$1" ] || return 1
  pid="$(cat "$1")"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F "$NODE_DIR" >/dev/null || return 1
  echo "$pid"
}

# shellcheck source=wait.sh
source "$(dirname "${BASH_SOURCE[0]}")/wait.sh"

kubectl_() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_PATH" --request-timeout=10s "$@"; }
crictl_() { "$BIN_DIR/crictl" --runtime-endpoint "unix://$SOCKET" --image-endpoint "unix://$SOCKET" --timeout 10s "$@"; }

bridge_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr show dev "$BRIDGE" | grep -F " $NODE_IP/" >/dev/null || ip addr add "$NODE_IP/${SUBNET#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
}

write_configs() {
  mkdir -p "$NODE_DIR"/{cni,cni-ipam,ctr-root,ctr-state,opt,kubelet,pod-logs,images}
  cat >"$NODE_DIR/cni/10-safedeploy.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE_DIR/cni-ipam",
        "ranges": [[{"subnet": "$SUBNET", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
  # restrict_oom_score_adj: the CRI asks for oom_score_adj -998 for sandboxes, which needs
  # CAP_SYS_RESOURCE; these machines lack it (runc fails with "can't get final child's PID").
  cat >"$NODE_DIR/containerd.toml" <<EOF
version = 2
root = "$NODE_DIR/ctr-root"
state = "$NODE_DIR/ctr-state"
[grpc]
  address = "$SOCKET"
[ttrpc]
  address = "$SOCKET.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_DIR/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni"
EOF
  # cgroup v1 here (failCgroupV1: false); no QoS cgroups or allocatable enforcement (no
  # CAP_SYS_RESOURCE, shared machine); eviction and image GC off, because the shared disk may be
  # fuller than the defaults allow and a test must not see its pods evicted for that.
  cat >"$NODE_DIR/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
healthzBindAddress: 127.0.0.1
healthzPort: $((KUBELET_PORT + 1))
readOnlyPort: 0
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
localStorageCapacityIsolation: false
failSwapOn: false
containerRuntimeEndpoint: unix://$SOCKET
podLogsDir: $NODE_DIR/pod-logs
staticPodPath: ""
resolvConf: ""
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
serializeImagePulls: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
registerWithTaints:
  - key: safedeploy.dev/real-node
    value: "true"
    effect: NoSchedule
EOF
  cat >"$NODE_DIR/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $KUBECONFIG_PATH
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $SUBNET
metricsBindAddress: 127.0.0.1:$((KUBELET_PORT + 2))
healthzBindAddress: 127.0.0.1:$((KUBELET_PORT + 3))
nodePortAddresses: ["$NODE_IP/32"]
iptables:
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
EOF
}

start_bg() { # start_bg <name> <command...>: setsid, log and pid file in the node directory
  local name="$1"
  shift
  setsid "$@" </dev/null >>"$NODE_DIR/$name.log" 2>&1 &
  echo $! >"$NODE_DIR/$name.pid"
}

containerd_ready() { ctr --address "$SOCKET" version >/dev/null 2>&1; }
node_ready() {
  kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null |
    grep -qx True
}
kube_proxy_synced() { curl -fsS --max-time 2 "http://127.0.0.1:$((KUBELET_PORT + 3))/healthz" >/dev/null 2>&1; }

pause_image() {
  local tar="$NODE_DIR/images/pause.tar" rootfs
  if ! ctr --address "$SOCKET" -n k8s.io images ls -q | grep -xF "$PAUSE_IMAGE" >/dev/null; then
    # shellcheck source=oci.sh
    . "$LIB/oci.sh"
    rootfs="$(mktemp -d)"
    install -D -m 0755 "$BIN_DIR/pause" "$rootfs/pause"
    oci_build "$PAUSE_IMAGE" "$rootfs" "$tar" --config.entrypoint /pause --config.user 65535:65535
    rm -rf "$rootfs"
    oci_import "$SOCKET" "$PAUSE_IMAGE" "$tar"
    rm -f "$tar"
  fi
}

# The API server listens on 127.0.0.1 only, and advertises an address (kwokctl's 192.0.2.2,
# which its serving certificate names) that nothing answers on. Pods reach it there: a DNAT rule
# for packets from the bridge to that address and port, towards 127.0.0.1, which the kernel
# routes only with route_localnet on the bridge (set on the bridge alone). In-cluster clients
# (the operator's pods) then use KUBERNETES_SERVICE_HOST/PORT = that address and port.
API_RULE_COMMENT="safedeploy-real-node-$CLUSTER_NAME api-server"
api_endpoint() { # prints "address port" of the kubernetes Service's endpoint
  kubectl_ get endpointslice -n default kubernetes \
    -o jsonpath='{.endpoints[0].addresses[0]} {.ports[0].port}' 2>/dev/null
}
api_rule() { # api_rule -A|-D|-C <address> <port>
  iptables -t nat "$1" PREROUTING -i "$BRIDGE" -d "$2" -p tcp --dport "$3" \
    -m comment --comment "$API_RULE_COMMENT" -j DNAT --to-destination "127.0.0.1:$3"
}
api_access_up() {
  local endpoint address port
  endpoint="$(api_endpoint)"
  read -r address port <<<"$endpoint"
  [ -n "$address" ] && [ -n "$port" ] || die "cannot read the kubernetes Service's endpoint"
  sysctl -qw "net.ipv4.conf.$BRIDGE.route_localnet=1"
  api_rule -C "$address" "$port" 2>/dev/null || api_rule -A "$address" "$port"
  echo "$address $port" >"$NODE_DIR/api-endpoint"
}
api_access_down() {
  local rule
  { iptables -t nat -S PREROUTING 2>/dev/null | grep -F -- "$API_RULE_COMMENT" || true; } |
    while read -r rule; do
      eval "iptables -t nat -D ${rule#-A }" 2>/dev/null || true
    done
  rm -f "$NODE_DIR/api-endpoint"
}

cmd_up() {
  check || die "install the missing pieces first"
  bridge_up
  write_configs
  if alive "$NODE_DIR/containerd.pid" >/dev/null && containerd_ready; then
    log "containerd already running"
  else
    start_bg containerd containerd --config "$NODE_DIR/containerd.toml"
    wait_until 30 "containerd" containerd_ready
  fi
  pause_image
  api_access_up
  if alive "$NODE_DIR/kubelet.pid" >/dev/null; then
    log "kubelet already running"
  else
    start_bg kubelet "$BIN_DIR/kubelet" --config "$NODE_DIR/kubelet-config.yaml" \
      --kubeconfig "$KUBECONFIG_PATH" --root-dir "$NODE_DIR/kubelet" --cert-dir "$NODE_DIR/kubelet/pki" \
      --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
      --node-labels "safedeploy.dev/tier=real"
  fi
  wait_until 90 "node $NODE_NAME to be Ready (log: $NODE_DIR/kubelet.log)" node_ready
  if alive "$NODE_DIR/kube-proxy.pid" >/dev/null; then
    log "kube-proxy already running"
  else
    start_bg kube-proxy "$BIN_DIR/kube-proxy" --config "$NODE_DIR/kube-proxy-config.yaml"
  fi
  wait_until 60 "kube-proxy (log: $NODE_DIR/kube-proxy.log)" kube_proxy_synced
  log "node $NODE_NAME Ready at $NODE_IP (bridge $BRIDGE, pods in $SUBNET)"
}

stop_pid() { # stop_pid <pid> <name>: TERM, then KILL after 10 s
  local pid="$1"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || return 0; sleep 0.1; done
  log "$2 (pid $pid) ignored SIGTERM; SIGKILL"
  kill -9 "$pid" 2>/dev/null || true
}

# Shims of our containerd (they outlive it on purpose): recognised by our socket on their command line.
our_shims() { pgrep -f "containerd-shim-runc-v2 .*-address $SOCKET( |$)" || true; }
# Containers' processes: children of our shims.
our_mounts() { awk -v d="$NODE_DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r; }
# Network namespaces (CNI names them cni-*) holding an address of our subnet.
our_netns() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ { print $1 }'); do
    if ip -n "$ns" -4 -o addr show 2>/dev/null | grep -F " $PREFIX." >/dev/null; then echo "$ns"; fi
  done
}
our_veths() { ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1 || true; }
our_processes() {
  local f pid
  for f in kube-proxy kubelet containerd; do
    if pid="$(alive "$NODE_DIR/$f.pid")"; then echo "$pid"; fi
  done
  our_shims
}

# The KUBE-* chains and the rules jumping to them, in every table, for IPv4 and IPv6: kube-proxy's
# (most go with `kube-proxy --cleanup`) and the kubelet's (KUBE-FIREWALL, which drops
# non-loopback packets to 127.0.0.0/8, and the canary chains). Only a real node's kubelet and
# kube-proxy write them on these machines, so one real-node instance per machine at a time.
remove_kube_chains() {
  local cmd table rule chain
  for cmd in iptables ip6tables; do
    command -v "$cmd" >/dev/null || continue
    for table in filter nat mangle; do
      "$cmd" -t "$table" -S >/dev/null 2>&1 || continue
      { "$cmd" -t "$table" -S | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j KUBE-' || true; } |
        while read -r rule; do
          # iptables -S quotes for the shell (comments have spaces): eval re-reads the words.
          eval "\"\$cmd\" -t \"\$table\" -D ${rule#-A }" 2>/dev/null || true
        done
      for chain in $("$cmd" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
        "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$cmd" -t "$table" -S | awk '$1 == "-N" && $2 ~ /^KUBE-/ { print $2 }'); do
        "$cmd" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

cmd_down() {
  local pid sandbox ns mnt veth cg
  if pid="$(alive "$NODE_DIR/kube-proxy.pid")"; then
    log "stopping kube-proxy"
    stop_pid "$pid" kube-proxy
    # Its iptables chains and rules (KUBE-*) go with it.
    "$BIN_DIR/kube-proxy" --cleanup --config "$NODE_DIR/kube-proxy-config.yaml" >>"$NODE_DIR/kube-proxy.log" 2>&1 || true
  fi
  if pid="$(alive "$NODE_DIR/kubelet.pid")"; then
    log "stopping kubelet"
    stop_pid "$pid" kubelet
  fi
  if alive "$NODE_DIR/containerd.pid" >/dev/null && containerd_ready; then
    # Through the CRI, so that CNI DEL runs: it deletes the netns, the veth and the address.
    for sandbox in $(crictl_ pods -q 2>/dev/null); do
      crictl_ stopp "$sandbox" >/dev/null 2>&1 || true
      crictl_ rmp -f "$sandbox" >/dev/null 2>&1 || true
    done
  fi
  if pid="$(alive "$NODE_DIR/containerd.pid")"; then
    log "stopping containerd"
    stop_pid "$pid" containerd
  fi
  for pid in $(our_shims); do
    log "killing shim $pid and its containers"
    pkill -9 -P "$pid" 2>/dev/null || true
    kill -9 "$pid" 2>/dev/null || true
  done
  sleep 0.5
  for mnt in $(our_mounts); do umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true; done
  for ns in $(our_netns); do log "deleting netns $ns"; ip netns delete "$ns" || true; done
  for veth in $(our_veths); do log "deleting veth $veth"; ip link delete "$veth" 2>/dev/null || true; done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
  remove_kube_chains
  api_access_down
  # containerd's cgroup parent for the k8s.io namespace (runc removes the containers' own
  # cgroups); rmdir removes it only when empty.
  for cg in /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/k8s.io; do [ ! -d "$cg" ] || rmdir "$cg" 2>/dev/null || true; done
  if [ -f "$KUBECONFIG_PATH" ]; then kubectl_ delete node "$NODE_NAME" --ignore-not-found >/dev/null 2>&1 || true; fi
  rm -f "$NODE_DIR"/*.pid
  verify_clean
  # The container root (images, snapshots) is kept: a warm `up` reuses it.
  rm -rf "$NODE_DIR/kubelet" "$NODE_DIR/ctr-state" "$NODE_DIR/cni-ipam" "$NODE_DIR/pod-logs"
}

# Fails if any process, mount, netns, veth or the bridge of this node is left.
verify_clean() {
  local left=()
  [ -z "$(our_processes)" ] || left+=("processes: $(our_processes | tr '\n' ' ')")
  [ -z "$(our_mounts)" ] || left+=("mounts: $(our_mounts | tr '\n' ' ')")
  [ -z "$(our_netns)" ] || left+=("netns: $(our_netns | tr '\n' ' ')")
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || left+=("bridge $BRIDGE")
  if ip -o link show type veth 2>/dev/null | grep -F "master $BRIDGE " >/dev/null; then left+=("veths on $BRIDGE"); fi
  # Only kube-proxy writes KUBE-* chains on this machine (the kwok tier has no kube-proxy).
  if iptables-save 2>/dev/null | grep 'KUBE-' >/dev/null; then left+=("iptables KUBE-* chains"); fi
  if ip6tables-save 2>/dev/null | grep 'KUBE-' >/dev/null; then left+=("ip6tables KUBE-* chains"); fi
  if iptables-save 2>/dev/null | grep -F -- "$API_RULE_COMMENT" >/dev/null; then left+=("the API server DNAT rule"); fi
  if compgen -G "/sys/fs/cgroup/*/k8s.io/*/" >/dev/null; then left+=("cgroups under /sys/fs/cgroup/*/k8s.io"); fi
  [ "${#left[@]}" -eq 0 ] || die "left behind: ${left[*]}"
  log "down: no process, mount, netns, veth or bridge of the node is left"
}

cmd_status() {
  local pid name
  for name in containerd kubelet kube-proxy; do
    if pid="$(alive "$NODE_DIR/$name.pid")"; then echo "$name: running (pid $pid)"; else echo "$name: not running"; fi
  done
  if node_ready; then echo "node:       $NODE_NAME Ready at $NODE_IP"; else echo "node:       $NODE_NAME not Ready"; fi
  if [ -f "$NODE_DIR/api-endpoint" ]; then echo "API server for pods: $(tr ' ' ':' <"$NODE_DIR/api-endpoint")"; fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  check) check ;;
  verify-clean) verify_clean ;;
  *) echo "usage: $0 up | down | status | check | verify-clean" >&2; exit 2 ;;
esac
