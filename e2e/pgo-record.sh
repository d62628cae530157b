#!/usr/bin/env bash
# Records the profile that lays out the image's code, pgo/safedeploy.profdata.xz, and the order
# lld links its functions in, pgo/safedeploy.order.xz. It builds the image's binary (static,
# musl, the Dockerfile's RELEASE_RUSTFLAGS) instrumented (`-C profile-generate`), runs it through
# e2e/bench-peers.sh's workload at 1,000 (bulk apply to all Healthy, a template change to all
# promoted, a minute at rest, two restarts), merges the raw counts with the toolchain's own
# llvm-profdata (rustup component llvm-tools, installed when missing: the profile's format must
# match rustc's LLVM) and compresses the result. The order is every function the run entered,
# the most often run first (e2e/lib/pgo-order.py), then those built without instrumentation.
#
# With the profile, the compiler puts the functions the workload never ran in one region of the
# binary and the hot ones in another, so the pages a running operator touches are fewer (numbers
# in docs/benchmarks.md). LLVM still puts a function that ran rarely with those that never ran;
# the order brings all that ran together. A function whose code changed since the recording has
# no profile and is built as without one; the rest keep theirs. Record again when the reconcile
# path changes a lot.
#
# Usage: e2e/pgo-record.sh [N]   (N defaults to 1000; about 20 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
n="${1:-1000}"
target="$(uname -m)-unknown-linux-musl"
build_dir="${CARGO_TARGET_DIR:-$REPO/target}/pgo-record"
raw_dir="$build_dir/raw"
out="$REPO/pgo/safedeploy.profdata.xz"
order_out="$REPO/pgo/safedeploy.order.xz"

log() { echo "pgo-record: $*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=lib/release.sh
. "$REPO/e2e/lib/release.sh"
# The flags the image is built with, without the profile and the order this is about to make.
flags="$(release_rustflags "$REPO")" || die "cannot read the image's flags"
flags="$(sed 's/-C profile-use=[^ ]*//; s/-C link-arg=-Wl,--symbol-ordering-file=[^ ]*//; s/  */ /g' <<<"$flags")"

toolchain="$(rustup show active-toolchain | cut -d' ' -f1)"
if ! rustup component list --toolchain "$toolchain" --installed | grep -q '^llvm-tools'; then
  log "installing the llvm-tools component for $toolchain"
  rustup component add llvm-tools --toolchain "$toolchain"
fi
profdata="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata"
[ -x "$profdata" ] || die "no llvm-profdata at $profdata"

log "building the instrumented binary ($target; $flags)"
rm -rf "$raw_dir"
mkdir -p "$raw_dir"
RUSTFLAGS="$flags -C profile-generate=$raw_dir" CARGO_TARGET_DIR="$build_dir" \
  cargo build --quiet --locked --release --target "$target" --bin safedeploy
binary="$build_dir/$target/release/safedeploy"

# The instrumented process writes its counts when it exits (bench-peers stops it with SIGTERM,
# which the controller turns into a clean exit); the restarts add to the same file.
log "running the workload at $n"
BENCH_BIN="$binary" e2e/bench-peers.sh "$n" --only sd --rest 60 --restarts 2
compgen -G "$raw_dir/*.profraw" >/dev/null || die "the run wrote no profile to $raw_dir"

"$profdata" merge -o "$build_dir/safedeploy.profdata" "$raw_dir"/*.profraw
mkdir -p "$(dirname "$out")"
xz -9 -T1 -c "$build_dir/safedeploy.profdata" >"$out"
log "wrote $out ($(du -h "$out" | cut -f1)): $("$profdata" show "$build_dir/safedeploy.profdata" | grep -E '^Total functions' || true)"

# The order: first the functions the run entered, from the profile; then those a binary built
# with this profile holds that no profile can place (built without instrumentation: the standard
# library's precompiled code, musl, ring's C), read from that binary's linker map.
"$profdata" merge --text -o "$build_dir/safedeploy.profdata.txt" "$build_dir/safedeploy.profdata"
python3 "$REPO/e2e/lib/pgo-order.py" "$build_dir/safedeploy.profdata.txt" >"$build_dir/safedeploy.ran"
[ -s "$build_dir/safedeploy.ran" ] || die "the profile names no function that ran"
xz -9 -T1 -c "$build_dir/safedeploy.ran" >"$order_out"
log "linking the image's binary with the new profile, for its map"
release_binary "$REPO" release -C link-arg=-Wl,-Map="$build_dir/safedeploy.map" >/dev/null ||
  die "cannot build the image's binary with the new profile"
python3 "$REPO/e2e/lib/pgo-order.py" "$build_dir/safedeploy.profdata.txt" "$build_dir/safedeploy.map" \
  >"$build_dir/safedeploy.order"
xz -9 -T1 -c "$build_dir/safedeploy.order" >"$order_out"
log "wrote $order_out: $(wc -l <"$build_dir/safedeploy.ran") functions that ran, then $(($(wc -l <"$build_dir/safedeploy.order") - $(wc -l <"$build_dir/safedeploy.ran"))) without a profile"
