//! The real-pod tier: SafeDeployments whose pods run as real containers on a real kubelet
//! (`e2e/cluster.sh up --real-nodes`, images from `e2e/image.sh --import`), and two scenarios
//! run on both tiers (kwok's simulated pods and real ones) to check that the simulation tells
//! the truth: a crashing revision's revert, and the states a crashing container goes through.
//! Every test skips, with a message, on a cluster without a Ready real node. The Service data
//! plane is in tests/real_traffic.rs; helpers shared by both are in tests/real/mod.rs.
//!
//! The demo application is `safedeploy emitter` in the image `registry.local/safedeploy-demo:v1`;
//! a revision's behaviour comes from its environment (SAFEDEPLOY_EMITTER_*), so every revision
//! runs the same image and a real process decides whether it crashes.

mod chart;
mod common;
mod operator;
mod real;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::TestNamespace;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use operator::{apply, apply_promoted, apply_stable, setup, wait_status};
use real::{
    REAL_NODE_TAINT, RealFault, TIER_LABEL, Tier, assert_real_pods, real_template,
    real_tier_available, scraped_analysis_web, scraped_template, wait_reverted_on, web,
};
use safedeploy::api::Phase;
use serde_json::{Value, json};

/// Records when a pod of the namespace first reports a crash (an error exit or a restart: the
/// crash reaching the API server), until dropped.
struct FirstCrash {
    at: Arc<Mutex<Option<SystemTime>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FirstCrash {
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
                    && common::crashed(&pod)
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

impl Drop for FirstCrash {
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
    /// From the first crash reaching the API server to the revert decision.
    crash_to_revert_ms: i64,
}

impl CrashRevert {
    fn summary(&self) -> String {
        format!(
            "reverted {:.1} s after the apply, {} ms after the first crash reached the API server; reason: {}",
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
    let crashes = FirstCrash::watch(&ns);
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
    let crashed_at = crashes.get().expect("a crash was observed");
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
            // An old pod on its way out may still be behind the Service for a moment and
            // answer with an error: wait for an answer that is a success.
            async move {
                let answer = common::http().get(url).send().await?;
                if !answer.status().is_success() {
                    return Ok(None);
                }
                Ok(Some(answer.text().await?))
            }
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

/// The crash revert on both tiers, one after the other in the same cluster: both revert for the
/// same breached health gates, `restarts = 1` alone; the times are printed side by side.
///
/// Before kwok's crash Stage followed the real kubelet (see
/// `a_crashing_container_goes_through_the_same_states_on_both_tiers`), kwok's pods went into
/// CrashLoopBackOff with their first restart, so kwok's reverts also named
/// `failingContainers = 1`, which a real kubelet's first restart does not produce.
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
    let expected = ["HealthGateBreached", "restarts = 1"].map(str::to_owned);
    assert_eq!(
        (
            breached_metrics(&kwok.reason),
            breached_metrics(&real.reason)
        ),
        (expected.to_vec(), expected.to_vec()),
        "both tiers revert on the first restart, for the restart alone"
    );
}

/// What the operator's health gates read of a pod's (first) container at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ContainerReading {
    restarts: i32,
    ready: bool,
    waiting: Option<String>,
    /// The exit code of `lastState.terminated`: the previous run's end.
    last_exit: Option<i32>,
}

impl ContainerReading {
    fn of(pod: &Pod) -> Option<Self> {
        let container = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
        let last_exit = container
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code);
        Some(Self {
            restarts: container.restart_count,
            ready: common::is_ready(pod),
            waiting: common::waiting_reason(pod),
            last_exit,
        })
    }
}

impl std::fmt::Display for ContainerReading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ready = if self.ready { "Ready" } else { "not Ready" };
        write!(f, "restarts {} {ready}", self.restarts)?;
        if let Some(reason) = &self.waiting {
            write!(f, " waiting {reason}")?;
        }
        if let Some(code) = self.last_exit {
            write!(f, " (last exit {code})")?;
        }
        Ok(())
    }
}

/// The sequence a real kubelet writes for a container whose process exits some seconds after
/// each start (recorded on the real node, v1.36.3 with containerd 1.6): the first exit is
/// restarted at once (restartCount 1, running again, `lastState.terminated`), without
/// CrashLoopBackOff; the second waits out a 10 s back-off as `terminated`, and CrashLoopBackOff
/// shows only in the sync that ends the back-off, just before the restart.
fn crash_loop_sequence() -> Vec<ContainerReading> {
    let reading = |restarts, ready, waiting: Option<&str>| ContainerReading {
        restarts,
        ready,
        waiting: waiting.map(str::to_owned),
        last_exit: (restarts > 0).then_some(1),
    };
    vec![
        reading(0, true, None),
        reading(0, false, None),
        reading(1, false, None),
        reading(1, true, None),
        reading(1, false, None),
        reading(1, false, Some("CrashLoopBackOff")),
        reading(2, false, None),
        reading(2, true, None),
    ]
}

/// Creates `pod` and watches it from its first Ready until it is Ready again after 2 restarts:
/// every distinct reading in order (a reading equal to the previous one is not repeated), each
/// with the milliseconds since the first Ready.
async fn watch_crash_loop(ns: &TestNamespace, pod: Value) -> Vec<(ContainerReading, u128)> {
    let pods: Api<Pod> = ns.api();
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(pods.clone(), config).applied_objects().boxed();
    let pod: Pod = serde_json::from_value(pod).expect("a Pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the pod");
    let mut readings: Vec<(ContainerReading, u128)> = Vec::new();
    let mut first_ready: Option<Instant> = None;
    let watched = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(event) = events.next().await {
            let Some(reading) = event.ok().as_ref().and_then(ContainerReading::of) else {
                continue;
            };
            if first_ready.is_none() && reading.ready {
                first_ready = Some(Instant::now());
            }
            let Some(since) = first_ready else { continue };
            if readings.last().map(|(r, _)| r) != Some(&reading) {
                let done = reading.restarts >= 2 && reading.ready;
                readings.push((reading, since.elapsed().as_millis()));
                if done {
                    return;
                }
            }
        }
    })
    .await;
    let seen: Vec<String> = readings
        .iter()
        .map(|(r, ms)| format!("{ms} ms: {r}"))
        .collect();
    assert!(watched.is_ok(), "no second restart within 120 s: {seen:#?}");
    readings
}

/// A crashing container goes through the same sequence of readings (restartCount, Ready, the
/// waiting reason, the last exit) on kwok's fake nodes (the crash Stages of
/// e2e/lib/pod-stages.yaml) as on the real kubelet, and it is the sequence recorded from the
/// real kubelet ([`crash_loop_sequence`]). Only the times differ (kwok's back-off is 2 s).
#[tokio::test]
#[ignore = "needs the local control plane with a real node (e2e/cluster.sh up --real-nodes)"]
async fn a_crashing_container_goes_through_the_same_states_on_both_tiers() {
    let client = common::client().await;
    if !real_tier_available(&client).await {
        return;
    }
    let ns = TestNamespace::new("crash-states").await;
    let mut real = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "real"}});
    let template = real_template("crashy", "v1", RealFault::CrashAfter(3));
    real["metadata"]["labels"] = template["metadata"]["labels"].clone();
    real["spec"] = template["spec"].clone();
    let kwok = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kwok", "annotations": common::Fault::Crash.annotations()},
        "spec": {"containers": [{"name": "app", "image": "registry.local/app:v1"}]}
    });
    let (real, kwok) = tokio::join!(watch_crash_loop(&ns, real), watch_crash_loop(&ns, kwok));
    for (tier, readings) in [("real", &real), ("kwok", &kwok)] {
        let seen: Vec<String> = readings
            .iter()
            .map(|(r, ms)| format!("{ms} ms: {r}"))
            .collect();
        println!("MEASURED crash loop, {tier} tier: {}", seen.join(" -> "));
    }
    let sequence = |readings: &[(ContainerReading, u128)]| -> Vec<ContainerReading> {
        readings.iter().map(|(r, _)| r.clone()).collect()
    };
    // The real kubelet batches status updates: under load one update may carry a restart and
    // the readiness that followed it, so a watch can miss an in-between state. What it shows
    // must still be the expected states in order, from the first to the last, through
    // CrashLoopBackOff; kwok's Stages are deterministic and must show every one.
    let expected = crash_loop_sequence();
    let observed = sequence(&real);
    let mut remaining = expected.iter();
    assert!(
        observed
            .iter()
            .all(|state| remaining.any(|wanted| wanted == state)),
        "the real kubelet: {observed:?} is not in the order of {expected:?}"
    );
    assert_eq!(
        (observed.first(), observed.last()),
        (expected.first(), expected.last()),
        "the real kubelet: {observed:?}"
    );
    assert!(
        observed
            .iter()
            .any(|r| r.waiting.as_deref() == Some("CrashLoopBackOff")),
        "the real kubelet: {observed:?}"
    );
    assert_eq!(
        sequence(&kwok),
        crash_loop_sequence(),
        "kwok's crash Stages"
    );
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
    let Some(prometheus) = real::prometheus_scraping_real_pods() else {
        return;
    };
    let (ns, _operator) = setup("real-errors").await;
    let query = "sum(rate(safedeploy_demo_errors_total{version=\"{{canary}}\"}[4s])) / \
                 sum(rate(safedeploy_demo_requests_total{version=\"{{canary}}\"}[4s]))";
    let manifest = scraped_analysis_web(
        2,
        scraped_template("web", &[("SAFEDEPLOY_EMITTER_ERROR_RATIO", "0")]),
        ("errors", "error-ratio"),
        (&prometheus, query),
        json!({"target": 0.005, "acceptable": 0.01, "critical": 0.02}),
        "5s",
    );
    let v1 = apply_stable(&ns, &manifest)
        .await
        .stable_revision
        .expect("stable revision");
    let mut bad = manifest.clone();
    bad["spec"]["template"] =
        scraped_template("web", &[("SAFEDEPLOY_EMITTER_ERROR_RATIO", "0.05")]);
    let applied = Instant::now();
    apply(&ns, &bad).await.expect("apply the erroring v2");
    let entry = wait_reverted_on(
        &ns,
        &v1,
        "error-ratio",
        "the erroring revision to be reverted",
    )
    .await;
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
    let helm = chart::helm();
    let output = tokio::process::Command::new(&helm)
        .args(args)
        .output()
        .await
        .map_err(|error| format!("cannot run {}: {error}", helm.display()))?;
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
        ],
        "dashboard": {
            "enabled": true,
            "extraEnv": [
                {"name": "KUBERNETES_SERVICE_HOST", "value": api_host},
                {"name": "KUBERNETES_SERVICE_PORT", "value": api_port}
            ]
        }
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
                .list(&ListParams::default().labels(
                    "app.kubernetes.io/name=safedeploy,app.kubernetes.io/component=controller",
                ))
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
    in_cluster_dashboard_reads_and_refuses_actions(&ns).await;

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

/// The chart's read-only dashboard, Ready on the real node (its probe answers), lists the
/// namespace's rollouts with its own ServiceAccount, offers no action and refuses one.
async fn in_cluster_dashboard_reads_and_refuses_actions(ns: &TestNamespace) {
    let pods: Api<Pod> = ns.api();
    let selector = "app.kubernetes.io/name=safedeploy,app.kubernetes.io/component=dashboard";
    let pod = common::wait_until(Duration::from_secs(60), "the dashboard pod Ready", || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels(selector)).await?;
            Ok(list.items.into_iter().find(common::is_ready))
        }
    })
    .await;
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("the dashboard pod's IP");
    let base = format!("http://{ip}:8080");
    let list: Value = common::http()
        .get(format!("{base}/_/api/rollouts"))
        .send()
        .await
        .expect("GET the list")
        .json()
        .await
        .expect("JSON");
    assert_eq!(list["rollouts"][0]["name"], "web", "{list:#}");
    let page: Value = common::http()
        .get(format!("{base}/_/api/rollouts/{}/web", ns.name))
        .send()
        .await
        .expect("GET the page")
        .json()
        .await
        .expect("JSON");
    assert_eq!(page["mayAct"], false, "{page:#}");
    let refused = common::http()
        .post(format!("{base}/_/api/rollouts/{}/web/abort", ns.name))
        .header(safedeploy::cli::dashboard::server::ACTION_HEADER, "1")
        .send()
        .await
        .expect("POST an action");
    assert_eq!(
        refused.status().as_u16(),
        403,
        "the in-cluster dashboard acts for nobody"
    );
    println!(
        "in-cluster dashboard: {} rollout(s) listed, actions refused",
        list["rollouts"].as_array().map_or(0, Vec::len)
    );
}
