//! The minimum-traffic query against a fake Prometheus: rendered with the canary's hash, sent to
//! the metric's own address, and every broken answer (NaN, empty, negative, infinite, huge,
//! 500, hang, several series) keeps the run from passing; only enough traffic lets it pass. The
//! same for a web metric, whose traffic is read from the canary's answer by a second JSONPath.

use super::*;
use crate::api::analysis::{Measurement, MetricVerdict, MinimumTraffic};

/// A fake Prometheus whose error ratio is always 0 (a pass) and whose traffic answer is chosen
/// by the word after `traffic_` in the query; the traffic is 0 unless the query selects the
/// canary's hash, so a placeholder left unrendered would show.
fn traffic_prometheus() -> Router {
    let query = |Query(params): Query<HashMap<String, String>>| async move {
        let q = params.get("query").cloned().unwrap_or_default();
        let ok = |body: String| (StatusCode::OK, body);
        let Some(case) = q
            .split("traffic_")
            .nth(1)
            .and_then(|rest| rest.split('{').next())
        else {
            return ok(vector("0"));
        };
        if !q.contains(r#"version="canary-hash""#) {
            return ok(vector("0"));
        }
        match case {
            "plenty" => ok(vector("500")),
            "thin" => ok(vector("3")),
            "nan" => ok(vector("NaN")),
            "negative" => ok(vector("-4")),
            "inf" => ok(vector("+Inf")),
            "huge" => ok(vector("1e300")),
            "empty" => ok(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.into()),
            "many" => ok(r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"400"]},{"metric":{},"value":[1,"400"]}]}}"#.into()),
            "hang" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                ok(vector("500"))
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "down".to_string()),
        }
    };
    Router::new().route("/prom/api/v1/query", get(query))
}

fn guarded(addr: SocketAddr, case: &str) -> MetricSpec {
    MetricSpec {
        name: "error-ratio".into(),
        minimum_traffic: Some(MinimumTraffic {
            query: Some(format!(
                r#"sum(increase(traffic_{case}{{version="{{{{canary}}}}"}}[1m]))"#
            )),
            json_path: None,
            minimum: 100.0,
        }),
        ..prometheus_metric(addr, r#"errors{version="{{canary}}"}"#)
    }
}

fn template_of(metric: MetricSpec) -> AnalysisTemplate {
    AnalysisTemplate {
        name: "errors".into(),
        interval: Some("10s".into()),
        count: Some(1),
        metrics: vec![metric],
        ..AnalysisTemplate::default()
    }
}

/// Measures `template` once in a one-measurement run, checks the verdict and traffic reading of
/// `case`, and that only "plenty" passes the run (every other case leaves it Inconclusive).
async fn assert_one_run(
    providers: &Providers,
    template: AnalysisTemplate,
    case: &str,
    verdict: MetricVerdict,
    traffic: Option<f64>,
) -> Measurement {
    let observations = measure_template_at(providers, &template, now()).await;
    let mut status = run::start(&template, Some("canary-hash"), Some(1), now());
    let outcome = run::advance(&template, &mut status, &observations, now());
    let measurement = status.measurements.last().unwrap().clone();
    assert_eq!(
        (measurement.verdict, measurement.traffic),
        (verdict, traffic),
        "{case}: {measurement:?}"
    );
    if case == "plenty" {
        assert_eq!(outcome, RunOutcome::Passed, "{case}");
    } else {
        assert!(
            matches!(outcome, RunOutcome::Inconclusive { .. }),
            "{case}: {outcome:?}"
        );
    }
    measurement
}

#[tokio::test]
async fn only_enough_canary_traffic_lets_a_run_pass() {
    let addr = serve(traffic_prometheus()).await;
    let providers = Providers::new().unwrap();
    let cases = [
        ("plenty", MetricVerdict::Pass, Some(500.0)),
        ("thin", MetricVerdict::InsufficientTraffic, Some(3.0)),
        ("nan", MetricVerdict::InsufficientTraffic, None),
        ("empty", MetricVerdict::InsufficientTraffic, None),
        ("negative", MetricVerdict::InsufficientTraffic, Some(-4.0)),
        ("inf", MetricVerdict::InsufficientTraffic, None),
        ("huge", MetricVerdict::InsufficientTraffic, Some(1e300)),
        ("many", MetricVerdict::Error, None),
        ("down", MetricVerdict::Error, None),
        ("hang", MetricVerdict::Error, None),
    ];
    for (case, verdict, traffic) in cases {
        let measurement =
            assert_one_run(&providers, template_of(guarded(addr, case)), case, verdict, traffic)
                .await;
        assert_eq!(
            measurement.value,
            Some(0.0),
            "{case}: the ratio itself was read"
        );
    }
}

/// Without a guard no traffic query is sent, and a failed request of the guard says "traffic".
#[tokio::test]
async fn the_traffic_query_is_sent_only_for_a_guarded_metric() {
    let addr = serve(traffic_prometheus()).await;
    let providers = Providers::new().unwrap();
    let plain = MetricSpec {
        minimum_traffic: None,
        ..guarded(addr, "plenty")
    };
    assert_eq!(measure_now(&providers, &plain).await.traffic, None);
    let down = closed_port().await;
    let observation = measure_now(&providers, &guarded(down, "plenty")).await;
    assert!(matches!(
        observation.traffic,
        Some(Err(ProviderError::Unreachable(_)))
    ));
}

/// A JSON endpoint `/slo/{case}?rev=…` answering an error ratio of 0 and, for the canary's
/// revision only, the traffic the case names.
fn traffic_endpoint() -> Router {
    let slo = |Path(case): Path<String>, Query(params): Query<HashMap<String, String>>| async move {
        let canary = params.get("rev").map(String::as_str) == Some("canary-hash");
        let requests = match (canary, case.as_str()) {
            (false, _) => "0",
            (true, "plenty") => "500",
            (true, "thin") => "3",
            (true, "negative") => "-4",
            (true, "huge") => "1e300",
            (true, "text") => r#""NaN""#,
            (true, "many") => "[400, 400]",
            (true, "missing") => "null",
            (true, _) => return (StatusCode::INTERNAL_SERVER_ERROR, "down".to_string()),
        };
        let body = if requests == "null" {
            r#"{"ratio": 0}"#.to_string()
        } else {
            format!(r#"{{"ratio": 0, "requests": {requests}}}"#)
        };
        (StatusCode::OK, body)
    };
    Router::new().route("/slo/{case}", get(slo))
}

#[tokio::test]
async fn a_web_metric_reads_the_traffic_from_the_canarys_answer() {
    let addr = serve(traffic_endpoint()).await;
    let providers = Providers::new().unwrap();
    let cases = [
        ("plenty", MetricVerdict::Pass, Some(500.0)),
        ("thin", MetricVerdict::InsufficientTraffic, Some(3.0)),
        ("negative", MetricVerdict::InsufficientTraffic, Some(-4.0)),
        ("huge", MetricVerdict::InsufficientTraffic, Some(1e300)),
        ("text", MetricVerdict::InsufficientTraffic, None),
        ("missing", MetricVerdict::InsufficientTraffic, None),
        ("many", MetricVerdict::Error, None),
        ("down", MetricVerdict::Error, None),
    ];
    for (case, verdict, traffic) in cases {
        let metric = MetricSpec {
            name: "error-ratio".into(),
            minimum_traffic: Some(MinimumTraffic {
                query: None,
                json_path: Some("$.requests".into()),
                minimum: 100.0,
            }),
            ..web_metric(
                format!("http://{addr}/slo/{case}?rev={{{{revision}}}}"),
                "$.ratio",
            )
        };
        let metric = MetricSpec {
            provider: Provider {
                web: metric.provider.web.clone().map(|w| WebProvider {
                    headers_from: None,
                    ..w
                }),
                ..metric.provider.clone()
            },
            ..metric
        };
        assert_one_run(&providers, template_of(metric), case, verdict, traffic).await;
    }
}
