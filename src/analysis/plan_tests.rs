//! Tests of [`super`]: which analyses are active, the run lifecycle, the retry rule and the gates.

use super::*;
use crate::api::analysis::{AnalysisPhase, Measurement, MetricSpec};
use crate::api::{AnalysisStep, CanaryStep};

fn template(dry_run_errors: bool) -> AnalysisTemplate {
    let metric = |name: &str, dry_run: bool| MetricSpec {
        name: name.into(),
        dry_run,
        provider: crate::api::analysis::Provider {
            prometheus: Some(crate::api::analysis::PrometheusProvider {
                address: "http://prometheus:9090".into(),
                query: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        thresholds: Some(crate::api::analysis::MetricThresholds {
            target: 0.1,
            acceptable: 0.2,
            critical: 0.5,
        }),
        ..MetricSpec::default()
    };
    AnalysisTemplate {
        name: "t".into(),
        interval: Some("30s".into()),
        metrics: vec![metric("latency", false), metric("errors", dry_run_errors)],
        ..AnalysisTemplate::default()
    }
}

fn inconclusive_run(errors_verdict: MetricVerdict) -> AnalysisRunStatus {
    let measurement = |metric: &str, verdict: MetricVerdict| Measurement {
        metric: metric.into(),
        verdict,
        at: "2026-01-01T00:00:00Z".into(),
        ..Measurement::default()
    };
    AnalysisRunStatus {
        template: "t".into(),
        phase: AnalysisPhase::Inconclusive,
        finished_at: Some("2026-01-01T00:00:00Z".into()),
        measurements: vec![
            measurement("latency", MetricVerdict::Marginal),
            measurement("errors", errors_verdict),
        ],
        consecutive_errors: BTreeMap::from([("errors".to_string(), 5)]),
        ..AnalysisRunStatus::default()
    }
}

#[test]
fn a_run_held_by_a_provider_error_is_retried_one_interval_later() {
    let retry =
        retry_after_provider_errors(&template(false), &inconclusive_run(MetricVerdict::Error));
    assert_eq!(retry, Some("2026-01-01T00:00:30Z".parse().unwrap()));
    let mut running = inconclusive_run(MetricVerdict::Error);
    running.phase = AnalysisPhase::Running;
    assert_eq!(
        retry_after_provider_errors(&template(false), &running),
        None
    );
}

#[test]
fn a_run_held_by_too_little_traffic_is_retried_one_interval_later() {
    let run = AnalysisRunStatus {
        consecutive_errors: BTreeMap::new(),
        ..inconclusive_run(MetricVerdict::InsufficientTraffic)
    };
    let retry = retry_after_provider_errors(&template(false), &run);
    assert_eq!(retry, Some("2026-01-01T00:00:30Z".parse().unwrap()));
    // Not when the thin metric is a dry run: the marginal score waits for a person.
    assert_eq!(retry_after_provider_errors(&template(true), &run), None);
}

#[test]
fn a_dry_run_metrics_errors_do_not_make_a_marginal_run_transient() {
    // Inconclusive by its marginal score; only the dry-run metric erred: a person decides.
    let run = inconclusive_run(MetricVerdict::Error);
    assert_eq!(retry_after_provider_errors(&template(true), &run), None);
    let clean = AnalysisRunStatus {
        consecutive_errors: BTreeMap::new(),
        ..inconclusive_run(MetricVerdict::Pass)
    };
    assert_eq!(retry_after_provider_errors(&template(false), &clean), None);
}

fn spec_with(template: AnalysisTemplate) -> SafeDeploymentSpec {
    let mut spec = SafeDeploymentSpec {
        analyses: vec![template],
        ..Default::default()
    };
    spec.strategy.canary.background_analysis = Some("t".into());
    spec.strategy.canary.steps = vec![
        CanaryStep {
            set_weight: Some(50),
            ..Default::default()
        },
        CanaryStep {
            analysis: Some(AnalysisStep {
                template: "t".into(),
            }),
            ..Default::default()
        },
    ];
    spec
}

fn canary_at(step: i32) -> SafeDeploymentStatus {
    SafeDeploymentStatus {
        canary_revision: Some("c1".into()),
        current_step_index: Some(step),
        ..Default::default()
    }
}

#[test]
fn the_background_analysis_and_the_current_steps_gate_a_canary_and_nothing_gates_without_one() {
    let spec = spec_with(template(false));
    let background = Active {
        template: "t".into(),
        step: None,
    };
    assert_eq!(active(&spec, &canary_at(0)), vec![background.clone()]);
    assert_eq!(
        active(&spec, &canary_at(1)),
        vec![
            background,
            Active {
                template: "t".into(),
                step: Some(1)
            }
        ]
    );
    assert_eq!(active(&spec, &SafeDeploymentStatus::default()), vec![]);
}

#[test]
fn planning_starts_missing_runs_drops_earlier_canaries_and_names_the_due_ones() {
    let spec = spec_with(template(false));
    let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut status = canary_at(1);
    status.analysis_runs.push(AnalysisRunStatus {
        template: "t".into(),
        canary_revision: Some("earlier".into()),
        ..AnalysisRunStatus::default()
    });
    let plan = plan(&spec, &mut status, now);
    assert_eq!(status.analysis_runs.len(), 2, "{:?}", status.analysis_runs);
    assert!(
        status
            .analysis_runs
            .iter()
            .all(|r| r.canary_revision.as_deref() == Some("c1"))
    );
    assert_eq!(plan.due, vec![(0, "t".to_string()), (1, "t".to_string())]);
    // Not measured yet: both gates wait for evidence.
    let (gates, _) = gates(&spec, &status, now);
    assert!(matches!(gates.get("t"), Some(AnalysisGate::Pending(_))));
    // Without a canary nothing is planned and the last runs stay as they are.
    let mut after = status.clone();
    after.canary_revision = None;
    assert_eq!(plan_of(&spec, &mut after, now), Plan::default());
    assert_eq!(after.analysis_runs, status.analysis_runs);
}

fn plan_of(spec: &SafeDeploymentSpec, status: &mut SafeDeploymentStatus, now: Timestamp) -> Plan {
    plan(spec, status, now)
}

#[test]
fn a_run_held_by_a_provider_error_restarts_when_its_retry_time_comes() {
    let spec = spec_with(template(false));
    let mut status = canary_at(0);
    let mut held = inconclusive_run(MetricVerdict::Error);
    held.canary_revision = Some("c1".into());
    status.analysis_runs.push(held);
    let before: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
    let plan_before = plan(&spec, &mut status, before);
    assert_eq!(plan_before.wake, Some(Duration::from_secs(20)));
    assert!(plan_before.due.is_empty());
    let (gates_before, _) = gates(&spec, &status, before);
    assert!(matches!(
        gates_before.get("t"),
        Some(AnalysisGate::Inconclusive(_))
    ));
    let after: Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
    let plan_after = plan(&spec, &mut status, after);
    assert_eq!(plan_after.due, vec![(0, "t".to_string())]);
    assert_eq!(status.analysis_runs[0].phase, AnalysisPhase::Running);
}

#[test]
fn a_run_with_job_metrics_is_measured_only_once_its_start_is_in_status() {
    let mut with_job = template(false);
    with_job.metrics[0].provider = crate::api::analysis::Provider {
        job: Some(crate::api::job::KubernetesJobProvider::default()),
        ..Default::default()
    };
    let spec = spec_with(with_job);
    let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut status = canary_at(0);
    let started = plan(&spec, &mut status, now);
    assert!(started.due.is_empty(), "{:?}", started.due);
    assert_eq!(started.wake, Some(Duration::ZERO), "looked at again at once");
    assert_eq!(status.analysis_runs.len(), 1);
    // The next decision reads the start back from status: the same run, due now.
    let start = status.analysis_runs[0].started_at.clone();
    let persisted = plan(&spec, &mut status, now);
    assert_eq!(persisted.due, vec![(0, "t".to_string())]);
    assert_eq!(status.analysis_runs[0].started_at, start);
}
