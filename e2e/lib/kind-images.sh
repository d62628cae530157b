#!/usr/bin/env bash
# The images a kind node needs, built locally in the private dockerd (e2e/lib/kind-docker.sh)
# from binaries built from Go modules, since no registry is reachable here:
#   - the control-plane components and etcd: FROM scratch, one static binary each;
#   - kube-proxy: a Debian rootfs (it execs iptables/conntrack) plus its static binary;
#   - pause: the control plane's static pause binary;
#   - stand-ins for the images kind's node image pulls but this setup does not run: kindnetd
#     (the cluster uses a bridge CNI config instead, `disableDefaultCNI`), coredns, and the
#     local-path storage images. They are the pause image under those names, so a pod that uses
#     one runs but serves nothing (coredns stays unready). See docs/kind.md.
# Then a Kubernetes release tarball (kubernetes-server-linux-<arch>.tar.gz) with kubeadm, kubelet,
# kubectl and the four component image tars, the input of `kind build node-image --type file`.
#
# Usage: kind-images.sh <debian rootfs tar>   (from kind-base-image.sh; DOCKER_HOST must be set)
# Prints the release tarball's path. Writes under $SAFEDEPLOY_CACHE/kind-<version>/.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
CACHE_ROOT="${SAFEDEPLOY_CACHE:-$HOME/.cache/safedeploy}"
OUT="$CACHE_ROOT/kind-$KIND_VERSION/k8s-$KUBE_VERSION"
ARCH="$(go env GOARCH)"
DEBIAN_IMAGE="safedeploy.local/kind-debian:bookworm"
log() { echo "kind-images: $*" >&2; }
rootfs_tar="${1:?usage: kind-images.sh <debian rootfs tar>}"
[ -n "${DOCKER_HOST:-}" ] || { log "DOCKER_HOST is not set: eval \"\$(e2e/lib/kind-docker.sh up)\""; exit 1; }

bin_dir="$("$REPO/e2e/lib/build-control-plane.sh" --with-node)"
kubeadm="$("$REPO/e2e/lib/kind-kubeadm.sh")"

# A FROM-scratch image with one static binary at /usr/local/bin/<name> (or <path>).
scratch_image() {
  local ref="$1" binary="$2" path="$3" dir
  dir="$(mktemp -d)"
  mkdir -p "$dir$(dirname "$path")" "$dir/tmp" "$dir/etc"
  chmod 1777 "$dir/tmp"
  cp "$binary" "$dir$path"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$dir/etc/group"
  tar -C "$dir" -c . | docker import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change "ENTRYPOINT [\"$path\"]" - "$ref" >/dev/null
  rm -rf "$dir"
}

docker image inspect "$DEBIAN_IMAGE" >/dev/null 2>&1 || docker import - "$DEBIAN_IMAGE" <"$rootfs_tar" >/dev/null
registry=registry.k8s.io
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  scratch_image "$registry/$c:$KUBE_VERSION" "$bin_dir/$c" "/usr/local/bin/$c"
done
proxy_dir="$(mktemp -d)"
cp "$bin_dir/kube-proxy" "$proxy_dir/"
printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/kube-proxy\nENTRYPOINT ["/usr/local/bin/kube-proxy"]\n' "$DEBIAN_IMAGE" >"$proxy_dir/Dockerfile"
docker build -q -t "$registry/kube-proxy:$KUBE_VERSION" "$proxy_dir" >/dev/null
rm -rf "$proxy_dir"

# The images kubeadm asks for besides the four components, by the names this kubeadm uses.
mapfile -t kubeadm_images < <("$kubeadm" config images list --kubernetes-version "$KUBE_VERSION" 2>/dev/null)
extra_images=()
for image in "${kubeadm_images[@]}"; do
  case "$image" in
    */etcd:*) scratch_image "$image" "$bin_dir/etcd" /usr/local/bin/etcd; extra_images+=("$image") ;;
    */pause:*) scratch_image "$image" "$bin_dir/pause" /pause; extra_images+=("$image") ;;
    */coredns:*) scratch_image "$image" "$bin_dir/pause" /coredns; extra_images+=("$image") ;;
  esac
done
# The sandbox image kind's containerd config names, and kind's own add-on images (stand-ins).
kind_module="$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION"
sandbox="$(sed -n 's/^ *sandbox_image *= *"\(.*\)"/\1/p' "$kind_module/images/base/files/etc/containerd/config.toml")"
scratch_image "$sandbox" "$bin_dir/pause" /pause
extra_images+=("$sandbox")
while read -r image; do
  scratch_image "$image" "$bin_dir/pause" /pause
  extra_images+=("$image")
done < <(sed -n 's/^const \(kindnetdImage\|storageProvisionerImage\|storageHelperImage\) = "\(.*\)"/\2/p' \
  "$kind_module"/pkg/build/nodeimage/const_*.go)
mkdir -p "$OUT/preload"
printf '%s\n' "${extra_images[@]}" | sort -u >"$OUT/preload/images.txt"
# One docker-save archive for the preloaded images (the base image imports them into its
# containerd; ctr turns docker's short names, kindest/..., back into docker.io/kindest/...).
mapfile -t unique_extra < "$OUT/preload/images.txt"
docker save "${unique_extra[@]}" >"$OUT/preload/images.tar"

# The release tarball, shaped like kubernetes-server-linux-<arch>.tar.gz.
release="$OUT/release"
rm -rf "$release"
mkdir -p "$release/kubernetes/server/bin"
echo "$KUBE_VERSION" >"$release/kubernetes/version"
cp "$kubeadm" "$bin_dir/kubelet" "$bin_dir/kubectl" "$release/kubernetes/server/bin/"
for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  docker save "$registry/$c:$KUBE_VERSION" >"$release/kubernetes/server/bin/$c.tar"
  echo "$KUBE_VERSION" >"$release/kubernetes/server/bin/$c.docker_tag"
done
tarball="$OUT/kubernetes-server-linux-$ARCH.tar.gz"
tar -C "$release" -c kubernetes | pigz -1 >"$tarball.tmp" 2>/dev/null || tar -C "$release" -c kubernetes | gzip -1 >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"
rm -rf "$release"
echo "$tarball"
