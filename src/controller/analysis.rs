//! Runs the analyses the current canary step depends on: starts their runs, measures the due ones
//! through the providers, advances them with the pure `analysis::run` state machine, and turns
//! their state into the gates the rollout decision reads. All run state lives in status.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::Api;

use super::Context;
use super::error::ReconcileError;
use crate::analysis::provider::{
    Egress, SecretHeaders, headers_from_secret, not_opted_in, opted_in, referenced_secrets,
};
use crate::analysis::run::{self, RunOutcome};
use crate::analysis::signals::SidePods;
use crate::analysis::vars::QueryVars;
use crate::api::analysis::{AnalysisRunStatus, AnalysisTemplate, MetricVerdict};
use crate::api::{BaselineMode, SafeDeployment, SafeDeploymentPolicy, SafeDeploymentStatus};
use crate::attest::policy::resolve_policy;
use crate::core::health::{EffectiveGates, PodView};
use crate::core::revision::baseline_selector;
use crate::core::rollout::AnalysisGate;

/// The analyses that gate the canary now: `(template, step)`, step None for the background one.
fn active(sd: &SafeDeployment, status: &SafeDeploymentStatus) -> Vec<(String, Option<i32>)> {
    if status.canary_revision.is_none() {
        return Vec::new();
    }
    let canary = &sd.spec.strategy.canary;
    let mut wanted = Vec::new();
    if let Some(name) = &canary.background_analysis {
        wanted.push((name.clone(), None));
    }
    let index = status.current_step_index.unwrap_or(0);
    let step = usize::try_from(index)
        .ok()
        .and_then(|i| canary.steps.get(i));
    if let Some(analysis) = step.and_then(|s| s.analysis.as_ref()) {
        wanted.push((analysis.template.clone(), Some(index)));
    }
    wanted
}

/// Brings the analysis runs in `status` up to date (measuring what is due) and returns the gates
/// for the decision, and when the next measurement is due.
///
/// `pods` and `baseline_pods` are the SafeDeployment's revision pods and fresh-baseline pods
/// from the cache, which `kubernetes` metrics are measured on.
pub async fn refresh(
    sd: &SafeDeployment,
    ctx: &Context,
    status: &mut SafeDeploymentStatus,
    pods: &[PodView],
    baseline_pods: &[PodView],
    now: Timestamp,
) -> Result<(BTreeMap<String, AnalysisGate>, Option<Duration>), ReconcileError> {
    let wanted = active(sd, status);
    let Some(canary) = status.canary_revision.clone() else {
        // No canary: the last canary's finished runs stay in status to explain how it ended.
        return Ok((BTreeMap::new(), None));
    };
    // Runs of earlier canaries are gone; finished runs of this canary stay for explanation.
    status
        .analysis_runs
        .retain(|r| r.canary_revision.as_deref() == Some(canary.as_str()));
    let mut gates = BTreeMap::new();
    let mut wake: Option<Duration> = None;
    for (name, step) in wanted {
        let Some(template) = sd.spec.analyses.iter().find(|t| t.name == name) else {
            continue;
        };
        let position = match status
            .analysis_runs
            .iter()
            .position(|r| r.template == name && r.step_index == step)
        {
            Some(position) => position,
            None => {
                status
                    .analysis_runs
                    .push(run::start(template, Some(&canary), step, now));
                status.analysis_runs.len() - 1
            }
        };
        let run_status: &mut AnalysisRunStatus = &mut status.analysis_runs[position];
        if let Some(retry_at) = retry_after_provider_errors(template, run_status) {
            // Inconclusive because a provider could not be reached: the rollout holds, and a
            // fresh run starts one interval later, so the rollout goes on once it answers again.
            if retry_at <= now {
                *run_status = run::start(template, Some(&canary), step, now);
            } else {
                let millis = (retry_at.as_millisecond() - now.as_millisecond()).max(0);
                let after = Duration::from_millis(u64::try_from(millis).unwrap_or(0));
                wake = Some(wake.map_or(after, |w| w.min(after)));
            }
        }
        if run::due(run_status, now) {
            let stable = status.stable_revision.clone().unwrap_or_default();
            // With a fresh baseline, `{{baseline}}` (and `{{revision}}` on the baseline side)
            // is the revision label of the baseline's pods only.
            let fresh = sd.spec.strategy.canary.baseline == Some(BaselineMode::Fresh);
            let baseline = if fresh {
                baseline_selector(&stable)
            } else {
                stable.clone()
            };
            let vars = QueryVars {
                canary: canary.clone(),
                stable,
                baseline,
                namespace: sd.namespace().unwrap_or_default(),
                name: sd.name_any(),
            };
            let secrets = secret_headers(ctx, &vars.namespace, template).await?;
            let egress = egress(ctx, &vars.namespace, template).await?;
            let baseline_side = if fresh { baseline_pods } else { pods };
            let side_pods = side_pods(sd, template, &vars, pods, baseline_side, now);
            let observations = ctx
                .providers
                .measure_template(template, &vars, &secrets, &egress, &side_pods, now)
                .await;
            let outcome = run::advance(template, run_status, &observations, now);
            if !matches!(outcome, RunOutcome::Continue { .. }) {
                let kind = match &outcome {
                    RunOutcome::Passed => "Passed",
                    RunOutcome::Failed { .. } => "Failed",
                    RunOutcome::Inconclusive { .. } => "Inconclusive",
                    RunOutcome::Continue { .. } => "Continue",
                };
                crate::telemetry::Metrics::count(&ctx.metrics.analysis_results, kind);
            }
        }
        let gate = match run::terminal_outcome(run_status) {
            None => match run::evidence(template, run_status) {
                Ok(()) => AnalysisGate::Running,
                Err(why) => AnalysisGate::Pending(why),
            },
            Some(RunOutcome::Passed) => AnalysisGate::Passed,
            Some(RunOutcome::Failed { reason }) => AnalysisGate::Failed(reason),
            Some(RunOutcome::Inconclusive { reason }) => AnalysisGate::Inconclusive(reason),
            Some(RunOutcome::Continue { .. }) => AnalysisGate::Running,
        };
        if let Some(next) = run::next_measurement_at(run_status) {
            let millis = (next.as_millisecond() - now.as_millisecond()).max(0);
            let after = Duration::from_millis(u64::try_from(millis).unwrap_or(0));
            wake = Some(wake.map_or(after, |w| w.min(after)));
        }
        gates.insert(name, gate);
    }
    Ok((gates, wake))
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

/// When an inconclusive run caused by a missing value (provider error, no data, NaN) may be
/// started again: one interval after it ended. None for any other run (a marginal score waits
/// for a person).
fn retry_after_provider_errors(
    template: &AnalysisTemplate,
    run_status: &AnalysisRunStatus,
) -> Option<Timestamp> {
    let inconclusive = matches!(
        run::terminal_outcome(run_status),
        Some(RunOutcome::Inconclusive { .. })
    );
    // Transient: the last measurement of some metric had no usable value (provider error, no
    // data, NaN), as when a provider restarts.
    // Dry-run metrics decide nothing, so their missing values do not make a run transient.
    let gating = |metric: &str| {
        template
            .metrics
            .iter()
            .any(|m| m.name == metric && !m.dry_run)
    };
    let last = run_status.measurements.last().map(|m| m.at.clone());
    let transient = run_status.measurements.iter().any(|m| {
        Some(&m.at) == last.as_ref()
            && gating(&m.metric)
            && matches!(
                m.verdict,
                MetricVerdict::Error | MetricVerdict::NoData | MetricVerdict::NaN
            )
    });
    let provider_errors = run_status.consecutive_errors.keys().any(|m| gating(m));
    if !inconclusive || !(transient || provider_errors) {
        return None;
    }
    let interval = run::schedule(template).ok()?.interval;
    let ended: Timestamp = run_status.finished_at.as_deref()?.parse().ok()?;
    ended
        .checked_add(jiff::SignedDuration::try_from(interval).ok()?)
        .ok()
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
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let labels = namespaces
        .get_metadata_opt(namespace)
        .await?
        .map(|ns| ns.labels().clone())
        .unwrap_or_default();
    let policies = ctx.policies.state();
    let policy = resolve_policy(namespace, &labels, policies.iter().map(|p| p.as_ref()));
    Ok(policy.map_or(Egress::Any, egress_of))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::analysis::{AnalysisPhase, Measurement, MetricSpec};

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
}
