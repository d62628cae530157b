//! The Prometheus provider: parsing of answers (formats as documented for the HTTP API), and
//! the client against a fake Prometheus API.

use super::*;

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
async fn an_instant_query_is_evaluated_at_the_time_of_the_decision() {
    // Without `time`, Prometheus evaluates when the request arrives, after the reconcile's
    // `now`: a breach seen then was recorded (and reverted) at an earlier time than it existed.
    let addr = serve(fake_prometheus()).await;
    let providers = Providers::new().unwrap();
    let obs = measure_now(&providers, &prometheus_metric(addr, "evaluation_time")).await;
    let expected = now().as_millisecond() as f64 / 1000.0;
    assert_eq!(obs.canary, Some(Ok(expected)));
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
        let obs = measure_template_at(&providers, &template, at).await;
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
    let obs = measure_template_at(&providers, &template, now()).await;
    let first = run::advance(&template, &mut status, &obs, now());
    let RunOutcome::Continue { next_at } = first else {
        panic!("{first:?}");
    };
    let obs = measure_template_at(&providers, &template, next_at).await;
    assert_eq!(
        run::advance(&template, &mut status, &obs, next_at),
        RunOutcome::Passed
    );
    assert_eq!(status.measurements[0].value, Some(0.12));
}
