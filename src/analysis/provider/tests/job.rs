//! The `job` provider's pure half: idempotent names, the Job object, states and retention.

use k8s_openapi::api::batch::v1::JobStatus;
use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::*;
use crate::analysis::judge::judge_metric;
use crate::api::analysis::{Direction, MetricSpec, MetricVerdict};

fn owner() -> JobOwner {
    JobOwner {
        owner: OwnerReference {
            api_version: "safedeploy.dev/v1alpha1".into(),
            kind: "SafeDeployment".into(),
            name: "checkout".into(),
            uid: "0000-1111".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
        namespace: "shop".into(),
        template: "smoke".into(),
        metric: "smoke-test".into(),
        run_started_at: "2026-03-01T12:00:00Z".into(),
        canary_service: Some("checkout-canary".into()),
    }
}

fn vars() -> QueryVars {
    QueryVars {
        canary: "c4n4ry".into(),
        stable: "st4bl3".into(),
        baseline: "st4bl3".into(),
        namespace: "shop".into(),
        name: "checkout".into(),
        ..QueryVars::default()
    }
    .measured_at(
        "2026-03-01T12:05:00Z".parse().unwrap(),
        Duration::from_secs(300),
    )
}

fn provider() -> JobProvider {
    let container = Container {
        name: "smoke".into(),
        image: Some("curlimages/curl".into()),
        env: Some(vec![EnvVar {
            name: "SAFEDEPLOY_CANARY".into(),
            value: Some("a tenant's attempt to test something else".into()),
            value_from: None,
        }]),
        ..Container::default()
    };
    JobProvider {
        template: PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![container],
                restart_policy: Some("OnFailure".into()),
                ..PodSpec::default()
            }),
        },
        deadline: Some(Duration::from_secs(120)),
    }
}

fn with_condition(mut job: Job, kind: &str, status: &str, reason: Option<&str>) -> Job {
    let condition = k8s_openapi::api::batch::v1::JobCondition {
        type_: kind.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
        ..Default::default()
    };
    job.status
        .get_or_insert_with(JobStatus::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
    job
}

#[test]
fn the_name_is_the_same_after_a_restart_and_differs_per_run_and_measurement() {
    let name = job_name(&owner(), &vars(), 3);
    assert_eq!(name, job_name(&owner(), &vars(), 3), "idempotent");
    assert!(name.starts_with("checkout-") && name.ends_with("-3"), "{name}");
    assert_ne!(name, job_name(&owner(), &vars(), 4));
    let restarted = JobOwner {
        run_started_at: "2026-03-01T12:30:00Z".into(),
        ..owner()
    };
    assert_ne!(name, job_name(&restarted, &vars(), 3), "a new run, new Jobs");
    let other_canary = QueryVars {
        canary: "n3w".into(),
        ..vars()
    };
    assert_ne!(name, job_name(&owner(), &other_canary, 3));
}

#[test]
fn a_long_or_odd_name_still_gives_a_valid_job_name() {
    let long = QueryVars {
        name: format!("{}-x", "a".repeat(250)),
        ..vars()
    };
    let name = job_name(&owner(), &long, i32::MAX);
    assert!(name.len() <= 63, "{} characters", name.len());
    let dashes = QueryVars {
        name: format!("{}-{}", "b".repeat(40), "-".repeat(30)),
        ..vars()
    };
    let name = job_name(&owner(), &dashes, 1);
    assert!(name.len() <= 63 && !name.contains("--"), "{name}");
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    );
}

#[test]
fn the_job_is_owned_labelled_bounded_and_tests_the_canary() {
    let job = build_job(&provider(), &owner(), &vars(), 2).unwrap();
    let meta = &job.metadata;
    assert_eq!(meta.owner_references.as_deref(), Some(&[owner().owner][..]));
    assert_eq!(meta.namespace.as_deref(), Some("shop"));
    let labels = meta.labels.clone().unwrap();
    assert_eq!(labels.get(JOB_LABEL).map(String::as_str), Some("true"));
    assert_eq!(
        labels.get(RUN_LABEL),
        Some(&run_key(&owner(), &vars())),
        "the run's Jobs can be listed"
    );
    let spec = job.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.active_deadline_seconds, Some(120));
    assert_eq!(spec.ttl_seconds_after_finished, Some(RETENTION_SECONDS));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let env: BTreeMap<String, String> = pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    // The operator's value replaced the template's: the Job tests the run's canary.
    assert_eq!(env["SAFEDEPLOY_CANARY"], "c4n4ry");
    assert_eq!(env["SAFEDEPLOY_CANARY_SERVICE"], "checkout-canary");
    assert_eq!(env["SAFEDEPLOY_WINDOW_START"], "2026-03-01T12:00:00Z");
    assert_eq!(env["SAFEDEPLOY_NOW"], "2026-03-01T12:05:00Z");
    assert_eq!(
        pod.containers[0].env.iter().flatten().count(),
        env.len(),
        "no duplicate names"
    );
    assert_eq!(
        spec.template.metadata.unwrap().labels.unwrap().get(JOB_LABEL),
        Some(&"true".to_string())
    );
}

#[test]
fn unbounded_or_empty_jobs_are_refused() {
    for deadline in [Duration::ZERO, MAX_DEADLINE + Duration::from_secs(1)] {
        let provider = JobProvider {
            deadline: Some(deadline),
            ..provider()
        };
        assert!(matches!(
            build_job(&provider, &owner(), &vars(), 1),
            Err(ProviderError::Config(_))
        ));
    }
    let empty = JobProvider {
        template: PodTemplateSpec::default(),
        deadline: None,
    };
    assert!(matches!(
        build_job(&empty, &owner(), &vars(), 1),
        Err(ProviderError::Config(m)) if m.contains("container")
    ));
}

#[test]
fn states_judge_as_pass_critical_or_error() {
    let job = build_job(&provider(), &owner(), &vars(), 1).unwrap();
    let running = with_condition(job.clone(), "Complete", "False", None);
    assert_eq!(job_state(&running), JobState::Running);
    assert_eq!(observation("smoke", &JobState::Running), None);

    let spec = MetricSpec {
        name: "smoke".into(),
        direction: Some(Direction::HigherIsBetter),
        thresholds: Some(job_thresholds()),
        ..MetricSpec::default()
    };
    let verdict = |job: &Job| {
        let observation = observation("smoke", &job_state(job)).unwrap();
        judge_metric(&spec, Some(&observation)).verdict
    };
    let succeeded = with_condition(job.clone(), "Complete", "True", None);
    assert_eq!(verdict(&succeeded), MetricVerdict::Pass);
    let failed = with_condition(job.clone(), "Failed", "True", Some("BackoffLimitExceeded"));
    assert_eq!(
        job_state(&failed),
        JobState::Failed("BackoffLimitExceeded".into())
    );
    assert_eq!(verdict(&failed), MetricVerdict::Critical);
    let late = with_condition(job, "Failed", "True", Some("DeadlineExceeded"));
    assert_eq!(job_state(&late), JobState::DeadlineExceeded);
    assert_eq!(verdict(&late), MetricVerdict::Error);
}

#[test]
fn retention_deletes_the_oldest_finished_jobs_only() {
    let job = |n: i32, done: bool| {
        let job = build_job(&provider(), &owner(), &vars(), n).unwrap();
        if done {
            with_condition(job, "Complete", "True", None)
        } else {
            job
        }
    };
    let jobs: Vec<Job> = (1..=6).map(|n| job(n, n != 2)).collect();
    let names = expired(&jobs);
    // Five finished (1, 3, 4, 5, 6): the two oldest go; the running 2 stays.
    assert_eq!(
        names,
        vec![
            job_name(&owner(), &vars(), 1),
            job_name(&owner(), &vars(), 3)
        ]
    );
    assert!(expired(&jobs[..3]).is_empty());
}

#[test]
fn two_job_metrics_of_one_run_get_different_jobs() {
    let other_metric = JobOwner {
        metric: "load-test".into(),
        ..owner()
    };
    assert_ne!(
        job_name(&owner(), &vars(), 1),
        job_name(&other_metric, &vars(), 1),
        "two job metrics of one template would otherwise read each other's Job"
    );
}

#[test]
fn a_job_someone_else_created_under_the_expected_name_is_not_ours() {
    let ours = build_job(&provider(), &owner(), &vars(), 1).unwrap();
    assert!(owned_by(&ours, "0000-1111"));
    let mut planted = ours.clone();
    planted.metadata.owner_references = None;
    assert!(!owned_by(&planted, "0000-1111"), "no owner: a planted Job");
    let mut foreign = ours.clone();
    if let Some(refs) = foreign.metadata.owner_references.as_mut() {
        refs[0].uid = "another-safedeployment".into();
    }
    assert!(!owned_by(&foreign, "0000-1111"), "owned by another object");
    let mut not_controller = ours;
    if let Some(refs) = not_controller.metadata.owner_references.as_mut() {
        refs[0].controller = None;
    }
    assert!(!owned_by(&not_controller, "0000-1111"), "an owner, but not the controller");
}

#[test]
fn a_job_metric_is_judged_higher_is_better_and_others_are_left_alone() {
    let template: crate::api::analysis::AnalysisTemplate = serde_yaml::from_str(
        r#"
name: smoke
metrics:
  - name: smoke-test
    provider:
      job:
        template:
          spec:
            containers: [{name: t, image: busybox}]
  - name: errors
    provider:
      prometheus: {address: "http://prometheus:9090", query: "up"}
    thresholds: {target: 0, acceptable: 0.01, critical: 0.05}
"#,
    )
    .unwrap();
    let judged = judged(&template);
    assert_eq!(
        judged.metrics[0].direction,
        Some(crate::api::analysis::Direction::HigherIsBetter)
    );
    assert_eq!(judged.metrics[0].thresholds, Some(job_thresholds()));
    assert_eq!(judged.metrics[1], template.metrics[1]);
    for schedulable in [&judged, &template] {
        let schedule = crate::analysis::run::schedule(schedulable);
        assert!(schedule.is_ok(), "{schedule:?}");
    }
}
