//! Provider tests: Prometheus answer parsing against the API's documented JSON formats, and the
//! HTTP clients against local axum servers on 127.0.0.1 (a fake Prometheus API and a JSON
//! endpoint).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use jiff::Timestamp;

use super::prometheus::{QueryResult, parse_response};
use super::*;
use crate::analysis::run::{self, RunOutcome};
use crate::api::analysis::{
    HeadersFrom, HttpHeader, HttpMethod, MannWhitneySpec, MetricThresholds, Provider, RangeSpec,
    RelativeCheck, SecretRef, StatisticalCheck,
};

// --- Parsing of Prometheus answers (formats as documented for the HTTP API) ---

const JSON: Option<&str> = Some("application/json");

#[test]
fn parses_an_instant_vector() {
    let body = br#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"__name__":"up","job":"prometheus","instance":"localhost:9090"},"value":[1435781451.781,"1"]},
        {"metric":{"__name__":"up","job":"node","instance":"localhost:9100"},"value":[1435781451.781,"0"]}]}}"#;
    let result = parse_response(200, JSON, body).unwrap();
    assert_eq!(result, QueryResult::Vector(vec![1.0, 0.0]));
    assert!(
        matches!(result.single_value("up"), Err(ProviderError::Parse(m)) if m.contains("2 series"))
    );
    assert_eq!(result.samples("up"), Ok(vec![1.0, 0.0]));
}

#[test]
fn parses_scalars_nan_and_infinities() {
    let scalar =
        br#"{"status":"success","data":{"resultType":"scalar","result":[1435781451.781,"42.5"]}}"#;
    assert_eq!(
        parse_response(200, JSON, scalar).unwrap().single_value("q"),
        Ok(42.5)
    );
    let nan = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"NaN"]}]}}"#;
    assert!(
        parse_response(200, JSON, nan)
            .unwrap()
            .single_value("q")
            .unwrap()
            .is_nan()
    );
    let inf = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"+Inf"]}]}}"#;
    assert_eq!(
        parse_response(200, JSON, inf).unwrap().single_value("q"),
        Ok(f64::INFINITY)
    );
    let neg =
        br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"-Inf"]}}"#;
    assert_eq!(
        parse_response(200, JSON, neg).unwrap().single_value("q"),
        Ok(f64::NEG_INFINITY)
    );
    let exp =
        br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"1.5e-3"]}}"#;
    assert_eq!(
        parse_response(200, JSON, exp).unwrap().single_value("q"),
        Ok(0.0015)
    );
}

#[test]
fn parses_a_range_matrix_into_samples() {
    let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{"__name__":"up","job":"prometheus","instance":"localhost:9090"},"values":[[1435781430.781,"1"],[1435781445.781,"1"],[1435781460.781,"1"]]},
        {"metric":{"__name__":"up","job":"node","instance":"localhost:9091"},"values":[[1435781430.781,"0"],[1435781445.781,"0"],[1435781460.781,"1"]]}]}}"#;
    let result = parse_response(200, JSON, body).unwrap();
    assert_eq!(result.samples("up"), Ok(vec![1.0, 1.0, 1.0, 0.0, 0.0, 1.0]));
    assert!(matches!(
        result.single_value("up"),
        Err(ProviderError::Parse(_))
    ));
}

#[test]
fn empty_results_are_no_data() {
    let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
    let result = parse_response(200, JSON, empty).unwrap();
    assert!(matches!(
        result.single_value("q"),
        Err(ProviderError::NoData(_))
    ));
    assert!(matches!(result.samples("q"), Err(ProviderError::NoData(_))));
    let empty_matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
    assert!(matches!(
        parse_response(200, JSON, empty_matrix)
            .unwrap()
            .samples("q"),
        Err(ProviderError::NoData(_))
    ));
}

#[test]
fn error_answers_are_bad_status_with_the_error_type_but_not_the_error_text() {
    let body = br#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:1: parse error: unexpected end of input"}"#;
    let Err(ProviderError::BadStatus { status, message }) = parse_response(400, JSON, body) else {
        panic!("not a bad status");
    };
    assert_eq!(status, 400);
    assert!(message.starts_with("errorType bad_data"), "{message}");
    assert!(
        message.ends_with(&format!(
            "content type application/json, {} bytes",
            body.len()
        )),
        "{message}"
    );
    assert!(!message.contains("parse error"), "{message}");
    let timeout = br#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#;
    assert!(
        matches!(parse_response(503, JSON, timeout), Err(ProviderError::BadStatus { status: 503, message }) if message.starts_with("errorType timeout") && !message.contains("expression"))
    );
    // An errorType Prometheus does not document is not repeated either.
    let odd = br#"{"status":"error","errorType":"hunter2","error":"x"}"#;
    assert!(
        matches!(parse_response(400, JSON, odd), Err(ProviderError::BadStatus { message, .. }) if !message.contains("hunter2"))
    );
    // A proxy in front answering HTML.
    assert_eq!(
        parse_response(
            502,
            Some("text/html; charset=utf-8"),
            b"<html>Bad Gateway</html>"
        ),
        Err(ProviderError::BadStatus {
            status: 502,
            message: "content type text/html, 24 bytes".into()
        })
    );
    // Garbage with 200 is a parse error.
    assert!(matches!(
        parse_response(200, JSON, b"not json"),
        Err(ProviderError::Parse(_))
    ));
    assert!(matches!(
        parse_response(200, JSON, br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}"#),
        Err(ProviderError::Parse(_))
    ));
}

#[test]
fn native_histograms_are_refused_with_a_hint() {
    let body = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1700000000,{"count":"10","sum":"3.5","buckets":[[0,"0.1","0.2","4"]]}]}]}}"#;
    assert!(matches!(
        parse_response(200, JSON, body),
        Err(ProviderError::Parse(m)) if m.contains("histogram_quantile")
    ));
}

// --- Local servers ---

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

fn vector(value: &str) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"app":"checkout"}},"value":[1700000000.5,"{value}"]}}]}}}}"#
    )
}

/// A fake Prometheus under `/prom`: the value depends on the revision in the query.
fn fake_prometheus() -> Router {
    let query = |Query(params): Query<HashMap<String, String>>| async move {
        let q = params.get("query").cloned().unwrap_or_default();
        if q.contains("syntax error(") {
            return (
                StatusCode::BAD_REQUEST,
                r#"{"status":"error","errorType":"bad_data","error":"1:14: parse error: unclosed left parenthesis"}"#
                    .to_string(),
            );
        }
        if q.contains("slow") {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        if q.contains("missing") {
            return (
                StatusCode::OK,
                r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.to_string(),
            );
        }
        let value = if q.contains(r#"rev="canary-hash""#) {
            "0.12"
        } else if q.contains(r#"rev="stable-hash""#) {
            "0.10"
        } else {
            "NaN"
        };
        (StatusCode::OK, vector(value))
    };
    let query_range = |Query(params): Query<HashMap<String, String>>| async move {
        let q = params.get("query").cloned().unwrap_or_default();
        let start: f64 = params
            .get("start")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        let end: f64 = params
            .get("end")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        let step: f64 = params
            .get("step")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        if step <= 0.0 || end <= start {
            return (
                StatusCode::BAD_REQUEST,
                r#"{"status":"error","errorType":"bad_data","error":"bad range"}"#.to_string(),
            );
        }
        // One point per step; the canary is 10% slower.
        let base = if q.contains(r#"rev="canary-hash""#) {
            110.0
        } else {
            100.0
        };
        let points: Vec<String> = (0..)
            .map(|i| start + step * f64::from(i))
            .take_while(|t| *t <= end)
            .enumerate()
            .map(|(i, t)| {
                let wobble = ((i * 37) % 21) as f64 - 10.0;
                format!(r#"[{t},"{}"]"#, base + wobble)
            })
            .collect();
        (
            StatusCode::OK,
            format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[{}]}}]}}}}"#,
                points.join(",")
            ),
        )
    };
    Router::new()
        .route("/prom/api/v1/query", get(query))
        .route("/prom/api/v1/query_range", get(query_range))
}

fn vars() -> QueryVars {
    QueryVars {
        canary: "canary-hash".into(),
        stable: "stable-hash".into(),
        baseline: "stable-hash".into(),
        namespace: "shop".into(),
        name: "checkout".into(),
    }
}

fn now() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

/// Measures `metric` now, with no Secrets and no pods.
async fn measure_now(providers: &Providers, metric: &MetricSpec) -> MetricObservation {
    measure_with(
        providers,
        metric,
        &SecretHeaders::new(),
        &SidePods::default(),
    )
    .await
}

/// Measures `metric` now, with these Secrets and pods.
async fn measure_with(
    providers: &Providers,
    metric: &MetricSpec,
    secrets: &SecretHeaders,
    pods: &SidePods,
) -> MetricObservation {
    providers
        .measure(metric, &vars(), secrets, &Egress::Any, pods, now())
        .await
}

fn prometheus_metric(addr: SocketAddr, query: &str) -> MetricSpec {
    MetricSpec {
        name: "latency".into(),
        provider: Provider {
            prometheus: Some(PrometheusProvider {
                address: format!("http://{addr}/prom/"),
                query: query.into(),
                timeout: Some("500ms".into()),
                ..PrometheusProvider::default()
            }),
            web: None,
            kubernetes: None,
        },
        thresholds: Some(MetricThresholds {
            target: 0.1,
            acceptable: 0.2,
            critical: 0.5,
        }),
        ..MetricSpec::default()
    }
}

const LATENCY: &str = r#"latency{namespace="{{namespace}}",app="{{name}}",rev="{{revision}}"}"#;

#[tokio::test]
async fn prometheus_instant_values_for_canary_and_baseline() {
    let addr = serve(fake_prometheus()).await;
    let providers = Providers::new().unwrap();
    let mut metric = prometheus_metric(addr, LATENCY);
    metric.relative = Some(RelativeCheck {
        max_regression_percent: 10.0,
        ..RelativeCheck::default()
    });
    let obs = measure_now(&providers, &metric).await;
    assert_eq!(obs.metric, "latency");
    assert_eq!(obs.canary, Some(Ok(0.12)));
    assert_eq!(obs.baseline, Some(Ok(0.10)));
    assert_eq!(obs.canary_samples, None);
    // 20% worse than the baseline: the relative check fails, thresholds alone would pass.
    let j = crate::analysis::judge::judge_metric(&metric, Some(&obs));
    assert_eq!(j.verdict, crate::api::analysis::MetricVerdict::Fail);
}

#[tokio::test]
async fn prometheus_baseline_query_overrides_the_revision_binding() {
    let addr = serve(fake_prometheus()).await;
    let providers = Providers::new().unwrap();
    let mut metric = prometheus_metric(addr, r#"latency{rev="{{canary}}"}"#);
    metric.relative = Some(RelativeCheck {
        max_regression_percent: 50.0,
        ..RelativeCheck::default()
    });
    if let Some(p) = metric.provider.prometheus.as_mut() {
        p.baseline_query = Some(r#"latency{rev="{{stable}}"}"#.into());
    }
    let obs = measure_now(&providers, &metric).await;
    assert_eq!((obs.canary, obs.baseline), (Some(Ok(0.12)), Some(Ok(0.10))));
}

#[tokio::test]
async fn prometheus_range_query_gives_samples_for_the_statistical_judge() {
    let addr = serve(fake_prometheus()).await;
    let providers = Providers::new().unwrap();
    let mut metric = prometheus_metric(addr, LATENCY);
    metric.thresholds = None;
    metric.statistical = Some(StatisticalCheck {
        mann_whitney: MannWhitneySpec::default(),
    });
    if let Some(p) = metric.provider.prometheus.as_mut() {
        p.range = Some(RangeSpec {
            window: "10m".into(),
            step: "5s".into(),
        });
    }
    let obs = measure_now(&providers, &metric).await;
    let canary = obs.canary_samples.clone().unwrap().unwrap();
    let baseline = obs.baseline_samples.clone().unwrap().unwrap();
    assert_eq!(canary.len(), 121, "10m every 5s, both ends included");
    assert_eq!(baseline.len(), 121);
    assert_eq!(obs.canary, None);
    let j = crate::analysis::judge::judge_metric(&metric, Some(&obs));
    assert_eq!(
        j.verdict,
        crate::api::analysis::MetricVerdict::Fail,
        "{j:?}"
    );
}

#[tokio::test]
async fn prometheus_errors_are_typed() {
    let addr = serve(fake_prometheus()).await;
    let providers = Providers::new().unwrap();

    let bad = prometheus_metric(addr, "sum(syntax error(");
    let obs = measure_now(&providers, &bad).await;
    assert!(
        matches!(&obs.canary, Some(Err(ProviderError::BadStatus { status: 400, message })) if message.contains("errorType bad_data") && !message.contains("parenthesis")),
        "{obs:?}"
    );

    let missing = prometheus_metric(addr, "missing_metric");
    let obs = measure_now(&providers, &missing).await;
    assert!(
        matches!(obs.canary, Some(Err(ProviderError::NoData(_)))),
        "{obs:?}"
    );

    let nan = prometheus_metric(addr, "ratio_without_traffic");
    let obs = measure_now(&providers, &nan).await;
    assert!(matches!(obs.canary, Some(Ok(v)) if v.is_nan()), "{obs:?}");

    let slow = prometheus_metric(addr, "slow");
    let started = std::time::Instant::now();
    let obs = measure_now(&providers, &slow).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout was not applied"
    );
    assert!(
        matches!(obs.canary, Some(Err(ProviderError::Unreachable(ref m))) if m.contains("timed out")),
        "{obs:?}"
    );

    let unknown = prometheus_metric(addr, "latency{pod=\"{{pod}}\"}");
    let obs = measure_now(&providers, &unknown).await;
    assert!(
        matches!(obs.canary, Some(Err(ProviderError::Config(_)))),
        "{obs:?}"
    );
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

#[tokio::test]
async fn an_unreachable_prometheus_never_leads_to_a_promotion() {
    let addr = closed_port().await;
    let providers = Providers::new().unwrap();
    let template = AnalysisTemplate {
        name: "latency".into(),
        interval: Some("10s".into()),
        count: Some(3),
        metrics: vec![prometheus_metric(addr, LATENCY)],
        ..AnalysisTemplate::default()
    };
    let mut status = run::start(&template, Some("canary-hash"), None, now());
    let mut outcomes = Vec::new();
    for i in 0..3 {
        let at = now()
            .checked_add(jiff::SignedDuration::from_secs(10 * i))
            .unwrap();
        let obs = providers
            .measure_template(
                &template,
                &vars(),
                &SecretHeaders::new(),
                &Egress::Any,
                &SidePods::default(),
                at,
            )
            .await;
        assert!(
            matches!(obs[0].canary, Some(Err(ProviderError::Unreachable(_)))),
            "{obs:?}"
        );
        outcomes.push(run::advance(&template, &mut status, &obs, at));
    }
    assert!(!outcomes.contains(&RunOutcome::Passed), "{outcomes:?}");
    assert!(
        matches!(outcomes[2], RunOutcome::Inconclusive { .. }),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_run_against_a_healthy_prometheus_passes() {
    let addr = serve(fake_prometheus()).await;
    let providers = Providers::new().unwrap();
    let template = AnalysisTemplate {
        name: "latency".into(),
        count: Some(2),
        metrics: vec![prometheus_metric(addr, LATENCY)],
        ..AnalysisTemplate::default()
    };
    let mut status = run::start(&template, Some("canary-hash"), None, now());
    let obs = providers
        .measure_template(
            &template,
            &vars(),
            &SecretHeaders::new(),
            &Egress::Any,
            &SidePods::default(),
            now(),
        )
        .await;
    let first = run::advance(&template, &mut status, &obs, now());
    let RunOutcome::Continue { next_at } = first else {
        panic!("{first:?}");
    };
    let obs = providers
        .measure_template(
            &template,
            &vars(),
            &SecretHeaders::new(),
            &Egress::Any,
            &SidePods::default(),
            next_at,
        )
        .await;
    assert_eq!(
        run::advance(&template, &mut status, &obs, next_at),
        RunOutcome::Passed
    );
    assert_eq!(status.measurements[0].value, Some(0.12));
}

// --- Web provider ---

fn fake_web() -> Router {
    let stats = |headers: HeaderMap, Query(params): Query<HashMap<String, String>>| async move {
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer s3cret") {
            return (
                StatusCode::UNAUTHORIZED,
                r#"{"error":"no token"}"#.to_string(),
            );
        }
        let rev = params.get("rev").cloned().unwrap_or_default();
        let p99 = if rev == "canary-hash" { 0.25 } else { 0.2 };
        (
            StatusCode::OK,
            format!(
                r#"{{"data":{{"p99":{p99},"asText":"0.3","nan":"NaN","nothing":null,"flag":true,"samples":[1,2,3,"4"],"byPod":[{{"v":5}},{{"v":6}}]}}}}"#
            ),
        )
    };
    let echo = |headers: HeaderMap, body: String| async move {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let rev = parsed["revision"].as_str().unwrap_or("").to_string();
        let value = if rev == "canary-hash" && content_type == "application/json" {
            1.0
        } else {
            -1.0
        };
        (StatusCode::OK, format!(r#"{{"value":{value}}}"#))
    };
    Router::new()
        .route("/stats", get(stats))
        .route("/query", post(echo))
        .route(
            "/down",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "maintenance") }),
        )
        .route("/html", get(|| async { "<html>not json</html>" }))
}

fn web_metric(url: String, json_path: &str) -> MetricSpec {
    MetricSpec {
        name: "web".into(),
        provider: Provider {
            prometheus: None,
            web: Some(WebProvider {
                url,
                json_path: json_path.into(),
                headers_from: Some(HeadersFrom {
                    secret_ref: SecretRef {
                        name: "stats-token".into(),
                    },
                }),
                timeout: Some("1s".into()),
                ..WebProvider::default()
            }),
            kubernetes: None,
        },
        thresholds: Some(MetricThresholds {
            target: 0.1,
            acceptable: 0.3,
            critical: 1.0,
        }),
        ..MetricSpec::default()
    }
}

fn secrets() -> SecretHeaders {
    BTreeMap::from([(
        "stats-token".to_string(),
        Ok(BTreeMap::from([(
            "Authorization".to_string(),
            "Bearer s3cret".to_string(),
        )])),
    )])
}

async fn canary_value(
    providers: &Providers,
    metric: &MetricSpec,
    secrets: &SecretHeaders,
) -> Option<ValueReading> {
    measure_with(providers, metric, secrets, &SidePods::default())
        .await
        .canary
}

#[tokio::test]
async fn web_get_with_secret_headers_and_json_path() {
    let addr = serve(fake_web()).await;
    let providers = Providers::new().unwrap();
    let url = format!("http://{addr}/stats?rev={{{{revision}}}}");
    let mut metric = web_metric(url.clone(), "$.data.p99");
    metric.relative = Some(RelativeCheck {
        max_regression_percent: 10.0,
        ..RelativeCheck::default()
    });
    let obs = measure_with(&providers, &metric, &secrets(), &SidePods::default()).await;
    assert_eq!(
        (obs.canary.clone(), obs.baseline.clone()),
        (Some(Ok(0.25)), Some(Ok(0.2)))
    );

    let value = |path: &str| web_metric(url.clone(), path);
    assert_eq!(
        canary_value(&providers, &value("$.data.asText"), &secrets()).await,
        Some(Ok(0.3))
    );
    assert!(
        matches!(canary_value(&providers, &value("$.data.nan"), &secrets()).await, Some(Ok(v)) if v.is_nan())
    );
    assert!(matches!(
        canary_value(&providers, &value("$.data.nothing"), &secrets()).await,
        Some(Err(ProviderError::NoData(_)))
    ));
    assert!(matches!(
        canary_value(&providers, &value("$.data.absent"), &secrets()).await,
        Some(Err(ProviderError::NoData(_)))
    ));
    assert!(matches!(
        canary_value(&providers, &value("$.data.flag"), &secrets()).await,
        Some(Err(ProviderError::Parse(_)))
    ));
    assert!(
        matches!(canary_value(&providers, &value("$.data.samples"), &secrets()).await, Some(Err(ProviderError::Parse(m))) if m.contains("4 values"))
    );
    assert!(matches!(
        canary_value(&providers, &value("$.data[?"), &secrets()).await,
        Some(Err(ProviderError::Config(_)))
    ));

    // Samples: arrays are flattened, filters and wildcards select several nodes.
    let mut samples = value("$.data.samples");
    samples.thresholds = None;
    samples.statistical = Some(StatisticalCheck {
        mann_whitney: MannWhitneySpec::default(),
    });
    let obs = measure_with(&providers, &samples, &secrets(), &SidePods::default()).await;
    assert_eq!(obs.canary_samples, Some(Ok(vec![1.0, 2.0, 3.0, 4.0])));
    samples.provider.web.as_mut().unwrap().json_path = "$.data.byPod[*].v".into();
    let obs = measure_with(&providers, &samples, &secrets(), &SidePods::default()).await;
    assert_eq!(obs.baseline_samples, Some(Ok(vec![5.0, 6.0])));
}

#[tokio::test]
async fn web_errors_are_typed() {
    let addr = serve(fake_web()).await;
    let providers = Providers::new().unwrap();
    let stats = format!("http://{addr}/stats?rev={{{{revision}}}}");
    // Without the Secret's header the endpoint refuses.
    let mut plain = web_metric(stats.clone(), "$.data.p99");
    plain.provider.web.as_mut().unwrap().headers_from = None;
    assert!(matches!(
        canary_value(&providers, &plain, &secrets()).await,
        Some(Err(ProviderError::BadStatus { status: 401, .. }))
    ));
    // A plain header works as well.
    plain.provider.web.as_mut().unwrap().headers = vec![HttpHeader {
        name: "Authorization".into(),
        value: "Bearer s3cret".into(),
    }];
    assert_eq!(
        canary_value(&providers, &plain, &secrets()).await,
        Some(Ok(0.25))
    );
    // The Secret was not resolved by the controller.
    let metric = web_metric(stats, "$.data.p99");
    assert!(matches!(
        canary_value(&providers, &metric, &SecretHeaders::new()).await,
        Some(Err(ProviderError::Config(m))) if m.contains("stats-token")
    ));
    assert!(matches!(
        canary_value(&providers, &web_metric(format!("http://{addr}/down"), "$.v"), &secrets()).await,
        Some(Err(ProviderError::BadStatus { status: 503, message })) if message == "content type text/plain, 11 bytes"
    ));
    assert!(matches!(
        canary_value(
            &providers,
            &web_metric(format!("http://{addr}/html"), "$.v"),
            &secrets()
        )
        .await,
        Some(Err(ProviderError::Parse(_)))
    ));
    let closed = closed_port().await;
    assert!(matches!(
        canary_value(
            &providers,
            &web_metric(format!("http://{closed}/stats"), "$.v"),
            &secrets()
        )
        .await,
        Some(Err(ProviderError::Unreachable(_)))
    ));
}

#[tokio::test]
async fn web_post_sends_the_rendered_body_as_json() {
    let addr = serve(fake_web()).await;
    let providers = Providers::new().unwrap();
    let mut metric = web_metric(format!("http://{addr}/query"), "$.value");
    if let Some(w) = metric.provider.web.as_mut() {
        w.method = Some(HttpMethod::Post);
        w.body = Some(r#"{"revision":"{{revision}}","namespace":"{{namespace}}"}"#.into());
    }
    assert_eq!(
        canary_value(&providers, &metric, &secrets()).await,
        Some(Ok(1.0))
    );
}

#[test]
fn referenced_secrets_lists_each_secret_once() {
    let a = web_metric("http://x/a".into(), "$.a");
    let mut b = web_metric("http://x/b".into(), "$.b");
    b.name = "b".into();
    let template = AnalysisTemplate {
        name: "t".into(),
        metrics: vec![
            a,
            b,
            prometheus_metric("127.0.0.1:9".parse().unwrap(), "up"),
        ],
        ..AnalysisTemplate::default()
    };
    assert_eq!(
        referenced_secrets(&template)
            .into_iter()
            .collect::<Vec<_>>(),
        vec!["stats-token".to_string()]
    );
}

// --- Kubernetes provider ---

fn kube_pod(revision: &str, created: i64, ready_after: i64, restarts: i32) -> PodView {
    let at = |s: i64| {
        now()
            .checked_sub(jiff::SignedDuration::from_secs(600 - s))
            .unwrap()
    };
    PodView {
        name: format!("{revision}-{created}"),
        revision: revision.into(),
        component: "main".into(),
        created_at: at(created),
        ready: true,
        ready_at: Some(at(created + ready_after)),
        restarts,
        failing_containers: 0,
        terminating: false,
    }
}

fn kubernetes_metric(signal: crate::api::analysis::KubernetesSignal) -> MetricSpec {
    MetricSpec {
        name: "pods".into(),
        provider: Provider {
            kubernetes: Some(crate::api::analysis::KubernetesProvider {
                signal,
                component: None,
            }),
            ..Provider::default()
        },
        ..MetricSpec::default()
    }
}

#[tokio::test]
async fn kubernetes_signals_are_read_from_the_pods_handed_in_and_judged_like_any_metric() {
    use crate::api::analysis::{KubernetesSignal, MetricVerdict};
    let providers = Providers::new().unwrap();
    // Canary pods start in 9–11 s, the fresh baseline's in 2–3 s.
    let pods = SidePods {
        canary: vec![
            kube_pod("canary", 0, 9, 0),
            kube_pod("canary", 1, 10, 1),
            kube_pod("canary", 2, 11, 0),
        ],
        baseline: vec![kube_pod("base", 0, 2, 0), kube_pod("base", 1, 3, 0)],
        startup_allowance_seconds: 60.0,
    };
    let mut latency = kubernetes_metric(KubernetesSignal::StartupLatencySeconds);
    latency.relative = Some(RelativeCheck {
        max_regression_percent: 50.0,
        ..RelativeCheck::default()
    });
    // No query: validation accepts a relative check on the baseline's own pods.
    let template = AnalysisTemplate {
        name: "pods".into(),
        count: Some(1),
        metrics: vec![latency.clone()],
        ..AnalysisTemplate::default()
    };
    assert!(run::schedule(&template).is_ok());
    let obs = measure_with(&providers, &latency, &SecretHeaders::new(), &pods).await;
    assert_eq!(obs.canary, Some(Ok(10.0)));
    assert_eq!(obs.baseline, Some(Ok(2.5)));
    let judged = crate::analysis::judge::judge_metric(&latency, Some(&obs));
    assert_eq!(judged.verdict, MetricVerdict::Fail, "{judged:?}");

    let mut restarts = kubernetes_metric(KubernetesSignal::Restarts);
    restarts.thresholds = Some(MetricThresholds {
        target: 0.0,
        acceptable: 1.0,
        critical: 3.0,
    });
    let obs = measure_with(&providers, &restarts, &SecretHeaders::new(), &pods).await;
    assert_eq!((&obs.canary, &obs.baseline), (&Some(Ok(1.0)), &None));
    let judged = crate::analysis::judge::judge_metric(&restarts, Some(&obs));
    assert_eq!(judged.verdict, MetricVerdict::Pass, "{judged:?}");

    // Without canary pods there is no data, which the metric's policy then decides.
    let obs = measure_now(&providers, &restarts).await;
    assert!(
        matches!(&obs.canary, Some(Err(e)) if e.is_no_data()),
        "{obs:?}"
    );
}

// --- Faults: hang, 500, empty vector, NaN, oversized body (both providers) ---
//
// One fault server answers the same body to both providers: the web metrics select
// `$.data.result[*].value[1]`, so the body of a Prometheus answer serves as a JSON endpoint too.
// Every body carries MARK; no observation, measurement or run status may contain it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::response::Response;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;

/// A string that must never leave a response body.
const MARK: &str = "TOPSECRET-d0d0cafe";

fn reply(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

/// The answer of the fault server for `fault`.
async fn fault_reply(fault: &str) -> Response {
    let json = "application/json";
    match fault {
        // Never answers (the client's timeout must end the wait).
        "hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            reply(StatusCode::OK, json, vector("1"))
        }
        // Answers the headers and the start of the body, then stalls.
        "hang-body" => {
            let start = futures::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(br#"{"status":"#))
            });
            let body =
                Body::from_stream(futures::StreamExt::chain(start, futures::stream::pending()));
            reply(StatusCode::OK, json, body)
        }
        "500" => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("panic at db.rs:12 password={MARK}"),
        ),
        "500-json" => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json,
            format!(r#"{{"status":"error","errorType":"internal","error":"{MARK}"}}"#),
        ),
        "empty" => reply(
            StatusCode::OK,
            json,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        ),
        "nan" => reply(StatusCode::OK, json, vector("NaN")),
        // A body without end: it must be cut off at the limit, not buffered (nor timed out).
        "huge" => {
            let start = futures::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from(format!(
                    r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"x":"{MARK}"#
                )))
            });
            let filler = Bytes::from(MARK.repeat(4096));
            let rest = futures::stream::repeat_with(move || Ok(filler.clone()));
            reply(
                StatusCode::OK,
                json,
                Body::from_stream(futures::StreamExt::chain(start, rest)),
            )
        }
        // A declared length over the limit is refused before reading.
        "huge-declared" => reply(
            StatusCode::OK,
            json,
            MARK.repeat(MAX_BODY_BYTES / MARK.len() + 1),
        ),
        // A selected string is described by its type, never quoted.
        "string" => reply(StatusCode::OK, json, vector(MARK)),
        "not-json" => reply(StatusCode::OK, "text/html", format!("<html>{MARK}</html>")),
        "weird-type" => reply(
            StatusCode::OK,
            json,
            format!(r#"{{"status":"success","data":{{"resultType":"{MARK}","result":[]}}}}"#),
        ),
        "bad-element" => reply(
            StatusCode::OK,
            json,
            format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"{MARK}":1}}]}}}}"#
            ),
        ),
        "odd-content-type" => reply(StatusCode::BAD_GATEWAY, MARK, "x"),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", MARK),
    }
}

/// The fault server: `/prom/{fault}/api/v1/query[_range]` and `/web/{fault}`; counts requests.
async fn fault_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let handler = move |Path(fault): Path<String>| {
        let hits = counted.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            fault_reply(&fault).await
        }
    };
    let router = Router::new()
        .route("/prom/{fault}/api/v1/query", get(handler.clone()))
        .route("/prom/{fault}/api/v1/query_range", get(handler.clone()))
        .route("/web/{fault}", get(handler));
    (serve(router).await, hits)
}

fn fault_prometheus(addr: SocketAddr, fault: &str) -> MetricSpec {
    let mut metric = prometheus_metric(addr, "up");
    if let Some(p) = metric.provider.prometheus.as_mut() {
        p.address = format!("http://{addr}/prom/{fault}");
        p.timeout = Some("300ms".into());
    }
    metric
}

fn fault_web(addr: SocketAddr, fault: &str) -> MetricSpec {
    let mut metric = web_metric(
        format!("http://{addr}/web/{fault}"),
        "$.data.result[*].value[1]",
    );
    if let Some(w) = metric.provider.web.as_mut() {
        w.headers_from = None;
        w.timeout = Some("300ms".into());
    }
    metric
}

/// Both providers' metrics against `fault`.
fn fault_metrics(addr: SocketAddr, fault: &str) -> [(&'static str, MetricSpec); 2] {
    [
        ("prometheus", fault_prometheus(addr, fault)),
        ("web", fault_web(addr, fault)),
    ]
}

/// The canary reading of `metric`, asserting that MARK appears nowhere in the observation.
async fn fault_reading(providers: &Providers, metric: &MetricSpec) -> (ValueReading, Duration) {
    let started = std::time::Instant::now();
    let obs = measure_now(providers, metric).await;
    let elapsed = started.elapsed();
    let text = format!("{obs:?}");
    assert!(!text.contains(MARK), "body bytes in {text}");
    let reading = obs.canary.expect("the canary value was asked for");
    (reading, elapsed)
}

#[tokio::test]
async fn a_hanging_provider_ends_at_the_timeout_as_unreachable() {
    let (addr, _) = fault_server().await;
    let providers = Providers::new().unwrap();
    for fault in ["hang", "hang-body"] {
        for (provider, metric) in fault_metrics(addr, fault) {
            let (reading, elapsed) = fault_reading(&providers, &metric).await;
            eprintln!("{provider} {fault}: {elapsed:?} {reading:?}");
            assert!(
                matches!(&reading, Err(ProviderError::Unreachable(m)) if m.contains("timed out")),
                "{provider} {fault}: {reading:?}"
            );
            assert!(
                elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1500),
                "{provider} {fault}: took {elapsed:?} with a 300ms timeout"
            );
        }
    }
}

#[test]
fn the_timeout_is_clamped_to_a_minute() {
    assert_eq!(timeout(None), Ok(Duration::from_secs(10)));
    assert_eq!(timeout(Some("45s")), Ok(Duration::from_secs(45)));
    assert_eq!(timeout(Some("10m")), Ok(MAX_TIMEOUT));
    assert_eq!(timeout(Some("9999h")), Ok(Duration::from_secs(60)));
    assert!(matches!(timeout(Some("0s")), Err(ProviderError::Config(_))));
}

#[tokio::test]
async fn a_500_is_a_bad_status_with_length_and_content_type_only() {
    let (addr, _) = fault_server().await;
    let providers = Providers::new().unwrap();
    for (provider, metric) in fault_metrics(addr, "500") {
        let (reading, _) = fault_reading(&providers, &metric).await;
        let expected = format!(
            "content type text/plain, {} bytes",
            format!("panic at db.rs:12 password={MARK}").len()
        );
        assert_eq!(
            reading,
            Err(ProviderError::BadStatus {
                status: 500,
                message: expected
            }),
            "{provider}"
        );
    }
    // A Prometheus error answer keeps its documented errorType, not its error text.
    let (reading, _) = fault_reading(&providers, &fault_prometheus(addr, "500-json")).await;
    assert!(
        matches!(&reading, Err(ProviderError::BadStatus { status: 500, message }) if message.starts_with("errorType internal")),
        "{reading:?}"
    );
    // A content type that is not a media type is not repeated.
    for (provider, metric) in fault_metrics(addr, "odd-content-type") {
        let (reading, _) = fault_reading(&providers, &metric).await;
        assert!(
            matches!(&reading, Err(ProviderError::BadStatus { status: 502, message }) if message == "an unrecognised content type, 1 bytes"),
            "{provider}: {reading:?}"
        );
    }
}

#[tokio::test]
async fn an_empty_vector_is_no_data_and_nan_is_nan() {
    let (addr, _) = fault_server().await;
    let providers = Providers::new().unwrap();
    for (provider, metric) in fault_metrics(addr, "empty") {
        let (reading, _) = fault_reading(&providers, &metric).await;
        assert!(
            matches!(&reading, Err(e) if e.is_no_data()),
            "{provider}: {reading:?}"
        );
    }
    for (provider, metric) in fault_metrics(addr, "nan") {
        let (reading, _) = fault_reading(&providers, &metric).await;
        assert!(
            matches!(reading, Ok(v) if v.is_nan()),
            "{provider}: {reading:?}"
        );
        let obs = measure_now(&providers, &metric).await;
        let judged = crate::analysis::judge::judge_metric(&metric, Some(&obs));
        assert_eq!(
            judged.verdict,
            crate::api::analysis::MetricVerdict::NaN,
            "{provider}"
        );
    }
}

#[tokio::test]
async fn an_oversized_body_is_cut_off_at_the_limit() {
    let (addr, _) = fault_server().await;
    let providers = Providers::new().unwrap();
    for fault in ["huge", "huge-declared"] {
        for (provider, mut metric) in fault_metrics(addr, fault) {
            // Long enough that only the size limit can end the endless body in time.
            if let Some(p) = metric.provider.prometheus.as_mut() {
                p.timeout = Some("20s".into());
            }
            if let Some(w) = metric.provider.web.as_mut() {
                w.timeout = Some("20s".into());
            }
            let (reading, elapsed) = fault_reading(&providers, &metric).await;
            eprintln!("{provider} {fault}: {elapsed:?} {reading:?}");
            assert!(
                matches!(&reading, Err(ProviderError::Parse(m)) if m.contains(&format!("larger than {MAX_BODY_BYTES} bytes"))),
                "{provider} {fault}: {reading:?}"
            );
            assert!(
                elapsed < Duration::from_secs(5),
                "{provider} {fault}: {elapsed:?}"
            );
        }
    }
    assert_eq!(MAX_BODY_BYTES, 1024 * 1024);
}

#[tokio::test]
async fn malformed_answers_are_described_without_their_content() {
    let (addr, _) = fault_server().await;
    let providers = Providers::new().unwrap();
    for fault in ["string", "not-json", "weird-type", "bad-element", "unknown"] {
        for (provider, metric) in fault_metrics(addr, fault) {
            let (reading, _) = fault_reading(&providers, &metric).await;
            assert!(reading.is_err(), "{provider} {fault}: {reading:?}");
        }
    }
    let (reading, _) = fault_reading(&providers, &fault_web(addr, "string")).await;
    assert_eq!(
        reading,
        Err(ProviderError::Parse(
            "the value at $.data.result[*].value[1] is a string, not a number".into()
        ))
    );
    let (reading, _) = fault_reading(&providers, &fault_web(addr, "not-json")).await;
    assert!(
        matches!(&reading, Err(ProviderError::Parse(m)) if m == "the answer is not JSON (content type text/html, 31 bytes; syntax error at line 1 column 1)"),
        "{reading:?}"
    );
}

/// Runs `template` to its end (at most 6 measurements, each one interval later) and returns
/// every outcome and the final status, serialised.
async fn run_to_the_end(
    providers: &Providers,
    template: &AnalysisTemplate,
) -> (Vec<RunOutcome>, String) {
    let mut status = run::start(template, Some("canary-hash"), None, now());
    let mut outcomes = Vec::new();
    for i in 0..6 {
        let at = now()
            .checked_add(jiff::SignedDuration::from_secs(10 * i))
            .unwrap();
        let obs = providers
            .measure_template(
                template,
                &vars(),
                &SecretHeaders::new(),
                &Egress::Any,
                &SidePods::default(),
                at,
            )
            .await;
        let outcome = run::advance(template, &mut status, &obs, at);
        let done = !matches!(outcome, RunOutcome::Continue { .. });
        outcomes.push(outcome);
        if done {
            break;
        }
    }
    (outcomes, serde_json::to_string(&status).unwrap())
}

#[tokio::test]
async fn no_fault_of_either_provider_leads_to_a_passed_run() {
    let (addr, _) = fault_server().await;
    let providers = Providers::new().unwrap();
    for fault in ["hang", "500", "empty", "nan", "huge", "string"] {
        for (provider, metric) in fault_metrics(addr, fault) {
            let template = AnalysisTemplate {
                name: "faults".into(),
                interval: Some("10s".into()),
                count: Some(3),
                metrics: vec![metric],
                ..AnalysisTemplate::default()
            };
            let (outcomes, status) = run_to_the_end(&providers, &template).await;
            eprintln!("{provider} {fault}: {:?}", outcomes.last());
            assert!(
                !outcomes.contains(&RunOutcome::Passed),
                "{provider} {fault}: {outcomes:?}"
            );
            assert!(
                !matches!(outcomes.last(), Some(RunOutcome::Continue { .. })),
                "{provider} {fault}: the run did not end: {outcomes:?}"
            );
            assert!(!status.contains(MARK), "{provider} {fault}: {status}");
        }
    }
    // The same template against a healthy answer passes, so the faults are what held it.
    let template = AnalysisTemplate {
        name: "ok".into(),
        interval: Some("10s".into()),
        count: Some(3),
        metrics: vec![prometheus_metric(serve(fake_prometheus()).await, LATENCY)],
        ..AnalysisTemplate::default()
    };
    let (outcomes, _) = run_to_the_end(&providers, &template).await;
    assert_eq!(outcomes.last(), Some(&RunOutcome::Passed), "{outcomes:?}");
}

// --- Hostile configurations: Secrets without opt-in, addresses outside the allow-list ---

fn secret(name: &str, label: Option<&str>, data: &[(&str, &[u8])]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: label.map(|v| BTreeMap::from([(HEADERS_SECRET_LABEL.to_string(), v.into())])),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

#[test]
fn a_secret_is_used_for_headers_only_with_the_opt_in_label() {
    let value: &[u8] = b"Bearer db-root-password";
    for label in [None, Some("false"), Some("yes"), Some("")] {
        let Err(ProviderError::Config(message)) =
            headers_from_secret(&secret("db-root", label, &[("Authorization", value)]))
        else {
            panic!("{label:?} was accepted");
        };
        assert!(message.contains("\"db-root\""), "{message}");
        assert!(message.contains(HEADERS_SECRET_LABEL), "{message}");
        assert!(!message.contains("db-root-password"), "{message}");
    }
    assert_eq!(
        headers_from_secret(&secret("token", Some("true"), &[("Authorization", value)])),
        Ok(BTreeMap::from([(
            "Authorization".to_string(),
            "Bearer db-root-password".to_string()
        )]))
    );
    let binary = headers_from_secret(&secret("bin", Some("true"), &[("X-Key", &[0xff, 0xfe])]));
    assert!(
        matches!(&binary, Err(ProviderError::Config(m)) if m.contains("X-Key")),
        "{binary:?}"
    );
}

/// A JSON endpoint that counts its requests and remembers the last Authorization header.
async fn counting_endpoint() -> (SocketAddr, Arc<AtomicUsize>, Arc<std::sync::Mutex<String>>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let (h, s) = (hits.clone(), seen.clone());
    let handler = move |headers: HeaderMap| {
        let (hits, seen) = (h.clone(), s.clone());
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
                *seen.lock().unwrap() = auth.to_string();
            }
            (StatusCode::OK, r#"{"value":0.2}"#)
        }
    };
    let router = Router::new().fallback(get(handler));
    (serve(router).await, hits, seen)
}

#[tokio::test]
async fn a_secret_without_the_label_is_never_sent() {
    let (addr, hits, _) = counting_endpoint().await;
    let providers = Providers::new().unwrap();
    let metric = web_metric(format!("http://{addr}/value"), "$.value");
    let refused: SecretHeaders =
        BTreeMap::from([("stats-token".to_string(), Err(not_opted_in("stats-token")))]);
    let reading = canary_value(&providers, &metric, &refused).await;
    assert!(
        matches!(&reading, Some(Err(ProviderError::Config(m))) if m.contains("\"stats-token\"") && m.contains(HEADERS_SECRET_LABEL)),
        "{reading:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a request was sent");
}

fn only(prefixes: &[&str]) -> Egress {
    Egress::Only {
        policy: "prod".into(),
        prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn the_allow_list_matches_parsed_urls_not_strings() {
    let list = only(&[
        "http://prometheus.monitoring:9090",
        "https://slo.example.com/api/",
        "https://stats.example.com/v1",
    ]);
    for allowed in [
        "http://prometheus.monitoring:9090/api/v1/query",
        "http://PROMETHEUS.monitoring:9090/prom/api/v1/query",
        "https://slo.example.com/api/x?rev=abc",
        "https://slo.example.com:443/api/",
        "https://stats.example.com/v1",
        "https://stats.example.com/v1/p99",
    ] {
        assert_eq!(list.check(allowed), Ok(()), "{allowed}");
    }
    for refused in [
        "http://prometheus.monitoring.evil.example:9090/api/v1/query",
        "http://prometheus.monitoring:9091/api/v1/query",
        "http://prometheus.monitoring/api/v1/query",
        "https://prometheus.monitoring:9090/api/v1/query",
        "http://prometheus.monitoring:9090@169.254.169.254/latest/meta-data",
        "https://slo.example.com/admin",
        "https://slo.example.com/apix",
        "https://slo.example.com/api/../admin",
        "https://slo.example.com/api/%2e%2e/admin",
        "https://stats.example.com/v10",
        "http://slo.example.com/api/x",
        "not a url",
    ] {
        let result = list.check(refused);
        assert!(
            matches!(&result, Err(ProviderError::Config(m)) if m.contains("SafeDeploymentPolicy \"prod\"") && m.contains("allowedProviderUrls") && m.contains("no request was sent")),
            "{refused}: {result:?}"
        );
    }
    assert_eq!(Egress::Any.check("http://169.254.169.254/"), Ok(()));
    assert!(only(&[]).check("http://prometheus:9090/").is_err());
    // Entries the CRD refuses match nothing here either.
    assert!(
        only(&["prometheus:9090"])
            .check("http://prometheus:9090/")
            .is_err()
    );
    assert!(
        only(&["http://u:p@prometheus:9090/"])
            .check("http://prometheus:9090/")
            .is_err()
    );
}

#[tokio::test]
async fn addresses_outside_the_allow_list_are_errors_and_get_no_request() {
    let (addr, hits, seen) = counting_endpoint().await;
    let providers = Providers::new().unwrap();
    let egress = only(&["http://127.0.0.1:1/allowed"]);
    let web = web_metric(format!("http://{addr}/value"), "$.value");
    let mut range = prometheus_metric(addr, "up");
    range.thresholds = None;
    range.statistical = Some(StatisticalCheck {
        mann_whitney: MannWhitneySpec::default(),
    });
    if let Some(p) = range.provider.prometheus.as_mut() {
        p.range = Some(RangeSpec {
            window: "1m".into(),
            step: "5s".into(),
        });
    }
    for metric in [web, prometheus_metric(addr, "up"), range] {
        let obs = providers
            .measure(
                &metric,
                &vars(),
                &secrets(),
                &egress,
                &SidePods::default(),
                now(),
            )
            .await;
        let reading = obs
            .canary
            .clone()
            .map(|r| r.map(|_| ()))
            .or_else(|| obs.canary_samples.clone().map(|r| r.map(|_| ())));
        assert!(
            matches!(&reading, Some(Err(ProviderError::Config(m))) if m.contains("allowedProviderUrls") && m.contains(&addr.to_string())),
            "{obs:?}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a request was sent");
    assert_eq!(*seen.lock().unwrap(), "");
    // Inside the list, the same web metric measures (and sends the Secret's header).
    let inside = only(&[&format!("http://{addr}/")]);
    let metric = web_metric(format!("http://{addr}/value"), "$.value");
    let obs = providers
        .measure(
            &metric,
            &vars(),
            &secrets(),
            &inside,
            &SidePods::default(),
            now(),
        )
        .await;
    assert_eq!(obs.canary, Some(Ok(0.2)));
    assert_eq!(*seen.lock().unwrap(), "Bearer s3cret");
}

#[tokio::test]
async fn redirects_are_not_followed_and_headers_do_not_travel() {
    let (target, hits, seen) = counting_endpoint().await;
    let location = format!("http://{target}/value");
    let redirect = Router::new().route(
        "/moved",
        get(move || {
            let location = location.clone();
            async move {
                Response::builder()
                    .status(StatusCode::FOUND)
                    .header("location", location)
                    .body(Body::empty())
                    .unwrap()
            }
        }),
    );
    let addr = serve(redirect).await;
    let providers = Providers::new().unwrap();
    let web = web_metric(format!("http://{addr}/moved"), "$.value");
    let reading = canary_value(&providers, &web, &secrets()).await;
    assert!(
        matches!(&reading, Some(Err(ProviderError::BadStatus { status: 302, message })) if message.contains("redirects are not followed")),
        "{reading:?}"
    );
    let mut prom = prometheus_metric(addr, "up");
    if let Some(p) = prom.provider.prometheus.as_mut() {
        p.address = format!("http://{addr}/moved");
    }
    let obs = measure_now(&providers, &prom).await;
    assert!(matches!(&obs.canary, Some(Err(_))), "{obs:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
    assert_eq!(*seen.lock().unwrap(), "");
}

#[tokio::test]
async fn a_host_header_is_refused() {
    let (addr, hits, _) = counting_endpoint().await;
    let providers = Providers::new().unwrap();
    let mut metric = web_metric(format!("http://{addr}/value"), "$.value");
    if let Some(w) = metric.provider.web.as_mut() {
        w.headers = vec![HttpHeader {
            name: "Host".into(),
            value: "internal-admin".into(),
        }];
    }
    let reading = canary_value(&providers, &metric, &secrets()).await;
    assert!(
        matches!(&reading, Some(Err(ProviderError::Config(m))) if m.contains("Host")),
        "{reading:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
