#!/usr/bin/env bash
# Runs every check of the project, as CI does (`.ci/run` calls exactly this):
#   1. installs what is missing (Debian: prometheus, curl; rustfmt/clippy components),
#   2. cargo fmt --check, cargo clippy --all-targets -D warnings, the unit tests (no cluster),
#   3. the local control plane + Prometheus + emitter (e2e/cluster.sh up --with-prometheus),
#      unless already running; whatever this script started is stopped again on exit,
#   4. the integration tests: the #[ignore]d tests of tests/*.rs, `cargo test -- --ignored`,
#   5. the chart, GitOps health and docs checks (e2e/docs-check.sh: mdbook build, links, commands,
#      cargo doc -D warnings).
# The control-plane binaries are built in the background while Rust compiles (first run only).
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
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: install them (apt-get install ${missing[*]})"
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || die "cargo (rustup) is required"
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component" || die "cannot install the $component component"
  fi
done
took prerequisites $((SECONDS - t))

# Build the control plane in the background while Rust compiles (a no-op once cached).
CP_LOG="$(mktemp -t safedeploy-cp-build.XXXXXX)"
# In its own process group (setsid), so that an early exit can stop the whole Go build.
setsid bash -c 'start=$SECONDS; e2e/lib/build-control-plane.sh; rc=$?
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
if e2e/cluster.sh status >/dev/null 2>&1; then
  echo "reusing the running cluster"
  e2e/cluster.sh status | grep -q '^prometheus: running' || STARTED_PROMETHEUS=true
else
  STARTED_CLUSTER=true
fi
e2e/cluster.sh up --with-prometheus
eval "$(e2e/cluster.sh env)"
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
