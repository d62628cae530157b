//! Smoke tests of the integration harness: the local control plane runs Deployments and
//! ReplicaSets on kwok's fake nodes, the fault annotations behave as documented in
//! `e2e/README.md`, and Prometheus scrapes the metrics emitter. Each test uses its own namespace
//! and its own emitter versions, so they run in parallel.
//!
//! Run with the cluster up: `e2e/cluster.sh up --with-prometheus && eval "$(e2e/cluster.sh env)"
//! && cargo test --test smoke -- --ignored`.

mod common;

use std::time::{Duration, Instant};

use common::{
    Fault, LocalEmitter, ScrapeTarget, TestNamespace, deployment, emitter_configure,
    emitter_remove, emitter_url, error_ratio_query, is_ready, phase, prometheus_query,
    prometheus_scalar, ready_latency, replica_set, restart_count, unique_version, wait_until,
    waiting_reason,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::DeleteParams;

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn deployment_reaches_three_ready_pods() {
    let ns = TestNamespace::new("smoke-deploy").await;
    let start = Instant::now();
    ns.create_deployment(&deployment("web", 3, Fault::None))
        .await;
    let pods = ns.wait_ready_pods("web", 3, Duration::from_secs(60)).await;
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        assert_eq!(phase(pod), "Running");
        let status = pod.status.as_ref().expect("status");
        assert!(status.start_time.is_some(), "no startTime: {status:?}");
        let container = &status.container_statuses.as_ref().expect("containers")[0];
        let running = container
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .expect("running state");
        let started = running.started_at.as_ref().expect("startedAt").0;
        let created = pod.metadata.creation_timestamp.as_ref().expect("created").0;
        assert!(
            started >= created,
            "started {started} before created {created}"
        );
        let latency = ready_latency(pod).expect("Ready lastTransitionTime");
        assert!(
            latency < Duration::from_secs(30),
            "start-up latency {latency:?}"
        );
        assert!(
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some()
        );
    }
    // The Deployment controller (kube-controller-manager) reports the Ready replicas too.
    let deployments = ns.api::<Deployment>();
    wait_until(
        Duration::from_secs(30),
        "Deployment status readyReplicas=3",
        || {
            let deployments = deployments.clone();
            async move {
                let d = deployments.get("web").await?;
                Ok((d.status.and_then(|s| s.ready_replicas) == Some(3)).then_some(()))
            }
        },
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn replica_set_pods_become_ready() {
    let ns = TestNamespace::new("smoke-rs").await;
    ns.create_replica_set(&replica_set("plain", 2, Fault::None))
        .await;
    let pods = ns
        .wait_ready_pods("plain", 2, Duration::from_secs(60))
        .await;
    assert!(pods.iter().all(|p| restart_count(p) == 0));
    // Garbage collection (kube-controller-manager) removes the pods of a deleted ReplicaSet.
    ns.api::<ReplicaSet>()
        .delete("plain", &DeleteParams::background())
        .await
        .expect("delete the ReplicaSet");
    let namespace = &ns;
    wait_until(
        Duration::from_secs(60),
        "the pods to be collected",
        || async move { Ok(namespace.pods("plain").await?.is_empty().then_some(())) },
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn crash_fault_makes_restart_count_rise() {
    let ns = TestNamespace::new("smoke-crash").await;
    ns.create_deployment(&deployment("crashy", 1, Fault::Crash))
        .await;
    let mut seen_ready = false;
    let mut seen_backoff = false;
    let mut seen_terminated = false;
    let mut first_restarts = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Watch the pod until its restart count has risen twice after the first crash.
    loop {
        assert!(
            Instant::now() < deadline,
            "restartCount did not keep rising (first seen {first_restarts:?}, ready {seen_ready}, \
             backoff {seen_backoff})"
        );
        if let Some(pod) = ns.pods("crashy").await.expect("pods").into_iter().next() {
            seen_ready |= is_ready(&pod);
            seen_backoff |= waiting_reason(&pod).as_deref() == Some("CrashLoopBackOff");
            seen_terminated |= pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.first())
                .and_then(|c| c.last_state.as_ref())
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.exit_code != 0);
            let restarts = restart_count(&pod);
            if restarts >= 1 && first_restarts.is_none() {
                first_restarts = Some(restarts);
            }
            if let Some(first) = first_restarts
                && restarts >= first + 2
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen_ready, "the pod was never Ready between crashes");
    assert!(
        seen_backoff,
        "never saw state.waiting.reason=CrashLoopBackOff"
    );
    assert!(
        seen_terminated,
        "never saw lastState.terminated with a non-zero exit code"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn never_ready_fault_keeps_pod_unready() {
    let ns = TestNamespace::new("smoke-never").await;
    ns.create_deployment(&deployment("stuck", 1, Fault::NeverReady))
        .await;
    ns.create_deployment(&deployment("control", 1, Fault::None))
        .await;
    // Once a fault-free pod created at the same time is Ready, wait a few times its readiness
    // delay more: the faulty pod must be Running yet still not Ready.
    ns.wait_ready_pods("control", 1, Duration::from_secs(60))
        .await;
    let namespace = &ns;
    wait_until(
        Duration::from_secs(30),
        "the never-ready pod to run",
        || async move {
            let pods = namespace.pods("stuck").await?;
            Ok(pods.first().filter(|p| phase(p) == "Running").map(|_| ()))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pods = ns.pods("stuck").await.expect("pods");
    assert_eq!(pods.len(), 1);
    assert_eq!(phase(&pods[0]), "Running");
    assert!(!is_ready(&pods[0]), "a never-ready pod became Ready");
    assert_eq!(restart_count(&pods[0]), 0);
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn slow_start_fault_delays_readiness() {
    const SECONDS: u32 = 8;
    let ns = TestNamespace::new("smoke-slow").await;
    ns.create_deployment(&deployment("slow", 1, Fault::ReadyAfterSeconds(SECONDS)))
        .await;
    let pods = ns.wait_ready_pods("slow", 1, Duration::from_secs(60)).await;
    let latency = ready_latency(&pods[0]).expect("Ready time");
    // Timestamps have a resolution of one second; allow for a loaded machine on the upper side.
    assert!(
        latency >= Duration::from_secs(u64::from(SECONDS))
            && latency <= Duration::from_secs(u64::from(SECONDS) + 5),
        "start-up latency {latency:?}, expected about {SECONDS}s"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn prometheus_tracks_emitter_error_ratio() {
    let emitter = emitter_url();
    // The shared emitter's default versions are scraped.
    let stable = wait_until(
        Duration::from_secs(30),
        "the default emitter series",
        || async {
            let samples =
                prometheus_query("safedeploy_demo_requests_total{emitter=\"default\"}").await?;
            Ok((!samples.is_empty()).then_some(samples))
        },
    )
    .await;
    assert!(
        stable
            .iter()
            .any(|s| s.labels.get("version").map(String::as_str) == Some("stable"))
    );

    // Versions of this test only, created on demand.
    let good = unique_version("smoke-good");
    let bad = unique_version("smoke-bad");
    for version in [&good, &bad] {
        let answer = emitter_configure(&emitter, version, Some(0.0), Some(40.0), Some(50.0))
            .await
            .expect("configure");
        assert_eq!(answer["errorRatio"], 0.0);
    }
    for version in [&good, &bad] {
        let query = error_ratio_query(version, "5s");
        let ratio = wait_until(Duration::from_secs(30), "a zero error ratio", || {
            let query = query.clone();
            async move { Ok(prometheus_scalar(&query).await?.filter(|r| r.is_finite())) }
        })
        .await;
        assert_eq!(ratio, 0.0, "{version}");
    }

    let answer = emitter_configure(&emitter, &bad, Some(0.5), None, None)
        .await
        .expect("configure");
    assert_eq!(answer["errorRatio"], 0.5);
    let bad_query = error_ratio_query(&bad, "5s");
    let ratio = wait_until(Duration::from_secs(30), "the error ratio to rise", || {
        let query = bad_query.clone();
        async move { Ok(prometheus_scalar(&query).await?.filter(|r| *r > 0.25)) }
    })
    .await;
    assert!(ratio < 0.8, "error ratio {ratio} for a 0.5 setting");
    let good_ratio = prometheus_scalar(&error_ratio_query(&good, "5s"))
        .await
        .expect("query");
    assert_eq!(good_ratio, Some(0.0));

    let latency = prometheus_scalar(&format!(
        "histogram_quantile(0.5, sum by (le) (rate(safedeploy_demo_request_duration_seconds_bucket{{version=\"{good}\"}}[5s])))"
    ))
    .await
    .expect("query")
    .expect("a latency series");
    assert!(
        (0.02..=0.06).contains(&latency),
        "median latency {latency}s for 40 ms"
    );

    emitter_remove(&emitter, &good).await;
    emitter_remove(&emitter, &bad).await;
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn extra_scrape_targets_are_picked_up() {
    let version = unique_version("smoke-extra");
    let local = LocalEmitter::start(&[&version]).await.expect("emitter");
    let name = unique_version("smoke-target");
    let _target = ScrapeTarget::register(&name, &local.address).expect("target");
    let query = format!("up{{emitter=\"{name}\"}}");
    wait_until(
        Duration::from_secs(30),
        "Prometheus to scrape the extra target",
        || {
            let query = query.clone();
            async move { Ok(prometheus_scalar(&query).await?.filter(|up| *up == 1.0)) }
        },
    )
    .await;
    let rate_query = format!("sum(rate(safedeploy_demo_requests_total{{emitter=\"{name}\"}}[5s]))");
    // A rate over a window the series has just entered is extrapolated from few samples: wait
    // until it settles near the configured 20 requests per second.
    wait_until(
        Duration::from_secs(30),
        "about 20 rps from the extra target",
        || {
            let query = rate_query.clone();
            async move {
                Ok(prometheus_scalar(&query)
                    .await?
                    .filter(|r| (15.0..=25.0).contains(r)))
            }
        },
    )
    .await;
    // The state the test can drive directly matches what Prometheus saw.
    assert!(local.emitter.get(&version).expect("version").requests > 0);
}
