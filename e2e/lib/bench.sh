# shellcheck shell=bash
# Shared by the benchmarks (e2e/bench-*.sh), which source it after `e2e/cluster.sh env`.

# Scales the cluster's kwok nodes for `pods` pods: 110 each, and two revisions overlap during
# a rollout.
bench_nodes() { # run-dir cluster-name pods
  KWOK_WORKDIR="$1/kwok" kwokctl --name "$2" scale node --replicas $((3 + (2 * $3) / 100))
}

# Creates namespace `ns` with a policy that asks for no attestation and no pinned images: the
# benchmarks measure the operator, not a pipeline.
bench_namespace() { # ns
  kubectl create namespace "$1" >/dev/null
  kubectl apply -f - >/dev/null <<YAML
apiVersion: safedeploy.dev/v1alpha1
kind: SafeDeploymentPolicy
metadata: {name: $1}
spec: {namespaces: [$1], requireAttestation: false, requirePinnedImages: false}
YAML
}

# The safedeploy binary to measure, on stdout: $BENCH_BIN when set (a path, or `image` for the
# image's static binary, built now by e2e/lib/release.sh), else the `cargo build` of profile $1
# (release or debug), built now (cargo's output goes to stderr).
bench_binary() { # profile
  if [ "${BENCH_BIN:-}" = image ]; then
    # shellcheck source=release.sh
    . "$(dirname "${BASH_SOURCE[0]}")/release.sh"
    release_binary "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)" release
    return
  fi
  if [ -n "${BENCH_BIN:-}" ]; then
    echo "$BENCH_BIN"
    return
  fi
  echo "bench: building safedeploy ($1)" >&2
  if [ "$1" = release ]; then cargo build --release --quiet --bin safedeploy >&2; else cargo build --quiet --bin safedeploy >&2; fi
  echo "${CARGO_TARGET_DIR:-$PWD/target}/$1/safedeploy"
}

# Counts the objects that are done, from "name phase stable" lines on stdin: Healthy with a
# stable, and, given a file of such lines taken before a change, on a stable other than the one
# that file gives for the same object. The templates' labels name the object, so every object's
# revision hash is its own: an old stable is compared object by object, never with one object's.
count_done_since() { # [old-stables-file]
  awk -v old_file="${1:-}" '
    BEGIN { if (old_file != "") while ((getline line < old_file) > 0) { split(line, f, " "); old[f[1]] = f[3] } }
    $2 == "Healthy" && $3 != "" && (old_file == "" || $3 != old[$1]) {c++} END {print c+0}'
}
