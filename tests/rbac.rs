//! The chart's least-privilege RBAC, proven on the real API server: the ServiceAccount,
//! ClusterRole, Role and bindings rendered by `helm template charts/safedeploy` are applied, the
//! operator runs out of cluster under a token of that ServiceAccount (`kubectl create token`),
//! and a rollout goes from nothing to Healthy and through a promotion. With one verb taken away (`patch` on
//! replicasets) the operator fails with a clear "forbidden" error naming the verb and resource.
//!
//! The cluster tests need `kubectl` (on PATH after `eval "$(e2e/cluster.sh env)"`) and `helm`
//! (`$HELM`, PATH or `$(go env GOPATH)/bin`; installed from the Go module proxy if missing).

mod chart;
mod common;
mod operator;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{Fault, TestNamespace};
use k8s_openapi::api::apps::v1::ReplicaSet;
use operator::{
    apply, apply_promoted, apply_stable_web, controller_command, opted_out_namespace,
    safe_deployment,
};
use safedeploy::api::Phase;
use serde_json::{Value, json};
use tokio::process::Child;

/// The chart's ServiceAccount and RBAC for release `release` in `namespace`, as YAML.
fn rendered_rbac(release: &str, namespace: &str, values: &[&str]) -> String {
    chart::render(
        release,
        namespace,
        &["serviceaccount.yaml", "rbac.yaml"],
        values,
    )
}

/// Runs kubectl (admin kubeconfig) with `stdin`, returning stdout; panics on failure.
async fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    let run = common::kubectl_run(args, stdin).await;
    assert!(run.ok, "kubectl {args:?} failed: {}", run.stderr);
    run.stdout
}

/// The chart's RBAC applied for one test, with its cluster-scoped objects deleted on drop.
struct ChartRbac {
    release: String,
    account: String,
    kubeconfig: PathBuf,
}

impl ChartRbac {
    /// Applies the rendered RBAC (after `edit`), and writes a kubeconfig that authenticates as
    /// the ServiceAccount with a token from `kubectl create token`.
    async fn apply(ns: &TestNamespace, edit: impl Fn(&mut Vec<Value>)) -> Self {
        Self::apply_with(ns, &[], edit).await
    }

    /// [`ChartRbac::apply`] with chart values (`key=value`, as `helm --set` takes them).
    async fn apply_with(
        ns: &TestNamespace,
        values: &[&str],
        edit: impl Fn(&mut Vec<Value>),
    ) -> Self {
        // Cluster-scoped names must not collide between tests: the release is named after the
        // namespace.
        let release = ns.name.clone();
        let mut documents: Vec<Value> =
            chart::documents(&rendered_rbac(&release, &ns.name, values));
        let mut kinds: Vec<&str> = documents
            .iter()
            .filter_map(|d| d["kind"].as_str())
            .collect();
        let namespaced_role = values.iter().any(|v| v.starts_with("watchNamespace="));
        let mut expected_kinds = vec![
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ];
        if namespaced_role {
            // The namespaced rules' Role and RoleBinding, besides the Lease's.
            expected_kinds.extend(["Role", "RoleBinding"]);
        }
        kinds.sort_unstable();
        expected_kinds.sort_unstable();
        assert_eq!(kinds, expected_kinds);
        edit(&mut documents);
        let account = documents[0]["metadata"]["name"]
            .as_str()
            .expect("ServiceAccount name")
            .to_string();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": documents});
        kubectl(
            &["apply", "--server-side", "-f", "-"],
            Some(&list.to_string()),
        )
        .await;
        let token = kubectl(
            &[
                "create",
                "token",
                &account,
                "-n",
                &ns.name,
                "--duration",
                "1h",
            ],
            None,
        )
        .await;
        let kubeconfig = write_kubeconfig(&ns.name, token.trim());
        ChartRbac {
            release,
            account,
            kubeconfig,
        }
    }
}

impl Drop for ChartRbac {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        let _ = std::process::Command::new("kubectl")
            .args(["delete", "--ignore-not-found", "--wait=false"])
            .arg(format!("clusterrole/{}-safedeploy", self.release))
            .arg(format!("clusterrolebinding/{}-safedeploy", self.release))
            // The namespace's attestation opt-out policy (cluster-scoped) of `opted_out_namespace`.
            .arg(format!("safedeploymentpolicy/{}-policy", self.release))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A kubeconfig with the admin kubeconfig's cluster (server, CA) and a bearer token, no client
/// certificate.
fn write_kubeconfig(namespace: &str, token: &str) -> PathBuf {
    let admin = kube::config::Kubeconfig::read().expect("read the admin kubeconfig");
    let context = admin
        .contexts
        .iter()
        .find(|c| Some(&c.name) == admin.current_context.as_ref())
        .and_then(|c| c.context.clone())
        .expect("current context");
    let cluster = admin
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.clone())
        .expect("cluster");
    let mut cluster_json = json!({"server": cluster.server.expect("server")});
    if let Some(data) = cluster.certificate_authority_data {
        cluster_json["certificate-authority-data"] = json!(data);
    } else if let Some(file) = cluster.certificate_authority {
        cluster_json["certificate-authority"] = json!(file);
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster_json}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{
            "name": "operator",
            "context": {"cluster": "cluster", "user": "operator", "namespace": namespace},
        }],
        "current-context": "operator",
    });
    let path = std::env::temp_dir().join(format!("safedeploy-rbac-{namespace}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config).expect("yaml")).expect("write kubeconfig");
    path
}

/// `safedeploy controller --namespace <ns>` under the ServiceAccount's kubeconfig, logging to a
/// file; killed on drop.
struct ScopedOperator {
    _child: Child,
    log_path: PathBuf,
}

impl ScopedOperator {
    fn start(namespace: &str, kubeconfig: &Path, tag: &str) -> Self {
        Self::start_with(namespace, kubeconfig, tag, &[])
    }

    fn start_with(namespace: &str, kubeconfig: &Path, tag: &str, extra: &[&str]) -> Self {
        let log_path = std::env::temp_dir().join(format!("safedeploy-rbac-{namespace}-{tag}.log"));
        let log = std::fs::File::create(&log_path).expect("operator log file");
        let child = controller_command(Path::new(env!("CARGO_BIN_EXE_safedeploy")), namespace, log)
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .spawn()
            .expect("start the operator");
        ScopedOperator {
            _child: child,
            log_path,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

/// A first revision to Healthy, then a second through its canary steps to Promoted.
async fn roll_out_and_promote(ns: &TestNamespace) {
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    let first = apply_stable_web(ns, 2, &steps).await;
    let v1 = first.stable_revision.clone().expect("stable revision");
    let promoted = apply_promoted(
        ns,
        &safe_deployment("web", 2, "registry.local/app:v2", Fault::None, steps),
        Some(&v1),
    )
    .await;
    assert_eq!(
        promoted.history.last().map(|h| h.outcome.as_str()),
        Some("Promoted")
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_rollout_completes_under_the_charts_service_account() {
    let ns = opted_out_namespace("rbac-ok").await;
    let rbac = ChartRbac::apply(&ns, |_| {}).await;
    // The token really is the ServiceAccount's, and it really is least privilege.
    let whoami = kubectl(
        &[
            "--kubeconfig",
            rbac.kubeconfig.to_str().expect("path"),
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    )
    .await;
    assert_eq!(
        whoami,
        format!("system:serviceaccount:{}:{}", ns.name, rbac.account)
    );
    let can = |verb: &'static str, resource: &'static str| {
        let kubeconfig = rbac.kubeconfig.clone();
        let namespace = ns.name.clone();
        async move {
            std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["auth", "can-i", verb, resource, "-n", &namespace])
                .output()
                .expect("kubectl auth can-i")
                .status
                .success()
        }
    };
    assert!(can("patch", "replicasets.apps").await);
    assert!(!can("create", "customresourcedefinitions.apiextensions.k8s.io").await);
    // `patch` on safedeployments is for the routes finalizer only (metadata.finalizers by
    // server-side apply); it cannot update (replace) one.
    assert!(can("patch", "safedeployments.safedeploy.dev").await);
    assert!(!can("update", "safedeployments.safedeploy.dev").await);
    assert!(!can("create", "pods").await);
    // Secrets are read by name, copied per revision and watched as metadata only; never
    // updated or deleted.
    assert!(can("create", "secrets").await);
    assert!(can("watch", "secrets").await);
    assert!(!can("update", "secrets").await);
    assert!(!can("delete", "secrets").await);
    assert!(!can("update", "configmaps").await);
    assert!(!can("delete", "configmaps").await);
    assert!(!can("update", "deployments.apps").await);

    let operator = ScopedOperator::start(&ns.name, &rbac.kubeconfig, "ok");
    roll_out_and_promote(&ns).await;
    let replica_sets: kube::Api<ReplicaSet> = ns.api();
    let names: Vec<String> = replica_sets
        .list(&Default::default())
        .await
        .expect("list ReplicaSets")
        .items
        .into_iter()
        .filter_map(|rs| rs.metadata.name)
        .collect();
    assert_eq!(names.len(), 2, "one ReplicaSet per revision: {names:?}");
    let log = operator.log();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator hit a permission error:\n{log}"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn without_patch_on_replicasets_the_operator_fails_with_a_clear_error() {
    let ns = opted_out_namespace("rbac-nopatch").await;
    let rbac = ChartRbac::apply(&ns, |documents| {
        let role = documents
            .iter_mut()
            .find(|d| d["kind"] == "ClusterRole")
            .expect("ClusterRole");
        let rules = role["rules"].as_array_mut().expect("rules");
        let rule = rules
            .iter_mut()
            .find(|r| r["resources"] == json!(["replicasets"]))
            .expect("the replicasets rule");
        let verbs = rule["verbs"].as_array_mut().expect("verbs");
        let before = verbs.len();
        verbs.retain(|v| v != "patch");
        assert_eq!(verbs.len(), before - 1, "patch was granted before");
    })
    .await;
    let operator = ScopedOperator::start(&ns.name, &rbac.kubeconfig, "nopatch");
    apply(
        &ns,
        &safe_deployment(
            "web",
            2,
            "registry.local/app:v1",
            Fault::None,
            json!([{"setWeight": 100}]),
        ),
    )
    .await
    .expect("apply v1");
    let expected = "cannot patch resource \\\"replicasets\\\" in API group \\\"apps\\\"";
    let expected_plain = "cannot patch resource \"replicasets\" in API group \"apps\"";
    let log =
        common::wait_until(
            Duration::from_secs(30),
            "the operator to report the missing permission",
            || {
                let log = operator.log();
                async move {
                    Ok((log.contains(expected) || log.contains(expected_plain)).then_some(log))
                }
            },
        )
        .await;
    let line = log
        .lines()
        .find(|l| l.contains("forbidden"))
        .expect("a forbidden line");
    println!("MEASURED the operator's error without patch on replicasets: {line}");
    assert!(line.contains("reconcile failed"), "{line}");
    assert!(
        line.contains(&format!(
            "system:serviceaccount:{}:{}",
            ns.name, rbac.account
        )),
        "the error names the ServiceAccount: {line}"
    );
    // Nothing was created behind the missing verb, and the rollout did not go Healthy.
    let replica_sets: kube::Api<ReplicaSet> = ns.api();
    assert!(
        replica_sets
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    // The failure reaches status under the chart's RBAC too (it grants only what the operator
    // uses: the report reads the object through `get` on safedeployments, writes through
    // `patch` on safedeployments/status).
    let status = operator::wait_status(
        &ns,
        "web",
        Duration::from_secs(30),
        "a Stalled condition naming the missing permission",
        |status| {
            status.conditions.iter().any(|c| {
                c.type_ == "Stalled"
                    && c.status == "True"
                    && (c.message.contains(expected) || c.message.contains(expected_plain))
            })
        },
    )
    .await;
    assert_ne!(status.phase, Phase::Healthy);
    assert!(
        !operator.log().contains("could not record the failure"),
        "the report of the failure was itself refused:\n{}",
        operator.log()
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn two_replicas_elect_a_leader_and_hand_over_under_the_charts_rbac() {
    use k8s_openapi::api::coordination::v1::Lease;
    let ns = opted_out_namespace("rbac-ha").await;
    let rbac = ChartRbac::apply(&ns, |_| {}).await;
    // The chart's arguments with replicaCount 2: the Lease in the release namespace, named after
    // the release (the Role allows get/update on that name only).
    let lease_name = format!("{}-safedeploy", rbac.release);
    let args = |instance: &'static str| {
        [
            "--leader-elect",
            "--lease-namespace",
            ns.name.as_str(),
            "--lease-name",
            lease_name.as_str(),
            "--lease-duration-seconds",
            "3",
            "--instance",
            instance,
        ]
        .map(str::to_string)
    };
    let start = |instance: &'static str| {
        let args = args(instance);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ScopedOperator::start_with(&ns.name, &rbac.kubeconfig, instance, &args)
    };
    let mut replicas = vec![
        ("replica-a", start("replica-a")),
        ("replica-b", start("replica-b")),
    ];
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    let first = apply_stable_web(&ns, 2, &steps).await;
    let leases: kube::Api<Lease> = ns.api();
    let holder = leases
        .get(&lease_name)
        .await
        .expect("the Lease exists")
        .spec
        .and_then(|s| s.holder_identity)
        .expect("a holder");
    let leader_index = replicas
        .iter()
        .position(|(name, _)| holder.starts_with(name))
        .unwrap_or_else(|| panic!("unexpected holder {holder}"));
    let (standby_name, standby) = &replicas[1 - leader_index];
    let standby_log = standby.log();
    assert!(
        !standby_log.contains("\"scaled\""),
        "the standby {standby_name} acted while not leader:\n{standby_log}"
    );
    // Kill the leader; the standby takes over and carries the next rollout.
    let (leader_name, leader) = replicas.remove(leader_index);
    drop(leader);
    let killed = std::time::Instant::now();
    let v1 = first.stable_revision.clone().expect("stable revision");
    apply_promoted(
        &ns,
        &safe_deployment("web", 2, "registry.local/app:v2", Fault::None, steps),
        Some(&v1),
    )
    .await;
    println!(
        "MEASURED leader {leader_name} killed; v2 promoted by the standby {} ms later (lease 3 s)",
        killed.elapsed().as_millis()
    );
    let holder = leases
        .get(&lease_name)
        .await
        .expect("the Lease")
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    let (standby_name, standby) = &replicas[0];
    assert!(holder.starts_with(standby_name), "holder {holder}");
    let log = standby.log();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "a permission error under leader election:\n{log}"
    );
}

/// Audit finding 16: installed with `watchNamespace`, the operator holds its namespaced rights
/// (Secrets, ReplicaSet writes, pods) in that namespace only, and a rollout still goes from
/// nothing to Healthy and through a promotion under exactly those rights.
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_namespaced_install_holds_no_rights_in_other_namespaces_and_still_rolls_out() {
    let ns = opted_out_namespace("rbac-ns").await;
    let watch = format!("watchNamespace={}", ns.name);
    let rbac = ChartRbac::apply_with(&ns, &[&watch], |_| {}).await;
    let can = |verb: &'static str, resource: &'static str, scope: Vec<String>| {
        let kubeconfig = rbac.kubeconfig.clone();
        async move {
            std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(["auth", "can-i", verb, resource])
                .args(scope)
                .output()
                .expect("kubectl auth can-i")
                .status
                .success()
        }
    };
    let here = || vec!["-n".to_string(), ns.name.clone()];
    let elsewhere = || vec!["-n".to_string(), "default".to_string()];
    let everywhere = || vec!["--all-namespaces".to_string()];
    assert!(can("patch", "replicasets.apps", here()).await);
    assert!(can("get", "secrets", here()).await);
    assert!(!can("get", "secrets", elsewhere()).await);
    assert!(!can("list", "secrets", everywhere()).await);
    assert!(!can("patch", "replicasets.apps", elsewhere()).await);
    assert!(!can("list", "pods", everywhere()).await);
    assert!(!can("get", "namespaces/default", vec![]).await);
    let own_namespace = format!("namespaces/{}", ns.name);
    let can_get_own = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&rbac.kubeconfig)
        .args(["auth", "can-i", "get", &own_namespace])
        .output()
        .expect("kubectl auth can-i")
        .status
        .success();
    assert!(
        can_get_own,
        "the watched namespace's labels select its policy"
    );
    assert!(can("list", "safedeploymentpolicies.safedeploy.dev", vec![]).await);

    let operator = ScopedOperator::start(&ns.name, &rbac.kubeconfig, "ns");
    roll_out_and_promote(&ns).await;
    let log = operator.log();
    assert!(
        !log.contains("forbidden"),
        "the operator hit a permission error:\n{log}"
    );
}
