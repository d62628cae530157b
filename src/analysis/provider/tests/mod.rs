//! Provider tests, one file per provider or concern, over the shared helpers here: local axum
//! servers on 127.0.0.1 (a fake Prometheus API, JSON endpoints), metric specs and measuring.
//!
//! - `prometheus`: parsing of answers in the API's documented JSON formats, and the client;
//! - `web`: the JSON endpoint provider (methods, headers from Secrets, JSONPath);
//! - `kubernetes`: signals of the pods handed in;
//! - `faults`: hang, 500, empty vector, NaN, oversized and malformed bodies, for both providers;
//! - `egress`: hostile configurations (Secrets without opt-in, addresses outside the allow-list,
//!   redirects, Host headers).

mod backends;
mod egress;
mod faults;
mod kubernetes;
mod prometheus;
mod traffic;
mod web;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::prometheus::{QueryResult, parse_response};
use super::*;
use crate::analysis::run::{self, RunOutcome};
use crate::api::analysis::{
    HeadersFrom, HttpHeader, HttpMethod, MannWhitneySpec, MetricThresholds, Provider, RangeSpec,
    RelativeCheck, SecretRef, StatisticalCheck,
};

const JSON: Option<&str> = Some("application/json");

/// A string that must never leave a response body.
const MARK: &str = "TOPSECRET-d0d0cafe";

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
        if q.contains("evaluation_time") {
            // The value is the evaluation time the request asked for (NaN when it asked none).
            let at = params.get("time").cloned().unwrap_or_else(|| "NaN".into());
            return (StatusCode::OK, vector(&at));
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
        ..QueryVars::default()
    }
}

fn now() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

/// Measures every metric of `template` at `at`, with no Secrets, no pods and no egress limit.
async fn measure_template_at(
    providers: &Providers,
    template: &AnalysisTemplate,
    at: Timestamp,
) -> Vec<MetricObservation> {
    providers
        .measure_template(
            template,
            &vars(),
            &SecretHeaders::new(),
            &Egress::Any,
            &SidePods::default(),
            at,
        )
        .await
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
            job: None,
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

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

fn web_metric(url: String, json_path: &str) -> MetricSpec {
    MetricSpec {
        name: "web".into(),
        provider: Provider {
            job: None,
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

fn only(prefixes: &[&str]) -> Egress {
    Egress::Only {
        policy: "prod".into(),
        prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
    }
}
