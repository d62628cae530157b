//! The real-pod tier: SafeDeployments whose pods run as real containers on a real kubelet
//! (`e2e/cluster.sh up --real-nodes`, images from `e2e/image.sh --import`), and one scenario run
//! on both tiers (kwok's simulated pods and real ones) to check that the simulation tells the
//! truth. Every test skips, with a message, on a cluster without a Ready real node.
//!
//! The demo application is `safedeploy emitter` in the image `registry.local/safedeploy-demo:v1`;
//! a revision's behaviour comes from its environment (SAFEDEPLOY_EMITTER_*), so every revision
//! runs the same image and a real process decides whether it crashes.

mod common;
mod operator;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{Fault, TestNamespace};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use operator::{apply, apply_promoted, apply_stable, safe_deployment, setup, wait_status};
use safedeploy::api::Phase;
use serde_json::{Value, json};

/// The demo application's image, built and imported by `e2e/image.sh --import`.
const DEMO_IMAGE: &str = "registry.local/safedeploy-demo:v1";
/// The label and taint of real nodes (e2e/lib/real-node.sh).
const TIER_LABEL: &str = "safedeploy.dev/tier";
const REAL_NODE_TAINT: &str = "safedeploy.dev/real-node";

/// Which kind of node a scenario's pods run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    /// kwok's fake nodes: pod life cycles from annotations (e2e/lib/pod-stages.yaml).
    Kwok,
    /// A real kubelet, containerd and runc: the demo application's process.
    Real,
}

/// Whether the cluster has a Ready real node with the demo image. `false` (and a message) when
/// there is no real node; a panic when there is one without the image (a broken setup).
async fn real_tier_available(client: &kube::Client) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    let real = nodes
        .list(&ListParams::default().labels(&format!("{TIER_LABEL}=real")))
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    let ready: Vec<&Node> = real
        .iter()
        .filter(|node| {
            node.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect();
    let Some(node) = ready.first() else {
        eprintln!(
            "SKIPPED: the cluster has no Ready real node (labelled {TIER_LABEL}=real); \
             start one with `e2e/cluster.sh up --real-nodes` and `e2e/image.sh --import`"
        );
        return false;
    };
    let has_image = node
        .status
        .as_ref()
        .and_then(|s| s.images.as_ref())
        .is_some_and(|images| {
            images
                .iter()
                .any(|i| i.names.iter().flatten().any(|n| n == DEMO_IMAGE))
        });
    assert!(
        has_image,
        "the real node has no {DEMO_IMAGE}: run `eval \"$(e2e/cluster.sh env)\" && e2e/image.sh --import`"
    );
    true
}

/// What a revision of the demo application does wrong, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RealFault {
    /// Serves and is Ready at once.
    None,
    /// The process exits 1 this many seconds after each start.
    CrashAfter(u32),
    /// `/readyz` fails for this many seconds after the start.
    StartDelay(u32),
}

/// The pod template of the demo application on the real node, as revision `version`.
fn real_template(app: &str, version: &str, fault: RealFault) -> Value {
    let mut env = vec![json!({"name": "SAFEDEPLOY_EMITTER_VERSIONS", "value": version})];
    let (name, seconds) = match fault {
        RealFault::None => ("", 0),
        RealFault::CrashAfter(seconds) => ("SAFEDEPLOY_EMITTER_CRASH_AFTER_SECONDS", seconds),
        RealFault::StartDelay(seconds) => ("SAFEDEPLOY_EMITTER_START_DELAY_SECONDS", seconds),
    };
    if !name.is_empty() {
        env.push(json!({"name": name, "value": seconds.to_string()}));
    }
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {
            "nodeSelector": {TIER_LABEL: "real"},
            "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "app",
                "image": DEMO_IMAGE,
                "imagePullPolicy": "Never",
                "env": env,
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {
                    "httpGet": {"path": "/readyz", "port": 8080},
                    "periodSeconds": 1,
                    "failureThreshold": 1
                },
                "securityContext": {
                    "runAsNonRoot": true,
                    "readOnlyRootFilesystem": true,
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}
                }
            }]
        }
    })
}

/// A SafeDeployment `web` of `replicas` on `tier`, as revision `version`, crashing or not.
fn web(tier: Tier, replicas: i32, version: &str, crashing: bool, steps: &Value) -> Value {
    match tier {
        Tier::Kwok => {
            let fault = if crashing { Fault::Crash } else { Fault::None };
            safe_deployment(
                "web",
                replicas,
                &format!("registry.local/app:{version}"),
                fault,
                steps.clone(),
            )
        }
        Tier::Real => {
            let mut manifest =
                safe_deployment("web", replicas, DEMO_IMAGE, Fault::None, steps.clone());
            manifest["spec"]["template"] = real_template(
                "web",
                version,
                if crashing {
                    RealFault::CrashAfter(3)
                } else {
                    RealFault::None
                },
            );
            manifest
        }
    }
}

/// Records when a pod of the namespace first reports a restart (the crash reaching the API
/// server), until dropped.
struct FirstRestart {
    at: Arc<Mutex<Option<SystemTime>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FirstRestart {
    fn watch(ns: &TestNamespace) -> Self {
        let at: Arc<Mutex<Option<SystemTime>>> = Arc::default();
        let pods: Api<Pod> = ns.api();
        let slot = at.clone();
        let task = tokio::spawn(async move {
            let mut events = watcher(pods, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(event) = events.next().await {
                if let Ok(pod) = event
                    && common::restart_count(&pod) > 0
                {
                    let mut first = slot.lock().expect("lock");
                    first.get_or_insert_with(SystemTime::now);
                }
            }
        });
        Self { at, task }
    }

    fn get(&self) -> Option<SystemTime> {
        *self.at.lock().expect("lock")
    }
}

impl Drop for FirstRestart {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a crash revert looked like on one tier.
#[derive(Debug)]
struct CrashRevert {
    reason: String,
    /// From applying the bad revision to the revert decision.
    apply_to_revert: Duration,
    /// From the first restart reaching the API server to the revert decision.
    crash_to_revert_ms: i64,
}

impl CrashRevert {
    fn summary(&self) -> String {
        format!(
            "reverted {:.1} s after the apply, {} ms after the first restart reached the API server; reason: {}",
            self.apply_to_revert.as_secs_f64(),
            self.crash_to_revert_ms,
            self.reason
        )
    }
}

/// A stable good revision, then a crashing one, reverted: the shared scenario of both tiers.
async fn crash_revert(tier: Tier) -> CrashRevert {
    let prefix = match tier {
        Tier::Kwok => "crash-kwok",
        Tier::Real => "crash-real",
    };
    let (ns, _operator) = setup(prefix).await;
    let steps = json!([{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]);
    let stable = apply_stable(&ns, &web(tier, 2, "v1", false, &steps)).await;
    let v1 = stable.stable_revision.expect("stable revision");
    let restarts = FirstRestart::watch(&ns);
    let applied = Instant::now();
    apply(&ns, &web(tier, 2, "v2", true, &steps))
        .await
        .expect("apply the crashing v2");
    let status = wait_status(
        &ns,
        "web",
        Duration::from_secs(120),
        "the crashing revision to be reverted",
        |s| s.phase == Phase::Degraded,
    )
    .await;
    let apply_to_revert = applied.elapsed();
    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));
    let entry = status.history.last().expect("a history entry");
    assert_eq!(entry.outcome, "Reverted", "{entry:?}");
    let reverted_at: jiff::Timestamp = entry
        .finished_at
        .clone()
        .unwrap_or_default()
        .parse()
        .expect("finishedAt is a timestamp");
    let crashed_at = restarts.get().expect("a restart was observed");
    let crashed_ms = crashed_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    if tier == Tier::Real {
        assert_real_pods(&ns).await;
    }
    CrashRevert {
        reason: entry.reason.clone(),
        apply_to_revert,
        crash_to_revert_ms: reverted_at.as_millisecond() - crashed_ms,
    }
}

/// The namespace's pods ran on the real node: all scheduled there, and every container the
/// kubelet has reported is a containerd one (a pod created a moment ago may have none yet).
async fn assert_real_pods(ns: &TestNamespace) {
    let pods = ns.pods("web").await.expect("list pods");
    let mut containers = 0;
    for pod in &pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let on_real_node = node.as_deref().is_none_or(|n| !n.starts_with("node-"));
        assert!(on_real_node, "{name} ran on kwok's {node:?}");
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        for id in statuses.iter().filter_map(|c| c.container_id.as_deref()) {
            assert!(id.starts_with("containerd://"), "{name}: container {id:?}");
            containers += 1;
        }
    }
    assert!(containers > 0, "no container reported by the kubelet");
}

#[tokio::test]
#[ignore = "needs the local control plane with a real node (e2e/cluster.sh up --real-nodes)"]
async fn real_a_good_revision_is_promoted_and_serves_from_its_own_process() {
    let client = common::client().await;
    if !real_tier_available(&client).await {
        return;
    }
    let (ns, _operator) = setup("real-good").await;
    let steps = json!([{"setWeight": 50}, {"pause": {"duration": "1s"}}, {"setWeight": 100}]);
    let started = Instant::now();
    let stable = apply_stable(&ns, &web(Tier::Real, 2, "v1", false, &steps)).await;
    let v1 = stable.stable_revision.expect("stable revision");
    let first = started.elapsed();
    let promoted = apply_promoted(&ns, &web(Tier::Real, 2, "v2", false, &steps), Some(&v1)).await;
    let entry = promoted.history.last().expect("history");
    assert_eq!(entry.outcome, "Promoted");
    println!(
        "MEASURED real tier: first revision stable in {first:?}, v2 promoted {:?} after start",
        started.elapsed()
    );
    assert_real_pods(&ns).await;
    // Each pod of the new revision answers a real request from its own process, as v2.
    let answers = common::wait_until(
        Duration::from_secs(60),
        "2 Ready pods of web answering",
        || {
            let ns = &ns;
            async move {
                let live: Vec<Pod> = ns
                    .pods("web")
                    .await?
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                if live.len() != 2 || !live.iter().all(common::is_ready) {
                    return Ok(None);
                }
                let mut answers = Vec::new();
                for pod in &live {
                    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
                    let ip = ip.ok_or("a Ready pod without an IP")?;
                    let url = format!("http://{ip}:8080/");
                    answers.push(common::http().get(url).send().await?.text().await?);
                }
                Ok(Some(answers))
            }
        },
    )
    .await;
    assert_eq!(answers, ["v2\n", "v2\n"]);

    // Through a Service: kube-proxy's rules carry the request to a pod of the new revision.
    let services: Api<Service> = ns.api();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("a Service");
    let service = services
        .create(&PostParams::default(), &service)
        .await
        .expect("create the Service");
    let cluster_ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a cluster IP");
    let through_service = common::wait_until(
        Duration::from_secs(30),
        "an answer through the Service",
        || {
            let url = format!("http://{cluster_ip}/");
            async move { Ok(Some(common::http().get(url).send().await?.text().await?)) }
        },
    )
    .await;
    assert_eq!(through_service, "v2\n");
}

#[tokio::test]
#[ignore = "needs the local control plane with a real node (e2e/cluster.sh up --real-nodes)"]
async fn real_a_revision_whose_process_exits_is_reverted_from_the_kubelets_restarts() {
    let client = common::client().await;
    if !real_tier_available(&client).await {
        return;
    }
    let outcome = crash_revert(Tier::Real).await;
    println!("MEASURED real tier crash revert: {}", outcome.summary());
    assert!(
        outcome.reason.contains("restarts"),
        "reverted for restarts: {}",
        outcome.reason
    );
}

/// The health metrics a revert reason names as breached, e.g. `restarts = 1` from
/// "HealthGateBreached: health gate breached: restarts = 1 (Critical; ...); failingContainers = 1 (...)".
fn breached_metrics(reason: &str) -> Vec<String> {
    let (code, rest) = reason.split_once(": ").unwrap_or((reason, ""));
    let list = rest.split_once(": ").map_or(rest, |(_, list)| list);
    let mut metrics: Vec<String> = list
        .split("); ")
        .filter_map(|part| part.split_once(" (").map(|(metric, _)| metric.to_owned()))
        .collect();
    metrics.insert(0, code.to_owned());
    metrics
}

#[test]
fn breached_metrics_reads_a_revert_reason() {
    assert_eq!(
        breached_metrics(
            "HealthGateBreached: health gate breached: restarts = 1 (Critical; target 0, \
             acceptable 0, critical 1); failingContainers = 1 (Critical; target 0, acceptable 0, critical 1)"
        ),
        [
            "HealthGateBreached",
            "restarts = 1",
            "failingContainers = 1"
        ]
    );
}

/// The crash revert on both tiers, one after the other in the same cluster: both revert for a
/// breached health gate with `restarts = 1`; the times are printed side by side.
///
/// The reasons are not identical, and that is a finding about the simulation: kwok's crash
/// Stage puts the container into CrashLoopBackOff in the same update that raises
/// `restartCount`, so `failingContainers = 1` is breached too. A real kubelet restarts a
/// container at once after its first exit (CrashLoopBackOff only from the second), so at the
/// first restart the container runs again and only `restarts` is breached. The test holds the
/// real tier's breaches to a subset of kwok's.
#[tokio::test]
#[ignore = "needs the local control plane with a real node (e2e/cluster.sh up --real-nodes)"]
async fn both_tiers_revert_a_crashing_revision_for_the_same_reason() {
    let client = common::client().await;
    if !real_tier_available(&client).await {
        return;
    }
    let kwok = crash_revert(Tier::Kwok).await;
    let real = crash_revert(Tier::Real).await;
    println!("MEASURED crash revert, kwok tier: {}", kwok.summary());
    println!("MEASURED crash revert, real tier: {}", real.summary());
    let (kwok_breaches, real_breaches) = (
        breached_metrics(&kwok.reason),
        breached_metrics(&real.reason),
    );
    assert_eq!(
        (kwok_breaches[..2].to_vec(), real_breaches[..2].to_vec()),
        (
            vec!["HealthGateBreached".to_owned(), "restarts = 1".to_owned()],
            vec!["HealthGateBreached".to_owned(), "restarts = 1".to_owned()]
        ),
        "both tiers revert on the first restart"
    );
    for breach in &real_breaches {
        assert!(
            kwok_breaches.contains(breach),
            "the real kubelet led to a breach the simulation does not produce: {breach} (kwok: {kwok_breaches:?})"
        );
    }
}

/// A revision whose pods take 30 s to pass the kubelet's readiness probe is reverted on its
/// measured start-up latency (critical at 8 s), like kwok's `ready-after-seconds` pods in
/// tests/rollout.rs.
#[tokio::test]
#[ignore = "needs the local control plane with a real node (e2e/cluster.sh up --real-nodes)"]
async fn real_a_slow_starting_revision_is_reverted_on_its_measured_startup_latency() {
    let client = common::client().await;
    if !real_tier_available(&client).await {
        return;
    }
    let (ns, _operator) = setup("real-slow").await;
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    let health = json!({"startupLatencySeconds": {"target": 2, "acceptable": 4, "critical": 8}});
    let mut manifest = web(Tier::Real, 2, "v1", false, &steps);
    manifest["spec"]["health"] = health.clone();
    let v1 = apply_stable(&ns, &manifest)
        .await
        .stable_revision
        .expect("stable revision");
    let mut slow = manifest.clone();
    slow["spec"]["template"] = real_template("web", "v2", RealFault::StartDelay(30));
    let applied = Instant::now();
    apply(&ns, &slow).await.expect("apply the slow v2");
    let (_, latency) = operator::wait_reverted_on_startup_latency(&ns, "web", v1.as_str()).await;
    println!(
        "MEASURED real tier slow start: reverted {:.1} s after the apply, start-up latency {} s (baseline {:?} s)",
        applied.elapsed().as_secs_f64(),
        latency.value,
        latency.baseline
    );
    assert!(latency.value >= 8.0, "{latency:?}");
    assert_eq!(latency.verdict, "Critical");
    assert_real_pods(&ns).await;
}

/// The demo application's template for a revision whose metrics Prometheus scrapes from its
/// pods (found through Kubernetes service discovery by the pod annotations): the emitter's
/// version label is the pod's revision label (the analysis queries `version="{{canary}}"`),
/// and `error_ratio` of its requests fail.
fn scraped_template(app: &str, error_ratio: &str) -> Value {
    let mut template = real_template(app, "unused", RealFault::None);
    template["metadata"]["annotations"] =
        json!({"prometheus.io/scrape": "true", "prometheus.io/port": "8080"});
    template["spec"]["containers"][0]["env"] = json!([
        {"name": "SAFEDEPLOY_EMITTER_VERSIONS", "valueFrom": {"fieldRef": {
            "fieldPath": format!("metadata.labels['{}']", safedeploy::api::labels::LABEL_REVISION)
        }}},
        {"name": "SAFEDEPLOY_EMITTER_ERROR_RATIO", "value": error_ratio},
        {"name": "SAFEDEPLOY_EMITTER_RPS", "value": "200"}
    ]);
    template
}

/// A revision whose real pods serve 5% errors is reverted by a Prometheus analysis whose data
/// comes from the canary's own pods: Prometheus finds them through Kubernetes service discovery
/// (job `real-pods` of `e2e/cluster.sh up --real-nodes --with-prometheus`) and scrapes them.
#[tokio::test]
#[ignore = "needs the local control plane with a real node and Prometheus (e2e/cluster.sh up --real-nodes --with-prometheus)"]
async fn real_a_revision_whose_pods_serve_errors_is_reverted_from_their_own_metrics() {
    let client = common::client().await;
    if !real_tier_available(&client).await {
        return;
    }
    let Ok(prometheus) = std::env::var(common::PROMETHEUS_URL_ENV) else {
        eprintln!("SKIPPED: no Prometheus (e2e/cluster.sh up --real-nodes --with-prometheus)");
        return;
    };
    let (ns, _operator) = setup("real-errors").await;
    let query = "sum(rate(safedeploy_demo_errors_total{version=\"{{canary}}\"}[4s])) / \
                 sum(rate(safedeploy_demo_requests_total{version=\"{{canary}}\"}[4s]))";
    let analysis = json!({
        "name": "errors", "interval": "2s", "count": 1000, "initialDelay": "5s",
        "metrics": [{
            "name": "error-ratio",
            "provider": {"prometheus": {"address": prometheus, "query": query, "timeout": "1s"}},
            "direction": "lowerIsBetter",
            "thresholds": {"target": 0.005, "acceptable": 0.01, "critical": 0.02},
            "onError": "Inconclusive",
            "consecutiveErrorLimit": 1
        }]
    });
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let mut manifest = web(Tier::Real, 2, "v1", false, &steps);
    manifest["spec"]["template"] = scraped_template("web", "0");
    manifest["spec"]["analyses"] = json!([analysis]);
    manifest["spec"]["strategy"]["canary"]["backgroundAnalysis"] = json!("errors");
    let v1 = apply_stable(&ns, &manifest)
        .await
        .stable_revision
        .expect("stable revision");
    let mut bad = manifest.clone();
    bad["spec"]["template"] = scraped_template("web", "0.05");
    let applied = Instant::now();
    apply(&ns, &bad).await.expect("apply the erroring v2");
    let status = wait_status(
        &ns,
        "web",
        Duration::from_secs(90),
        "the erroring revision to be reverted",
        |s| s.phase == Phase::Degraded,
    )
    .await;
    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));
    let entry = status.history.last().expect("a history entry");
    assert_eq!(entry.outcome, "Reverted");
    assert!(entry.reason.contains("error-ratio"), "{}", entry.reason);
    println!(
        "MEASURED real tier 5% errors: reverted {:.1} s after the apply; reason: {}",
        applied.elapsed().as_secs_f64(),
        entry.reason
    );
    // The data came from the pods themselves: Prometheus scraped this namespace's pods.
    let scraped = common::prometheus_query(&format!(
        "up{{job=\"real-pods\", namespace=\"{}\"}} == 1",
        ns.name
    ))
    .await
    .expect("query Prometheus");
    assert!(!scraped.is_empty(), "no pod of {} was scraped", ns.name);
}

/// The operator's image, built and imported by `e2e/image.sh --import`.
const OPERATOR_IMAGE: &str = "registry.local/safedeploy:dev";

/// Runs `helm` with `args`; its combined output, or an error naming it.
async fn helm(args: &[&str]) -> common::Result<String> {
    let helm = std::env::var("HELM").unwrap_or_else(|_| "helm".to_owned());
    let output = tokio::process::Command::new(&helm)
        .args(args)
        .output()
        .await
        .map_err(|error| format!("cannot run {helm}: {error}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!("helm {}: {text}", args.join(" ")).into())
    }
}

/// The holder of the namespace's leader-election Lease (the pod name and a suffix).
async fn lease_holder(ns: &TestNamespace) -> Option<String> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = ns.api();
    let list = leases.list(&ListParams::default()).await.ok()?;
    list.items
        .into_iter()
        .find_map(|lease| lease.spec.and_then(|s| s.holder_identity))
}

/// The operator installed by its Helm chart as real pods: 2 replicas on the real node (the
/// chart's probes, RBAC, readOnlyRootFilesystem), one Lease holder, a revision promoted by the
/// in-cluster leader, and after the leader's pod is deleted, another replica takes the Lease
/// (the standby, or the replacement pod) and promotes the next revision.
#[tokio::test]
#[ignore = "needs the local control plane with a real node (e2e/cluster.sh up --real-nodes)"]
async fn real_the_operator_from_its_chart_elects_one_leader_and_promotes() {
    let client = common::client().await;
    if !real_tier_available(&client).await {
        return;
    }
    let Ok(api_server) = std::env::var("SAFEDEPLOY_POD_API_SERVER") else {
        eprintln!("SKIPPED: SAFEDEPLOY_POD_API_SERVER is unset (eval \"$(e2e/cluster.sh env)\")");
        return;
    };
    if helm(&["version", "--short"]).await.is_err() {
        eprintln!("SKIPPED: no helm binary (set HELM, or see e2e/chart-check.sh)");
        return;
    }
    let (api_host, api_port) = api_server.split_once(':').expect("host:port");
    let ns = operator::opted_out_namespace("real-helm").await;
    let values = json!({
        "replicaCount": 2,
        "image": {
            "repository": OPERATOR_IMAGE.split_once(':').map(|(r, _)| r),
            "tag": OPERATOR_IMAGE.split_once(':').map(|(_, t)| t),
            "pullPolicy": "Never"
        },
        "crds": {"install": false},
        "watchNamespace": ns.name,
        "nodeSelector": {TIER_LABEL: "real"},
        "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
        "extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": api_host},
            {"name": "KUBERNETES_SERVICE_PORT", "value": api_port}
        ]
    });
    let values_path = std::env::temp_dir().join(format!("{}-values.json", ns.name));
    std::fs::write(&values_path, values.to_string()).expect("write the values");
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/safedeploy");
    let started = Instant::now();
    let installed = helm(&[
        "install",
        &ns.name,
        chart,
        "--namespace",
        &ns.name,
        "--values",
        &values_path.to_string_lossy(),
        "--wait",
        "--timeout",
        "120s",
    ])
    .await;
    let _ = std::fs::remove_file(&values_path);
    installed.expect("helm install");
    println!(
        "MEASURED helm install --wait of 2 operator replicas on the real node: {:?}",
        started.elapsed()
    );
    let operator_pods = |ns: &TestNamespace| {
        let pods: Api<Pod> = ns.api();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=safedeploy"))
                .await?;
            Ok::<_, common::Error>(list.items)
        }
    };
    let pods = operator_pods(&ns).await.expect("list the operator's pods");
    assert_eq!(pods.len(), 2, "two replicas");
    assert!(pods.iter().all(common::is_ready), "both replicas Ready");
    let holder = common::wait_until(Duration::from_secs(60), "a Lease holder", || {
        let ns = &ns;
        async move { Ok(lease_holder(ns).await) }
    })
    .await;
    let leader = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .find(|name| holder.starts_with(name.as_str()))
        .expect("the Lease holder is one of the two pods");

    let steps = json!([{"setWeight": 50}, {"pause": {"duration": "1s"}}, {"setWeight": 100}]);
    let stable = apply_stable(&ns, &web(Tier::Real, 2, "v1", false, &steps)).await;
    let v1 = stable.stable_revision.expect("stable revision");
    let promoted = apply_promoted(&ns, &web(Tier::Real, 2, "v2", false, &steps), Some(&v1)).await;
    assert_eq!(
        promoted.history.last().map(|e| e.outcome.as_str()),
        Some("Promoted")
    );

    // The leader's pod goes away: the standby takes the Lease and carries on.
    let pods_api: Api<Pod> = ns.api();
    pods_api
        .delete(&leader, &kube::api::DeleteParams::default().grace_period(0))
        .await
        .expect("delete the leader's pod");
    let failover = Instant::now();
    let new_holder = common::wait_until(Duration::from_secs(90), "another Lease holder", || {
        let (ns, leader) = (&ns, &leader);
        async move {
            Ok(lease_holder(ns)
                .await
                .filter(|h| !h.starts_with(leader.as_str())))
        }
    })
    .await;
    println!(
        "MEASURED leader failover after deleting the leader's pod: {:?} (new holder {new_holder})",
        failover.elapsed()
    );
    let v2 = promoted.stable_revision.expect("stable revision");
    let next = apply_promoted(&ns, &web(Tier::Real, 2, "v3", false, &steps), Some(&v2)).await;
    assert_eq!(
        next.history.last().map(|e| e.outcome.as_str()),
        Some("Promoted")
    );
    let _ = helm(&["uninstall", &ns.name, "--namespace", &ns.name]).await;
}
