//! Helpers for tests that run the operator against the local control plane: install the CRDs,
//! start `safedeploy controller --namespace <ns>` as a child process (so a test can kill and
//! restart it), opt a namespace in or out of attestation, build SafeDeployments and wait on them.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use safedeploy::api::{Phase, SafeDeployment, SafeDeploymentPolicy, SafeDeploymentStatus};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::common::{Fault, Result, TestNamespace, wait_until};

/// Applies the generated CRDs (server-side, idempotent) and waits until they are served.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let yaml = safedeploy::api::crds_yaml().expect("CRDs render");
    for document in yaml.split("\n---\n").map(|d| d.trim_start_matches("---\n")) {
        if document.trim().is_empty() {
            continue;
        }
        let crd: CustomResourceDefinition = serde_yaml::from_str(document).expect("CRD yaml");
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("safedeploy-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|error| panic!("cannot apply CRD {name}: {error}"));
        wait_until(Duration::from_secs(30), "the CRD to be established", || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await?;
                let established = crd
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                Ok(established.then_some(()))
            }
        })
        .await;
    }
}

/// A running operator process scoped to one namespace; killed when dropped.
pub struct Operator {
    child: Child,
    namespace: String,
    /// Where its logs go.
    pub log_path: std::path::PathBuf,
}

impl Operator {
    /// Starts the operator for `namespace`.
    pub async fn start(namespace: &str) -> Self {
        Self::start_with_env(namespace, &[]).await
    }

    /// Starts the operator for `namespace` with extra environment variables (a fault hook, say).
    pub async fn start_with_env(namespace: &str, env: &[(&str, String)]) -> Self {
        Self::start_binary(
            std::path::Path::new(env!("CARGO_BIN_EXE_safedeploy")),
            namespace,
            env,
        )
        .await
    }

    /// Starts `binary` (a pinned copy of the operator, say) for `namespace` with extra
    /// environment variables.
    pub async fn start_binary(
        binary: &std::path::Path,
        namespace: &str,
        env: &[(&str, String)],
    ) -> Self {
        let log_path = std::env::temp_dir().join(format!("safedeploy-operator-{namespace}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("operator log file");
        let child = controller_command(binary, namespace, log)
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .spawn()
            .expect("start the operator");
        Operator {
            child,
            namespace: namespace.to_string(),
            log_path,
        }
    }

    /// Kills the process at once (SIGKILL) and waits for it.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// How the process ended, if it has (without waiting).
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The operator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The HTTP address (metrics, probes) the operator logged at start (it was given port 0).
    /// Operators of one namespace share the log: this is the first one's.
    pub async fn http_address(&self) -> String {
        wait_until(Duration::from_secs(20), "the operator's address", || {
            let log = self.log();
            async move {
                Ok(log
                    .split("\"addr\":\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .map(str::to_string))
            }
        })
        .await
    }
}

/// Creates a policy that applies to `namespace` only. `require` false opts it out of
/// attestation (the tests of the rollout mechanics use that).
pub async fn namespace_policy(client: &Client, namespace: &str, spec: Value) {
    let api: Api<SafeDeploymentPolicy> = Api::all(client.clone());
    let mut spec = spec;
    spec["namespaces"] = json!([namespace]);
    let policy = json!({
        "apiVersion": "safedeploy.dev/v1alpha1",
        "kind": "SafeDeploymentPolicy",
        "metadata": {"name": format!("{namespace}-policy"), "labels": {crate::common::TEST_LABEL: "true"}},
        "spec": spec,
    });
    api.patch(
        &format!("{namespace}-policy"),
        &PatchParams::apply("safedeploy-tests").force(),
        &Patch::Apply(&policy),
    )
    .await
    .unwrap_or_else(|error| panic!("cannot apply the policy: {error}"));
}

/// A namespace with the CRDs installed, an attestation opt-out policy and a running operator.
pub async fn setup(prefix: &str) -> (TestNamespace, Operator) {
    let ns = opted_out_namespace(prefix).await;
    let operator = Operator::start(&ns.name).await;
    (ns, operator)
}

/// A fresh namespace with the CRDs installed and opted out of attestation and pinned images (as
/// the admin would), and no operator yet.
pub async fn opted_out_namespace(prefix: &str) -> TestNamespace {
    let ns = TestNamespace::new(prefix).await;
    install_crds(&ns.client).await;
    opt_out(&ns).await;
    ns
}

/// Opts the namespace out of attestation and pinned images (the namespace's policy).
pub async fn opt_out(ns: &TestNamespace) {
    namespace_policy(
        &ns.client,
        &ns.name,
        json!({"requireAttestation": false, "requirePinnedImages": false}),
    )
    .await;
}

/// A SafeDeployment manifest named `name` with `replicas` pods of `image`, the pod template
/// carrying `fault`, and the given steps.
pub fn safe_deployment(
    name: &str,
    replicas: i32,
    image: &str,
    fault: Fault,
    steps: Value,
) -> Value {
    json!({
        "apiVersion": "safedeploy.dev/v1alpha1",
        "kind": "SafeDeployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "minReadySeconds": 1,
            "template": pod_template(name, image, fault),
            "strategy": {"canary": {"steps": steps}},
        }
    })
}

/// The pod template of [`safe_deployment`].
pub fn pod_template(app: &str, image: &str, fault: Fault) -> Value {
    json!({
        "metadata": {"labels": {"app": app}, "annotations": fault.annotations()},
        "spec": {"containers": [{"name": "app", "image": image}]},
    })
}

/// Applies a SafeDeployment manifest (server-side apply as the "user").
pub async fn apply(ns: &TestNamespace, manifest: &Value) -> Result<SafeDeployment> {
    let api: Api<SafeDeployment> = ns.api();
    let name = manifest["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok(api
        .patch(
            &name,
            &PatchParams::apply("test-user").force(),
            &Patch::Apply(manifest),
        )
        .await?)
}

/// `binary controller --namespace <namespace> --http-addr 127.0.0.1:0`, logging at info to
/// `log` and killed when dropped: the operator process every test starts (callers add
/// arguments and environment).
pub fn controller_command(
    binary: &std::path::Path,
    namespace: &str,
    log: std::fs::File,
) -> Command {
    let mut command = Command::new(binary);
    command
        .args([
            "controller",
            "--namespace",
            namespace,
            "--http-addr",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "info,kube=warn")
        .stdout(Stdio::from(log.try_clone().expect("log handle")))
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    command
}

/// Applies `web` at `replicas` running the healthy image `registry.local/app:v1` through
/// `steps` as the first revision, and waits until it is stable: the start of most rollouts.
pub async fn apply_stable_web(
    ns: &TestNamespace,
    replicas: i32,
    steps: &Value,
) -> SafeDeploymentStatus {
    let manifest = safe_deployment(
        "web",
        replicas,
        "registry.local/app:v1",
        Fault::None,
        steps.clone(),
    );
    apply_stable(ns, &manifest).await
}

/// Waits until `name`'s canary has been reverted (`Degraded`) back to `stable`, and returns the
/// status with the measured start-up latency that decided it (`startupLatencySeconds`).
pub async fn wait_reverted_on_startup_latency(
    ns: &TestNamespace,
    name: &str,
    stable: &str,
) -> (SafeDeploymentStatus, safedeploy::api::SignalMeasurement) {
    let status = wait_status(
        ns,
        name,
        Duration::from_secs(60),
        "the slow canary to be reverted",
        |s| s.phase == Phase::Degraded,
    )
    .await;
    assert_eq!(status.stable_revision.as_deref(), Some(stable));
    let latency = status
        .health
        .iter()
        .find(|m| m.signal == "startupLatencySeconds")
        .cloned()
        .expect("a start-up latency measurement in the status");
    (status, latency)
}

/// Applies a SafeDeployment's first revision and waits until it is stable (`Healthy`).
pub async fn apply_stable(ns: &TestNamespace, manifest: &Value) -> SafeDeploymentStatus {
    apply(ns, manifest).await.expect("apply the first revision");
    let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
    wait_status(
        ns,
        name,
        Duration::from_secs(60),
        "the first revision to be stable",
        |s| s.phase == Phase::Healthy,
    )
    .await
}

/// Applies a next revision and waits until it is promoted: `Healthy`, with a stable revision
/// other than `previous` (the one stable before).
pub async fn apply_promoted(
    ns: &TestNamespace,
    manifest: &Value,
    previous: Option<&str>,
) -> SafeDeploymentStatus {
    apply(ns, manifest).await.expect("apply the next revision");
    let name = manifest["metadata"]["name"].as_str().unwrap_or_default();
    wait_promoted(ns, name, previous, "the next revision to be promoted").await
}

/// Waits until a revision other than `previous` is promoted (`Healthy`, with another stable
/// revision), for at most 90 s: the canary steps of a test's rollout with time to spare.
pub async fn wait_promoted(
    ns: &TestNamespace,
    name: &str,
    previous: Option<&str>,
    what: &str,
) -> SafeDeploymentStatus {
    wait_status(ns, name, Duration::from_secs(90), what, |s| {
        s.phase == Phase::Healthy && s.stable_revision.as_deref() != previous
    })
    .await
}

/// The SafeDeployment's status as it is now (empty before the operator wrote one).
pub async fn status_now(ns: &TestNamespace, name: &str) -> SafeDeploymentStatus {
    let api: Api<SafeDeployment> = ns.api();
    let sd = api.get(name).await.expect("get the SafeDeployment");
    sd.status.unwrap_or_default()
}

/// Waits until the SafeDeployment's status satisfies `check`, and returns it.
pub async fn wait_status<F>(
    ns: &TestNamespace,
    name: &str,
    timeout: Duration,
    what: &str,
    check: F,
) -> SafeDeploymentStatus
where
    F: Fn(&SafeDeploymentStatus) -> bool,
{
    let api: Api<SafeDeployment> = ns.api();
    let start = Instant::now();
    loop {
        if let Ok(sd) = api.get(name).await
            && let Some(status) = sd.status
            && check(&status)
        {
            return status;
        }
        if start.elapsed() > timeout {
            let status = api.get(name).await.ok().and_then(|sd| sd.status);
            panic!("timed out after {timeout:?} waiting for {what}; status: {status:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The condition `type_` of a status, as (status, reason).
pub fn condition(status: &SafeDeploymentStatus, type_: &str) -> Option<(String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Sets an annotation on the SafeDeployment (as the plugin does).
pub async fn annotate(ns: &TestNamespace, name: &str, key: &str, value: &str) -> Result {
    let api: Api<SafeDeployment> = ns.api();
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Every event recorded in the namespace.
pub async fn events(ns: &TestNamespace) -> kube::Result<Vec<k8s_openapi::api::core::v1::Event>> {
    let api: Api<k8s_openapi::api::core::v1::Event> = ns.api();
    Ok(api.list(&kube::api::ListParams::default()).await?.items)
}

/// The events of `reason` recorded in the namespace (none when they cannot be listed).
pub async fn events_of(ns: &TestNamespace, reason: &str) -> Vec<k8s_openapi::api::core::v1::Event> {
    events(ns)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

/// Asserts that each of the `steps` canary steps completed exactly once (one `StepCompleted`
/// event "step i/steps" each): what a restart or a take-over must not repeat.
pub async fn assert_each_step_completed_once(ns: &TestNamespace, steps: usize) {
    let notes: Vec<String> = events_of(ns, "StepCompleted")
        .await
        .into_iter()
        .filter_map(|e| e.message)
        .collect();
    for step in 1..=steps {
        let step = format!("step {step}/{steps}");
        assert_eq!(
            notes.iter().filter(|n| n.starts_with(&step)).count(),
            1,
            "{step} in {notes:?}"
        );
    }
}

/// Applies the namespace's policy with `spec` after installing this build's CRDs, and reads it
/// back until the new fields are there: other tests on the shared cluster may install CRDs of
/// another branch (without `freeze` or `requirements`) at any time.
pub async fn policy_with(ns: &TestNamespace, spec: serde_json::Value, field: &str) {
    let api: kube::Api<safedeploy::api::SafeDeploymentPolicy> = kube::Api::all(ns.client.clone());
    let name = format!("{}-policy", ns.name);
    for _ in 0..5 {
        install_crds(&ns.client).await;
        let applied =
            std::panic::AssertUnwindSafe(namespace_policy(&ns.client, &ns.name, spec.clone()));
        if futures::FutureExt::catch_unwind(applied).await.is_ok()
            && let Ok(policy) = api.get(&name).await
            && serde_json::to_value(&policy.spec).is_ok_and(|s| s.get(field).is_some())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the policy's {field} did not stick (another CRD version installed?)");
}

/// Makes every pod of `revision` crash from now on (kwok's crash Stage acts on a Ready pod that
/// carries the fault annotation); returns how many pods were marked.
pub async fn crash_revision_pods(ns: &TestNamespace, revision: &str) -> usize {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ListParams;
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let selected = pods
        .list(&ListParams::default().labels(&format!(
            "{}={revision}",
            safedeploy::api::labels::LABEL_REVISION
        )))
        .await
        .expect("list the revision's pods");
    let crash = json!({"metadata": {"annotations": {crate::common::FAULT_ANNOTATION: "crash"}}});
    for pod in &selected.items {
        pods.patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&crash),
        )
        .await
        .expect("make a pod crash");
    }
    selected.items.len()
}

/// Starts a fresh operator for `namespace` that dies right after its first write, again and
/// again, until one stays quiet for 5 s (nothing left to write); returns how many were killed.
/// Fails after 180 s, or after `max_kills` kills, without a quiet process.
pub async fn kill_after_every_write(namespace: &str, max_kills: usize) -> usize {
    let mut kills = 0;
    let start = Instant::now();
    loop {
        let mut process = Operator::start_with_env(
            namespace,
            &[(
                safedeploy::controller::fault::KILL_AFTER_WRITES_ENV,
                "1".to_string(),
            )],
        )
        .await;
        let started = Instant::now();
        let exited = loop {
            if let Some(status) = process.try_exit() {
                break Some(status);
            }
            if started.elapsed() > Duration::from_secs(5) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        match exited {
            Some(_) => kills += 1,
            None => {
                process.kill().await;
                return kills;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(180) && kills < max_kills,
            "no quiet process after {kills} kills"
        );
    }
}
