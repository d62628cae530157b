//! The minimum-traffic guard on the local control plane, with the real Prometheus scraping the
//! project's metrics emitter: a canary serving 0 errors of a handful of requests (an error ratio
//! that passes by itself) holds as Inconclusive with the traffic and the minimum in status, and
//! is promoted once its traffic reaches the minimum; a background analysis finding too little
//! traffic holds every weight increase; a web metric's guard reads the request count from the
//! canary's answer; traffic queries that PromQL answers with a
//! negative, huge, infinite, NaN or empty result never count as enough.

mod common;
mod operator;

use std::time::Duration;

use operator::{apply, apply_stable, safe_deployment, setup, wait_status};
use safedeploy::api::analysis::{AnalysisPhase, Measurement, MetricVerdict};
use safedeploy::api::{Phase, SafeDeployment, SafeDeploymentStatus};
use serde_json::{Value, json};

/// Requests of the emitter version `{{canary}}` over the last 5 s (scraped every second).
const CANARY_REQUESTS: &str =
    r#"sum(increase(safedeploy_demo_requests_total{version="{{canary}}"}[5s]))"#;
/// The per-series increase inside [`CANARY_REQUESTS`].
const CANARY_INCREASE: &str =
    r#"increase(safedeploy_demo_requests_total{version="{{canary}}"}[5s])"#;

/// The canary's error ratio over 4 s, guarded by `traffic_query` with `minimum`.
fn guarded_error_ratio(name: &str, traffic_query: &str, minimum: f64) -> Value {
    json!({
        "name": name,
        "provider": {"prometheus": {
            "address": common::prometheus_url(),
            "query": "sum(rate(safedeploy_demo_errors_total{version=\"{{canary}}\"}[4s])) / sum(rate(safedeploy_demo_requests_total{version=\"{{canary}}\"}[4s]))",
            "timeout": "2s"
        }},
        "thresholds": {"target": 0.005, "acceptable": 0.01, "critical": 0.02},
        "minimumTraffic": {"query": traffic_query, "minimum": minimum},
    })
}

/// A SafeDeployment `web` whose image tag `version` is unique to the test run, gated at its
/// second step by the analysis `errors` of `metrics` (2 measurements 1 s apart).
fn manifest(version: &str, metrics: Value) -> Value {
    let steps =
        json!([{"setWeight": 50}, {"analysis": {"template": "errors"}}, {"setWeight": 100}]);
    let mut manifest = safe_deployment(
        "web",
        2,
        &format!("registry.local/app:{version}"),
        common::Fault::None,
        steps,
    );
    manifest["spec"]["analyses"] =
        json!([{"name": "errors", "interval": "1s", "count": 2, "metrics": metrics}]);
    manifest
}

/// Applies the next revision and lets the emitter serve its canary `rps` requests a second
/// without errors; returns the canary's hash.
async fn start_canary(ns: &common::TestNamespace, manifest: &Value, rps: f64) -> String {
    apply(ns, manifest).await.expect("apply the next revision");
    let canary = wait_status(ns, "web", Duration::from_secs(60), "a canary", |s| {
        s.canary_revision.is_some()
    })
    .await
    .canary_revision
    .unwrap_or_default();
    common::emitter_configure(&common::emitter_url(), &canary, Some(0.0), None, Some(rps))
        .await
        .expect("emitter version for the canary");
    canary
}

fn measurements(status: &SafeDeploymentStatus) -> impl Iterator<Item = &Measurement> {
    status.analysis_runs.iter().flat_map(|r| &r.measurements)
}

/// Waits until the rollout is held `Inconclusive` with measurements that satisfy `recorded`.
async fn wait_held(
    ns: &common::TestNamespace,
    what: &str,
    recorded: impl Fn(&SafeDeploymentStatus) -> bool,
) -> SafeDeploymentStatus {
    wait_status(ns, "web", Duration::from_secs(60), what, |s| {
        s.phase == Phase::Inconclusive && recorded(s)
    })
    .await
}

/// Raises the canary's traffic to 200 requests a second and waits for its promotion.
async fn promoted_once_traffic_comes(
    ns: &common::TestNamespace,
    canary: &str,
) -> SafeDeploymentStatus {
    common::emitter_configure(&common::emitter_url(), canary, None, None, Some(200.0))
        .await
        .expect("more traffic");
    wait_status(
        ns,
        "web",
        Duration::from_secs(90),
        "the promotion once the canary has traffic",
        |s| s.phase == Phase::Healthy && s.stable_revision.as_deref() == Some(canary),
    )
    .await
}

async fn current(ns: &common::TestNamespace) -> SafeDeploymentStatus {
    ns.api::<SafeDeployment>()
        .get("web")
        .await
        .expect("get")
        .status
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the local control plane and Prometheus (e2e/cluster.sh up --with-prometheus)"]
async fn a_canary_without_enough_traffic_holds_until_its_traffic_reaches_the_minimum() {
    let (ns, _operator) = setup("traffic").await;
    let run = common::random_suffix(6);
    let metrics = json!([guarded_error_ratio("error-ratio", CANARY_REQUESTS, 100.0)]);
    let v1 = apply_stable(&ns, &manifest(&format!("v1-{run}"), metrics.clone()))
        .await
        .stable_revision;
    // 2 requests a second: about 10 in the 5 s window, a tenth of the minimum, all good.
    let canary = start_canary(&ns, &manifest(&format!("v2-{run}"), metrics), 2.0).await;

    let thin = |m: &Measurement| {
        m.verdict == MetricVerdict::InsufficientTraffic
            && m.traffic.is_some_and(|t| t > 0.0 && t < 100.0)
    };
    let held = wait_held(
        &ns,
        "an Inconclusive hold that names the canary's traffic",
        |s| {
            s.analysis_runs
                .iter()
                .any(|r| r.measurements.iter().any(thin))
        },
    )
    .await;
    assert_eq!(held.stable_revision, v1, "not promoted");
    assert_eq!(
        held.current_step_index,
        Some(1),
        "held at the analysis step"
    );
    let message = held.message.clone().unwrap_or_default();
    assert!(message.contains("too little canary traffic"), "{message}");
    let run_message = held
        .analysis_runs
        .iter()
        .find(|r| r.phase == AnalysisPhase::Inconclusive)
        .and_then(|r| r.message.clone())
        .unwrap_or_default();
    assert!(
        run_message.contains("is below the minimum, minimumTraffic.minimum is 100"),
        "{run_message}"
    );
    // The error ratio alone would have passed: it was read, and it was on target.
    assert!(
        measurements(&held).any(|m| thin(m) && m.value == Some(0.0)),
        "{:#?}",
        held.analysis_runs
    );
    println!(
        "held: {:?}",
        measurements(&held)
            .filter(|m| thin(m))
            .map(|m| (m.value, m.traffic))
            .collect::<Vec<_>>()
    );

    // Still held a while later (the runs are retried each interval, and keep finding too little).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let still = current(&ns).await;
    assert_eq!(still.stable_revision, v1);
    assert_eq!(still.current_step_index, Some(1));
    assert!(
        measurements(&still).all(|m| m.verdict != MetricVerdict::Pass),
        "{:#?}",
        still.analysis_runs
    );

    // The traffic comes (200 requests a second, about 1000 in the window): promoted.
    let more_traffic_at = std::time::Instant::now();
    let promoted = promoted_once_traffic_comes(&ns, &canary).await;
    assert_eq!(promoted.stable_revision.as_deref(), Some(canary.as_str()));
    println!(
        "promoted {:.1} s after the canary's traffic rose",
        more_traffic_at.elapsed().as_secs_f64()
    );
    common::emitter_remove(&common::emitter_url(), &canary).await;
}

/// Background analysis (issue 12's "background analysis with no data promotes", with traffic
/// instead of data): a running analysis whose measurements find too little traffic is no
/// evidence, so no weight increase and no promotion, until the traffic comes.
#[tokio::test]
#[ignore = "needs the local control plane and Prometheus (e2e/cluster.sh up --with-prometheus)"]
async fn background_analysis_with_too_little_traffic_holds_every_weight_increase() {
    let (ns, _operator) = setup("traffic-bg").await;
    let run = common::random_suffix(6);
    let background = |version: &str| {
        let mut m = manifest(
            version,
            json!([guarded_error_ratio("error-ratio", CANARY_REQUESTS, 100.0)]),
        );
        m["spec"]["analyses"][0]["count"] = json!(1000);
        m["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 25}, {"setWeight": 50}]);
        m["spec"]["strategy"]["canary"]["backgroundAnalysis"] = json!("errors");
        m
    };
    let v1 = apply_stable(&ns, &background(&format!("v1-{run}")))
        .await
        .stable_revision;
    let canary = start_canary(&ns, &background(&format!("v2-{run}")), 2.0).await;
    let held = wait_status(
        &ns,
        "web",
        Duration::from_secs(60),
        "a hold that names the canary's thin traffic",
        |s| {
            s.message
                .as_deref()
                .is_some_and(|m| m.contains("too little canary traffic"))
                && measurements(s).any(|m| m.traffic.is_some_and(|t| t > 0.0 && t < 100.0))
        },
    )
    .await;
    let message = held.message.clone().unwrap_or_default();
    assert!(
        message.contains("background analysis errors has no passing measurement"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let still = current(&ns).await;
    assert_eq!(still.stable_revision, v1, "not promoted");
    assert_eq!(
        still.current_step_index,
        Some(0),
        "no weight increase past the first step"
    );
    assert!(
        measurements(&still).all(|m| m.verdict != MetricVerdict::Pass),
        "{:#?}",
        still.analysis_runs
    );
    promoted_once_traffic_comes(&ns, &canary).await;
    common::emitter_remove(&common::emitter_url(), &canary).await;
}

/// A web metric's guard reads the traffic from the canary's own answer (`jsonPath`): an SLO
/// endpoint (served by the test) reporting a perfect success rate over 3 requests holds the
/// canary; over 1000 it is promoted.
#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn a_web_metric_guarded_by_its_answers_request_count_holds_then_promotes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let (ns, _operator) = setup("traffic-web").await;
    let requests = Arc::new(AtomicU64::new(3));
    let served = requests.clone();
    let app = axum::Router::new().route(
        "/slo",
        axum::routing::get(move || {
            let requests = served.load(Ordering::SeqCst);
            async move { axum::Json(json!({"successRate": 100.0, "requests": requests})) }
        }),
    );
    let addr = common::serve(app).await;
    let metrics = json!([{
        "name": "success-rate",
        "provider": {"web": {"url": format!("http://{addr}/slo?rev={{{{canary}}}}"), "jsonPath": "$.successRate"}},
        "direction": "higherIsBetter",
        "thresholds": {"target": 99.9, "acceptable": 99.5, "critical": 98.0},
        "minimumTraffic": {"jsonPath": "$.requests", "minimum": 100},
    }]);
    let run = common::random_suffix(6);
    let v1 = apply_stable(&ns, &manifest(&format!("v1-{run}"), metrics.clone()))
        .await
        .stable_revision;
    apply(&ns, &manifest(&format!("v2-{run}"), metrics))
        .await
        .expect("v2");
    let held = wait_held(
        &ns,
        "an Inconclusive hold with the answer's request count",
        |s| {
            measurements(s).any(|m| {
                m.verdict == MetricVerdict::InsufficientTraffic
                    && m.value == Some(100.0)
                    && m.traffic == Some(3.0)
            })
        },
    )
    .await;
    assert_eq!(held.stable_revision, v1, "not promoted");
    assert_eq!(held.current_step_index, Some(1));
    requests.store(1000, Ordering::SeqCst);
    wait_status(
        &ns,
        "web",
        Duration::from_secs(60),
        "the promotion once the answer reports enough requests",
        |s| s.phase == Phase::Healthy && s.stable_revision != v1,
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane and Prometheus (e2e/cluster.sh up --with-prometheus)"]
async fn traffic_queries_answering_negative_huge_infinite_nan_or_empty_never_count_as_enough() {
    let (ns, _operator) = setup("traffic-hostile").await;
    let run = common::random_suffix(6);
    let requests = CANARY_INCREASE;
    let hostile = [
        ("negative", format!("-1 * sum({requests})")),
        ("huge", format!("1e300 * sum({requests})")),
        ("infinite", format!("sum({requests}) / 0")),
        ("nan", format!("(sum({requests}) - sum({requests})) / 0")),
        (
            "empty",
            CANARY_REQUESTS.replace(
                r#"version="{{canary}}""#,
                r#"version="{{canary}}", absent="x""#,
            ),
        ),
    ];
    let metrics: Vec<Value> = hostile
        .iter()
        .map(|(name, query)| guarded_error_ratio(name, query, 1.0))
        .collect();
    let metrics = Value::Array(metrics);
    let v1 = apply_stable(&ns, &manifest(&format!("v1-{run}"), metrics.clone()))
        .await
        .stable_revision;
    // Plenty of real traffic: only the broken traffic answers stand in the way.
    let canary = start_canary(&ns, &manifest(&format!("v2-{run}"), metrics), 200.0).await;
    // Wait until the error ratio itself is read (the emitter's series are scraped) and passes.
    let held = wait_held(
        &ns,
        "Inconclusive runs that read the canary's error ratio",
        |s| {
            hostile
                .iter()
                .all(|(name, _)| measurements(s).any(|m| m.metric == *name && m.value == Some(0.0)))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still = current(&ns).await;
    for status in [&held, &still] {
        assert_eq!(status.stable_revision, v1, "never promoted");
        assert_eq!(status.current_step_index, Some(1));
        for m in measurements(status) {
            assert_eq!(m.verdict, MetricVerdict::InsufficientTraffic, "{m:#?}");
            assert!(m.traffic.is_none_or(f64::is_finite), "{m:#?}");
        }
    }
    let traffic_of = |name: &str| {
        measurements(&still)
            .filter(|m| m.metric == name && m.value == Some(0.0))
            .map(|m| m.traffic)
            .last()
            .flatten()
    };
    assert!(traffic_of("negative").is_some_and(|t| t < 0.0));
    assert!(traffic_of("huge").is_some_and(|t| t > 1e15));
    assert_eq!(traffic_of("infinite"), None);
    assert_eq!(traffic_of("nan"), None);
    assert_eq!(traffic_of("empty"), None);
    common::emitter_remove(&common::emitter_url(), &canary).await;
}
