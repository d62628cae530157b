#!/usr/bin/env bash
# Checks the Helm chart charts/safedeploy against the real API server of the local control plane:
#   1. the chart's CRD copy (files/crds/safedeploy.yaml) equals crds/safedeploy.yaml and, when a
#      built binary is at hand, `safedeploy crds`;
#   2. `helm lint --strict` with the default, HA (replicaCount 2) and ServiceMonitor values, and
#      values.schema.json rejects a misspelt key;
#   3. `helm template` output: least-privilege RBAC (no wildcard, no CRD write, Leases only in a
#      namespaced Role), the pod security settings, CRDs equal to the generated ones plus the
#      `helm.sh/resource-policy: keep` annotation; with governance.enabled, the five admission
#      policies and bindings (scoped by the namespace selector, naming the operator's
#      ServiceAccount) and the example ClusterRoles (tests/governance.rs proves what they deny);
#   4. a server-side dry run (`kubectl apply --server-side --dry-run=server`) of every variant;
#   5. `helm install` into a fresh namespace (kwok runs the pod), `helm upgrade` to 2 replicas,
#      `helm uninstall`; the CRDs stay (keep). The namespace is deleted afterwards.
# Needs: the cluster of e2e/cluster.sh (or KUBECONFIG), go (to install helm if missing), python3.
# Env: HELM (a helm binary), HELM_VERSION (default v3.22.0), SAFEDEPLOY_BIN (built binary),
#      CHART_CHECK_NAMESPACE (default sd-chart-check), CHART_CHECK_SKIP_INSTALL=1.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$REPO/charts/safedeploy"
NS="${CHART_CHECK_NAMESPACE:-sd-chart-check}"
RELEASE=sd-chart-check
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
WORK="$(mktemp -d -t safedeploy-chart-check.XXXXXX)"
cd "$REPO"

log() { echo "chart-check: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
pass() { log "ok: $*"; }

cleanup() {
  local rc=$?
  if [ -n "${INSTALLED:-}" ]; then
    "$HELM" uninstall "$RELEASE" -n "$NS" --wait >/dev/null 2>&1 || true
  fi
  if [ -n "${CREATED_NS:-}" ]; then
    kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# --- tools --------------------------------------------------------------------------------------
if [ -z "${KUBECONFIG:-}" ] && e2e/cluster.sh status >/dev/null 2>&1; then
  eval "$(e2e/cluster.sh env)"
fi
command -v kubectl >/dev/null || die "kubectl not found (eval \"\$(e2e/cluster.sh env)\")"
HELM="${HELM:-$(command -v helm || true)}"
if [ -z "$HELM" ]; then
  gobin="$(go env GOPATH)/bin"
  if [ ! -x "$gobin/helm" ]; then
    log "installing helm $HELM_VERSION from the Go module proxy (a few minutes, once)"
    GOTOOLCHAIN=local go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  fi
  HELM="$gobin/helm"
fi
KUBE_VERSION="$(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')"
log "helm $("$HELM" version --short), API server $KUBE_VERSION"

# --- 1. CRD copy --------------------------------------------------------------------------------
cmp -s crds/safedeploy.yaml "$CHART/files/crds/safedeploy.yaml" ||
  die "charts/safedeploy/files/crds/safedeploy.yaml differs from crds/safedeploy.yaml: run \`UPDATE_CRDS=1 cargo test --test crds_fresh\`"
BIN="${SAFEDEPLOY_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/debug/safedeploy}"
if [ -x "$BIN" ]; then
  "$BIN" crds | cmp -s - "$CHART/files/crds/safedeploy.yaml" ||
    die "the chart's CRDs differ from \`safedeploy crds\` ($BIN): regenerate them"
fi
pass "the chart's CRDs are the generated ones"

# --- 2. lint and schema -------------------------------------------------------------------------
VARIANTS=(default ha watch governance dashboard sharded)
variant_args() {
  case "$1" in
    default) echo "" ;;
    ha) echo "--set replicaCount=2" ;;
    watch) echo "--set watchNamespace=$NS --set crds.install=false --set leaderElection.enabled=true" ;;
    monitor) echo "--set serviceMonitor.enabled=true" ;;
    dashboard) echo "--set dashboard.enabled=true --set crds.install=false" ;;
    sharded) echo "--set sharding.shards={a,b} --set replicaCount=2 --set crds.install=false" ;;
    # Bound to a label no namespace carries: the server-side dry run must not govern anything.
    governance) echo "--set governance.enabled=true --set crds.install=false --set governance.namespaceSelector.matchLabels.safedeploy\.dev/chart-check=none" ;;
  esac
}
for variant in "${VARIANTS[@]}" monitor; do
  # shellcheck disable=SC2046
  "$HELM" lint "$CHART" --strict --kube-version "$KUBE_VERSION" $(variant_args "$variant") >"$WORK/lint.log" 2>&1 ||
    { cat "$WORK/lint.log" >&2; die "helm lint ($variant)"; }
done
pass "helm lint --strict (default, ha, watch, governance, dashboard, monitor)"
if "$HELM" template x "$CHART" --set replicaCont=2 >/dev/null 2>"$WORK/schema.log"; then
  die "values.schema.json accepted a misspelt key"
fi
grep -q "replicaCont" "$WORK/schema.log" || die "unexpected schema error: $(cat "$WORK/schema.log")"
if "$HELM" template x "$CHART" --set replicaCount=2 --set leaderElection.enabled=false >/dev/null 2>&1; then
  die "2 replicas without leader election rendered"
fi
pass "values.schema.json rejects a misspelt key; 2 replicas need leader election"

# --- 3. rendered output -------------------------------------------------------------------------
render() { # render <variant> <namespace>
  # shellcheck disable=SC2046
  "$HELM" template "$RELEASE" "$CHART" -n "$2" --kube-version "$KUBE_VERSION" $(variant_args "$1")
}
for variant in "${VARIANTS[@]}" monitor; do
  render "$variant" "$NS" >"$WORK/$variant.yaml"
done
python3 - "$WORK" "$REPO/crds/safedeploy.yaml" "$NS" <<'PY'
import json, subprocess, sys
work, crds, watched = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    import yaml
except ImportError:
    sys.exit("python3-yaml is needed (apt-get install python3-yaml)")

def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]

def fail(msg):
    sys.exit(f"chart-check: FAILED: {msg}")

default = docs(f"{work}/default.yaml")
kinds = sorted(d["kind"] for d in default)
want = ["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "CustomResourceDefinition", "CustomResourceDefinition",
        "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount",
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicyBinding"]
if kinds != want:
    fail(f"default render has {kinds}, want {want}")
# The rollout requirements' admission policy (always on: it only reads SafeDeploymentPolicies):
# it warns by default, denies for policies labelled Deny, and never blocks writes on its own error.
requirements = [d for d in default if d["kind"] == "ValidatingAdmissionPolicy"]
if len(requirements) != 1 or not requirements[0]["metadata"]["name"].endswith("-requirements"):
    fail(f"the default render's admission policy is not the requirements one: {requirements}")
if requirements[0]["spec"].get("failurePolicy") != "Ignore":
    fail("the requirements policy must fail open (the operator enforces anyway)")
if requirements[0]["spec"].get("paramKind", {}).get("kind") != "SafeDeploymentPolicy":
    fail("the requirements policy does not take SafeDeploymentPolicies as its parameter")
actions = sorted(tuple(b["spec"]["validationActions"]) for b in default if b["kind"] == "ValidatingAdmissionPolicyBinding")
if actions != [("Deny",), ("Warn",)]:
    fail(f"the requirements bindings are {actions}, want one Warn and one Deny")

# CRDs: the generated ones, plus keep and labels.
generated = {d["metadata"]["name"]: d for d in docs(crds)}
for crd in (d for d in default if d["kind"] == "CustomResourceDefinition"):
    name = crd["metadata"]["name"]
    if crd["metadata"].get("annotations", {}).get("helm.sh/resource-policy") != "keep":
        fail(f"CRD {name} lacks helm.sh/resource-policy: keep")
    stripped = json.loads(json.dumps(crd))
    stripped["metadata"].pop("annotations", None)
    stripped["metadata"].pop("labels", None)
    if stripped != generated.get(name):
        fail(f"CRD {name} as rendered differs from crds/safedeploy.yaml")

# RBAC: exactly the verbs the operator uses.
def rules_of(role, what):
    got = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                if "*" in (group, resource) or "*" in rule["verbs"]:
                    fail(f"wildcard in the {what}: {rule}")
                got.setdefault(f"{group}/{resource}", set()).update(rule["verbs"])
    return got

role = next(d for d in default if d["kind"] == "ClusterRole")
got = rules_of(role, "ClusterRole")
cluster_scoped = {
    "safedeploy.dev/safedeploymentpolicies": {"list", "watch"},
    "/namespaces": {"get", "list"},
    # setMirrorRoute: whether a route's Gateways can mirror (their classes' supportedFeatures).
    "gateway.networking.k8s.io/gateways": {"get"},
    "gateway.networking.k8s.io/gatewayclasses": {"get"},
}
namespaced = {
    # patch: only metadata.finalizers (the routes finalizer, docs/traffic-routing.md).
    "safedeploy.dev/safedeployments": {"get", "list", "watch", "patch"},
    "safedeploy.dev/safedeployments/status": {"patch"},
    "safedeploy.dev/safedeployments/finalizers": {"update"},
    "safedeploy.dev/safedeploymentrecords": {"create", "list", "delete"},
    "apps/replicasets": {"get", "list", "watch", "create", "patch", "delete"},
    # Adopted Deployments (spec.workloadRef): read, watched by label, scaled.
    "apps/deployments": {"get", "list", "watch", "patch"},
    # patch: only the shard label, when a SafeDeployment moves between shards.
    "/pods": {"list", "watch", "patch"},
    "/configmaps": {"get", "list", "watch", "create", "patch"},
    "/secrets": {"get", "list", "watch", "create", "patch"},
    "/serviceaccounts": {"get"},
    "/persistentvolumeclaims": {"get"},
    "events.k8s.io/events": {"create", "patch"},
    # Gateway API traffic routing: the stable/canary Services and the named routes' weights.
    "/services": {"get", "create", "patch"},
    "gateway.networking.k8s.io/httproutes": {"get", "list", "watch", "patch"},
    "gateway.networking.k8s.io/grpcroutes": {"get", "list", "watch", "patch"},
    # The Jobs of `job` analysis metrics.
    "batch/jobs": {"get", "list", "watch", "create", "delete"},
}
expected = {**cluster_scoped, **namespaced}
if got != expected:
    fail(f"ClusterRole rules {got} != {expected}")
if any(k.startswith("apiextensions.k8s.io") or k.startswith("coordination.k8s.io") for k in got):
    fail("the ClusterRole grants CRDs or Leases")
lease_role = next(d for d in default if d["kind"] == "Role")
for rule in lease_role["rules"]:
    if rule["apiGroups"] != ["coordination.k8s.io"] or rule["resources"] != ["leases"]:
        fail(f"the Role grants more than Leases: {rule}")
    if "resourceNames" not in rule and rule["verbs"] != ["create"]:
        fail(f"Lease verbs other than create must be limited to the lease name: {rule}")

# Pod security.
deployment = next(d for d in default if d["kind"] == "Deployment")
pod = deployment["spec"]["template"]["spec"]
container = pod["containers"][0]
sc = container["securityContext"]
checks = {
    "pod runAsNonRoot": pod["securityContext"].get("runAsNonRoot") is True,
    "seccomp RuntimeDefault": pod["securityContext"].get("seccompProfile", {}).get("type") == "RuntimeDefault",
    "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
    "no privilege escalation": sc.get("allowPrivilegeEscalation") is False,
    "drop ALL capabilities": sc.get("capabilities", {}).get("drop") == ["ALL"],
    "liveness /livez": container["livenessProbe"]["httpGet"]["path"] == "/livez",
    "readiness /readyz": container["readinessProbe"]["httpGet"]["path"] == "/readyz",
    "resources": bool(container.get("resources", {}).get("requests")),
    "http on 0.0.0.0:8080": container["args"][:3] == ["controller", "--http-addr", "0.0.0.0:8080"],
    "single replica: Recreate": deployment["spec"]["strategy"]["type"] == "Recreate",
    "single replica: no leader election": "--leader-elect" not in container["args"],
}
bad = [k for k, ok in checks.items() if not ok]
if bad:
    fail(f"Deployment checks failed: {bad}")

ha = docs(f"{work}/ha.yaml")
ha_dep = next(d for d in ha if d["kind"] == "Deployment")
args = ha_dep["spec"]["template"]["spec"]["containers"][0]["args"]
if ha_dep["spec"]["replicas"] != 2 or "--leader-elect" not in args or "--lease-name" not in args:
    fail(f"HA render: replicas/args wrong: {args}")
if not any(d["kind"] == "PodDisruptionBudget" for d in ha):
    fail("HA render has no PodDisruptionBudget")
watch = docs(f"{work}/watch.yaml")
if any(d["kind"] == "CustomResourceDefinition" for d in watch):
    fail("crds.install=false still renders CRDs")
wargs = next(d for d in watch if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
if "--namespace" not in wargs or watched not in wargs:
    fail(f"watchNamespace not passed: {wargs}")
# watchNamespace: the namespaced rules move into a Role of that namespace (audit finding 16).
wrole = next(d for d in watch if d["kind"] == "ClusterRole")
if rules_of(wrole, "ClusterRole") != {**cluster_scoped, "/namespaces": {"get"}}:
    fail(f"watchNamespace: the ClusterRole grants more than {cluster_scoped}: {wrole['rules']}")
if any(r.get("resourceNames") != [watched] for r in wrole["rules"] if "namespaces" in r["resources"]):
    fail("watchNamespace: Namespace get is not limited to the watched namespace")
wns = [d for d in watch if d["kind"] == "Role" and d["metadata"]["namespace"] == watched
       and not d["metadata"]["name"].endswith("-leader-election")]
if len(wns) != 1 or rules_of(wns[0], "Role") != namespaced:
    fail(f"watchNamespace: no Role in the watched namespace with exactly {namespaced}")
if not any(d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == watched for d in watch):
    fail("watchNamespace: no RoleBinding in the watched namespace")
# Sharding: one Deployment per shard, disjoint pod selectors, its own shard selector and Lease;
# the first reports what no shard selects; the leader-election Role names both Leases.
sharded = docs(f"{work}/sharded.yaml")
deps = [d for d in sharded if d["kind"] == "Deployment"]
shard_args = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["args"] for d in deps}
want_names = {f"{deps[0]['metadata']['name'].rsplit('-', 1)[0]}-{s}" for s in ("a", "b")} if deps else set()
if set(shard_args) != want_names:
    fail(f"sharded render: Deployments {sorted(shard_args)}, want {sorted(want_names)}")
selectors = [json.dumps(d["spec"]["selector"]["matchLabels"], sort_keys=True) for d in deps]
if len(set(selectors)) != len(selectors):
    fail(f"sharded render: the shards' pod selectors overlap: {selectors}")
for name, a in shard_args.items():
    shard = name.rsplit("-", 1)[1]
    if a[a.index("--shard") + 1] != f"safedeploy.dev/shard={shard}" or a[a.index("--lease-name") + 1] != name:
        fail(f"sharded render: {name} args {a}")
    reports = "--unsharded-selector" in a
    if reports != (shard == "a") or (reports and a[a.index("--unsharded-selector") + 1] != "safedeploy.dev/shard notin (a,b)"):
        fail(f"sharded render: only the first shard reports the unsharded ones: {name} {a}")
lease_rules = [r for d in sharded if d["kind"] == "Role" and d["metadata"]["name"].endswith("-leader-election")
               for r in d["rules"] if "resourceNames" in r]
if sorted(lease_rules[0]["resourceNames"]) != sorted(shard_args):
    fail(f"sharded render: the Lease Role names {lease_rules[0]['resourceNames']}")
monitor = docs(f"{work}/monitor.yaml")
sm = [d for d in monitor if d["kind"] == "ServiceMonitor"]
if len(sm) != 1 or sm[0]["spec"]["endpoints"][0]["port"] != "http-metrics":
    fail("serviceMonitor.enabled renders no (correct) ServiceMonitor")
# Governance (off by default: the default render above has none of it, only the requirements).
gov = docs(f"{work}/governance.yaml")
def governance_object(d):
    return not d["metadata"]["name"].endswith("-requirements") and \
        not d.get("spec", {}).get("policyName", "").endswith("-requirements")
policies = {d["metadata"]["name"]: d for d in gov if d["kind"] == "ValidatingAdmissionPolicy" and governance_object(d)}
bindings = [d for d in gov if d["kind"] == "ValidatingAdmissionPolicyBinding" and governance_object(d)]
short = sorted(n.removeprefix("sd-chart-check-safedeploy-") for n in policies)
if short != ["config-copies", "operator-writes", "owned-pods", "owned-workloads", "requests"]:
    fail(f"governance renders the policies {short}")
if sorted(b["spec"]["policyName"] for b in bindings) != sorted(policies):
    fail("governance: not one binding per policy")
for b in bindings:
    if b["spec"]["matchResources"]["namespaceSelector"] != {"matchLabels": {"safedeploy.dev/governed": "true", "safedeploy.dev/chart-check": "none"}}:
        fail(f"governance: binding {b['metadata']['name']} ignores governance.namespaceSelector")
    if b["spec"]["validationActions"] != ["Deny"]:
        fail(f"governance: binding {b['metadata']['name']} does not deny by default")
for name, policy in policies.items():
    if policy["spec"].get("failurePolicy") != "Fail":
        fail(f"governance: {name} fails open")
    for v in policy["spec"]["validations"]:
        if not v["message"].startswith(name + ":"):
            fail(f"governance: a message of {name} does not name it: {v['message']}")
sa = f"system:serviceaccount:{watched}:sd-chart-check-safedeploy"
writes = json.dumps(policies["sd-chart-check-safedeploy-operator-writes"]["spec"]["variables"])
if sa not in writes:
    fail(f"governance: operator-writes does not name the ServiceAccount {sa}")
roles = {d["metadata"]["name"]: d for d in gov if d["kind"] == "ClusterRole" and d["metadata"]["name"] != "sd-chart-check-safedeploy"}
if sorted(roles) != ["sd-chart-check-safedeploy-admin", "sd-chart-check-safedeploy-promoter"]:
    fail(f"governance: example ClusterRoles {sorted(roles)}")
for role in roles.values():
    rules_of(role, role["metadata"]["name"])
promoter = rules_of(roles["sd-chart-check-safedeploy-promoter"], "promoter")
if any(k in promoter for k in ("safedeploy.dev/safedeployments/promote-full", "safedeploy.dev/safedeployments/rollback", "safedeploy.dev/safedeployments/retry", "safedeploy.dev/safedeployments/break-glass", "safedeploy.dev/safedeployments/status")):
    fail(f"governance: the promoter role grants more than promote/abort/pause/resume: {promoter}")
admin = rules_of(roles["sd-chart-check-safedeploy-admin"], "admin")
if "safedeploy.dev/safedeployments/break-glass" not in admin:
    fail(f"governance: the admin role does not grant break-glass: {admin}")
# The in-cluster dashboard: read-only by its arguments and by its RBAC, and its pods never
# selected by the operator's Deployment or Service.
dash = docs(f"{work}/dashboard.yaml")
dash_objects = [d for d in dash if d["metadata"]["name"].endswith("-dashboard")]
if sorted(d["kind"] for d in dash_objects) != ["ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"]:
    fail(f"dashboard: objects {sorted(d['kind'] for d in dash_objects)}")
dash_role = next(d for d in dash_objects if d["kind"] == "ClusterRole")
for rule in dash_role["rules"]:
    if set(rule["verbs"]) - {"get", "list", "watch"}:
        fail(f"dashboard: its role may {rule['verbs']} on {rule['resources']}")
if sorted(r for rule in dash_role["rules"] for r in rule["resources"]) != ["events", "safedeployments"]:
    fail(f"dashboard: its role reaches {dash_role['rules']}")
dash_deploy = next(d for d in dash_objects if d["kind"] == "Deployment")
args = dash_deploy["spec"]["template"]["spec"]["containers"][0]["args"]
if args[0] != "dashboard" or "--read-only" not in args:
    fail(f"dashboard: args {args}")
if dash_deploy["spec"]["template"]["spec"]["serviceAccountName"] == "sd-chart-check-safedeploy":
    fail("dashboard: runs as the operator's ServiceAccount")
operator_deploy = next(d for d in dash if d["kind"] == "Deployment" and d is not dash_deploy)
pod_labels = dash_deploy["spec"]["template"]["metadata"]["labels"]
selector = operator_deploy["spec"]["selector"]["matchLabels"]
if all(pod_labels.get(k) == v for k, v in selector.items()):
    fail("dashboard: the operator's Deployment selects the dashboard's pods")
if any(d["metadata"]["name"].endswith("-dashboard") for d in default):
    fail("dashboard: rendered without dashboard.enabled")
print("chart-check: ok: rendered RBAC, pod security, CRDs (keep), HA, watchNamespace, ServiceMonitor, governance, read-only dashboard", file=sys.stderr)
PY

# --- 4. server-side dry run ---------------------------------------------------------------------
if kubectl get namespace "$NS" >/dev/null 2>&1; then
  # A previous run's namespace may still be terminating.
  kubectl wait --for=delete "namespace/$NS" --timeout=120s >/dev/null 2>&1 ||
    die "namespace $NS exists (a previous run?): delete it first"
fi
kubectl create namespace "$NS" >/dev/null
CREATED_NS=1
kubectl label namespace "$NS" safedeploy.dev/test=true >/dev/null
for variant in "${VARIANTS[@]}"; do
  kubectl apply --server-side --dry-run=server --field-manager chart-check -f "$WORK/$variant.yaml" >"$WORK/dry.log" 2>&1 ||
    { cat "$WORK/dry.log" >&2; die "server-side dry run ($variant)"; }
done
if kubectl get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1; then
  kubectl apply --server-side --dry-run=server -f "$WORK/monitor.yaml" >/dev/null
  pass "server-side dry run (${VARIANTS[*]} monitor)"
else
  pass "server-side dry run (${VARIANTS[*]}; the ServiceMonitor CRD is not installed here)"
fi

# --- 5. install / upgrade / uninstall -----------------------------------------------------------
if [ "${CHART_CHECK_SKIP_INSTALL:-0}" = 1 ]; then
  log "CHART_CHECK_SKIP_INSTALL=1: not installing"
  exit 0
fi
# CRDs that exist already (the integration tests apply them) are adopted by this release when
# nobody else's Helm release owns them; they are identical (checked above).
CRD_ARGS=()
for crd in safedeployments.safedeploy.dev safedeploymentpolicies.safedeploy.dev safedeploymentrecords.safedeploy.dev; do
  owner="$(kubectl get crd "$crd" -o jsonpath='{.metadata.annotations.meta\.helm\.sh/release-name}' 2>/dev/null || true)"
  if kubectl get crd "$crd" >/dev/null 2>&1; then
    if [ -z "$owner" ] || [ "$owner" = "$RELEASE" ]; then
      kubectl annotate --overwrite crd "$crd" meta.helm.sh/release-name="$RELEASE" meta.helm.sh/release-namespace="$NS" >/dev/null
      kubectl label --overwrite crd "$crd" app.kubernetes.io/managed-by=Helm >/dev/null
    else
      log "CRD $crd belongs to Helm release $owner: installing without CRDs"
      CRD_ARGS=(--set crds.install=false)
    fi
  fi
done
"$HELM" install "$RELEASE" "$CHART" -n "$NS" "${CRD_ARGS[@]}" --wait --timeout 3m >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log" >&2; kubectl -n "$NS" get all >&2 || true; die "helm install"; }
INSTALLED=1
kubectl -n "$NS" rollout status "deployment/$RELEASE-safedeploy" --timeout 120s >/dev/null
ready="$(kubectl -n "$NS" get deployment "$RELEASE-safedeploy" -o jsonpath='{.status.readyReplicas}')"
[ "$ready" = 1 ] || die "the operator Deployment has $ready ready replicas"
kubectl -n "$NS" get serviceaccount "$RELEASE-safedeploy" >/dev/null
kubectl auth can-i patch safedeployments.safedeploy.dev --subresource=status --as "system:serviceaccount:$NS:$RELEASE-safedeploy" -n default >/dev/null ||
  die "the ServiceAccount cannot patch safedeployments/status"
if kubectl auth can-i create customresourcedefinitions.apiextensions.k8s.io --as "system:serviceaccount:$NS:$RELEASE-safedeploy" >/dev/null 2>&1; then
  die "the ServiceAccount can create CRDs"
fi
if kubectl auth can-i update leases.coordination.k8s.io --as "system:serviceaccount:$NS:$RELEASE-safedeploy" -n default >/dev/null 2>&1; then
  die "the ServiceAccount can write Leases outside its namespace"
fi
pass "helm install: Deployment ready, ServiceAccount can patch status, cannot write CRDs or foreign Leases"

"$HELM" upgrade "$RELEASE" "$CHART" -n "$NS" "${CRD_ARGS[@]}" --set replicaCount=2 --wait --timeout 3m >"$WORK/upgrade.log" 2>&1 ||
  { cat "$WORK/upgrade.log" >&2; die "helm upgrade"; }
ready="$(kubectl -n "$NS" get deployment "$RELEASE-safedeploy" -o jsonpath='{.status.readyReplicas}')"
[ "$ready" = 2 ] || die "after the upgrade the Deployment has $ready ready replicas"
kubectl -n "$NS" get pdb "$RELEASE-safedeploy" >/dev/null
pass "helm upgrade to 2 replicas (leader election, PodDisruptionBudget)"

"$HELM" uninstall "$RELEASE" -n "$NS" --wait >"$WORK/uninstall.log" 2>&1 || { cat "$WORK/uninstall.log" >&2; die "helm uninstall"; }
INSTALLED=
if [ ${#CRD_ARGS[@]} -eq 0 ]; then
  kubectl get crd safedeployments.safedeploy.dev safedeploymentpolicies.safedeploy.dev safedeploymentrecords.safedeploy.dev >/dev/null ||
    die "helm uninstall deleted the CRDs (resource-policy keep)"
fi
kubectl get clusterrole "$RELEASE-safedeploy" >/dev/null 2>&1 && die "the ClusterRole survived the uninstall"
pass "helm uninstall: the release is gone, the CRDs are kept"
log "all chart checks passed"
