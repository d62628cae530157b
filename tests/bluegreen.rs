//! Blue-green (`strategy.blueGreen`) against the real API server (kwok pods):
//! * the preview Service selects the new revision at full size while the active Service still
//!   selects the old one; a person's promote switches the active Service; a failing
//!   post-promotion analysis switches it back (the old revision never lost a pod) and records
//!   the revert;
//! * a good revision is promoted and the old one keeps its pods for `scaleDownDelaySeconds`;
//! * the operator killed after every write from the promote on: the switch and the promotion
//!   complete all the same, and the old revision is never scaled down before the switch.

mod common;
mod operator;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Fault, TestNamespace};
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use operator::{Operator, annotate, apply, apply_stable, wait_status};
use safedeploy::api::Phase;
use safedeploy::api::labels::{LABEL_REVISION, REQUEST_PROMOTE};
use serde_json::{Value, json};

const NAME: &str = "web";
const REPLICAS: i32 = 3;

/// A tiny JSON endpoint whose success rate the test sets.
async fn start_web_endpoint(value: Arc<AtomicU64>) -> SocketAddr {
    use axum::Router;
    use axum::routing::get;
    let app = Router::new().route(
        "/slo",
        get(move || {
            let value = value.clone();
            async move {
                axum::Json(
                    json!({"data": {"successRate": f64::from_bits(value.load(Ordering::SeqCst))}}),
                )
            }
        }),
    );
    common::serve(app).await
}

fn blue_green(image: &str, addr: SocketAddr, strategy: Value) -> Value {
    let mut manifest = operator::safe_deployment(NAME, REPLICAS, image, Fault::None, json!([]));
    manifest["spec"]["strategy"] = json!({"blueGreen": strategy});
    manifest["spec"]["analyses"] = json!([{
        "name": "errors", "interval": "1s", "count": 2,
        "metrics": [{
            "name": "success-rate",
            "provider": {"web": {"url": format!("http://{addr}/slo?rev={{{{canary}}}}"), "jsonPath": "$.data.successRate"}},
            "direction": "higherIsBetter",
            "thresholds": {"target": 99.9, "acceptable": 99.5, "critical": 98.0}
        }]
    }]);
    manifest
}

fn manual_with_post_analysis(delay: i32) -> Value {
    json!({
        "autoPromotionEnabled": false,
        "postPromotionAnalysis": ["errors"],
        "scaleDownDelaySeconds": delay,
    })
}

async fn selector_revision(ns: &TestNamespace, service: &str) -> Option<String> {
    let svc: Service = ns.api().get(service).await.ok()?;
    svc.spec?.selector?.get(LABEL_REVISION).cloned()
}

async fn replicas_of(ns: &TestNamespace, revision: &str) -> i32 {
    ns.replica_sets()
        .await
        .iter()
        .filter(|rs| rs.labels().get(LABEL_REVISION).map(String::as_str) == Some(revision))
        .map(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
        .sum()
}

/// Records every change of the active Service's selector and the smallest size the old
/// revision's ReplicaSet had, polled every 50 ms until dropped.
struct Watcher {
    seen: Arc<Mutex<(Vec<String>, i32)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    /// Watches (never polls: a switch and its switch-back can be milliseconds apart) the active
    /// Service's selector and the replicas of the `old` revision's ReplicaSets.
    fn start(ns: &TestNamespace, old: &str) -> Watcher {
        use futures::StreamExt;
        use kube::runtime::watcher::{self, Event};
        let seen = Arc::new(Mutex::new((Vec::new(), i32::MAX)));
        let (client, namespace, old) = (ns.client.clone(), ns.name.clone(), old.to_string());
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            let services: kube::Api<Service> = kube::Api::namespaced(client.clone(), &namespace);
            let sets: kube::Api<k8s_openapi::api::apps::v1::ReplicaSet> =
                kube::Api::namespaced(client, &namespace);
            let mut service_events = watcher::watcher(
                services,
                watcher::Config::default().fields("metadata.name=web-active"),
            )
            .boxed();
            let mut set_events = watcher::watcher(sets, watcher::Config::default()).boxed();
            let mut old_sizes = std::collections::BTreeMap::new();
            let mut listed = false;
            loop {
                tokio::select! {
                    Some(Ok(event)) = service_events.next() => {
                        if let Event::Apply(service) | Event::InitApply(service) = event
                            && let Some(active) = service.spec.and_then(|s| s.selector?.get(LABEL_REVISION).cloned())
                            && let Ok(mut seen) = shared.lock()
                            && seen.0.last() != Some(&active)
                        {
                            seen.0.push(active);
                        }
                    }
                    Some(Ok(event)) = set_events.next() => {
                        match event {
                            Event::Apply(rs) | Event::InitApply(rs) => {
                                if rs.labels().get(LABEL_REVISION) == Some(&old) {
                                    let size = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                                    old_sizes.insert(rs.name_any(), size);
                                }
                            }
                            Event::Delete(rs) => {
                                old_sizes.remove(&rs.name_any());
                            }
                            Event::InitDone => listed = true,
                            Event::Init => {}
                        }
                        if listed && let Ok(mut seen) = shared.lock() {
                            seen.1 = seen.1.min(old_sizes.values().sum::<i32>());
                        }
                    }
                    else => break,
                }
            }
        });
        Watcher { seen, task }
    }

    fn stop(self) -> (Vec<String>, i32) {
        self.task.abort();
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

async fn wait_paused_before_switch(ns: &TestNamespace) -> String {
    let paused = wait_status(
        ns,
        NAME,
        Duration::from_secs(90),
        "the pause before the switch",
        |s| s.phase == Phase::Paused,
    )
    .await;
    paused.canary_revision.expect("a new revision in preview")
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn preview_then_switch_then_a_post_promotion_failure_switches_back() {
    let (ns, _operator) = operator::setup("bluegreen").await;
    let value = Arc::new(AtomicU64::new(99.95_f64.to_bits()));
    let addr = start_web_endpoint(value.clone()).await;
    let strategy = manual_with_post_analysis(5);
    let blue = apply_stable(
        &ns,
        &blue_green("registry.local/app:v1", addr, strategy.clone()),
    )
    .await
    .stable_revision
    .expect("stable");
    assert_eq!(
        selector_revision(&ns, "web-active").await.as_ref(),
        Some(&blue)
    );
    assert_eq!(
        selector_revision(&ns, "web-preview").await.as_ref(),
        Some(&blue)
    );

    // v2 runs at full size behind the preview; the active Service stays on blue.
    apply(
        &ns,
        &blue_green("registry.local/app:v2", addr, strategy.clone()),
    )
    .await
    .expect("v2");
    let green = wait_paused_before_switch(&ns).await;
    assert_eq!(
        selector_revision(&ns, "web-preview").await.as_ref(),
        Some(&green)
    );
    assert_eq!(
        selector_revision(&ns, "web-active").await.as_ref(),
        Some(&blue)
    );
    assert_eq!(
        replicas_of(&ns, &green).await,
        REPLICAS,
        "green at full size before the switch"
    );
    assert_eq!(replicas_of(&ns, &blue).await, REPLICAS);

    // The metric collapses; a person switches; the post-promotion analysis switches back.
    value.store(90.0_f64.to_bits(), Ordering::SeqCst);
    let watcher = Watcher::start(&ns, &blue);
    tokio::time::sleep(Duration::from_millis(300)).await;
    annotate(&ns, NAME, REQUEST_PROMOTE, "p1@dave")
        .await
        .expect("promote");
    let reverted = wait_status(&ns, NAME, Duration::from_secs(60), "switched back", |s| {
        s.phase == Phase::Degraded
    })
    .await;
    // Status is written first, the Services right after it in the same reconcile.
    let start = Instant::now();
    while selector_revision(&ns, "web-active").await.as_ref() != Some(&blue) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the active Service stays on green"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (sequence, smallest_blue) = watcher.stop();
    assert_eq!(
        sequence,
        vec![blue.clone(), green.clone(), blue.clone()],
        "the active Service went to green and back"
    );
    assert_eq!(smallest_blue, REPLICAS, "blue never lost a pod");
    assert_eq!(reverted.stable_revision.as_ref(), Some(&blue));
    assert!(reverted.rejected_revisions.contains(&green));
    let entry = reverted
        .history
        .iter()
        .find(|e| e.outcome == "Reverted" && e.hash == green)
        .expect("the revert is recorded");
    assert!(entry.reason.contains("AnalysisFailed"), "{entry:?}");
    assert!(
        reverted
            .history
            .iter()
            .any(|e| e.outcome == "PromoteRequested" && e.actor.as_deref() == Some("dave")),
        "{:?}",
        reverted.history
    );
    assert_eq!(
        selector_revision(&ns, "web-preview").await.as_ref(),
        Some(&blue)
    );

    // A good v3: promoted; blue keeps its pods for the scale-down delay (5 s), then goes.
    value.store(99.95_f64.to_bits(), Ordering::SeqCst);
    apply(
        &ns,
        &blue_green("registry.local/app:v3", addr, strategy.clone()),
    )
    .await
    .expect("v3");
    let v3 = wait_paused_before_switch(&ns).await;
    annotate(&ns, NAME, REQUEST_PROMOTE, "p2@dave")
        .await
        .expect("promote");
    let promoted = operator::wait_promoted(&ns, NAME, Some(&blue), "v3 promoted").await;
    let promoted_at = Instant::now();
    assert_eq!(promoted.stable_revision.as_ref(), Some(&v3));
    assert_eq!(
        selector_revision(&ns, "web-active").await.as_ref(),
        Some(&v3)
    );
    assert_eq!(
        replicas_of(&ns, &blue).await,
        REPLICAS,
        "blue is kept during the delay"
    );
    let start = Instant::now();
    while replicas_of(&ns, &blue).await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "blue never scaled down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "MEASURED blue scaled down {:.1} s after the promotion was seen (scaleDownDelaySeconds 5)",
        promoted_at.elapsed().as_secs_f64()
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_switch_killed_after_every_write_completes_and_never_drops_blue_early() {
    let ns = operator::opted_out_namespace("bluegreen-kill").await;
    let operator = Operator::start(&ns.name).await;
    let value = Arc::new(AtomicU64::new(99.95_f64.to_bits()));
    let addr = start_web_endpoint(value.clone()).await;
    let strategy = manual_with_post_analysis(30);
    let blue = apply_stable(
        &ns,
        &blue_green("registry.local/app:v1", addr, strategy.clone()),
    )
    .await
    .stable_revision
    .expect("stable");
    apply(
        &ns,
        &blue_green("registry.local/app:v2", addr, strategy.clone()),
    )
    .await
    .expect("v2");
    let green = wait_paused_before_switch(&ns).await;
    operator.kill().await;
    let watcher = Watcher::start(&ns, &blue);
    annotate(&ns, NAME, REQUEST_PROMOTE, "p1")
        .await
        .expect("promote");
    let kills = operator::kill_after_every_write(&ns.name, usize::MAX).await;
    println!("MEASURED kills during the blue-green switch: {kills}");
    assert!(
        kills >= 2,
        "the switch is at least a status and a Service write: {kills}"
    );
    let _operator = Operator::start(&ns.name).await;
    let promoted = operator::wait_promoted(&ns, NAME, Some(&blue), "v2 promoted").await;
    assert_eq!(promoted.stable_revision.as_ref(), Some(&green));
    assert_eq!(
        selector_revision(&ns, "web-active").await.as_ref(),
        Some(&green)
    );
    let (sequence, smallest_blue) = watcher.stop();
    assert_eq!(
        sequence,
        vec![blue.clone(), green.clone()],
        "one switch, never back"
    );
    assert_eq!(
        smallest_blue, REPLICAS,
        "blue kept every pod until the promotion"
    );
}
