//! The I/O of `job` analysis metrics: creates the Job of a due measurement (once: the name is
//! derived from the run and the measurement, so a restarted operator finds it), reads whether
//! it finished, and deletes a run's finished Jobs beyond the newest few. What the Job is and
//! how its end is judged is pure, in `analysis::provider::job`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Resource, ResourceExt};

use super::Context;
use super::error::ReconcileError;
use crate::analysis::MetricObservation;
use crate::analysis::ProviderError;
use crate::analysis::provider::job::{
    self, JobOwner, JobProvider, JobState, RUN_LABEL, build_job, job_state, owned_by,
};
use crate::analysis::vars::QueryVars;
use crate::api::SafeDeployment;
use crate::api::analysis::{AnalysisRunStatus, AnalysisTemplate};

/// How long a reconcile waits at most before it looks again while a measurement waits for its
/// Job. The Jobs are watched (metadata only, by their label: `watch.rs`), so a Job's end wakes
/// the SafeDeployment at once; this only bounds the wait if that event were lost.
pub const JOB_FALLBACK: Duration = Duration::from_secs(60);

/// The job metrics of one measurement of a run: a finished Job's observation per metric name,
/// or `None` for a metric whose Job still runs.
pub type JobReadings = BTreeMap<String, Option<MetricObservation>>;

/// Runs (or finds) the Job of each job metric of `template` for the run's next measurement and
/// reads it. A metric whose Job cannot be made (no owner reference, a refused template) or that
/// finds a Job it does not own under its name gets an error observation, never a pass.
pub async fn measure(
    ctx: &Context,
    sd: &SafeDeployment,
    template: &AnalysisTemplate,
    run: &AnalysisRunStatus,
    vars: &QueryVars,
) -> Result<JobReadings, ReconcileError> {
    let mut readings = JobReadings::new();
    let Some(owner) = sd.controller_owner_ref(&()) else {
        return Ok(readings);
    };
    let owner_uid = owner.uid.clone();
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &vars.namespace);
    let measurement = run.measurement_count.saturating_add(1);
    for metric in &template.metrics {
        let Some(spec) = &metric.provider.job else {
            continue;
        };
        let job_owner = JobOwner {
            owner: owner.clone(),
            namespace: vars.namespace.clone(),
            template: template.name.clone(),
            metric: metric.name.clone(),
            run_started_at: run.started_at.clone().unwrap_or_default(),
            canary_service: None,
        };
        let wanted = match build_job(&JobProvider::from(spec), &job_owner, vars, measurement) {
            Ok(wanted) => wanted,
            Err(error) => {
                readings.insert(
                    metric.name.clone(),
                    Some(MetricObservation::failed(&metric.name, error)),
                );
                continue;
            }
        };
        let name = wanted.name_any();
        let found = match api.get_opt(&name).await? {
            Some(found) => found,
            None => create(ctx, &api, &wanted).await?,
        };
        let reading = if !owned_by(&found, &owner_uid) {
            Some(MetricObservation::failed(
                &metric.name,
                ProviderError::Config(format!(
                    "a Job named {name:?} exists that this SafeDeployment did not create; it is not read as a verdict"
                )),
            ))
        } else {
            let state = job_state(&found);
            if state != JobState::Running {
                let key = job::run_key(&job_owner, vars);
                delete_expired(ctx, &api, &key).await;
            }
            job::observation(&metric.name, &state)
        };
        readings.insert(metric.name.clone(), reading);
    }
    Ok(readings)
}

/// Creates the Job; one that exists already (created by an earlier reconcile whose answer was
/// lost) is read instead.
async fn create(ctx: &Context, api: &Api<Job>, wanted: &Job) -> Result<Job, ReconcileError> {
    ctx.ensure_leader()?;
    match api.create(&PostParams::default(), wanted).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            Ok(api.get(&wanted.name_any()).await?)
        }
        Err(error) => Err(error.into()),
    }
}

/// Deletes the run's finished Jobs beyond the newest [`job::MAX_KEPT_PER_RUN`] (with their
/// pods). Best effort: a failure leaves them to Kubernetes' TTL controller.
async fn delete_expired(ctx: &Context, api: &Api<Job>, run_key: &str) {
    let selector = ListParams::default().labels(&format!("{RUN_LABEL}={run_key}"));
    let Ok(jobs) = api.list(&selector).await else {
        return;
    };
    for name in job::expired(&jobs.items) {
        if ctx.ensure_leader().is_err() {
            return;
        }
        if let Err(error) = api.delete(&name, &DeleteParams::background()).await {
            tracing::debug!(job = %name, %error, "could not delete an expired analysis Job");
        }
    }
}
