#!/usr/bin/env bash
# OCI images without Docker or a registry: a root filesystem directory becomes a one-layer image
# (umoci), written as a tar of the OCI layout and imported into a containerd (ctr). Sourced by
# e2e/lib/real-node.sh (the pause image) and e2e/image.sh (the operator and demo images).
#
#   oci_build <ref> <rootfs dir> <out.tar> [umoci config flags...]
#       <ref> is registry/name:tag; the tar's image is annotated with the tag, so that
#       `ctr images import --base-name registry/name` names it <ref>.
#   oci_import <containerd socket> <ref> <out.tar>
#       imports into the k8s.io namespace (the CRI's) and unpacks for the default snapshotter.

oci_build() {
  local ref="$1" rootfs="$2" out="$3"
  shift 3
  local tag="${ref##*:}" work
  command -v umoci >/dev/null || { echo "oci.sh: umoci is missing (Debian: apt-get install umoci)" >&2; return 1; }
  work="$(mktemp -d "${TMPDIR:-/tmp}/safedeploy-oci.XXXXXX")"
  # shellcheck disable=SC2064 # expand now: the directory is local to this call
  trap "rm -rf '$work'" RETURN
  umoci init --layout "$work/layout" >&2
  umoci new --image "$work/layout:$tag" >&2
  umoci unpack --image "$work/layout:$tag" "$work/bundle" >&2
  cp -a "$rootfs/." "$work/bundle/rootfs/"
  umoci repack --image "$work/layout:$tag" "$work/bundle" >&2
  umoci config --image "$work/layout:$tag" "$@" >&2
  umoci gc --layout "$work/layout" >&2
  tar -C "$work/layout" -cf "$out.tmp" .
  mv "$out.tmp" "$out"
}

oci_import() {
  local socket="$1" ref="$2" tar="$3"
  ctr --address "$socket" -n k8s.io images import --base-name "${ref%:*}" "$tar" >&2
  # Read the whole list before matching: `grep -q` exits at the first match, ctr then dies of
  # SIGPIPE on its next line and pipefail turned a found image into a failed import (seen in CI).
  local listed
  listed="$(ctr --address "$socket" -n k8s.io images ls -q)"
  grep -xF "$ref" >/dev/null <<<"$listed" || {
    echo "oci.sh: $ref is not in containerd after the import; it lists: $(tr '\n' ' ' <<<"$listed")" >&2
    return 1
  }
}
