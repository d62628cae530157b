#!/usr/bin/env bash
# The Gateway API CRDs (standard channel) for the test bed: fetched once from the Go module proxy
# (`sigs.k8s.io/gateway-api`, cached in the Go module cache) and printed as the directory of their
# YAML files, which `cluster.sh up` applies. The ValidatingAdmissionPolicy that guards upgrades
# (vap_safeupgrades) is left out: it only concerns moving between channels.
# Usage: gateway-api.sh   (prints the CRD directory)
set -euo pipefail

GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.6.3}"
command -v go >/dev/null || { echo "gateway-api: Go is required" >&2; exit 1; }
dir="$(cd /tmp && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -d "$dir/config/crd/standard" ] || { echo "gateway-api: no CRDs in the module at ${dir:-?}" >&2; exit 1; }
echo "$dir/config/crd/standard"
