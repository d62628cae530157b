//! Unit tests of the analysis template types: the documented example parses, the CEL rules are in the schema.

use super::*;

/// The example of the documentation: every field name as a user writes it.
const EXAMPLE: &str = r#"
name: checkout-latency
interval: 30s
initialDelay: 1m
count: 10
scoring:
  passThreshold: 95
  marginalThreshold: 75
metrics:
  - name: p99-latency
    provider:
      prometheus:
        address: http://prometheus.monitoring:9090
        query: |
          histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="{{namespace}}", app="{{name}}", rollouts_pod_template_hash="{{revision}}"}[2m])))
        timeout: 5s
    direction: lowerIsBetter
    thresholds: {target: 0.2, acceptable: 0.3, critical: 1.0}
    relative: {maxRegressionPercent: 10, criticalRegressionPercent: 50}
    weight: 2
  - name: latency-distribution
    provider:
      prometheus:
        address: http://prometheus.monitoring:9090
        query: sum by (pod) (rate(http_request_duration_seconds_sum{hash="{{revision}}"}[1m])) / sum by (pod) (rate(http_request_duration_seconds_count{hash="{{revision}}"}[1m]))
        range: {window: 10m, step: 15s}
    statistical:
      mannWhitney: {confidence: 0.98, minEffectPercent: 5, minSamples: 50}
    outliers: {strategy: Remove, factor: 3.0}
    onNoData: Ignore
  - name: success-rate
    critical: true
    provider:
      web:
        url: https://slo.example/api/v1/success?revision={{revision}}&ns={{namespace}}
        method: POST
        body: '{"service": "{{name}}", "canary": "{{canary}}", "stable": "{{stable}}"}'
        jsonPath: $.data.successRate
        headersFrom: {secretRef: {name: slo-api-token}}
    direction: higherIsBetter
    thresholds: {target: 99.9, acceptable: 99.5, critical: 98}
    onNaN: Fail
    onError: Inconclusive
    consecutiveErrorLimit: 3
"#;

#[test]
fn the_documented_example_reads_and_round_trips() {
    let template: AnalysisTemplate = serde_yaml::from_str(EXAMPLE).unwrap();
    assert_eq!(template.metrics.len(), 3);
    assert_eq!(
        template.initial_delay.as_ref().map(SpecDuration::as_str),
        Some("1m")
    );
    let web = template.metrics[2].provider.web.as_ref().unwrap();
    assert_eq!(web.method, Some(HttpMethod::Post));
    assert_eq!(
        web.headers_from.as_ref().unwrap().secret_ref.name,
        "slo-api-token"
    );
    assert_eq!(
        template.metrics[2].direction,
        Some(Direction::HigherIsBetter)
    );
    assert_eq!(template.metrics[2].on_nan, Some(FailurePolicy::Fail));
    assert_eq!(
        template.metrics[1].outliers,
        Some(OutlierSpec {
            strategy: OutlierStrategy::Remove,
            factor: Some(3.0)
        })
    );
    assert_eq!(
        template.metrics[1]
            .statistical
            .unwrap()
            .mann_whitney
            .min_samples,
        Some(50)
    );
    let json = serde_json::to_value(&template).unwrap();
    assert_eq!(json["metrics"][2]["onNaN"], "Fail");
    assert_eq!(json["metrics"][0]["relative"]["maxRegressionPercent"], 10.0);
    let back: AnalysisTemplate = serde_json::from_value(json).unwrap();
    assert_eq!(back, template);
}

#[test]
fn scoring_defaults_and_unknown_values() {
    let scoring: Scoring = serde_json::from_str("{}").unwrap();
    assert_eq!(scoring, Scoring::default());
    assert_eq!(scoring.pass_threshold, 95.0);
    assert!(serde_json::from_str::<FailurePolicy>("\"Retry\"").is_err());
    assert!(serde_json::from_str::<Direction>("\"LowerIsBetter\"").is_err());
}

#[test]
fn the_schema_carries_the_cel_rules() {
    let schema = serde_json::to_string(&schemars::schema_for!(AnalysisTemplate)).unwrap();
    for rule in [
        "set either count (number of measurements) or duration",
        "a metric provider needs exactly one of prometheus, web, kubernetes or job",
        "a metric needs at least one check",
        "thresholds must satisfy target <= acceptable < critical",
        "put {{revision}} in the query",
        "web.body needs method POST",
        "minimumTraffic.query needs a prometheus provider",
    ] {
        assert!(schema.contains(rule), "missing rule: {rule}");
    }
}
