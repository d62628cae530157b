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
