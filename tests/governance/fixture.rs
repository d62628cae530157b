//! One governed namespace per test: the chart's operator RBAC and governance policies rendered
//! by `helm template` and applied (bound to this namespace alone through a label only it
//! carries, so the shared cluster's other tests never meet them), the operator running under
//! the chart's ServiceAccount, and people impersonated (`kubectl --as`, a kubeconfig with `as:`)
//! with the roles a cluster admin would grant them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::chart;
use crate::common::{self, TestNamespace};
use crate::operator::{controller_command, opted_out_namespace};

/// A namespace editor: every verb on pods, ConfigMaps, Secrets, ReplicaSets (and their scale),
/// Deployments, Jobs, SafeDeployments (and their status) and SafeDeploymentRecords, but none of
/// the request verbs.
pub const EDITOR: &str = "alice";
/// Granted the chart's example `<release>-promoter` ClusterRole in the namespace.
pub const PROMOTER: &str = "bob";
/// May read and patch SafeDeployments and read their records, and nothing else.
pub const READER: &str = "carol";
/// Granted the chart's example `<release>-admin` ClusterRole in the namespace. An e-mail
/// address, as OIDC usernames often are: the requester is everything after the first `@`.
pub const ADMIN: &str = "dave@example.com";
/// A workload the chart's values exempt (`governance.exemptWorkloads`).
pub const EXEMPT: &str = "legacy";

/// The governed namespace of one test; its cluster-scoped objects are deleted on drop.
pub struct Governed {
    /// The namespace.
    pub ns: TestNamespace,
    /// The release name (the namespace's name): the policies are `<release>-safedeploy-…`.
    pub release: String,
    /// The operator's username.
    pub operator_user: String,
    kubeconfigs: Vec<PathBuf>,
}

/// The username the admin kubeconfig authenticates as.
async fn admin_username() -> String {
    kubectl_ok(
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    )
    .await
}

impl Governed {
    /// Creates the namespace (CRDs, attestation opt-out), applies the chart's operator RBAC and
    /// governance for it, grants the people their roles, and waits until the API server
    /// enforces the policies.
    pub async fn new(prefix: &str) -> Self {
        let ns = opted_out_namespace(prefix).await;
        let release = ns.name.clone();
        // On the local control plane kube-controller-manager authenticates with the admin's
        // client certificate, so the admin is the "trusted controller" here (on a real cluster
        // it is system:kube-controller-manager or the kube-system ServiceAccounts). No test
        // acts as the admin where a person's write is meant.
        let controller = admin_username().await;
        let scope = format!(
            "governance.namespaceSelector.matchLabels.safedeploy\\.dev/governance-test={release}"
        );
        let trusted = format!(
            "governance.trustedControllers.users={{system:kube-controller-manager,{controller}}}"
        );
        let exempt = format!("governance.exemptWorkloads={{{}/{EXEMPT}}}", ns.name);
        let rendered = chart::render(
            &release,
            &ns.name,
            &["serviceaccount.yaml", "rbac.yaml", "governance.yaml"],
            &["governance.enabled=true", &scope, &trusted, &exempt],
        );
        let documents = chart::documents(&rendered);
        let kinds: Vec<&str> = documents
            .iter()
            .filter_map(|d| d["kind"].as_str())
            .collect();
        for kind in [
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ] {
            assert_eq!(
                kinds.iter().filter(|k| **k == kind).count(),
                5,
                "five {kind}s: {kinds:?}"
            );
        }
        let account = documents
            .iter()
            .find(|d| d["kind"] == "ServiceAccount")
            .and_then(|d| d["metadata"]["name"].as_str())
            .expect("the ServiceAccount")
            .to_string();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": documents});
        kubectl_ok(
            &["apply", "--server-side", "-f", "-"],
            Some(&list.to_string()),
        )
        .await;
        let governed = Governed {
            operator_user: format!("system:serviceaccount:{}:{account}", ns.name),
            ns,
            release,
            kubeconfigs: Vec::new(),
        };
        governed.grant_roles().await;
        kubectl_ok(
            &[
                "label",
                "namespace",
                &governed.ns.name,
                "safedeploy.dev/governed=true",
                &format!("safedeploy.dev/governance-test={}", governed.release),
            ],
            None,
        )
        .await;
        governed.wait_enforced().await;
        governed
    }

    /// A policy's full name.
    pub fn policy(&self, short: &str) -> String {
        format!("{}-safedeploy-{short}", self.release)
    }

    async fn grant_roles(&self) {
        let ns = &self.ns.name;
        let editor = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "editor", "namespace": ns},
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "configmaps", "secrets"], "verbs": ["*"]},
                {"apiGroups": ["apps"], "resources": ["replicasets", "replicasets/scale", "deployments"], "verbs": ["*"]},
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["*"]},
                {"apiGroups": ["safedeploy.dev"], "resources": ["safedeployments", "safedeployments/status", "safedeploymentrecords"], "verbs": ["*"]},
            ],
        });
        let reader = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "reader", "namespace": ns},
            "rules": [
                {"apiGroups": ["safedeploy.dev"], "resources": ["safedeployments"], "verbs": ["get", "list", "watch", "patch"]},
                {"apiGroups": ["safedeploy.dev"], "resources": ["safedeploymentrecords"], "verbs": ["get", "list"]},
            ],
        });
        let binding = |user: &str, kind: &str, role: String| {
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": user.replace('@', "-at-"), "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
            })
        };
        let items = json!([
            editor,
            reader,
            binding(EDITOR, "Role", "editor".into()),
            binding(READER, "Role", "reader".into()),
            binding(
                PROMOTER,
                "ClusterRole",
                format!("{}-safedeploy-promoter", self.release)
            ),
            binding(
                ADMIN,
                "ClusterRole",
                format!("{}-safedeploy-admin", self.release)
            ),
        ]);
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        kubectl_ok(
            &["apply", "--server-side", "-f", "-"],
            Some(&list.to_string()),
        )
        .await;
    }

    /// Waits until a pod the editor creates (server-side dry run) is denied by the policy:
    /// policies and bindings take effect a moment after they are created.
    async fn wait_enforced(&self) {
        let pod = bare_pod("probe");
        let policy = self.policy("owned-pods");
        common::wait_until(
            Duration::from_secs(30),
            "the governance policies to be enforced",
            || {
                let pod = pod.clone();
                let policy = policy.clone();
                async move {
                    let result = self
                        .kubectl_as(
                            EDITOR,
                            &["create", "--dry-run=server", "-f", "-"],
                            Some(&pod.to_string()),
                        )
                        .await;
                    Ok(matches!(result, Err(e) if e.contains(&policy)).then_some(()))
                }
            },
        )
        .await;
    }

    /// Runs kubectl in the namespace as `user` (impersonated): stdout, or stderr on failure.
    pub async fn kubectl_as(
        &self,
        user: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, String> {
        let mut full = vec!["--as", user, "-n", &self.ns.name];
        full.extend_from_slice(args);
        kubectl(&full, stdin).await
    }

    /// A kubeconfig that authenticates as the admin and acts as `user` (impersonation).
    pub fn kubeconfig_as(&mut self, user: &str) -> PathBuf {
        let mut config = kube::config::Kubeconfig::read().expect("read the admin kubeconfig");
        for auth in &mut config.auth_infos {
            if let Some(info) = auth.auth_info.as_mut() {
                info.impersonate = Some(user.to_string());
            }
        }
        let safe: String = user
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path =
            std::env::temp_dir().join(format!("safedeploy-{}-{safe}.kubeconfig", self.ns.name));
        std::fs::write(&path, serde_yaml::to_string(&config).expect("yaml"))
            .expect("write kubeconfig");
        self.kubeconfigs.push(path.clone());
        path
    }

    /// Starts the operator for this namespace under the chart's ServiceAccount (impersonated),
    /// logging to /tmp/safedeploy-operator-<ns>.log; killed on drop.
    pub fn start_operator(&mut self) -> Child {
        self.start_operator_with_env(&[])
    }

    /// [`Self::start_operator`] with extra environment variables (a fault hook, say).
    pub fn start_operator_with_env(&mut self, env: &[(&str, &str)]) -> Child {
        let kubeconfig = self.kubeconfig_as(&self.operator_user.clone());
        let log_path =
            std::env::temp_dir().join(format!("safedeploy-operator-{}.log", self.ns.name));
        let log = std::fs::File::create(&log_path).expect("operator log file");
        controller_command(
            Path::new(env!("CARGO_BIN_EXE_safedeploy")),
            &self.ns.name,
            log,
        )
        .env("KUBECONFIG", kubeconfig)
        .envs(env.iter().copied())
        .spawn()
        .expect("start the operator")
    }

    /// Runs `safedeploy <args> -n <ns>` (the kubectl plugin) as `user`: (success, stdout,
    /// stderr).
    pub async fn plugin_as(&mut self, user: &str, args: &[&str]) -> (bool, String, String) {
        let kubeconfig = self.kubeconfig_as(user);
        let output = Command::new(env!("CARGO_BIN_EXE_safedeploy"))
            .args(args)
            .args(["-n", &self.ns.name])
            .env("KUBECONFIG", kubeconfig)
            .output()
            .await
            .expect("run the plugin");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for Governed {
    fn drop(&mut self) {
        for path in &self.kubeconfigs {
            let _ = std::fs::remove_file(path);
        }
        // The policies first: the namespace's deletion must not meet them.
        let selector = format!("app.kubernetes.io/instance={}", self.release);
        let _ = std::process::Command::new("kubectl")
            .args([
                "delete",
                "validatingadmissionpolicybindings,validatingadmissionpolicies,clusterroles,clusterrolebindings",
                "-l",
                &selector,
                "--ignore-not-found",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::process::Command::new("kubectl")
            .args(["delete", "--ignore-not-found", "--wait=false"])
            .arg(format!("safedeploymentpolicy/{}-policy", self.ns.name))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A pod nobody owns.
pub fn bare_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:unattested"}]},
    })
}

/// Runs kubectl (admin kubeconfig): stdout, or stderr on failure.
pub async fn kubectl(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let run = crate::common::kubectl_run(args, stdin).await;
    if run.ok {
        Ok(run.stdout)
    } else {
        Err(run.stderr)
    }
}

/// [`kubectl`] that must succeed.
pub async fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    kubectl(args, stdin)
        .await
        .unwrap_or_else(|e| panic!("kubectl {args:?} failed: {e}"))
}
