//! The web provider: JSON endpoints with methods, headers from Secrets and JSONPath.

use super::*;

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
