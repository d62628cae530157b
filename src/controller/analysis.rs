//! The I/O of the analyses: measures the runs the pure [`crate::analysis::plan`] finds due
//! through the providers (with the Secrets their web metrics take headers from, and the egress
//! rule of the namespace's policy), advances them with the pure `analysis::run` state machine,
//! and hands the gates of `analysis::plan::gates` to the decision. All run state lives in
//! status; every rule about which run is active, starts, restarts or gates what is in
//! `analysis::plan`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

use super::Context;
use super::attestation::namespace_policy;
use super::error::ReconcileError;
use crate::analysis::plan::{gates, plan};
use crate::analysis::provider::{
    Egress, SecretHeaders, headers_from_secret, not_opted_in, opted_in, referenced_secrets,
};
use crate::analysis::run::{self, RunOutcome};
use crate::analysis::signals::SidePods;
use crate::analysis::vars::QueryVars;
use crate::api::analysis::AnalysisTemplate;
use crate::api::gates::AnalysisGate;
use crate::api::health::{EffectiveGates, PodView};
use crate::api::{
    BaselineMode, SafeDeployment, SafeDeploymentPolicy, SafeDeploymentSpec, SafeDeploymentStatus,
};
use crate::core::revision::baseline_selector;

/// The analyses as recorded in status, with no provider call: the runs brought in line with
/// what is active now ([`plan`]: earlier canaries' runs dropped, missing runs started, runs
/// held by provider errors restarted when their retry time came), the measurements that are
/// due, and the gates for the decision. The reconcile decides on this first, so a revert never
/// waits for a provider; [`measure`] then takes the due measurements if the canary goes on.
pub fn recorded(
    spec: &SafeDeploymentSpec,
    status: &mut SafeDeploymentStatus,
    now: Timestamp,
) -> Recorded {
    let due = plan(spec, status, now);
    let (gates, next_measurement) = gates(spec, status, now);
    Recorded {
        due: due.due,
        retry_wake: due.wake,
        gates,
        wake: earliest(due.wake, next_measurement),
    }
}

/// What [`recorded`] found: the due measurements and the gates as status records them.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// The runs due for a measurement now, as positions in `status.analysis_runs`, with their
    /// template's name.
    pub due: Vec<(usize, String)>,
    /// When a run held by provider errors starts again (the earliest), if one waits for that.
    pub retry_wake: Option<Duration>,
    /// The gates of the active analyses, by template name.
    pub gates: BTreeMap<String, AnalysisGate>,
    /// When to look again for the analyses (the next measurement or retry).
    pub wake: Option<Duration>,
}

impl Recorded {
    /// The gates and wake-up again from `status` after [`measure`] advanced its runs.
    pub fn regate(
        &mut self,
        spec: &SafeDeploymentSpec,
        status: &SafeDeploymentStatus,
        now: Timestamp,
    ) {
        let (gates, next_measurement) = gates(spec, status, now);
        self.gates = gates;
        self.wake = earliest(self.retry_wake, next_measurement);
        self.due.clear();
    }
}

/// The earlier of two optional waits.
fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Takes the `due` measurements through the providers and advances those runs in `status`
/// with the pure `analysis::run` state machine. A run with a job metric whose Job still runs is
/// not advanced (its measurement waits for the Job); the answer is then `true`: the Job's end
/// wakes the reconcile (the Job watch), at the latest after [`super::jobs::JOB_FALLBACK`].
///
/// `pods` and `baseline_pods` are the SafeDeployment's revision pods and fresh-baseline pods
/// from the cache, which `kubernetes` metrics are measured on. Dropping this future before it
/// ends leaves `status` as it was for every run not yet advanced (nothing is half-written).
pub async fn measure(
    sd: &SafeDeployment,
    ctx: &Context,
    status: &mut SafeDeploymentStatus,
    due: &[(usize, String)],
    pods: &[PodView],
    baseline_pods: &[PodView],
    now: Timestamp,
) -> Result<bool, ReconcileError> {
    let mut waiting_for_jobs = false;
    for (position, name) in due {
        let Some(template) = sd.spec.analyses.iter().find(|t| &t.name == name) else {
            continue;
        };
        let vars = query_vars(sd, status);
        let mut job_readings = super::jobs::JobReadings::new();
        if let Some(run_status) = status.analysis_runs.get(*position)
            && template.metrics.iter().any(|m| m.provider.job.is_some())
        {
            let interval = run::schedule(template)
                .map(|s| s.interval)
                .unwrap_or_default();
            let windowed = vars.measured_at(now, interval);
            job_readings = super::jobs::measure(ctx, sd, template, run_status, &windowed).await?;
            if job_readings.values().any(Option::is_none) {
                waiting_for_jobs = true;
                continue;
            }
        }
        let secrets = secret_headers(ctx, &vars.namespace, template).await?;
        let egress = egress(ctx, &vars.namespace, template).await?;
        let fresh = sd.spec.strategy.canary.baseline == Some(BaselineMode::Fresh);
        let baseline_side = if fresh { baseline_pods } else { pods };
        let side_pods = side_pods(sd, template, &vars, pods, baseline_side, now);
        let observations = ctx
            .providers
            .measure_template(template, &vars, &secrets, &egress, &side_pods, now)
            .await;
        // A job metric's observation is its Job's; the providers only say they cannot run it.
        let observations: Vec<_> = observations
            .into_iter()
            .map(|o| match job_readings.remove(&o.metric) {
                Some(Some(from_job)) => from_job,
                _ => o,
            })
            .collect();
        let Some(run_status) = status.analysis_runs.get_mut(*position) else {
            continue;
        };
        let judged = crate::analysis::provider::job::judged(template);
        let outcome = run::advance(&judged, run_status, &observations, now);
        let kind = match &outcome {
            RunOutcome::Continue { .. } => None,
            RunOutcome::Passed => Some("Passed"),
            RunOutcome::Failed { .. } => Some("Failed"),
            RunOutcome::Inconclusive { .. } => Some("Inconclusive"),
        };
        if let Some(kind) = kind {
            crate::telemetry::Metrics::count(&ctx.metrics.analysis_results, kind);
        }
    }
    Ok(waiting_for_jobs)
}

/// The values of `{{canary}}`, `{{stable}}`, `{{baseline}}` and the object's own in queries.
/// With a fresh baseline, `{{baseline}}` (and `{{revision}}` on the baseline side) is the
/// revision label of the baseline's pods only.
fn query_vars(sd: &SafeDeployment, status: &SafeDeploymentStatus) -> QueryVars {
    let stable = status.stable_revision.clone().unwrap_or_default();
    let fresh = sd.spec.strategy.canary.baseline == Some(BaselineMode::Fresh);
    let baseline = if fresh {
        baseline_selector(&stable)
    } else {
        stable.clone()
    };
    QueryVars {
        canary: status.canary_revision.clone().unwrap_or_default(),
        stable,
        baseline,
        namespace: sd.namespace().unwrap_or_default(),
        name: sd.name_any(),
        step_start: crate::analysis::vars::parse_step_start(status.step_started_at.as_deref()),
        window: None,
    }
}

/// The pods `kubernetes` metrics measure, gathered only for a template that has one.
fn side_pods(
    sd: &SafeDeployment,
    template: &AnalysisTemplate,
    vars: &QueryVars,
    pods: &[PodView],
    baseline_side: &[PodView],
    now: Timestamp,
) -> SidePods {
    let wanted = template
        .metrics
        .iter()
        .any(|m| m.provider.kubernetes.is_some());
    if !wanted {
        return SidePods::default();
    }
    let gates = EffectiveGates::from_spec(sd.spec.health.as_ref());
    SidePods::select(
        &vars.canary,
        &vars.baseline,
        pods,
        baseline_side,
        &gates,
        now,
    )
}

/// Reads the Secrets the web metrics take headers from. A Secret without the opt-in label is
/// recorded as refused from its metadata alone: its data is never fetched.
async fn secret_headers(
    ctx: &Context,
    namespace: &str,
    template: &AnalysisTemplate,
) -> Result<SecretHeaders, ReconcileError> {
    let mut headers = SecretHeaders::new();
    let names = referenced_secrets(template);
    if names.is_empty() {
        return Ok(headers);
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    for name in names {
        // A missing Secret is left out: the provider then reports an error for that metric,
        // which can never lead to a pass.
        let Some(meta) = api.get_metadata_opt(&name).await? else {
            continue;
        };
        if !opted_in(meta.metadata.labels.as_ref()) {
            headers.insert(name.clone(), Err(not_opted_in(&name)));
            continue;
        }
        // The label is checked again on the full object (it may have changed in between).
        if let Some(secret) = api.get_opt(&name).await? {
            headers.insert(name, headers_from_secret(&secret));
        }
    }
    Ok(headers)
}

/// Where the template's provider requests may go: the allow-list of the policy that applies to
/// the namespace (`analysis.allowedProviderUrls`), or anywhere without one. Only looked up when
/// the template has a metric that sends requests.
async fn egress(
    ctx: &Context,
    namespace: &str,
    template: &AnalysisTemplate,
) -> Result<Egress, ReconcileError> {
    let sends = template
        .metrics
        .iter()
        .any(|m| m.provider.prometheus.is_some() || m.provider.web.is_some());
    if !sends {
        return Ok(Egress::Any);
    }
    let policy = namespace_policy(ctx, namespace).await?;
    Ok(policy.as_ref().map_or(Egress::Any, egress_of))
}

/// The egress rule of a policy: its allow-list if it sets one.
fn egress_of(policy: &SafeDeploymentPolicy) -> Egress {
    match policy
        .spec
        .analysis
        .as_ref()
        .and_then(|a| a.allowed_provider_urls.clone())
    {
        Some(prefixes) => Egress::Only {
            policy: policy.name_any(),
            prefixes,
        },
        None => Egress::Any,
    }
}
