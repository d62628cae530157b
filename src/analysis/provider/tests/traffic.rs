//! The minimum-traffic query against a fake Prometheus: rendered with the canary's hash, sent to
//! the metric's own address, and every broken answer (NaN, empty, negative, infinite, huge,
//! 500, hang, several series) keeps the run from passing; only enough traffic lets it pass.

use super::*;
use crate::api::analysis::{MetricVerdict, MinimumTraffic};

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
            query: format!(r#"sum(increase(traffic_{case}{{version="{{{{canary}}}}"}}[1m]))"#),
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
        let template = template_of(guarded(addr, case));
        let observations = measure_template_at(&providers, &template, now()).await;
        let mut status = run::start(&template, Some("canary-hash"), Some(1), now());
        let outcome = run::advance(&template, &mut status, &observations, now());
        let measurement = status.measurements.last().unwrap();
        assert_eq!(
            (measurement.verdict, measurement.traffic),
            (verdict, traffic),
            "{case}: {measurement:?}"
        );
        assert_eq!(
            measurement.value,
            Some(0.0),
            "{case}: the ratio itself was read"
        );
        if case == "plenty" {
            assert_eq!(outcome, RunOutcome::Passed, "{case}");
        } else {
            assert!(
                matches!(outcome, RunOutcome::Inconclusive { .. }),
                "{case}: {outcome:?}"
            );
        }
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
