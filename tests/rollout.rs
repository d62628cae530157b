//! Integration tests of the SafeDeployment controller on the local control plane: promotion of a
//! good revision, automatic revert of a crash-looping or slow-starting canary, resumption after
//! the operator is killed, and rejection of invalid specs by the API server's CEL rules.

mod common;
mod operator;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, SystemTime};

use common::Fault;
use futures::StreamExt;
use futures::future::Either;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use operator::{
    Operator, apply, apply_promoted, apply_stable, condition, events_of, safe_deployment, setup,
    wait_status,
};
use safedeploy::api::{Phase, SafeDeployment};
use serde_json::json;

const NEEDS_CLUSTER: &str = "needs the local control plane (e2e/cluster.sh)";

async fn establish(
    ns: &common::TestNamespace,
    name: &str,
    replicas: i32,
    steps: serde_json::Value,
) -> String {
    let manifest = safe_deployment(name, replicas, "registry.local/app:v1", Fault::None, steps);
    let status = apply_stable(ns, &manifest).await;
    status.stable_revision.expect("stable revision")
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_good_revision_passes_every_step_and_becomes_stable() {
    let _ = NEEDS_CLUSTER;
    let (ns, _operator) = setup("good").await;
    let steps = json!([{"setWeight": 25}, {"pause": {"duration": "1s"}}, {"setWeight": 50}, {"setWeight": 100}]);
    let v1 = establish(&ns, "web", 4, steps.clone()).await;
    let status = apply_promoted(
        &ns,
        &safe_deployment("web", 4, "registry.local/app:v2", Fault::None, steps),
        Some(&v1),
    )
    .await;
    assert_eq!(
        condition(&status, "Ready"),
        Some(("True".into(), "RolloutComplete".into()))
    );
    assert_eq!(
        condition(&status, "Degraded").map(|c| c.0),
        Some("False".into())
    );
    let last = status.history.last().expect("history");
    assert_eq!((last.revision, last.outcome.as_str()), (2, "Promoted"));
    let replica_sets: Api<ReplicaSet> = ns.api();
    let new = replica_sets
        .get(&format!(
            "web-{}",
            status.stable_revision.clone().unwrap_or_default()
        ))
        .await
        .expect("new ReplicaSet");
    assert_eq!(new.spec.and_then(|s| s.replicas), Some(4));
    let old = replica_sets
        .get(&format!("web-{v1}"))
        .await
        .expect("old ReplicaSet is kept");
    assert_eq!(old.spec.and_then(|s| s.replicas), Some(0));
    assert_eq!(
        events_of(&ns, "StepCompleted").await.len(),
        4,
        "one event per step"
    );
    assert_eq!(events_of(&ns, "RolloutCompleted").await.len(), 2);
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_crash_looping_canary_is_reverted_quickly_and_the_stable_stays_available() {
    let (ns, _operator) = setup("crash").await;
    let steps = json!([{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}]);
    let v1 = establish(&ns, "web", 4, steps.clone()).await;

    // Watch (by polling every 50 ms) the stable ReplicaSet's available pods and the first crash.
    let stop = Arc::new(AtomicBool::new(false));
    let min_stable_available = Arc::new(AtomicI32::new(i32::MAX));
    let first_crash: Arc<std::sync::Mutex<Option<SystemTime>>> = Arc::default();
    let sampler = {
        let (stop, min_stable, first_crash) = (
            stop.clone(),
            min_stable_available.clone(),
            first_crash.clone(),
        );
        let replica_sets: Api<ReplicaSet> = ns.api();
        let pods: Api<Pod> = ns.api();
        let stable_name = format!("web-{v1}");
        tokio::spawn(async move {
            // Watches, not polls: every change of a pod or ReplicaSet is seen.
            let pod_events = watcher(pods, watcher::Config::default())
                .applied_objects()
                .map(|p| p.map(Either::Left));
            let rs_events = watcher(replica_sets, watcher::Config::default())
                .applied_objects()
                .map(|r| r.map(Either::Right));
            let mut events = futures::stream::select(pod_events.boxed(), rs_events.boxed());
            while !stop.load(Ordering::SeqCst) {
                let next = tokio::time::timeout(Duration::from_millis(100), events.next()).await;
                match next {
                    Ok(Some(Ok(Either::Left(pod)))) if common::crashed(&pod) => {
                        let mut slot = first_crash.lock().expect("lock");
                        if slot.is_none() {
                            *slot = Some(SystemTime::now());
                        }
                    }
                    Ok(Some(Ok(Either::Right(rs))))
                        if rs.metadata.name.as_deref() == Some(stable_name.as_str()) =>
                    {
                        let available = rs.status.and_then(|s| s.available_replicas).unwrap_or(0);
                        min_stable.fetch_min(available, Ordering::SeqCst);
                    }
                    _ => {}
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut bad = safe_deployment("web", 4, "registry.local/app:v2-bad", Fault::Crash, steps);
    // A canary pod must stay Ready this long before the stable gives up a pod for it. The
    // crash comes 1 s after Ready (the kwok Stage); the margin is wide because a loaded kwok
    // (after a whole suite of tests) may apply that Stage seconds late, and then the canary
    // would count as available and the stable would rightly shrink.
    bad["spec"]["minReadySeconds"] = json!(30);
    apply(&ns, &bad).await.expect("apply bad v2");
    let status = wait_status(
        &ns,
        "web",
        Duration::from_secs(60),
        "the bad canary to be reverted",
        |s| s.phase == Phase::Degraded,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    sampler.await.expect("sampler");

    assert_eq!(status.stable_revision.as_deref(), Some(v1.as_str()));
    let entry = status.history.last().expect("history entry");
    assert_eq!(entry.outcome, "Reverted");
    assert!(
        entry.reason.contains("restarts = 1"),
        "reason: {}",
        entry.reason
    );
    assert!(
        entry.reason.contains("critical 1"),
        "reason names the threshold: {}",
        entry.reason
    );
    let bad = status
        .history
        .last()
        .map(|e| e.hash.clone())
        .unwrap_or_default();
    assert!(status.rejected_revisions.contains(&bad));
    assert_eq!(
        condition(&status, "Degraded"),
        Some(("True".into(), "RolloutReverted".into()))
    );

    let crashed_at = first_crash
        .lock()
        .expect("lock")
        .expect("a crash was observed");
    let reverted_at: jiff::Timestamp = entry
        .finished_at
        .clone()
        .unwrap_or_default()
        .parse()
        .expect("timestamp");
    let crash_ms = crashed_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let latency_ms = reverted_at.as_millisecond() - crash_ms;
    println!(
        "MEASURED crash-to-revert latency: {latency_ms} ms (from the crash reaching the API server to the revert decision)"
    );
    // How fast is a question for the benchmarks, not an assertion; the reason above already says
    // the crash is what reverted it.
    let min_available = min_stable_available.load(Ordering::SeqCst);
    println!("MEASURED minimum available stable pods during the bad canary: {min_available} of 4");
    assert_eq!(
        min_available, 4,
        "the stable revision stayed fully available; status at the revert: {status:#?}"
    );

    // The bad template is not tried again while the spec holds it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let replica_sets: Api<ReplicaSet> = ns.api();
    let canary = replica_sets
        .get(&format!("web-{bad}"))
        .await
        .expect("bad ReplicaSet kept");
    assert_eq!(canary.spec.and_then(|s| s.replicas), Some(0));
    let reverted_events = events_of(&ns, "RolloutReverted").await;
    assert_eq!(reverted_events.len(), 1, "{reverted_events:#?}");
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_slow_starting_canary_is_reverted_with_its_measured_latency() {
    let (ns, _operator) = setup("slow").await;
    let steps = json!([{"setWeight": 50}, {"setWeight": 100}]);
    let mut manifest = safe_deployment(
        "web",
        2,
        "registry.local/app:v1",
        Fault::None,
        steps.clone(),
    );
    manifest["spec"]["health"] =
        json!({"startupLatencySeconds": {"target": 2, "acceptable": 4, "critical": 8}});
    let v1 = apply_stable(&ns, &manifest)
        .await
        .stable_revision
        .unwrap_or_default();
    let mut slow = safe_deployment(
        "web",
        2,
        "registry.local/app:v2-slow",
        Fault::ReadyAfterSeconds(30),
        steps,
    );
    slow["spec"]["health"] = manifest["spec"]["health"].clone();
    apply(&ns, &slow).await.expect("apply slow v2");
    let (status, latency) =
        operator::wait_reverted_on_startup_latency(&ns, "web", v1.as_str()).await;
    println!(
        "MEASURED canary start-up latency over baseline at revert: {} s (baseline {:?} s)",
        latency.value, latency.baseline
    );
    assert!(latency.value >= 8.0, "{latency:?}");
    assert_eq!(latency.verdict, "Critical");
    assert_eq!(latency.thresholds.critical, 8.0);
    let entry = status.history.last().expect("history");
    assert!(
        entry.reason.contains("startupLatencySeconds ="),
        "{}",
        entry.reason
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_killed_operator_resumes_at_the_same_step() {
    let (ns, operator) = setup("resume").await;
    let steps = json!([{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]);
    establish(&ns, "web", 2, steps.clone()).await;
    apply(
        &ns,
        &safe_deployment("web", 2, "registry.local/app:v2", Fault::None, steps),
    )
    .await
    .expect("apply v2");
    let paused = wait_status(&ns, "web", Duration::from_secs(60), "the pause step", |s| {
        s.phase == Phase::Paused && s.current_step_index == Some(1)
    })
    .await;
    operator.kill().await;
    // While it is down, nothing changes; a new process picks the rollout up where it was.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let operator = Operator::start(&ns.name).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let api: Api<SafeDeployment> = ns.api();
    let resumed = api.get("web").await.expect("get").status.expect("status");
    assert_eq!(resumed.current_step_index, Some(1));
    assert_eq!(resumed.phase, Phase::Paused);
    assert_eq!(resumed.canary_revision, paused.canary_revision);
    assert_eq!(
        resumed.step_started_at, paused.step_started_at,
        "the step was not restarted"
    );
    operator::annotate(&ns, "web", "safedeploy.dev/promote", "t1")
        .await
        .expect("promote");
    let done = wait_status(
        &ns,
        "web",
        Duration::from_secs(60),
        "promotion after the restart",
        |s| s.phase == Phase::Healthy,
    )
    .await;
    assert_eq!(done.stable_revision, paused.canary_revision);
    // Each step completed exactly once across both processes.
    operator::assert_each_step_completed_once(&ns, 3).await;
    drop(operator);
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn invalid_safe_deployments_are_rejected_with_clear_messages() {
    let ns = common::TestNamespace::new("invalid").await;
    operator::install_crds(&ns.client).await;
    let api: Api<SafeDeployment> = ns.api();
    let base = safe_deployment(
        "bad",
        2,
        "registry.local/app:v1",
        Fault::None,
        json!([{"setWeight": 50}]),
    );
    type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "decreasing weights",
            Box::new(|m| {
                m["spec"]["strategy"]["canary"]["steps"] =
                    json!([{"setWeight": 50}, {"setWeight": 20}])
            }),
            "must not decrease",
        ),
        (
            "weight over 100",
            Box::new(|m| m["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 150}])),
            "between 0 and 100",
        ),
        (
            "no steps",
            Box::new(|m| m["spec"]["strategy"]["canary"]["steps"] = json!([])),
            "should have at least 1 items",
        ),
        (
            "two actions in one step",
            Box::new(|m| {
                m["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 10, "pause": {}}])
            }),
            "exactly one of setWeight, pause, analysis, setCanaryScale, setHeaderRoute or setMirrorRoute",
        ),
        (
            "bad pause duration",
            Box::new(|m| {
                m["spec"]["strategy"]["canary"]["steps"] =
                    json!([{"pause": {"duration": "ten seconds"}}])
            }),
            "pause.duration must be a duration",
        ),
        (
            "bad progress deadline",
            Box::new(|m| m["spec"]["progressDeadline"] = json!("5 minutes")),
            "progressDeadline must be a duration",
        ),
        (
            "template and components",
            Box::new(|m| {
                m["spec"]["components"] = json!([{"name": "api", "replicas": 1, "template": m["spec"]["template"].clone()}])
            }),
            "exactly one of spec.template",
        ),
        (
            "selector does not match",
            Box::new(|m| m["spec"]["selector"] = json!({"matchLabels": {"app": "other"}})),
            "must match the labels",
        ),
        (
            "unknown analysis template",
            Box::new(|m| {
                m["spec"]["strategy"]["canary"]["steps"] =
                    json!([{"analysis": {"template": "nope"}}])
            }),
            "not in spec.analyses",
        ),
        (
            "thresholds out of order",
            Box::new(|m| {
                m["spec"]["health"] =
                    json!({"restarts": {"target": 3, "acceptable": 2, "critical": 1}})
            }),
            "target <= acceptable < critical",
        ),
        (
            "two attestation sources",
            Box::new(|m| {
                m["spec"]["attestation"] = json!({"inline": "{}", "configMapRef": {"name": "a"}})
            }),
            "exactly one of inline, configMapRef or secretRef",
        ),
        (
            "two providers for one metric",
            Box::new(|m| {
                m["spec"]["analyses"] = json!([{"name": "a", "metrics": [{
                    "name": "restarts",
                    "provider": {"kubernetes": {"signal": "restarts"},
                                 "web": {"url": "http://x", "jsonPath": "$.v"}},
                    "thresholds": {"target": 0, "acceptable": 0, "critical": 1}}]}])
            }),
            "exactly one of prometheus, web, kubernetes or job",
        ),
        (
            "negative replicas",
            Box::new(|m| m["spec"]["replicas"] = json!(-1)),
            "should be greater than or equal to 0",
        ),
        (
            "no containers",
            Box::new(|m| m["spec"]["template"]["spec"]["containers"] = json!([])),
            "should have at least 1 items",
        ),
    ];
    for (what, mutate, expected) in &cases {
        let mut manifest = base.clone();
        mutate(&mut manifest);
        // A typed object that does not serialize back to the same strategy (an empty canary is
        // left out, since blue-green made it optional) goes as raw JSON too, as `kubectl apply`
        // sends it.
        let typed = serde_json::from_value::<SafeDeployment>(manifest.clone()).and_then(|o| {
            let strategy = serde_json::to_value(&o.spec.strategy)?;
            if strategy == manifest["spec"]["strategy"] {
                Ok(o)
            } else {
                Err(serde::de::Error::custom("not the same strategy"))
            }
        });
        let object: SafeDeployment = match typed {
            Ok(object) => object,
            Err(_) => {
                // Not representable in the Rust types: send the raw JSON.
                let raw = api
                    .patch(
                        "bad",
                        &PatchParams::apply("test").force(),
                        &Patch::Apply(&manifest),
                    )
                    .await;
                let message = raw.err().map(|e| e.to_string()).unwrap_or_default();
                assert!(message.contains(expected), "{what}: {message}");
                continue;
            }
        };
        let error = api
            .create(&PostParams::default(), &object)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: the API server accepted it"));
        let message = error.to_string();
        println!("rejected ({what}): {message}");
        assert!(
            message.contains(expected),
            "{what}: expected '{expected}' in: {message}"
        );
    }
    // And the valid base is accepted, so the rejections above were about the mistakes.
    let object: SafeDeployment = serde_json::from_value(base).expect("base");
    api.create(&PostParams::default(), &object)
        .await
        .expect("the valid spec is accepted");
}
