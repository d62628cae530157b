#!/usr/bin/env bash
# Runs every check of the project, as CI does (`.ci/run` calls exactly this):
#   1. installs what is missing (Debian: prometheus, curl, chromium; rustfmt/clippy components;
#      the dashboard test's playwright-core from npm),
#   2. cargo fmt --check, cargo clippy --all-targets -D warnings, the unit tests (no cluster),
#   3. the local control plane + Prometheus + emitter (e2e/cluster.sh up --with-prometheus),
#      unless already running; whatever this script started is stopped again on exit,
#   4. the integration tests: the #[ignore]d tests of tests/*.rs, `cargo test -- --ignored`,
#   5. the chart, GitOps health and docs checks (e2e/docs-check.sh: mdbook build, links, commands,
#      cargo doc -D warnings).
# The control-plane binaries are built in the background while Rust compiles (first run only).
# As root, the cluster also gets a real node (e2e/cluster.sh up --real-nodes: containerd, runc, a
# kubelet, kube-proxy; the images from e2e/image.sh --debug-build), so the real-pod tests
# (tests/real_*.rs) run too, except the three that need Prometheus to scrape the pods themselves
# (its Go build is ~24 minutes cold; they say SKIPPED, see docs/real-pods.md), and the data
# plane (--with-traefik: Traefik built from its Go module, ~5 minutes cold, in the background),
# which the data-plane tests (tests/*dataplane.rs) then insist on (SAFEDEPLOY_REQUIRE_DATA_PLANE).
# SAFEDEPLOY_REAL_TIER=0 leaves the real node and the data plane out; =1 insists on them.
# Env: SAFEDEPLOY_TEST_THREADS (integration test threads, default 4), SAFEDEPLOY_KEEP_CLUSTER=1
# (leave a cluster this script started running), SAFEDEPLOY_SKIP_LINT=1 (local use only: skip
# fmt and clippy, e.g. while someone else's code does not pass them yet).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
T0=$SECONDS
SUMMARY=()
step() { echo; echo "=== test-all: $* ($((SECONDS - T0))s)"; }
took() { SUMMARY+=("$(printf '%-28s %5ss' "$1" "$2")"); }
die() { echo "test-all: error: $*" >&2; exit 1; }

# --- 1. prerequisites -------------------------------------------------------------------------
step "checking prerequisites"
t=$SECONDS
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v curl >/dev/null || missing+=(curl)
command -v flock >/dev/null || missing+=(util-linux)
command -v jq >/dev/null || missing+=(jq)
python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
case "${SAFEDEPLOY_REAL_TIER:-auto}" in
  0) REAL_TIER=false ;;
  1) REAL_TIER=true; [ "$(id -u)" = 0 ] || die "SAFEDEPLOY_REAL_TIER=1: a real node needs root" ;;
  auto) if [ "$(id -u)" = 0 ]; then REAL_TIER=true; else REAL_TIER=false; echo "test-all: not root: no real node (tests/real_*.rs say SKIPPED)"; fi ;;
  *) die "SAFEDEPLOY_REAL_TIER must be 0, 1 or auto" ;;
esac
if $REAL_TIER; then
  for cmd in containerd runc ctr umoci iptables conntrack objcopy; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
  done
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
fi
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: install them (apt-get install ${missing[*]})"
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Commands whose Debian package has another name.
  packages=("${missing[@]/#ctr/containerd}")
  packages=("${packages[@]/#objcopy/binutils}")
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
command -v cargo >/dev/null || die "cargo (rustup) is required"
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component" || die "cannot install the $component component"
  fi
done
# The dashboard's real-browser test: Debian's Chromium and the pinned playwright-core.
e2e/lib/chromium.sh
took prerequisites $((SECONDS - t))

# CI checks out a clean tree for every run, so target/ starts empty: keep Cargo's build output
# under ~/.cache instead, and a warm run compiles this crate only, not its ~300 dependencies.
# This crate's own artifacts of earlier checkouts are removed first, so the cache holds the
# dependencies plus one build of the crate and does not grow with each run.
if [ -n "${CI:-}" ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}/cargo-target"
  export CARGO_INCREMENTAL=0
  echo "test-all: CI: Cargo's build cache is $CARGO_TARGET_DIR"
  if [ -d "$CARGO_TARGET_DIR/debug" ]; then
    crate_targets=(safedeploy)
    for test_file in tests/*.rs; do crate_targets+=("$(basename "$test_file" .rs)"); done
    for name in "${crate_targets[@]}"; do
      find "$CARGO_TARGET_DIR/debug/deps" "$CARGO_TARGET_DIR/debug/.fingerprint" -maxdepth 1 \
        -regextype posix-extended -regex ".*/(lib)?${name}-[0-9a-f]{16}(\..*)?" -exec rm -rf {} + 2>/dev/null || true
    done
  fi
fi

# Build the control plane in the background while Rust compiles (a no-op once cached).
CP_LOG="$(mktemp -t safedeploy-cp-build.XXXXXX)"
# In its own process group (setsid), so that an early exit can stop the whole Go build.
node_flag=""
if $REAL_TIER; then node_flag=--with-node; fi
# As root, the data plane too (Traefik from its Go module; its AnyIP routes need root).
traefik_build=true
if $REAL_TIER; then traefik_build=e2e/lib/build-traefik.sh; fi
setsid bash -c 'start=$SECONDS; e2e/lib/build-control-plane.sh '"$node_flag"' && '"$traefik_build"' >/dev/null; rc=$?
  echo "control-plane build: $((SECONDS - start))s"; exit $rc' >"$CP_LOG" 2>&1 </dev/null &
CP_PID=$!

STARTED_CLUSTER=false
STARTED_PROMETHEUS=false
cleanup() {
  local rc=$?
  if kill -0 "$CP_PID" 2>/dev/null; then kill -- "-$CP_PID" 2>/dev/null || true; fi
  if $STARTED_CLUSTER && [ "${SAFEDEPLOY_KEEP_CLUSTER:-0}" != 1 ]; then
    echo "test-all: stopping the control plane this run started"
    e2e/cluster.sh down || true
  elif $STARTED_PROMETHEUS && [ "${SAFEDEPLOY_KEEP_CLUSTER:-0}" != 1 ]; then
    echo "test-all: stopping Prometheus and the emitter this run started"
    e2e/cluster.sh down --only-prometheus || true
  fi
  rm -f "$CP_LOG"
  echo
  echo "=== test-all: timings"
  printf '  %s\n' "${SUMMARY[@]}"
  echo "  total                        $((SECONDS - T0))s"
  exit "$rc"
}
trap cleanup EXIT

# --- 2. static checks and unit tests ------------------------------------------------------------
if [ "${SAFEDEPLOY_SKIP_LINT:-0}" = 1 ] && [ "${CI:-}" != true ]; then
  echo "test-all: SAFEDEPLOY_SKIP_LINT=1: skipping cargo fmt and cargo clippy"
else
  step "cargo fmt --check"
  t=$SECONDS
  cargo fmt --all -- --check
  took "cargo fmt --check" $((SECONDS - t))

  step "cargo clippy --all-targets -- -D warnings"
  t=$SECONDS
  cargo clippy --all-targets -- -D warnings
  took "cargo clippy" $((SECONDS - t))
fi

step "cargo build + unit tests"
t=$SECONDS
cargo build --bin safedeploy
cargo test
took "build + unit tests" $((SECONDS - t))

# --- 3. control plane ---------------------------------------------------------------------------
step "waiting for the control-plane build"
t=$SECONDS
if ! wait "$CP_PID"; then
  cat "$CP_LOG" >&2
  die "building the control plane failed"
fi
took "control-plane build (bg)" "$(sed -n 's/^control-plane build: \([0-9]*\)s$/\1/p' "$CP_LOG")"
took "waited for it" $((SECONDS - t))

step "starting the control plane + Prometheus + emitter"
t=$SECONDS
export SAFEDEPLOY_BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug/safedeploy"
up_flags=(--with-prometheus)
if e2e/cluster.sh status >/dev/null 2>&1; then
  echo "reusing the running cluster"
  e2e/cluster.sh status | grep '^prometheus: running' >/dev/null || STARTED_PROMETHEUS=true
  if $REAL_TIER && ! e2e/cluster.sh status | grep '^real node:' >/dev/null; then
    echo "test-all: the running cluster has no real node: the real-pod tests say SKIPPED"
    REAL_TIER=false
  fi
else
  STARTED_CLUSTER=true
fi
if $REAL_TIER; then
  up_flags+=(--real-nodes --with-traefik)
  # The data-plane tests (tests/*dataplane.rs) fail instead of skipping when it is not up.
  export SAFEDEPLOY_REQUIRE_DATA_PLANE=1
  # Debian's Prometheus: building one with Kubernetes service discovery takes ~24 cold minutes.
  export SAFEDEPLOY_REAL_PODS_PROMETHEUS="${SAFEDEPLOY_REAL_PODS_PROMETHEUS:-debian}"
fi
e2e/cluster.sh up "${up_flags[@]}"
eval "$(e2e/cluster.sh env)"
if $REAL_TIER; then
  e2e/image.sh --debug-build --import
fi
kubectl version
kubectl get nodes
took "control plane up" $((SECONDS - t))

# --- 4. integration tests -----------------------------------------------------------------------
step "integration tests (cargo test -- --ignored)"
t=$SECONDS
cargo test --no-fail-fast -- --ignored --test-threads "${SAFEDEPLOY_TEST_THREADS:-4}"
took "integration tests" $((SECONDS - t))

step "Helm chart + GitOps health checks"
t=$SECONDS
e2e/chart-check.sh
e2e/kstatus-check/check.sh
took "chart + health checks" $((SECONDS - t))

step "docs: mdbook build, internal links, commands against the CLI, cargo doc"
t=$SECONDS
e2e/docs-check.sh
took "docs check" $((SECONDS - t))

step "all checks passed"
