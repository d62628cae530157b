//! Tests of [`super`]: the run state step function, its policies and its schedule.

use super::*;
use crate::analysis::ProviderError;
use crate::analysis::testgen::{Rng, prometheus_metric};
use crate::api::analysis::{MannWhitneySpec, MetricThresholds, RelativeCheck, StatisticalCheck};

fn t0() -> Timestamp {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

fn at(seconds: i64) -> Timestamp {
    t0().checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap()
}

fn metric(name: &str) -> MetricSpec {
    MetricSpec {
        thresholds: Some(MetricThresholds {
            target: 0.1,
            acceptable: 0.2,
            critical: 0.5,
        }),
        ..prometheus_metric(name, format!("{name}{{rev=\"{{{{revision}}}}\"}}"))
    }
}

fn template(count: i32, metrics: Vec<MetricSpec>) -> AnalysisTemplate {
    AnalysisTemplate {
        name: "latency".into(),
        interval: Some("10s".into()),
        count: Some(count),
        metrics,
        ..AnalysisTemplate::default()
    }
}

fn unreachable(name: &str) -> MetricObservation {
    MetricObservation::failed(
        name,
        ProviderError::Unreachable("connection refused".into()),
    )
}

/// Starts a run of `template` (no revision, no step) and takes its first measurement at t0.
fn first_measurement(
    template: &AnalysisTemplate,
    observations: &[MetricObservation],
) -> (AnalysisRunStatus, RunOutcome) {
    let mut status = start(template, None, None, t0());
    let outcome = advance(template, &mut status, observations, t0());
    (status, outcome)
}

/// Runs one measurement per entry, ten seconds apart, and returns the outcomes.
fn drive(
    template: &AnalysisTemplate,
    status: &mut AnalysisRunStatus,
    steps: Vec<Vec<MetricObservation>>,
) -> Vec<RunOutcome> {
    steps
        .into_iter()
        .enumerate()
        .map(|(i, obs)| advance(template, status, &obs, at(10 * i as i64)))
        .collect()
}

#[test]
fn passes_after_count_measurements() {
    let template = template(3, vec![metric("latency")]);
    let mut status = start(&template, Some("abc123"), Some(2), t0());
    assert_eq!(status.phase, AnalysisPhase::Running);
    assert!(due(&status, t0()));
    let outcomes = drive(
        &template,
        &mut status,
        vec![
            vec![MetricObservation::value("latency", 0.05)],
            vec![MetricObservation::value("latency", 0.15)],
            vec![MetricObservation::value("latency", 0.12)],
        ],
    );
    assert_eq!(outcomes[0], RunOutcome::Continue { next_at: at(10) });
    assert_eq!(outcomes[1], RunOutcome::Continue { next_at: at(20) });
    assert_eq!(outcomes[2], RunOutcome::Passed);
    assert_eq!(status.phase, AnalysisPhase::Successful);
    assert_eq!(status.measurement_count, 3);
    assert_eq!(status.score, Some(100.0));
    assert_eq!(status.measurements.len(), 3);
    assert_eq!(status.measurements[1].value, Some(0.15));
    assert_eq!(status.measurements[1].verdict, MetricVerdict::Pass);
    assert_eq!(status.canary_revision.as_deref(), Some("abc123"));
    assert_eq!(status.step_index, Some(2));
    assert!(status.finished_at.is_some());
    assert!(!due(&status, at(1000)));
    // A finished run stays finished.
    let before = status.clone();
    let again = advance(
        &template,
        &mut status,
        &[MetricObservation::value("latency", 0.9)],
        at(100),
    );
    assert_eq!(again, RunOutcome::Passed);
    assert_eq!(status, before);
    assert_eq!(terminal_outcome(&status), Some(RunOutcome::Passed));
}

#[test]
fn a_dry_run_metric_is_recorded_but_never_decides() {
    let mut errors = metric("errors");
    errors.dry_run = true;
    errors.critical = true;
    let mixed = template(2, vec![metric("latency"), errors.clone()]);
    let mut status = start(&mixed, None, None, t0());
    // At a critical level, and then unreachable: neither fails nor holds the run.
    let outcomes = drive(
        &mixed,
        &mut status,
        vec![
            vec![
                MetricObservation::value("latency", 0.05),
                MetricObservation::value("errors", 0.9),
            ],
            vec![
                MetricObservation::value("latency", 0.05),
                unreachable("errors"),
            ],
        ],
    );
    assert_eq!(outcomes[1], RunOutcome::Passed, "{status:#?}");
    assert_eq!(status.score, Some(100.0));
    let recorded: Vec<_> = status
        .measurements
        .iter()
        .filter(|m| m.metric == "errors")
        .collect();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].verdict, MetricVerdict::Critical);
    assert_eq!(recorded[0].value, Some(0.9));
    assert_eq!(recorded[1].verdict, MetricVerdict::Error);
    for m in recorded {
        let message = m.message.as_deref().unwrap_or_default();
        assert!(
            message.contains("dry run: not part of the outcome"),
            "{m:?}"
        );
    }
    // Only dry runs: nothing gates, the run passes.
    let only = template(1, vec![errors]);
    let (_, outcome) = first_measurement(&only, &[MetricObservation::value("errors", 0.9)]);
    assert_eq!(outcome, RunOutcome::Passed);
    // Without dryRun the same value fails at once.
    let mut gating = metric("errors");
    gating.critical = true;
    let real = template(2, vec![gating]);
    let (_, outcome) = first_measurement(&real, &[MetricObservation::value("errors", 0.9)]);
    assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
}

#[test]
fn fails_fast_on_a_critical_level() {
    let template = template(10, vec![metric("latency"), metric("errors")]);
    let (status, outcome) = first_measurement(
        &template,
        &[
            MetricObservation::value("latency", 0.05),
            MetricObservation::value("errors", 0.7),
        ],
    );
    let RunOutcome::Failed { reason } = outcome else {
        panic!("expected a failure, got {outcome:?}");
    };
    assert!(
        reason.contains("errors reached a critical level"),
        "{reason}"
    );
    assert_eq!(status.phase, AnalysisPhase::Failed);
    assert_eq!(status.measurement_count, 1);
}

#[test]
fn a_failing_critical_metric_fails_the_run_whatever_the_score() {
    let mut errors = metric("errors");
    errors.thresholds = None;
    errors.relative = Some(RelativeCheck {
        max_regression_percent: 10.0,
        ..RelativeCheck::default()
    });
    errors.critical = true;
    let mut latency = metric("latency");
    latency.weight = Some(99);
    let template = template(5, vec![latency, errors]);
    let (status, outcome) = first_measurement(
        &template,
        &[
            MetricObservation::value("latency", 0.05),
            MetricObservation::compared("errors", 0.02, 0.01),
        ],
    );
    assert!(
        matches!(&outcome, RunOutcome::Failed { reason } if reason.contains("critical metric errors failed")),
        "{outcome:?}"
    );
    assert_eq!(status.score, Some(99.0));

    // The same regression on a non-critical metric only costs its weight.
    let mut template = template;
    template.metrics[1].critical = false;
    let (_, outcome) = first_measurement(
        &template,
        &[
            MetricObservation::value("latency", 0.05),
            MetricObservation::compared("errors", 0.02, 0.01),
        ],
    );
    assert_eq!(outcome, RunOutcome::Continue { next_at: at(10) });
}

#[test]
fn weighted_scores_against_pass_and_marginal_thresholds() {
    // Two equal metrics, one failing: 50 < marginal 75 fails at once.
    let mut a = metric("a");
    a.thresholds = None;
    a.relative = Some(RelativeCheck {
        max_regression_percent: 10.0,
        ..RelativeCheck::default()
    });
    let b = metric("b");
    let equal = template(3, vec![a.clone(), b.clone()]);
    let failing_a = vec![
        MetricObservation::compared("a", 2.0, 1.0),
        MetricObservation::value("b", 0.05),
    ];
    let (status, outcome) = first_measurement(&equal, &failing_a);
    assert!(
        matches!(&outcome, RunOutcome::Failed { reason } if reason.contains("below the marginal threshold")),
        "{outcome:?}"
    );
    assert_eq!(status.score, Some(50.0));

    // Weight 1 against 9: score 90 is marginal; it holds, and a marginal last score is
    // inconclusive.
    let mut heavy_b = b.clone();
    heavy_b.weight = Some(9);
    let weighted = template(2, vec![a.clone(), heavy_b]);
    let mut status = start(&weighted, None, None, t0());
    let outcomes = drive(
        &weighted,
        &mut status,
        vec![failing_a.clone(), failing_a.clone()],
    );
    assert_eq!(outcomes[0], RunOutcome::Continue { next_at: at(10) });
    assert!(
        matches!(&outcomes[1], RunOutcome::Inconclusive { reason } if reason.contains("marginal")),
        "{outcomes:?}"
    );
    assert_eq!(status.score, Some(90.0));

    // With a pass threshold of 90 the same run passes.
    let mut lenient = weighted.clone();
    lenient.scoring = Some(Scoring {
        pass_threshold: 90.0,
        marginal_threshold: 50.0,
    });
    let mut status = start(&lenient, None, None, t0());
    let outcomes = drive(&lenient, &mut status, vec![failing_a.clone(), failing_a]);
    assert_eq!(outcomes[1], RunOutcome::Passed);
}

#[test]
fn a_marginal_level_scores_half() {
    let template = template(2, vec![metric("latency"), metric("errors")]);
    let mut status = start(&template, None, None, t0());
    let obs = vec![
        MetricObservation::value("latency", 0.3), // marginal: above acceptable 0.2
        MetricObservation::value("errors", 0.0),
    ];
    let outcomes = drive(&template, &mut status, vec![obs.clone(), obs]);
    assert_eq!(status.score, Some(75.0));
    assert_eq!(status.measurements[0].verdict, MetricVerdict::Marginal);
    assert!(
        matches!(outcomes[1], RunOutcome::Inconclusive { .. }),
        "{outcomes:?}"
    );
}

#[test]
fn provider_down_with_inconclusive_policy_ends_inconclusive_after_the_error_limit() {
    let mut m = metric("latency");
    m.consecutive_error_limit = Some(2);
    m.on_error = Some(FailurePolicy::Inconclusive);
    let template = template(10, vec![m]);
    let mut status = start(&template, None, None, t0());
    let outcomes = drive(
        &template,
        &mut status,
        vec![
            vec![unreachable("latency")],
            vec![unreachable("latency")],
            vec![unreachable("latency")],
        ],
    );
    assert_eq!(outcomes[0], RunOutcome::Continue { next_at: at(10) });
    assert_eq!(outcomes[1], RunOutcome::Continue { next_at: at(20) });
    assert!(
        matches!(&outcomes[2], RunOutcome::Inconclusive { reason } if reason.contains("connection refused")),
        "{outcomes:?}"
    );
    assert_eq!(status.phase, AnalysisPhase::Inconclusive);
    assert_eq!(status.consecutive_errors.get("latency"), Some(&3));
    assert_eq!(status.measurements[2].verdict, MetricVerdict::Error);
}

#[test]
fn provider_down_with_fail_policy_ends_in_error() {
    let mut m = metric("latency");
    m.consecutive_error_limit = Some(0);
    m.on_error = Some(FailurePolicy::Fail);
    let template = template(10, vec![m]);
    let (status, outcome) = first_measurement(&template, &[unreachable("latency")]);
    assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
    assert_eq!(status.phase, AnalysisPhase::Error);
}

#[test]
fn never_passes_while_a_provider_is_unreachable() {
    for policy in [
        FailurePolicy::Ignore,
        FailurePolicy::Inconclusive,
        FailurePolicy::Fail,
    ] {
        for limit in [0, 1, 4, 100] {
            let mut down = metric("down");
            down.on_error = Some(policy);
            down.consecutive_error_limit = Some(limit);
            let template = template(4, vec![metric("healthy"), down]);
            let mut status = start(&template, None, None, t0());
            for i in 0..10 {
                let outcome = advance(
                    &template,
                    &mut status,
                    &[
                        MetricObservation::value("healthy", 0.01),
                        unreachable("down"),
                    ],
                    at(10 * i),
                );
                assert_ne!(outcome, RunOutcome::Passed, "{policy:?}, limit {limit}");
                assert_ne!(status.phase, AnalysisPhase::Successful);
            }
            assert!(status.phase.is_terminal(), "{policy:?}, limit {limit}");
        }
    }
    // A missing observation is no better than an unreachable provider.
    let template = template(1, vec![metric("latency")]);
    let mut status = start(&template, None, None, t0());
    assert!(matches!(
        advance(&template, &mut status, &[], t0()),
        RunOutcome::Inconclusive { .. }
    ));
}

#[test]
fn the_consecutive_error_counter_resets_on_a_good_measurement() {
    let mut m = metric("latency");
    m.consecutive_error_limit = Some(2);
    m.on_error = Some(FailurePolicy::Fail);
    let template = template(6, vec![m]);
    let mut status = start(&template, None, None, t0());
    let good = || vec![MetricObservation::value("latency", 0.05)];
    let bad = || vec![unreachable("latency")];
    let outcomes = drive(
        &template,
        &mut status,
        vec![bad(), bad(), good(), bad(), bad(), good()],
    );
    assert!(
        outcomes[..5]
            .iter()
            .all(|o| matches!(o, RunOutcome::Continue { .. })),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[5], RunOutcome::Passed);
    assert!(status.consecutive_errors.is_empty());
}

#[test]
fn no_data_policies() {
    let no_data = || {
        vec![MetricObservation::failed(
            "latency",
            ProviderError::NoData("empty vector".into()),
        )]
    };
    let good = || vec![MetricObservation::value("latency", 0.05)];

    // Fail: a single failing metric scores 0.
    let mut m = metric("latency");
    m.on_no_data = Some(FailurePolicy::Fail);
    let t = template(3, vec![m]);
    let mut status = start(&t, None, None, t0());
    assert!(matches!(
        advance(&t, &mut status, &no_data(), t0()),
        RunOutcome::Failed { .. }
    ));
    assert_eq!(status.score, Some(0.0));

    // Inconclusive (default): no data mid-run holds; data at the end passes.
    let t = template(3, vec![metric("latency")]);
    let mut status = start(&t, None, None, t0());
    let outcomes = drive(&t, &mut status, vec![no_data(), no_data(), good()]);
    assert_eq!(outcomes[2], RunOutcome::Passed, "{outcomes:?}");
    // ... and no data at the end is inconclusive.
    let mut status = start(&t, None, None, t0());
    let outcomes = drive(&t, &mut status, vec![good(), good(), no_data()]);
    assert!(
        matches!(&outcomes[2], RunOutcome::Inconclusive { reason } if reason.contains("without a usable value")),
        "{outcomes:?}"
    );

    // Ignore: left out of the score; other metrics decide.
    let mut quiet = metric("quiet");
    quiet.on_no_data = Some(FailurePolicy::Ignore);
    let t = template(2, vec![metric("latency"), quiet]);
    let obs = || {
        vec![
            MetricObservation::value("latency", 0.05),
            MetricObservation::failed("quiet", ProviderError::NoData("no series".into())),
        ]
    };
    let mut status = start(&t, None, None, t0());
    let outcomes = drive(&t, &mut status, vec![obs(), obs()]);
    assert_eq!(outcomes[1], RunOutcome::Passed);
    // Ignored alone, nothing is scored: inconclusive, never passed.
    let mut quiet = metric("quiet");
    quiet.on_no_data = Some(FailurePolicy::Ignore);
    let t = template(1, vec![quiet]);
    let (_, outcome) = first_measurement(
        &t,
        &[MetricObservation::failed(
            "quiet",
            ProviderError::NoData("none".into()),
        )],
    );
    assert!(
        matches!(&outcome, RunOutcome::Inconclusive { reason } if reason.contains("no metric could be scored")),
        "{outcome:?}"
    );
}

#[test]
fn nan_policies() {
    let nan = || vec![MetricObservation::value("latency", f64::NAN)];
    let mut m = metric("latency");
    m.on_nan = Some(FailurePolicy::Fail);
    m.critical = true;
    let t = template(3, vec![m]);
    let (status, outcome) = first_measurement(&t, &nan());
    assert!(
        matches!(&outcome, RunOutcome::Failed { reason } if reason.contains("critical metric latency failed")),
        "{outcome:?}"
    );
    assert_eq!(status.measurements[0].verdict, MetricVerdict::NaN);
    assert_eq!(status.measurements[0].value, None);
    assert!(
        status.measurements[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("onNaN: Fail")),
        "{:?}",
        status.measurements[0].message
    );

    let t = template(1, vec![metric("latency")]);
    let mut status = start(&t, None, None, t0());
    assert!(matches!(
        advance(&t, &mut status, &nan(), t0()),
        RunOutcome::Inconclusive { .. }
    ));
}

#[test]
fn a_statistical_regression_fails_the_run() {
    let mut m = metric("p99");
    m.thresholds = None;
    m.statistical = Some(StatisticalCheck {
        mann_whitney: MannWhitneySpec::default(),
    });
    let t = template(3, vec![m]);
    let mut rng = Rng::new(42);
    let mut status = start(&t, None, None, t0());
    let same = MetricObservation::samples(
        "p99",
        rng.latencies(200, 100.0, 0.2),
        rng.latencies(200, 100.0, 0.2),
    );
    assert!(matches!(
        advance(&t, &mut status, &[same], t0()),
        RunOutcome::Continue { .. }
    ));
    let shifted = MetricObservation::samples(
        "p99",
        rng.latencies(200, 110.0, 0.2),
        rng.latencies(200, 100.0, 0.2),
    );
    let outcome = advance(&t, &mut status, &[shifted], at(10));
    assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
    let last = status.measurements.last().unwrap();
    assert_eq!(last.verdict, MetricVerdict::Fail);
    assert!(last.value.unwrap() > last.baseline.unwrap());
}

#[test]
fn duration_based_runs_and_initial_delay() {
    let t = AnalysisTemplate {
        name: "soak".into(),
        interval: Some("1m".into()),
        initial_delay: Some("30s".into()),
        duration: Some("3m".into()),
        metrics: vec![metric("latency")],
        ..AnalysisTemplate::default()
    };
    let mut status = start(&t, None, None, t0());
    assert_eq!(next_measurement_at(&status), Some(at(30)));
    assert!(!due(&status, at(29)));
    assert!(due(&status, at(30)));
    let good = [MetricObservation::value("latency", 0.05)];
    // Measurements at 0:30, 1:30, 2:30 continue; 3:30 (= delay + duration) ends the run.
    for (i, time) in [30, 90, 150].into_iter().enumerate() {
        let outcome = advance(&t, &mut status, &good, at(time));
        assert_eq!(
            outcome,
            RunOutcome::Continue {
                next_at: at(time + 60)
            },
            "#{i}"
        );
    }
    assert_eq!(advance(&t, &mut status, &good, at(210)), RunOutcome::Passed);
    assert_eq!(status.measurement_count, 4);
}

#[test]
fn measurements_stay_bounded_per_metric() {
    let t = template(30, vec![metric("a"), metric("b")]);
    let mut status = start(&t, None, None, t0());
    for i in 0..25 {
        let value = 0.001 * f64::from(i);
        advance(
            &t,
            &mut status,
            &[
                MetricObservation::value("a", value),
                MetricObservation::value("b", value),
            ],
            at(10 * i64::from(i)),
        );
    }
    assert_eq!(status.measurements.len(), 2 * MEASUREMENTS_KEPT_PER_METRIC);
    let a: Vec<_> = status
        .measurements
        .iter()
        .filter(|m| m.metric == "a")
        .collect();
    assert_eq!(a.len(), MEASUREMENTS_KEPT_PER_METRIC);
    assert_eq!(a.last().unwrap().value, Some(0.024));
    assert_eq!(a.first().unwrap().value, Some(0.015));
    // The status survives a JSON round trip (it is persisted in the resource's status).
    let json = serde_json::to_string(&status).unwrap();
    let back: AnalysisRunStatus = serde_json::from_str(&json).unwrap();
    assert_eq!(back, status);
}

#[test]
fn an_invalid_template_errors_instead_of_passing() {
    let mut t = template(3, vec![metric("latency")]);
    t.interval = Some("ten seconds".into());
    let status = start(&t, None, None, t0());
    assert_eq!(status.phase, AnalysisPhase::Error);
    let mut status = AnalysisRunStatus::default();
    let outcome = advance(
        &t,
        &mut status,
        &[MetricObservation::value("latency", 0.05)],
        t0(),
    );
    assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
    assert_eq!(status.phase, AnalysisPhase::Error);
    let empty = template(3, vec![]);
    assert!(schedule(&empty).is_err());
}

#[test]
fn template_duration_errors_name_the_field_and_zero_is_decided_per_field() {
    let error = |t: &AnalysisTemplate| schedule(t).unwrap_err().reason;
    let mut t = template(3, vec![metric("latency")]);
    t.interval = Some("ten seconds".into());
    assert_eq!(
        error(&t),
        r#"interval: "ten seconds" is not a duration such as 500ms, 30s, 1m30s or 2h"#
    );
    // Zero parses, but an interval of zero would measure in a tight loop.
    t.interval = Some("0s".into());
    assert_eq!(error(&t), "interval must be longer than zero");
    // An initial delay of zero is no delay.
    t.interval = Some("10s".into());
    t.initial_delay = Some("0ms".into());
    assert_eq!(schedule(&t).unwrap().initial_delay, Duration::ZERO);
    t.initial_delay = Some("1d".into());
    assert!(error(&t).starts_with(r#"initialDelay: "1d" is not a duration"#));
}

#[test]
fn templates_that_bypassed_admission_are_refused() {
    // A relative check whose baseline query is the canary's would always pass.
    let mut same_query = metric("latency");
    same_query.provider.prometheus.as_mut().unwrap().query = "latency".into();
    same_query.relative = Some(RelativeCheck {
        max_regression_percent: 10.0,
        ..RelativeCheck::default()
    });
    let mut reversed = metric("latency");
    reversed.thresholds = Some(MetricThresholds {
        target: 0.5,
        acceptable: 0.2,
        critical: 0.1,
    });
    let mut no_check = metric("latency");
    no_check.thresholds = None;
    for bad in [same_query, reversed, no_check] {
        let t = template(1, vec![bad]);
        let err = schedule(&t).unwrap_err();
        assert!(err.reason.contains("metric \"latency\""), "{err}");
        let mut status = start(&t, None, None, t0());
        assert_eq!(status.phase, AnalysisPhase::Error);
        assert!(matches!(
            advance(
                &t,
                &mut status,
                &[MetricObservation::value("latency", 0.0)],
                t0()
            ),
            RunOutcome::Failed { .. }
        ));
    }
    // Mirrored thresholds are right for a higher-is-better metric.
    let mut success = metric("success");
    success.direction = Some(Direction::HigherIsBetter);
    success.thresholds = Some(MetricThresholds {
        target: 99.9,
        acceptable: 99.0,
        critical: 95.0,
    });
    assert!(schedule(&template(1, vec![success])).is_ok());
}

#[test]
fn messages_stay_bounded() {
    let t = template(2, vec![metric("latency")]);
    let mut status = start(&t, None, None, t0());
    let huge = "x".repeat(20_000);
    advance(
        &t,
        &mut status,
        &[MetricObservation::failed(
            "latency",
            ProviderError::Parse(huge),
        )],
        t0(),
    );
    let m = status.measurements[0].message.as_deref().unwrap();
    assert!(m.chars().count() <= 600, "{}", m.len());
    assert!(status.message.as_deref().unwrap().chars().count() <= 600);
}

#[test]
fn a_status_restored_from_the_api_continues() {
    // The controller may restart between measurements: the persisted status is enough.
    let t = template(2, vec![metric("latency")]);
    let mut status = start(&t, None, None, t0());
    advance(
        &t,
        &mut status,
        &[MetricObservation::value("latency", 0.05)],
        t0(),
    );
    let persisted = serde_json::to_value(&status).unwrap();
    let mut restored: AnalysisRunStatus = serde_json::from_value(persisted).unwrap();
    assert!(!due(&restored, at(9)));
    assert!(due(&restored, at(10)));
    assert_eq!(
        advance(
            &t,
            &mut restored,
            &[MetricObservation::value("latency", 0.05)],
            at(10)
        ),
        RunOutcome::Passed
    );
}

#[test]
fn a_late_measurement_keeps_the_next_on_the_runs_grid_and_an_outage_does_not_burst() {
    let t = AnalysisTemplate {
        name: "grid".into(),
        interval: Some("10s".into()),
        count: Some(10),
        metrics: vec![metric("latency")],
        ..AnalysisTemplate::default()
    };
    let mut status = start(&t, None, None, t0());
    let good = [MetricObservation::value("latency", 0.05)];
    let late = |seconds: i64, millis: i64| {
        at(seconds)
            .checked_add(jiff::SignedDuration::from_millis(millis))
            .unwrap()
    };
    // Due at 0, taken 300 ms late: the next is due at 10, not 10.3.
    let outcome = advance(&t, &mut status, &good, late(0, 300));
    assert_eq!(outcome, RunOutcome::Continue { next_at: at(10) });
    let outcome = advance(&t, &mut status, &good, late(10, 900));
    assert_eq!(outcome, RunOutcome::Continue { next_at: at(20) });
    // Taken 35 s late (an outage): one interval from then, not three catch-ups at once.
    let outcome = advance(&t, &mut status, &good, at(55));
    assert_eq!(outcome, RunOutcome::Continue { next_at: at(65) });
}
