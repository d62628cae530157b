//! Integration tests of canary analysis on the local control plane, with a real Prometheus
//! scraping the project's metrics emitter: a canary whose error ratio jumps is reverted within one
//! analysis interval (plus 1 s); a Prometheus that stops answering holds the rollout as
//! Inconclusive and never promotes, and the rollout goes on when it is back (or, with
//! `onError: Fail`, the canary is reverted); a `web` provider
//! against an HTTP server the test starts; the `kubernetes` provider comparing the canary's pods
//! with the fresh baseline's.

mod common;
mod operator;
#[path = "analysis/own_prometheus.rs"]
mod own_prometheus;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Fault;
use kube::api::Api;
use operator::{apply, apply_promoted, apply_stable, safe_deployment, setup, wait_status};
use own_prometheus::{OwnPrometheus, StoppedPrometheus};
use safedeploy::api::Phase;
use safedeploy::api::analysis::MetricVerdict;
use serde_json::{Value, json};

const INTERVAL_SECONDS: u64 = 2;

fn error_ratio_metric(prometheus: &str, window: &str) -> Value {
    json!({
        "name": "error-ratio",
        "provider": {"prometheus": {
            "address": prometheus,
            "query": format!("sum(rate(safedeploy_demo_errors_total{{version=\"{{{{canary}}}}\"}}[{window}])) / sum(rate(safedeploy_demo_requests_total{{version=\"{{{{canary}}}}\"}}[{window}]))"),
            "timeout": "1s"
        }},
        "direction": "lowerIsBetter",
        "thresholds": {"target": 0.005, "acceptable": 0.01, "critical": 0.02},
        "onError": "Inconclusive",
        "consecutiveErrorLimit": 1
    })
}

/// A manifest whose image tag is unique, so its revision hash (the emitter version the queries
/// use) is unique to this test run.
fn manifest_with_analysis(version: &str, steps: Value, analysis: Value, background: bool) -> Value {
    let mut manifest = safe_deployment(
        "web",
        2,
        &format!("registry.local/app:{version}"),
        Fault::None,
        steps,
    );
    manifest["spec"]["analyses"] = json!([analysis]);
    if background {
        manifest["spec"]["strategy"]["canary"]["backgroundAnalysis"] = json!("errors");
    }
    manifest
}

/// Applies the next revision and gives the emitter series of its canary these settings
/// (`emitter_configure`'s error ratio, latency and request rate); returns the canary hash.
async fn start_canary(
    ns: &common::TestNamespace,
    manifest: &Value,
    error_ratio: f64,
    latency_ms: Option<f64>,
    rps: f64,
) -> String {
    apply(ns, manifest).await.expect("apply the next revision");
    let canary = canary_hash(ns).await;
    common::emitter_configure(
        &common::emitter_url(),
        &canary,
        Some(error_ratio),
        latency_ms,
        Some(rps),
    )
    .await
    .expect("emitter version for the canary");
    canary
}

async fn canary_hash(ns: &common::TestNamespace) -> String {
    wait_status(
        ns,
        "web",
        Duration::from_secs(60),
        "the canary to start",
        |s| s.canary_revision.is_some(),
    )
    .await
    .canary_revision
    .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the local control plane and Prometheus (e2e/cluster.sh up --with-prometheus)"]
async fn a_jump_in_the_canary_error_ratio_reverts_within_one_interval() {
    let (ns, _operator) = setup("errjump").await;
    let prometheus = common::prometheus_url();
    let emitter = common::emitter_url();
    let run = common::random_suffix(6);
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let analysis = json!({
        "name": "errors", "interval": format!("{INTERVAL_SECONDS}s"), "count": 1000, "initialDelay": "5s",
        "metrics": [error_ratio_metric(&prometheus, "4s")]
    });
    apply_stable(
        &ns,
        &manifest_with_analysis(&format!("v1-{run}"), steps.clone(), analysis.clone(), true),
    )
    .await;
    let v2 = manifest_with_analysis(&format!("v2-{run}"), steps, analysis, true);
    let canary = start_canary(&ns, &v2, 0.001, None, 200.0).await;
    // Healthy measurements first: the run keeps going at 0.1% errors.
    let healthy = wait_status(
        &ns,
        "web",
        Duration::from_secs(30),
        "three healthy measurements",
        |s| s.analysis_runs.iter().any(|r| r.measurement_count >= 3),
    )
    .await;
    assert_eq!(healthy.phase, Phase::Paused, "{healthy:#?}");

    // Ready capacity (2 replicas, maxUnavailable 0) must hold through the revert too: the
    // canary's Ready pod stays until the stable's replacement is Ready.
    let capacity = common::ReadyCapacityWatch::start(ns.client.clone(), &ns.name).await;
    let jumped_at = jiff::Timestamp::now();
    common::emitter_configure(&emitter, &canary, Some(0.05), None, None)
        .await
        .expect("error ratio jump");
    let start = Instant::now();
    let status = loop {
        let status = operator::status_now(&ns, "web").await;
        if status.phase == Phase::Degraded {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not reverted: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    common::emitter_remove(&emitter, &canary).await;
    let entry = status.history.last().expect("history");
    assert_eq!(entry.outcome, "Reverted");
    assert!(entry.reason.contains("AnalysisFailed"), "{}", entry.reason);
    // The stable back at full size and Ready, the canary gone.
    let stable = status.stable_revision.clone().unwrap_or_default();
    let rss: Api<k8s_openapi::api::apps::v1::ReplicaSet> = ns.api();
    common::wait_until(
        Duration::from_secs(30),
        "the stable Ready at 2, the canary at 0",
        || {
            let rss = rss.clone();
            let stable = stable.clone();
            async move {
                let list = rss.list(&Default::default()).await?;
                let settled = list.items.iter().all(|rs| {
                    let labels = rs.metadata.labels.clone().unwrap_or_default();
                    let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
                    let ready = rs
                        .status
                        .as_ref()
                        .and_then(|s| s.ready_replicas)
                        .unwrap_or(0);
                    if labels.get("safedeploy.dev/revision") == Some(&stable) {
                        replicas == 2 && ready == 2
                    } else {
                        replicas == 0 && ready == 0
                    }
                });
                Ok(settled.then_some(()))
            }
        },
    )
    .await;
    let (min_ready, states) = capacity.finish().await;
    println!(
        "MEASURED Ready pods through the analysis revert: minimum {min_ready} of 2 over {states} states"
    );
    assert!(
        min_ready >= 2,
        "Ready capacity fell to {min_ready} of 2 during the revert"
    );
    let reverted_at: jiff::Timestamp = entry
        .finished_at
        .clone()
        .unwrap_or_default()
        .parse()
        .expect("time");
    let from_jump = reverted_at.as_millisecond() - jumped_at.as_millisecond();
    // When Prometheus first showed the breach (above acceptable, which fails the run by its
    // score), from its stored samples. The range is evaluated every 100 ms, so it reaches one
    // step past the revert: the sample the operator acted on may have been scraped less than
    // a step before it (then `from_visible` is within 100 ms of zero, either side).
    let query = common::error_ratio_query(&canary, "4s");
    let grid_end = reverted_at
        .checked_add(jiff::SignedDuration::from_millis(100))
        .expect("time");
    let visible_at = common::first_above(&query, 0.01, jumped_at, grid_end)
        .await
        .expect("range query")
        .expect("Prometheus showed the breach before the revert");
    let from_visible = reverted_at.as_millisecond() - visible_at.as_millisecond();
    println!(
        "MEASURED error-jump revert: {from_jump} ms after the jump at the emitter, {from_visible} ms after Prometheus showed the breach (interval {INTERVAL_SECONDS} s)"
    );
    assert!(
        from_visible <= (INTERVAL_SECONDS as i64) * 1000 + 1000,
        "reverted {from_visible} ms after the breach was visible"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane and the emitter (e2e/cluster.sh up --with-prometheus)"]
async fn a_stopped_prometheus_holds_the_rollout_until_it_returns() {
    let StoppedPrometheus {
        ns,
        _operator,
        prometheus,
        dir,
        port,
        v1,
        canary,
    } = StoppedPrometheus::start("promdown", "Inconclusive").await;
    let held = wait_status(
        &ns,
        "web",
        Duration::from_secs(30),
        "the rollout to hold as Inconclusive",
        |s| s.phase == Phase::Inconclusive,
    )
    .await;
    assert_eq!(
        held.stable_revision, v1,
        "no promotion while Prometheus is down"
    );
    // Still held a while later: never promoted, never reverted.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let still = operator::status_now(&ns, "web").await;
    assert_eq!(still.stable_revision, v1);
    assert!(
        matches!(still.phase, Phase::Inconclusive | Phase::Progressing),
        "{:?}",
        still.phase
    );
    assert_eq!(still.current_step_index, Some(1));
    // Prometheus returns (same data directory): the analysis passes and the rollout goes on.
    let _prometheus = OwnPrometheus::start(dir, port).await;
    let done = wait_status(
        &ns,
        "web",
        Duration::from_secs(90),
        "promotion once Prometheus is back",
        |s| s.phase == Phase::Healthy && s.stable_revision != v1,
    )
    .await;
    assert_eq!(done.stable_revision.as_deref(), Some(canary.as_str()));
    common::emitter_remove(&common::emitter_url(), &canary).await;
    drop(prometheus);
}

/// The same outage with `onError: Fail`: the run fails once the errors pass the limit and the
/// canary is reverted; it is never promoted.
#[tokio::test]
#[ignore = "needs the local control plane and the emitter (e2e/cluster.sh up --with-prometheus)"]
async fn a_stopped_prometheus_fails_the_rollout_when_its_policy_says_fail() {
    let stopped = StoppedPrometheus::start("promfail", "Fail").await;
    let reverted = wait_status(
        &stopped.ns,
        "web",
        Duration::from_secs(30),
        "the canary to be reverted",
        |s| s.phase == Phase::Degraded,
    )
    .await;
    assert_eq!(reverted.stable_revision, stopped.v1, "never promoted");
    let entry = reverted.history.last().expect("history");
    assert_eq!(
        (entry.hash.as_str(), entry.outcome.as_str()),
        (stopped.canary.as_str(), "Reverted")
    );
    assert!(
        entry
            .reason
            .contains("provider errors beyond consecutiveErrorLimit with onError Fail"),
        "{}",
        entry.reason
    );
    // The failed run's measurements stay in status: the errors that failed it, by metric.
    let errors: Vec<_> = reverted
        .analysis_runs
        .iter()
        .flat_map(|r| &r.measurements)
        .filter(|m| m.verdict == MetricVerdict::Error)
        .collect();
    assert!(errors.len() >= 2, "{:?}", reverted.analysis_runs);
    assert!(
        errors[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("unreachable"),
        "{:?}",
        errors[0]
    );
    common::emitter_remove(&common::emitter_url(), &stopped.canary).await;
}

/// A tiny JSON endpoint whose value the test sets.
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

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn the_web_provider_gates_the_rollout() {
    let (ns, _operator) = setup("web").await;
    let value = Arc::new(AtomicU64::new(99.95_f64.to_bits()));
    let addr = start_web_endpoint(value.clone()).await;
    let analysis = json!({
        "name": "errors", "interval": "1s", "count": 2,
        "metrics": [{
            "name": "success-rate",
            "provider": {"web": {"url": format!("http://{addr}/slo?rev={{{{canary}}}}"), "jsonPath": "$.data.successRate"}},
            "direction": "higherIsBetter",
            "thresholds": {"target": 99.9, "acceptable": 99.5, "critical": 98.0}
        }]
    });
    let steps =
        json!([{"setWeight": 50}, {"analysis": {"template": "errors"}}, {"setWeight": 100}]);
    let v1 = apply_stable(
        &ns,
        &manifest_with_analysis("v1", steps.clone(), analysis.clone(), false),
    )
    .await
    .stable_revision;
    let promoted = apply_promoted(
        &ns,
        &manifest_with_analysis("v2", steps.clone(), analysis.clone(), false),
        v1.as_deref(),
    )
    .await;
    // Now the endpoint reports a collapse: v3 is reverted by the same gate.
    value.store(90.0_f64.to_bits(), Ordering::SeqCst);
    apply(&ns, &manifest_with_analysis("v3", steps, analysis, false))
        .await
        .expect("v3");
    let reverted = wait_status(
        &ns,
        "web",
        Duration::from_secs(60),
        "v3 reverted by a failing web metric",
        |s| s.phase == Phase::Degraded,
    )
    .await;
    assert_eq!(reverted.stable_revision, promoted.stable_revision);
    let reason = &reverted.history.last().expect("history").reason;
    assert!(reason.contains("AnalysisFailed"), "{reason}");
}

/// Mean request latency of the emitter version `version` (a template placeholder) over 3 s.
fn latency_query(version: &str) -> String {
    format!(
        "sum(rate(safedeploy_demo_request_duration_seconds_sum{{version=\"{version}\"}}[3s])) / sum(rate(safedeploy_demo_request_duration_seconds_count{{version=\"{version}\"}}[3s]))"
    )
}

/// `strategy.canary.baseline: Fresh` on the real control plane: a baseline ReplicaSet of the
/// stable template runs at the canary's size at every step, `{{baseline}}` selects its series
/// only (the emitter serves a slow-looking "cold" baseline and a fast "warm" stable: the canary
/// is compared with the baseline, so it passes), it survives an operator restart without being
/// recreated, and it is gone after the promotion. Capacity (stable plus canary, available) never
/// drops below the spec at any observed state.
#[tokio::test]
#[ignore = "needs the local control plane and Prometheus (e2e/cluster.sh up --with-prometheus)"]
async fn a_fresh_baseline_runs_beside_the_canary_and_is_what_the_analysis_compares_with() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use kube::ResourceExt;
    use kube::api::ListParams;
    use safedeploy::api::labels::{LABEL_REVISION, LABEL_ROLE};

    let (ns, operator) = setup("fresh").await;
    let started = Instant::now();
    let prometheus = common::prometheus_url();
    let emitter = common::emitter_url();
    let run = common::random_suffix(6);
    let replicas = 4;
    let analysis = json!({
        "name": "latency", "interval": "2s", "count": 3, "initialDelay": "6s",
        "metrics": [
            {
                "name": "mean-latency",
                "provider": {"prometheus": {
                    "address": prometheus,
                    "query": latency_query("{{canary}}"),
                    "baselineQuery": latency_query("{{baseline}}"),
                    "timeout": "1s"
                }},
                "relative": {"maxRegressionPercent": 50}
            },
            {
                "name": "latency-distribution",
                "provider": {"prometheus": {
                    "address": prometheus,
                    "query": latency_query("{{revision}}"),
                    "range": {"window": "20s", "step": "1s"},
                    "timeout": "1s"
                }},
                "statistical": {"mannWhitney": {"minEffectPercent": 50, "minSamples": 8}},
                "outliers": {"strategy": "Remove"}
            }
        ]
    });
    let steps = json!([
        {"setWeight": 25}, {"pause": {"duration": "4s"}}, {"setWeight": 50},
        {"analysis": {"template": "latency"}}
    ]);
    let manifest = |version: &str| {
        let mut m = safe_deployment(
            "web",
            replicas,
            &format!("registry.local/app:{version}"),
            Fault::None,
            steps.clone(),
        );
        m["spec"]["analyses"] = json!([analysis.clone()]);
        m["spec"]["strategy"]["canary"]["baseline"] = json!("Fresh");
        m
    };
    let stable = apply_stable(&ns, &manifest(&format!("v1-{run}")))
        .await
        .stable_revision
        .expect("stable revision");
    let selector = format!("{stable}-baseline");
    // Warm stable pods answer in 40 ms; the freshly started baseline of the same revision in
    // 100 ms, as does the canary. Against the stable the canary would be 150% worse.
    common::emitter_configure(&emitter, &stable, Some(0.0), Some(40.0), Some(40.0))
        .await
        .expect("emitter: stable");
    common::emitter_configure(&emitter, &selector, Some(0.0), Some(100.0), Some(40.0))
        .await
        .expect("emitter: baseline");
    let canary = start_canary(&ns, &manifest(&format!("v2-{run}")), 0.0, Some(100.0), 40.0).await;

    let rss: Api<ReplicaSet> = ns.api();
    let pods: Api<Pod> = ns.api();
    let is_baseline =
        |rs: &ReplicaSet| rs.labels().get(LABEL_ROLE).map(String::as_str) == Some("baseline");
    let mut operator = Some(operator);
    let mut restarted = false;
    let mut baseline_uid: Option<String> = None;
    let mut sizes_seen = std::collections::BTreeSet::new();
    let mut states = 0;
    let mut min_capacity = i32::MAX;
    let mut compared = None;
    let mut distribution = None;
    let done = loop {
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "no promotion in time"
        );
        let status = operator::status_now(&ns, "web").await;
        let list = rss.list(&ListParams::default()).await.expect("list");
        states += 1;
        // Capacity counts the stable and the canary only.
        let capacity: i32 = list
            .items
            .iter()
            .filter(|rs| !is_baseline(rs))
            .map(|rs| {
                rs.status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0)
            })
            .sum();
        min_capacity = min_capacity.min(capacity);
        let summary: Vec<String> = list
            .items
            .iter()
            .map(|rs| {
                let st = rs.status.clone().unwrap_or_default();
                format!(
                    "{}: spec {:?} ready {:?} available {:?}",
                    rs.name_any(),
                    rs.spec.as_ref().and_then(|s| s.replicas),
                    st.ready_replicas,
                    st.available_replicas
                )
            })
            .collect();
        assert!(
            capacity >= replicas,
            "available stable + canary {capacity} < {replicas}: {summary:?}; {:?} {:?}",
            status.phase,
            status.message
        );
        let baselines: Vec<&ReplicaSet> = list.items.iter().filter(|rs| is_baseline(rs)).collect();
        assert!(baselines.len() <= 1, "one baseline ReplicaSet at most");
        if let Some(b) = baselines.first() {
            let labels = b.labels();
            assert_eq!(labels.get(LABEL_REVISION), Some(&selector));
            let image = b
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .and_then(|p| p.containers[0].image.clone());
            assert_eq!(
                image.as_deref(),
                Some(format!("registry.local/app:v1-{run}").as_str()),
                "the baseline runs the stable template"
            );
            match &baseline_uid {
                None => baseline_uid = b.uid(),
                Some(uid) => assert_eq!(Some(uid), b.uid().as_ref(), "never recreated"),
            }
        }
        if let Some(b) = &status.baseline {
            let index = usize::try_from(status.current_step_index.unwrap_or(0)).unwrap_or(0);
            if status.canary_revision.is_some() && index < 4 {
                // At every step the baseline is sized as the canary.
                let canary_size = (replicas * status.canary_weight + 99) / 100;
                assert_eq!(b.replicas, canary_size, "{status:#?}");
                assert_eq!(b.selector, selector);
                assert_eq!(b.revision, stable);
                sizes_seen.insert(b.replicas);
            }
        }
        // The analysis step's measurements (cleared once the canary is promoted).
        for m in status.analysis_runs.iter().flat_map(|r| &r.measurements) {
            match m.metric.as_str() {
                "mean-latency" => compared = Some(m.clone()),
                "latency-distribution" => distribution = Some(m.clone()),
                _ => {}
            }
        }
        // Kill the operator once the baseline runs at the first step, and start another.
        if !restarted && status.baseline.as_ref().is_some_and(|b| b.ready == 1) {
            if let Some(op) = operator.take() {
                op.kill().await;
            }
            operator = Some(operator::Operator::start(&ns.name).await);
            restarted = true;
        }
        if status.phase == Phase::Healthy && status.stable_revision.as_deref() == Some(&canary) {
            break status;
        }
        assert_ne!(status.phase, Phase::Degraded, "{status:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(restarted, "the operator was restarted mid-rollout");
    assert_eq!(
        sizes_seen,
        [1, 2].into_iter().collect(),
        "baseline sizes at 25% and 50% of 4"
    );
    // The analysis compared the canary with the baseline's series (100 ms), not the stable's
    // (40 ms, against which the canary would have been 150% worse).
    let compared = compared.expect("a mean-latency measurement");
    let b = compared.baseline.expect("baseline value");
    assert!((0.08..0.12).contains(&b), "baseline mean {b}: {compared:?}");
    assert_eq!(compared.verdict, MetricVerdict::Pass, "{compared:?}");
    let distribution = distribution.expect("a latency-distribution measurement");
    assert_eq!(
        distribution.verdict,
        MetricVerdict::Pass,
        "{distribution:?}"
    );
    let removed = distribution
        .outliers_removed
        .expect("the outlier count is in the measurement");
    assert!(removed.baseline_samples >= 8, "{distribution:?}");
    println!(
        "MEASURED baseline comparison: mean latency canary {:?} vs baseline {b}; distribution {:?}",
        compared.value, distribution.message
    );
    let rendered = latency_query(&selector);
    let from_prometheus = common::prometheus_scalar(&rendered)
        .await
        .expect("query")
        .expect("the baseline's series");
    assert!(
        (0.07..0.13).contains(&from_prometheus),
        "baseline mean latency {from_prometheus}"
    );
    // After the promotion the baseline ReplicaSet and its pods are gone; it never was a revision.
    common::wait_until(Duration::from_secs(30), "the baseline to be gone", || {
        let rss = rss.clone();
        let pods = pods.clone();
        async move {
            let sets = rss
                .list(&ListParams::default().labels("safedeploy.dev/role=baseline"))
                .await?;
            let left = pods
                .list(&ListParams::default().labels("safedeploy.dev/role=baseline"))
                .await?;
            Ok((sets.items.is_empty() && left.items.is_empty()).then_some(()))
        }
    })
    .await;
    assert_eq!(done.baseline, None);
    assert_eq!(done.revisions.len(), 2, "{:?}", done.revisions);
    assert!(done.history.iter().all(|e| !e.hash.ends_with("-baseline")));
    let old = rss.list(&ListParams::default()).await.expect("list").items;
    assert!(
        old.iter()
            .any(|rs| rs.labels().get(LABEL_REVISION) == Some(&stable)),
        "the old stable revision is kept"
    );
    for version in [&stable, &selector, &canary] {
        common::emitter_remove(&emitter, version).await;
    }
    println!(
        "MEASURED fresh-baseline rollout: {:.1} s from v1 apply to v2 promoted and baseline gone, {states} states observed, minimum available stable+canary {min_capacity} of {replicas}",
        started.elapsed().as_secs_f64()
    );
    drop(operator);
}

/// The `kubernetes` provider on the real control plane: the canary's own pods against the fresh
/// baseline's, read from the operator's cache with no metrics system. A canary that starts as
/// fast as the baseline promotes; one whose pods take 6 s to become Ready (well inside the
/// built-in start-up gate's 10 s target, so only the analysis can catch it) fails the relative
/// check against the baseline's start within the second and is reverted, with both values in
/// status. A dry-run metric that is always critical is recorded and decides nothing.
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn the_kubernetes_provider_compares_the_canary_pods_with_the_baseline_pods() {
    let (ns, _operator) = setup("kubesig").await;
    let run = common::random_suffix(6);
    let analysis = json!({
        "name": "startup", "interval": "1s", "count": 2,
        "metrics": [
            {
                "name": "startup-latency",
                "provider": {"kubernetes": {"signal": "startupLatencySeconds"}},
                "relative": {"maxRegressionPercent": 100, "minAbsoluteChange": 2}
            },
            {
                "name": "restarts",
                "provider": {"kubernetes": {"signal": "restarts", "component": "main"}},
                "thresholds": {"target": 0, "acceptable": 0, "critical": 1}
            },
            {
                // Always critical (fewer than 1 restart, higher being better): a dry run, so
                // it is recorded and decides nothing.
                "name": "dry-run-inverted",
                "provider": {"kubernetes": {"signal": "restarts"}},
                "direction": "higherIsBetter",
                "thresholds": {"target": 10, "acceptable": 5, "critical": 1},
                "critical": true,
                "dryRun": true
            }
        ]
    });
    let steps = json!([{"setWeight": 50}, {"analysis": {"template": "startup"}}]);
    let manifest = |version: &str, fault: Fault| {
        let mut m = safe_deployment(
            "web",
            2,
            &format!("registry.local/app:{version}-{run}"),
            fault,
            steps.clone(),
        );
        m["spec"]["analyses"] = json!([analysis.clone()]);
        m["spec"]["strategy"]["canary"]["baseline"] = json!("Fresh");
        m
    };
    apply_stable(&ns, &manifest("v1", Fault::None)).await;

    // Follows a rollout to its end, keeping the last measurement of each metric.
    let follow = |version: &'static str, fault: Fault, end: Phase| {
        let ns = &ns;
        let manifest = &manifest;
        async move {
            apply(ns, &manifest(version, fault)).await.expect("apply");
            let canary = canary_hash(ns).await;
            let start = Instant::now();
            let mut last = std::collections::BTreeMap::new();
            loop {
                let status = operator::status_now(ns, "web").await;
                for m in status.analysis_runs.iter().flat_map(|r| &r.measurements) {
                    last.insert(m.metric.clone(), m.clone());
                }
                let settled = status.canary_revision.is_none() && status.phase == end;
                if settled {
                    return (canary, status, last);
                }
                assert!(
                    start.elapsed() < Duration::from_secs(90),
                    "{version}: not {end:?} in time: {status:#?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };

    let (good, status, measured) = follow("v2", Fault::None, Phase::Healthy).await;
    assert_eq!(status.stable_revision.as_deref(), Some(good.as_str()));
    let latency = measured.get("startup-latency").expect("measured");
    assert_eq!(latency.verdict, MetricVerdict::Pass, "{latency:?}");
    assert!(
        latency.baseline.is_some(),
        "compared with the baseline: {latency:?}"
    );
    assert_eq!(
        measured.get("restarts").map(|m| (m.value, m.verdict)),
        Some((Some(0.0), MetricVerdict::Pass))
    );
    let dry = measured
        .get("dry-run-inverted")
        .expect("the dry run is recorded");
    assert_eq!(dry.verdict, MetricVerdict::Critical, "{dry:?}");
    assert!(
        dry.message
            .as_deref()
            .unwrap_or_default()
            .contains("dry run"),
        "{dry:?}"
    );

    let (slow, status, measured) = follow("v3", Fault::ReadyAfterSeconds(6), Phase::Degraded).await;
    assert_eq!(status.stable_revision.as_deref(), Some(good.as_str()));
    let entry = status.history.last().expect("history");
    assert_eq!(
        (entry.hash.as_str(), entry.outcome.as_str()),
        (slow.as_str(), "Reverted")
    );
    assert!(entry.reason.contains("AnalysisFailed"), "{}", entry.reason);
    let latency = measured.get("startup-latency").expect("measured");
    let (canary_value, baseline_value) = (
        latency.value.unwrap_or_default(),
        latency.baseline.unwrap_or(f64::MAX),
    );
    println!(
        "MEASURED kubernetes provider: canary start-up {canary_value:.1} s against the fresh baseline's {baseline_value:.1} s: {:?}",
        latency.verdict
    );
    assert_eq!(latency.verdict, MetricVerdict::Fail, "{latency:?}");
    assert!(canary_value >= 5.0, "{latency:?}");
    assert!(baseline_value < 3.0, "{latency:?}");
}
