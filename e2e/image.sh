#!/usr/bin/env bash
# The operator's image and the demo application's image, built from this repository without
# Docker or a registry: a static (musl) `safedeploy` binary, CA certificates, a passwd/group with
# the non-root user 65532, made into OCI images with umoci (e2e/lib/oci.sh), optionally imported
# into a containerd (the real node's, see `e2e/cluster.sh up --real-nodes`).
#
#   registry.local/safedeploy:dev     the operator: the Dockerfile's USER, ENTRYPOINT, CMD, EXPOSE
#   registry.local/safedeploy-demo:v1 the same binary as a per-pod demo app: `safedeploy emitter`
#                                     on 0.0.0.0:8080 (/metrics, /readyz, /healthz, /); faults by
#                                     SAFEDEPLOY_EMITTER_* environment variables
#
# The Dockerfile stays the users' way to build; this script reads the user, entrypoint, command
# and port from its final stage and checks that it builds the same binary (same target triple
# and --bin), so that the two cannot drift apart silently.
#
# Usage: e2e/image.sh [--import] [--debug-build]
#   --import       into $SAFEDEPLOY_CONTAINERD_SOCKET, which `eval "$(e2e/cluster.sh env)"` sets
#                  on a real-node cluster
#   --debug-build  for CI: the glibc debug binary that `cargo build` already made (stripped), with
#                  the shared libraries it links copied in at their paths, instead of a static musl
#                  build (whose dependencies alone take ~20 minutes on a cold 2-core machine). Same
#                  user, entrypoint, command and port; only the binary's linking differs.
# Environment: SAFEDEPLOY_IMAGE_PROFILE (cargo profile, default release), CARGO_TARGET_DIR,
# SAFEDEPLOY_CACHE (the tars go to $SAFEDEPLOY_CACHE/images).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
OUT_DIR="$CACHE_ROOT/images"
PROFILE="${SAFEDEPLOY_IMAGE_PROFILE:-release}"
OPERATOR_IMAGE="registry.local/safedeploy:dev"
DEMO_IMAGE="registry.local/safedeploy-demo:v1"
# shellcheck source=lib/oci.sh
. "$REPO/e2e/lib/oci.sh"
# shellcheck source=lib/release.sh
. "$REPO/e2e/lib/release.sh"

log() { echo "image.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

import=false
debug_build=false
for arg in "$@"; do
  case "$arg" in
    --import) import=true ;;
    --debug-build) debug_build=true ;;
    *) die "usage: $0 [--import] [--debug-build]" ;;
  esac
done

# --- What the Dockerfile says (its final stage) ---------------------------------------------
dockerfile="$REPO/Dockerfile"
final_stage="$(awk '/^FROM /{stage=""} {stage = stage $0 "\n"} END {printf "%s", stage}' "$dockerfile")"
df_user="$(sed -n 's/^USER //p' <<<"$final_stage")"
df_entrypoint="$(sed -n 's/^ENTRYPOINT //p' <<<"$final_stage")"
df_cmd="$(sed -n 's/^CMD //p' <<<"$final_stage")"
df_port="$(sed -n 's/^EXPOSE //p' <<<"$final_stage")"
df_copy="$(sed -n 's/^COPY --from=build \/out\/safedeploy //p' <<<"$final_stage")"
[ -n "$df_user" ] && [ -n "$df_entrypoint" ] && [ -n "$df_cmd" ] && [ -n "$df_port" ] ||
  die "cannot read USER, ENTRYPOINT, CMD and EXPOSE from the Dockerfile's final stage"
[ "$df_user" != root ] && [ "${df_user%%:*}" != 0 ] || die "the Dockerfile runs as root"
# JSON arrays of strings only (exec form), e.g. ["/usr/local/bin/safedeploy"].
json_words() { python3 -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "$1"; }
mapfile -t entrypoint < <(json_words "$df_entrypoint")
mapfile -t command_words < <(json_words "$df_cmd")
binary_path="${entrypoint[0]}"
[ "${#entrypoint[@]}" -eq 1 ] || die "expected a one-word ENTRYPOINT, got $df_entrypoint"
[ "$df_copy" = "$binary_path" ] || die "the Dockerfile copies the binary to $df_copy but runs $binary_path"
grep -q -- '--target "$(uname -m)-unknown-linux-musl"' "$dockerfile" &&
  grep -q -- '--bin safedeploy' "$dockerfile" ||
  die "the Dockerfile no longer builds --bin safedeploy for <arch>-unknown-linux-musl: update this script with it"

# --- The binary ---------------------------------------------------------------------------------
shared_libraries=()
stripped_copy=""
if $debug_build; then
  log "using the debug build of safedeploy (glibc, with its shared libraries)"
  (cd "$REPO" && cargo build --quiet --bin safedeploy) || die "cargo build failed"
  built="${CARGO_TARGET_DIR:-$REPO/target}/debug/safedeploy"
  binary="$(mktemp "${TMPDIR:-/tmp}/safedeploy-stripped.XXXXXX")"
  stripped_copy="$binary"
  # The debug info is most of the file (300 MB); the image needs none of it.
  objcopy --strip-debug "$built" "$binary" || die "cannot strip $built"
  mapfile -t shared_libraries < <(ldd "$binary" | grep -o '/[^ ]*' | sort -u)
  [ "${#shared_libraries[@]}" -gt 0 ] || die "ldd found no shared library in $binary"
else
  grep -q '^ENV RUSTFLAGS="${RELEASE_RUSTFLAGS}"$' "$dockerfile" ||
    die "the Dockerfile no longer builds with RUSTFLAGS=\$RELEASE_RUSTFLAGS (e2e/lib/release.sh builds with them)"
  binary="$(release_binary "$REPO" "$PROFILE")" || die "cannot build the image's binary"
  if ldd "$binary" 2>&1 | grep '=>' >/dev/null; then die "$binary links shared libraries: $(ldd "$binary" 2>&1 | tr '\n' ' ')"; fi
fi
"$binary" --version >/dev/null || die "$binary does not run"

# --- The root filesystem ------------------------------------------------------------------------
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || die "$ca_bundle is missing (Debian: apt-get install ca-certificates)"
rootfs="$(mktemp -d "${TMPDIR:-/tmp}/safedeploy-rootfs.XXXXXX")"
trap 'rm -rf "$rootfs" $stripped_copy' EXIT
install -D -m 0755 "$binary" "$rootfs$binary_path"
for library in "${shared_libraries[@]}"; do install -D -m 0755 "$library" "$rootfs$library"; done
install -D -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
uid="${df_user%%:*}"
gid="${df_user##*:}"
install -d -m 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' "$uid" "$gid" >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$gid" >"$rootfs/etc/group"
install -d -m 0700 -o "$uid" -g "$gid" "$rootfs/home/nonroot"

mkdir -p "$OUT_DIR"
common=(--config.user "$df_user" --config.workingdir / --config.env "PATH=/usr/local/bin:/usr/bin:/bin" --config.env "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
  --config.exposedports "$df_port/tcp" --config.entrypoint "$binary_path")
cmd_flags=()
for word in "${command_words[@]}"; do cmd_flags+=(--config.cmd "$word"); done
oci_build "$OPERATOR_IMAGE" "$rootfs" "$OUT_DIR/safedeploy.tar" "${common[@]}" "${cmd_flags[@]}" \
  --config.label "org.opencontainers.image.title=safedeploy"
oci_build "$DEMO_IMAGE" "$rootfs" "$OUT_DIR/safedeploy-demo.tar" "${common[@]}" \
  --config.cmd emitter --config.cmd --listen --config.cmd "0.0.0.0:$df_port" \
  --config.label "org.opencontainers.image.title=safedeploy-demo"
log "built $OPERATOR_IMAGE ($(du -h "$OUT_DIR/safedeploy.tar" | cut -f1)) and $DEMO_IMAGE: $OUT_DIR"

if $import; then
  socket="${SAFEDEPLOY_CONTAINERD_SOCKET:-}"
  [ -S "$socket" ] || die "no containerd socket: eval \"\$(e2e/cluster.sh env)\" on a cluster up with --real-nodes"
  oci_import "$socket" "$OPERATOR_IMAGE" "$OUT_DIR/safedeploy.tar"
  oci_import "$socket" "$DEMO_IMAGE" "$OUT_DIR/safedeploy-demo.tar"
  log "imported into $socket"
  # The kubelet lists a node's images in its status only on its next refresh (up to a minute):
  # wait for it, so that a test that checks the node's images right after this finds them.
  if command -v kubectl >/dev/null && [ -n "${KUBECONFIG:-}" ]; then
    start=$SECONDS
    until kubectl get nodes -l safedeploy.dev/tier=real -o jsonpath='{.items[*].status.images[*].names}' 2>/dev/null |
      grep -qF "\"$DEMO_IMAGE\""; do
      ((SECONDS - start < 120)) || die "the real node does not report $DEMO_IMAGE after 120 s"
      sleep 1
    done
    log "the real node reports the images after $((SECONDS - start)) s"
  fi
fi
