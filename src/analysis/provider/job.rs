//! The `job` provider's pure half: which Job a measurement runs (an idempotent name from the
//! run and the measurement number, so a restarted operator finds the Job it started instead of
//! starting a second), the Job object itself (owned by the SafeDeployment, labelled so the
//! operator watches only its own Jobs, bounded in time and retention, the canary given to it as
//! environment variables), how a Job's status reads as an observation, and which finished Jobs
//! to delete. No I/O: the controller (`controller::jobs`) creates, reads and deletes the Jobs.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use ring::digest::{SHA256, digest};

use super::ProviderError;
use crate::analysis::MetricObservation;
use crate::analysis::vars::QueryVars;

/// Label on every analysis Job, value `"true"`: the operator's Job watch selects on it, so it
/// never caches or reacts to anyone else's Jobs.
pub const JOB_LABEL: &str = "safedeploy.dev/analysis-job";
/// Label with the run's key ([`run_key`]): the Jobs of one analysis run.
pub const RUN_LABEL: &str = "safedeploy.dev/analysis-run";
/// Annotation with the measurement number the Job judges.
pub const MEASUREMENT_ANNOTATION: &str = "safedeploy.dev/measurement";
/// Longest a Job may run, whatever its metric says (its `activeDeadlineSeconds`).
pub const MAX_DEADLINE: Duration = Duration::from_secs(3600);
/// A Job's deadline when its metric sets none.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);
/// How long a finished Job (and its pods) stays for inspection before Kubernetes' TTL
/// controller deletes it (`ttlSecondsAfterFinished`); [`expired`] also bounds the count.
pub const RETENTION_SECONDS: i32 = 3600;
/// Finished Jobs kept per run at most; older ones are deleted by the operator.
pub const MAX_KEPT_PER_RUN: usize = 3;

/// What a `job` metric asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobProvider {
    /// The pod template of the Job (its `restartPolicy` is forced to `Never`).
    pub template: PodTemplateSpec,
    /// How long the Job may run before it counts as an error (default [`DEFAULT_DEADLINE`], at
    /// most [`MAX_DEADLINE`]).
    pub deadline: Option<Duration>,
}

/// Who the Job runs for: the SafeDeployment (its owner) and the analysis run.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOwner {
    /// The SafeDeployment's owner reference (controller, blocking deletion of the owner).
    pub owner: OwnerReference,
    /// Namespace of the SafeDeployment, where the Job runs.
    pub namespace: String,
    /// Name of the analysis template.
    pub template: String,
    /// Name of the metric the Job measures (two job metrics of one template run apart).
    pub metric: String,
    /// When the run started (`status.analysisRuns[].startedAt`): with the canary revision, it
    /// tells one run from a restarted one.
    pub run_started_at: String,
    /// The canary's Service, when traffic is routed (`SAFEDEPLOY_CANARY_SERVICE`).
    pub canary_service: Option<String>,
}

/// A short stable key of one analysis run: the same run gives the same key after a restart.
pub fn run_key(owner: &JobOwner, vars: &QueryVars) -> String {
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        owner.namespace,
        vars.name,
        owner.template,
        owner.metric,
        vars.canary,
        owner.run_started_at
    );
    let hash = digest(&SHA256, text.as_bytes());
    hex::encode(hash.as_ref().iter().take(5).copied().collect::<Vec<u8>>())
}

/// The Job's name for measurement `measurement` of the run: `<name>-<run key>-<n>`, at most 63
/// characters (a Job's name becomes a pod label value), the SafeDeployment's name shortened if
/// needed. Equal inputs give equal names, so creating it twice fails with AlreadyExists.
pub fn job_name(owner: &JobOwner, vars: &QueryVars, measurement: i32) -> String {
    let suffix = format!("-{}-{measurement}", run_key(owner, vars));
    let room = 63usize.saturating_sub(suffix.len());
    let mut head: String = vars.name.chars().take(room).collect();
    while head.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        head.pop();
    }
    if head.is_empty() {
        head.push_str("analysis");
    }
    format!("{head}{suffix}")
}

/// The environment every container of the Job gets: what it tests and when.
fn environment(owner: &JobOwner, vars: &QueryVars) -> Vec<EnvVar> {
    let mut env = vec![
        ("SAFEDEPLOY_CANARY", vars.canary.clone()),
        ("SAFEDEPLOY_STABLE", vars.stable.clone()),
        ("SAFEDEPLOY_BASELINE", vars.baseline.clone()),
        ("SAFEDEPLOY_NAMESPACE", vars.namespace.clone()),
        ("SAFEDEPLOY_NAME", vars.name.clone()),
    ];
    if let Some(service) = &owner.canary_service {
        env.push(("SAFEDEPLOY_CANARY_SERVICE", service.clone()));
    }
    if let Some(window) = vars.window {
        env.push(("SAFEDEPLOY_WINDOW_START", window.start.to_string()));
        env.push(("SAFEDEPLOY_NOW", window.end.to_string()));
    }
    if let Some(step) = vars.step_start {
        env.push(("SAFEDEPLOY_STEP_START", step.to_string()));
    }
    env.into_iter()
        .map(|(name, value)| EnvVar {
            name: name.to_string(),
            value: Some(value),
            value_from: None,
        })
        .collect()
}

/// The Job of measurement `measurement`: owned by the SafeDeployment, labelled, one attempt
/// (`backoffLimit: 0`: a flaky test that passes on a retry would hide a flaky canary), bounded by
/// its deadline and kept [`RETENTION_SECONDS`] after it finishes. Environment variables the
/// template already sets under the same names are replaced (the operator's values win: the
/// test must test the canary the run judges).
pub fn build_job(
    provider: &JobProvider,
    owner: &JobOwner,
    vars: &QueryVars,
    measurement: i32,
) -> Result<Job, ProviderError> {
    let deadline = provider.deadline.unwrap_or(DEFAULT_DEADLINE);
    if deadline.is_zero() || deadline > MAX_DEADLINE {
        return Err(ProviderError::Config(format!(
            "job.deadline must be between 1s and {}s",
            MAX_DEADLINE.as_secs()
        )));
    }
    let mut template = provider.template.clone();
    let env = environment(owner, vars);
    let pod = template.spec.get_or_insert_with(Default::default);
    if pod.containers.is_empty() {
        return Err(ProviderError::Config(
            "job.template needs at least one container".into(),
        ));
    }
    pod.restart_policy = Some("Never".into());
    for container in pod.containers.iter_mut() {
        let own = container.env.get_or_insert_with(Vec::new);
        own.retain(|e| !env.iter().any(|ours| ours.name == e.name));
        own.extend(env.iter().cloned());
    }
    let key = run_key(owner, vars);
    let labels = BTreeMap::from([
        (JOB_LABEL.to_string(), "true".to_string()),
        (RUN_LABEL.to_string(), key),
    ]);
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .extend(labels.clone());
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(owner, vars, measurement)),
            namespace: Some(owner.namespace.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                MEASUREMENT_ANNOTATION.to_string(),
                measurement.to_string(),
            )])),
            owner_references: Some(vec![owner.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            template,
            backoff_limit: Some(0),
            active_deadline_seconds: Some(i64::try_from(deadline.as_secs()).unwrap_or(3600)),
            ttl_seconds_after_finished: Some(RETENTION_SECONDS),
            ..JobSpec::default()
        }),
        status: None,
    })
}

/// Where a Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Not finished yet: the measurement waits for it.
    Running,
    /// Finished successfully (condition `Complete`).
    Succeeded,
    /// Its pod failed (condition `Failed`, any reason but the deadline).
    Failed(String),
    /// It ran out of time (`Failed` with reason `DeadlineExceeded`).
    DeadlineExceeded,
}

/// The state of a Job from its conditions (only `True` ones count).
pub fn job_state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let holds = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind && c.status == "True")
    };
    if let Some(failed) = holds("Failed") {
        let reason = failed.reason.clone().unwrap_or_default();
        return if reason == "DeadlineExceeded" {
            JobState::DeadlineExceeded
        } else {
            JobState::Failed(reason)
        };
    }
    if holds("Complete").is_some() {
        return JobState::Succeeded;
    }
    JobState::Running
}

/// The value a finished Job gives its metric: 1 for success, 0 for failure; judged with
/// [`job_thresholds`]. A deadline is an error (the metric's `onError` decides), not a failure
/// of the canary. `None` while it runs.
pub fn observation(metric: &str, state: &JobState) -> Option<MetricObservation> {
    let canary = match state {
        JobState::Running => return None,
        JobState::Succeeded => Ok(1.0),
        JobState::Failed(_) => Ok(0.0),
        JobState::DeadlineExceeded => Err(ProviderError::Unreachable(
            "the Job ran past its deadline (DeadlineExceeded)".into(),
        )),
    };
    Some(MetricObservation {
        metric: metric.to_string(),
        canary: Some(canary),
        ..MetricObservation::default()
    })
}

/// The thresholds that judge a Job's value with direction `higher-is-better`: 1 passes, 0 is
/// critical.
pub fn job_thresholds() -> crate::api::analysis::MetricThresholds {
    crate::api::analysis::MetricThresholds {
        target: 1.0,
        acceptable: 1.0,
        critical: 0.0,
    }
}

/// Whether `job` was created by this SafeDeployment (its controller owner reference has
/// `owner_uid`). A Job with the expected name that someone else created (a tenant guessing the
/// name to pre-create a Job that always passes) is not read as a verdict.
pub fn owned_by(job: &Job, owner_uid: &str) -> bool {
    job.metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == owner_uid)
}

/// The template as the run judges it: each job metric gets the thresholds of
/// [`job_thresholds`] with direction `higherIsBetter` (admission refuses checks of its own on
/// a job metric, so nothing the user wrote is replaced).
pub fn judged(template: &crate::api::analysis::AnalysisTemplate) -> crate::api::analysis::AnalysisTemplate {
    let mut judged = template.clone();
    for metric in judged.metrics.iter_mut().filter(|m| m.provider.job.is_some()) {
        metric.direction = Some(crate::api::analysis::Direction::HigherIsBetter);
        metric.thresholds = Some(job_thresholds());
    }
    judged
}

impl From<&crate::api::job::KubernetesJobProvider> for JobProvider {
    fn from(spec: &crate::api::job::KubernetesJobProvider) -> Self {
        Self {
            template: spec.template.clone(),
            deadline: spec.deadline(),
        }
    }
}

/// Names of the finished Jobs of one run to delete: all but the newest [`MAX_KEPT_PER_RUN`]
/// finished ones (by measurement number). Running Jobs are never listed.
pub fn expired(jobs: &[Job]) -> Vec<String> {
    let mut finished: Vec<(i32, String)> = jobs
        .iter()
        .filter(|job| job_state(job) != JobState::Running)
        .filter_map(|job| {
            let number = job
                .metadata
                .annotations
                .as_ref()?
                .get(MEASUREMENT_ANNOTATION)?
                .parse()
                .ok()?;
            Some((number, job.metadata.name.clone()?))
        })
        .collect();
    finished.sort();
    let excess = finished.len().saturating_sub(MAX_KEPT_PER_RUN);
    finished.into_iter().take(excess).map(|(_, n)| n).collect()
}

#[cfg(test)]
#[path = "tests/job.rs"]
mod tests;
