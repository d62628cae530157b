//! The minimum-traffic guard through the judge and the run: a canary with almost no traffic
//! never passes a count-style metric (the run ends Inconclusive, naming the traffic and the
//! minimum), hostile traffic readings never count as enough, a traffic-query error is a provider
//! error under `onError`, and bad news (Fail, Critical) stands whatever the traffic.

use jiff::Timestamp;

use super::judge::judge_metric;
use super::run::{self, RunOutcome};
use super::testgen::prometheus_metric;
use super::{MetricObservation, ProviderError};
use crate::api::analysis::{
    AnalysisPhase, AnalysisTemplate, FailurePolicy, MetricSpec, MetricThresholds, MetricVerdict,
    MinimumTraffic, Provider, WebProvider,
};

fn t0() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

/// An error ratio (lower is better, critical at 2%) guarded by at least `minimum` requests.
fn error_ratio(minimum: f64) -> MetricSpec {
    MetricSpec {
        thresholds: Some(MetricThresholds {
            target: 0.005,
            acceptable: 0.01,
            critical: 0.02,
        }),
        minimum_traffic: Some(MinimumTraffic {
            query: Some("sum(increase(requests_total{version=\"{{canary}}\"}[1m]))".into()),
            json_path: None,
            minimum,
        }),
        ..prometheus_metric(
            "error-ratio",
            "errors{version=\"{{canary}}\"} / requests{version=\"{{canary}}\"}".into(),
        )
    }
}

fn template(count: i32, metrics: Vec<MetricSpec>) -> AnalysisTemplate {
    AnalysisTemplate {
        name: "errors".into(),
        interval: Some("10s".into()),
        count: Some(count),
        metrics,
        ..AnalysisTemplate::default()
    }
}

/// The error ratio `ratio` with `traffic` requests.
fn observed(ratio: f64, traffic: Result<f64, ProviderError>) -> MetricObservation {
    MetricObservation::value("error-ratio", ratio).with_traffic(traffic)
}

/// Runs `template` over one list of observations per measurement, 10 s apart.
fn run_over(
    template: &AnalysisTemplate,
    measurements: Vec<Vec<MetricObservation>>,
) -> (crate::api::analysis::AnalysisRunStatus, Vec<RunOutcome>) {
    let mut status = run::start(template, Some("canary"), Some(1), t0());
    let outcomes = measurements
        .into_iter()
        .zip(0i64..)
        .map(|(obs, i)| {
            let at = t0()
                .checked_add(jiff::SignedDuration::from_secs(10 * i))
                .unwrap();
            run::advance(template, &mut status, &obs, at)
        })
        .collect();
    (status, outcomes)
}

#[test]
fn zero_errors_of_three_requests_is_not_a_pass() {
    let judgement = judge_metric(&error_ratio(100.0), Some(&observed(0.0, Ok(3.0))));
    assert_eq!(judgement.verdict, MetricVerdict::InsufficientTraffic);
    assert_eq!(judgement.value, Some(0.0));
    assert_eq!(judgement.traffic, Some(3.0));
    assert!(
        judgement.message.contains("traffic 3 is below the minimum")
            && judgement.message.contains("minimumTraffic.minimum is 100"),
        "{}",
        judgement.message
    );
    assert!(judgement.threshold.contains("canary traffic at least 100"));
}

#[test]
fn enough_traffic_lets_the_pass_stand_and_records_the_traffic() {
    let judgement = judge_metric(&error_ratio(100.0), Some(&observed(0.0, Ok(2400.0))));
    assert_eq!(judgement.verdict, MetricVerdict::Pass);
    assert_eq!(judgement.traffic, Some(2400.0));
    assert!(judgement.message.contains("traffic 2400 (minimum 100)"));
}

/// The guard withholds only good news: a thin canary that already fails is not excused.
#[test]
fn fail_and_critical_stand_whatever_the_traffic() {
    let critical = judge_metric(&error_ratio(100.0), Some(&observed(0.5, Ok(2.0))));
    assert_eq!(critical.verdict, MetricVerdict::Critical);
    let (status, outcomes) = run_over(
        &template(3, vec![error_ratio(100.0)]),
        vec![vec![observed(0.5, Ok(2.0))]],
    );
    assert!(
        matches!(outcomes[0], RunOutcome::Failed { .. }),
        "{status:?}"
    );
    // Marginal (between acceptable and critical) is withheld like a pass.
    let marginal = judge_metric(&error_ratio(100.0), Some(&observed(0.015, Ok(2.0))));
    assert_eq!(marginal.verdict, MetricVerdict::InsufficientTraffic);
}

#[test]
fn a_run_of_thin_measurements_ends_inconclusive_with_the_numbers() {
    let template = template(3, vec![error_ratio(100.0)]);
    let (status, outcomes) = run_over(
        &template,
        (0..3).map(|_| vec![observed(0.0, Ok(3.0))]).collect(),
    );
    assert!(matches!(outcomes[0], RunOutcome::Continue { .. }));
    let RunOutcome::Inconclusive { reason } = &outcomes[2] else {
        panic!("{outcomes:?}");
    };
    assert!(
        reason.contains("too little canary traffic")
            && reason.contains("traffic 3")
            && reason.contains("100"),
        "{reason}"
    );
    assert_eq!(status.phase, AnalysisPhase::Inconclusive);
    assert_eq!(status.score, None, "a thin measurement earns no score");
    let last = status.measurements.last().unwrap();
    assert_eq!(
        (last.verdict, last.value, last.traffic),
        (MetricVerdict::InsufficientTraffic, Some(0.0), Some(3.0))
    );
}

/// While a run measures (background analysis), its evidence names the traffic and the minimum,
/// so the gate holds every weight increase and the promotion.
#[test]
fn a_thin_latest_measurement_is_no_evidence() {
    let template = template(100, vec![error_ratio(100.0)]);
    let (status, _) = run_over(&template, vec![vec![observed(0.0, Ok(3.0))]]);
    let missing = run::evidence(&template, &status).unwrap_err();
    assert!(
        missing.contains("error-ratio: too little canary traffic (3 of at least 100)"),
        "{missing}"
    );
    // Once the traffic is there, the next measurement is evidence.
    let (status, _) = run_over(
        &template,
        vec![vec![observed(0.0, Ok(3.0))], vec![observed(0.0, Ok(150.0))]],
    );
    assert_eq!(run::evidence(&template, &status), Ok(()));
}

/// Broken traffic answers under every no-data policy: none of them lets the run pass.
#[test]
fn hostile_traffic_readings_never_let_a_run_pass() {
    let readings = [
        Ok(f64::NAN),
        Ok(f64::INFINITY),
        Ok(f64::NEG_INFINITY),
        Ok(-100.0),
        Ok(1.0e300),
        Ok(f64::MAX),
        Err(ProviderError::NoData("empty vector".into())),
    ];
    for policy in [
        FailurePolicy::Ignore,
        FailurePolicy::Inconclusive,
        FailurePolicy::Fail,
    ] {
        for reading in &readings {
            let metric = MetricSpec {
                on_no_data: Some(policy),
                on_nan: Some(policy),
                ..error_ratio(100.0)
            };
            let template = template(1, vec![metric]);
            // The ratio is NaN too (0 / 0), as a canary without requests gives.
            for ratio in [0.0, f64::NAN] {
                let (status, outcomes) =
                    run_over(&template, vec![vec![observed(ratio, reading.clone())]]);
                assert!(
                    matches!(outcomes[0], RunOutcome::Inconclusive { .. }),
                    "{policy:?} {reading:?} {ratio}: {outcomes:?}"
                );
                let last = status.measurements.last().unwrap();
                assert_eq!(last.verdict, MetricVerdict::InsufficientTraffic);
                assert!(last.traffic.is_none_or(f64::is_finite));
                // The status with the hostile reading still serialises (no NaN, no infinity).
                serde_json::to_string(&status).unwrap();
            }
        }
    }
}

#[test]
fn a_failing_traffic_query_is_a_provider_error_under_on_error() {
    let down = || Err(ProviderError::Unreachable("connection refused".into()));
    // onError Fail with no tolerance: the run ends in Error (the canary is reverted).
    let strict = MetricSpec {
        on_error: Some(FailurePolicy::Fail),
        consecutive_error_limit: Some(0),
        ..error_ratio(100.0)
    };
    let (status, outcomes) = run_over(
        &template(3, vec![strict]),
        vec![vec![observed(0.0, down())]],
    );
    assert!(
        matches!(outcomes[0], RunOutcome::Failed { .. }),
        "{outcomes:?}"
    );
    assert_eq!(status.phase, AnalysisPhase::Error);
    let last = status.measurements.last().unwrap();
    assert_eq!(last.verdict, MetricVerdict::Error);
    assert!(
        last.message
            .as_deref()
            .unwrap()
            .contains("traffic: provider unreachable")
    );
    // Within the limit the error is skipped and counted, as for the metric's own query.
    let (status, outcomes) = run_over(
        &template(3, vec![error_ratio(100.0)]),
        vec![vec![observed(0.0, down())]],
    );
    assert!(matches!(outcomes[0], RunOutcome::Continue { .. }));
    assert_eq!(status.consecutive_errors.get("error-ratio"), Some(&1));
    // onError Ignore leaves it out of the score, yet the run cannot pass on that measurement.
    let lenient = MetricSpec {
        on_error: Some(FailurePolicy::Ignore),
        consecutive_error_limit: Some(0),
        ..error_ratio(100.0)
    };
    let (_, outcomes) = run_over(
        &template(1, vec![lenient]),
        vec![vec![observed(0.0, down())]],
    );
    assert!(
        matches!(outcomes[0], RunOutcome::Inconclusive { .. }),
        "{outcomes:?}"
    );
}

/// A guarded metric without traffic holds the run even when another metric passes.
#[test]
fn one_thin_metric_holds_a_run_whose_other_metrics_pass() {
    let latency = MetricSpec {
        name: "latency".into(),
        ..error_ratio(1.0)
    };
    let latency = MetricSpec {
        minimum_traffic: None,
        ..latency
    };
    let template = template(1, vec![error_ratio(100.0), latency]);
    let (_, outcomes) = run_over(
        &template,
        vec![vec![
            observed(0.0, Ok(3.0)),
            MetricObservation::value("latency", 0.001),
        ]],
    );
    assert!(
        matches!(outcomes[0], RunOutcome::Inconclusive { .. }),
        "{outcomes:?}"
    );
}

/// A dry-run metric records the guard's verdict but, as any dry run, decides nothing.
#[test]
fn a_dry_run_metric_records_thin_traffic_without_deciding() {
    let metric = MetricSpec {
        dry_run: true,
        ..error_ratio(100.0)
    };
    let (status, outcomes) = run_over(
        &template(1, vec![metric]),
        vec![vec![observed(0.0, Ok(3.0))]],
    );
    assert_eq!(outcomes[0], RunOutcome::Passed);
    assert_eq!(
        status.measurements.last().map(|m| m.verdict),
        Some(MetricVerdict::InsufficientTraffic)
    );
}

/// A web metric whose answer at `url` carries the traffic at `$.requests`, guarded by 100.
fn web_error_ratio(url: &str) -> MetricSpec {
    MetricSpec {
        provider: Provider {
            job: None,
            prometheus: None,
            web: Some(WebProvider {
                url: url.into(),
                json_path: "$.ratio".into(),
                ..WebProvider::default()
            }),
            kubernetes: None,
        },
        minimum_traffic: Some(MinimumTraffic {
            query: None,
            json_path: Some("$.requests".into()),
            minimum: 100.0,
        }),
        ..error_ratio(100.0)
    }
}

/// A template that bypassed admission never runs with a guard that cannot work.
#[test]
fn a_guard_admission_refuses_makes_the_template_invalid() {
    let guard = |query: Option<&str>, json_path: Option<&str>| {
        Some(MinimumTraffic {
            query: query.map(str::to_string),
            json_path: json_path.map(str::to_string),
            minimum: 100.0,
        })
    };
    let web_with = |minimum_traffic| MetricSpec {
        minimum_traffic,
        ..web_error_ratio("http://slo.example/{{canary}}")
    };
    let prometheus_with = |minimum_traffic| MetricSpec {
        minimum_traffic,
        ..error_ratio(100.0)
    };
    let kubernetes = MetricSpec {
        provider: Provider {
            job: None,
            prometheus: None,
            web: None,
            kubernetes: Some(crate::api::analysis::KubernetesProvider::default()),
        },
        ..error_ratio(100.0)
    };
    let needs = "minimumTraffic.query needs a prometheus provider";
    for (metric, expected) in [
        (web_with(guard(Some("x{v=\"{{canary}}\"}"), None)), needs),
        (prometheus_with(guard(None, Some("$.requests"))), needs),
        (prometheus_with(guard(None, None)), needs),
        (
            prometheus_with(guard(Some("a{v=\"{{canary}}\"}"), Some("$.b"))),
            needs,
        ),
        (kubernetes, needs),
        (
            web_error_ratio("http://slo.example/all"),
            "needs a web url or body that selects the canary",
        ),
        (error_ratio(0.0), "minimum must be above 0"),
        (error_ratio(f64::NAN), "minimum must be above 0"),
        (error_ratio(1e13), "at most 10^12"),
        (
            prometheus_with(guard(Some("sum(increase(requests_total[1m]))"), None)),
            "must select the canary",
        ),
    ] {
        let error = run::schedule(&template(1, vec![metric])).unwrap_err();
        assert!(error.reason.contains(expected), "{}", error.reason);
    }
    // `{{ canary }}` with spaces selects the canary as well (the renderer allows them).
    let spaced = prometheus_with(guard(
        Some("sum(increase(requests_total{version=\"{{ canary }}\"}[1m]))"),
        None,
    ));
    assert!(run::schedule(&template(1, vec![spaced])).is_ok());
    assert!(run::schedule(&template(1, vec![web_error_ratio("http://s/{{revision}}")])).is_ok());
}

/// How the guard combines with a missing value of the metric's own query: too little traffic
/// explains no data and NaN, but a provider error stays an error (so it is counted for
/// `onError`).
#[test]
fn thin_traffic_explains_missing_values_but_not_provider_errors() {
    let metric = error_ratio(100.0);
    let no_data = MetricObservation {
        canary: Some(Err(ProviderError::NoData("empty vector".into()))),
        ..observed(0.0, Ok(0.0))
    };
    let nan = observed(f64::NAN, Ok(0.0));
    for observation in [no_data, nan] {
        assert_eq!(
            judge_metric(&metric, Some(&observation)).verdict,
            MetricVerdict::InsufficientTraffic
        );
    }
    let errored = MetricObservation {
        canary: Some(Err(ProviderError::Unreachable("refused".into()))),
        ..observed(0.0, Ok(0.0))
    };
    let judgement = judge_metric(&metric, Some(&errored));
    assert_eq!(judgement.verdict, MetricVerdict::Error);
    assert_eq!(judgement.traffic, Some(0.0));
}
