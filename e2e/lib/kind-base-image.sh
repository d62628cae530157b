#!/usr/bin/env bash
# kind's base image (what `kind build node-image` builds on), made here from Debian's packages
# instead of docker.io/kindest/base, for machines that reach Debian's apt mirror but no container
# registry. It follows kind's images/base/Dockerfile (same files from the kind module, same
# package list, same systemd set-up) with these differences:
#   - containerd 1.6, runc and the CNI plugins are Debian's (kind builds containerd 2.x, runc 1.4
#     and the plugins from source); crictl is the control plane's (build-control-plane.sh);
#   - containerd's config has restrict_oom_score_adj = true, its unit no OOMScoreAdjust/Limit*
#     lines, and /usr/local/sbin/runc is
#     e2e/lib/kind-runc-wrapper.sh in front of Debian's runc: this machine has no
#     CAP_SYS_RESOURCE, inside the node either (kube-proxy's pod is privileged);
#   - a bridge CNI config in /etc/cni/net.d (the cluster disables kindnetd, see kind-images.sh);
#   - the images kind's node-image build would pull (etcd, pause, ...; kind-images.sh) are
#     preloaded into the image's containerd store, and /usr/local/bin/ctr answers kind's
#     `ctr content fetch` from that store instead of a registry, and kind's `ctr info` (a
#     containerd 2 command) with `ctr version` (anything else goes to ctr).
#
# Usage: kind-base-image.sh rootfs            build (or reuse) the Debian rootfs tar; print its path
#        kind-base-image.sh image <preload.tar> build the base image in $DOCKER_HOST; print its name
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
WORK="$CACHE_ROOT/kind-$KIND_VERSION/work"
ROOTFS_TAR="$CACHE_ROOT/kind-$KIND_VERSION/debian-$DEBIAN_SUITE-rootfs.tar"
BASE_IMAGE="${KIND_BASE_IMAGE:-safedeploy.local/kind-base:$KIND_VERSION}"
log() { echo "kind-base-image: $*" >&2; }

# kind's package list (images/base/Dockerfile) minus nfs-common, open-iscsi and fuse-overlayfs
# (not used here), plus Debian's container runtime.
PACKAGES=systemd,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz
PACKAGES+=,bash,ca-certificates,curl,jq,procps,e2fsprogs,containerd,runc,containernetworking-plugins

build_rootfs() {
  [ -s "$ROOTFS_TAR" ] && { echo "$ROOTFS_TAR"; return; }
  command -v mmdebstrap >/dev/null || { log "mmdebstrap is missing (apt-get install mmdebstrap)"; exit 1; }
  mkdir -p "$WORK"
  rm -rf "$WORK/rootfs"
  log "building a Debian $DEBIAN_SUITE rootfs from $DEBIAN_MIRROR (a few minutes)"
  mmdebstrap --variant=minbase --mode=root --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' "$DEBIAN_SUITE" "$WORK/rootfs" "$DEBIAN_MIRROR" >&2
  tar -C "$WORK/rootfs" --numeric-owner -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  echo "$ROOTFS_TAR"
}

build_image() {
  local preload="$1"
  [ -n "${DOCKER_HOST:-}" ] || { log "DOCKER_HOST is not set: eval \"\$(e2e/lib/kind-docker.sh up)\""; exit 1; }
  build_rootfs >/dev/null
  local kind_files root bin_dir
  kind_files="$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION/images/base/files"
  [ -d "$kind_files" ] || GOFLAGS=-mod=mod go mod download sigs.k8s.io/kind@"$KIND_VERSION"
  bin_dir="$("$REPO/e2e/lib/build-control-plane.sh" --with-node)"
  root="$WORK/base"
  rm -rf "$root"
  mkdir -p "$root"
  tar -C "$root" -xf "$ROOTFS_TAR"

  # kind's files, with the modes of its Dockerfile's COPY lines (the module cache is read-only).
  cp -r "$kind_files/usr/local/bin/." "$root/usr/local/bin/"
  chmod 0755 "$root"/usr/local/bin/*
  mkdir -p "$root/kind" "$root/LICENSES"
  cp -r "$kind_files/kind/." "$root/kind/"
  cp -r "$kind_files/etc/." "$root/etc/"
  chmod -R u+w,go-w "$root/kind" "$root/etc"
  find "$root/kind" "$root/etc/containerd" "$root/etc/default" "$root/etc/sysctl.d" "$root/etc/systemd/system" \
    "$root/etc/crictl.yaml" -type f -exec chmod 0644 {} +
  chmod 0755 "$root/kind" "$root/kind/bin" "$root"/kind/bin/*

  # Same systemd trimming as kind's Dockerfile.
  find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
    "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
    "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
  chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >&2
  chroot "$root" systemctl mask systemd-binfmt.service >&2
  mkdir -p "$root/etc/kubernetes/manifests"

  # Debian's runtime where kind's units and scripts expect kind's own builds.
  # Raising a unit's rlimits past this process's hard limit, or lowering its oom_score_adj, needs
  # CAP_SYS_RESOURCE; systemd fails the unit (status 205/214) instead of carrying on without.
  sed -i -e '/^OOMScoreAdjust=/d' -e '/^Limit[A-Z]*=/d' "$root/etc/systemd/system/containerd.service" \
    "$root/etc/systemd/system/kubelet.service"
  ln -sf /usr/bin/containerd "$root/usr/local/bin/containerd"
  install -m 0755 "$REPO/e2e/lib/kind-runc-wrapper.sh" "$root/usr/local/sbin/runc"
  install -m 0755 "$bin_dir/crictl" "$root/usr/local/bin/crictl"
  mkdir -p "$root/opt/cni"
  rm -rf "$root/opt/cni/bin"
  ln -s /usr/lib/cni "$root/opt/cni/bin"
  ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' |
    jq 'del(.process.rlimits)' >"$root/etc/containerd/cri-base.json"
  sed -i 's/^\( *restrict_oom_score_adj *= *\)false/\1true/' "$root/etc/containerd/config.toml"
  grep -q 'restrict_oom_score_adj = true' "$root/etc/containerd/config.toml" ||
    { log "could not set restrict_oom_score_adj in kind's containerd config"; exit 1; }
  mkdir -p "$root/etc/cni/net.d"
  cat >"$root/etc/cni/net.d/10-safedeploy-bridge.conflist" <<'CNI'
{
  "cniVersion": "0.4.0",
  "name": "safedeploy-kind",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI

  # kind's `ctr content fetch <image>` (its node-image build "pulls" every image that is not one
  # of the four component tars) answered from the preloaded store: no registry is reachable.
  mv "$root/usr/local/bin/ctr" "$root/usr/local/bin/ctr.kind-unused" 2>/dev/null || true
  cat >"$root/usr/local/bin/ctr" <<'CTR'
#!/bin/sh
# Offline stand-in for `ctr content fetch` (see e2e/lib/kind-base-image.sh); all else is ctr.
case "$*" in
  info) exec /usr/bin/ctr version ;; # kind's readiness check; containerd 1.6's ctr has no `info`
  *"content fetch"*)
    for image; do :; done
    if /usr/bin/ctr --namespace=k8s.io images ls -q | grep -xF "$image" >/dev/null; then exit 0; fi
    echo "ctr (offline): $image is not preloaded in this base image and no registry is reachable" >&2
    exit 1 ;;
esac
exec /usr/bin/ctr "$@"
CTR
  chmod 0755 "$root/usr/local/bin/ctr"

  # Preload: a containerd of the same version as the node's, on the rootfs's own store.
  if [ "$preload" != none ]; then
  local state
  state="$(mktemp -d /run/safedeploy-kind-preload.XXXXXX)"
  printf 'version = 2\nroot = "%s"\nstate = "%s"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s/sock"\n' \
    "$root/var/lib/containerd" "$state" "$state" >"$state/config.toml"
  containerd --config "$state/config.toml" >"$state/log" 2>&1 &
  local containerd_pid=$!
  for _ in $(seq 30); do [ -S "$state/sock" ] && break; sleep 0.5; done
  ctr --address "$state/sock" --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
    --all-platforms --no-unpack --digests "$preload" >&2
  ctr --address "$state/sock" --namespace=k8s.io images ls -q >&2
  kill "$containerd_pid"
  wait "$containerd_pid" || true
  rm -rf "$state"
  fi

  # docker import cannot set STOPSIGNAL: a metadata-only build on top does.
  tar -C "$root" --numeric-owner -c . | docker import - "$BASE_IMAGE-rootfs" >/dev/null
  rm -rf "$root"
  printf 'FROM %s\nENV container=docker\nSTOPSIGNAL SIGRTMIN+3\nENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n' \
    "$BASE_IMAGE-rootfs" | docker build -q -t "$BASE_IMAGE" - >/dev/null
  echo "$BASE_IMAGE"
}

case "${1:-}" in
  rootfs) build_rootfs ;;
  image) build_image "${2:?usage: $0 image <preload.tar>|none}" ;;
  *) echo "usage: $0 rootfs | image <preload.tar>" >&2; exit 2 ;;
esac
