//! Which analyses gate the canary now, which of their runs are due for a measurement, and the
//! gates they give the rollout decision. Pure: the controller brings the runs in status up to
//! date with [`plan`], measures the runs it names through the providers and advances them with
//! [`super::run::advance`], and hands [`gates`] to the decision.
//!
//! The rules:
//! - a canary is gated by the spec's background analysis (all through the rollout) and by the
//!   analysis of its current step, if that step is one; without a canary nothing is active;
//! - runs of earlier canaries are dropped; the finished runs of this canary stay in status to
//!   explain how it went (after the canary, the last ones stay as they are);
//! - a run that is missing starts;
//! - a run that ended inconclusive because a provider could not give a value (an error, no
//!   data, NaN of a metric that is not a dry run) starts again one interval after it ended, so
//!   the rollout holds while the provider is away and goes on once it answers again. Any other
//!   inconclusive run (a marginal score) waits for a person.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::run::{self, RunOutcome};
use crate::api::analysis::{AnalysisRunStatus, AnalysisTemplate, MetricVerdict};
use crate::api::gates::AnalysisGate;
use crate::api::{SafeDeploymentSpec, SafeDeploymentStatus};

/// An analysis that gates the canary now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// The template's name.
    pub template: String,
    /// The canary step it belongs to; None for the background analysis.
    pub step: Option<i32>,
}

/// The analyses that gate the canary now (see the module doc); none without a canary.
pub fn active(spec: &SafeDeploymentSpec, status: &SafeDeploymentStatus) -> Vec<Active> {
    if status.canary_revision.is_none() {
        return Vec::new();
    }
    let canary = &spec.strategy.canary;
    let mut wanted = Vec::new();
    if let Some(name) = &canary.background_analysis {
        wanted.push(Active {
            template: name.clone(),
            step: None,
        });
    }
    let index = status.current_step_index.unwrap_or(0);
    let step = usize::try_from(index)
        .ok()
        .and_then(|i| canary.steps.get(i));
    if let Some(analysis) = step.and_then(|s| s.analysis.as_ref()) {
        wanted.push(Active {
            template: analysis.template.clone(),
            step: Some(index),
        });
    }
    wanted
}

/// What [`plan`] found to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The active runs that are due for a measurement now, as positions in
    /// `status.analysis_runs`, with their template's name.
    pub due: Vec<(usize, String)>,
    /// When a run held by provider errors starts again (the earliest), if one waits for that.
    pub wake: Option<Duration>,
}

/// Brings the analysis runs in `status` in line with what is active now (drops the runs of
/// earlier canaries, starts the missing runs, restarts the runs held by provider errors whose
/// retry time came) and says which are due for a measurement.
pub fn plan(spec: &SafeDeploymentSpec, status: &mut SafeDeploymentStatus, now: Timestamp) -> Plan {
    let wanted = active(spec, status);
    let mut plan = Plan::default();
    let Some(canary) = status.canary_revision.clone() else {
        return plan;
    };
    status
        .analysis_runs
        .retain(|r| r.canary_revision.as_deref() == Some(canary.as_str()));
    for Active {
        template: name,
        step,
    } in wanted
    {
        let Some(template) = spec.analyses.iter().find(|t| t.name == name) else {
            continue;
        };
        let runs = &mut status.analysis_runs;
        let mut started_now = false;
        let position = match runs
            .iter()
            .position(|r| r.template == name && r.step_index == step)
        {
            Some(position) => position,
            None => {
                runs.push(run::start(template, Some(&canary), step, now));
                started_now = true;
                runs.len().saturating_sub(1)
            }
        };
        let Some(run_status) = runs.get_mut(position) else {
            continue;
        };
        if let Some(retry_at) = retry_after_provider_errors(template, run_status) {
            if retry_at <= now {
                *run_status = run::start(template, Some(&canary), step, now);
                started_now = true;
            } else {
                plan.wake = earliest(plan.wake, until(now, retry_at));
            }
        }
        // A run with `job` metrics (re)started by this decision is measured only once its start
        // is in status: its Jobs are named after that start, and a reconcile that made a Job but
        // failed to write the status (a 409, a kill) would start the run again at a later
        // instant and make a second Job for the same measurement. A query has no such side
        // effect: it is measured at once, so the status never shows a run without measurements.
        let makes_jobs = template.metrics.iter().any(|m| m.provider.job.is_some());
        if started_now && makes_jobs {
            plan.wake = Some(Duration::ZERO);
        } else if run::due(run_status, now) {
            plan.due.push((position, name));
        }
    }
    plan
}

/// The gates of the active analyses for the decision, by template name, and when the next
/// measurement of one of them is due.
pub fn gates(
    spec: &SafeDeploymentSpec,
    status: &SafeDeploymentStatus,
    now: Timestamp,
) -> (BTreeMap<String, AnalysisGate>, Option<Duration>) {
    let mut gates = BTreeMap::new();
    let mut wake = None;
    for Active {
        template: name,
        step,
    } in active(spec, status)
    {
        let Some(template) = spec.analyses.iter().find(|t| t.name == name) else {
            continue;
        };
        let Some(run_status) = status
            .analysis_runs
            .iter()
            .find(|r| r.template == name && r.step_index == step)
        else {
            continue;
        };
        if let Some(next) = run::next_measurement_at(run_status) {
            wake = earliest(wake, until(now, next));
        }
        gates.insert(name, gate(template, run_status));
    }
    (gates, wake)
}

/// The gate of one run: its outcome once it ended; while it runs, whether its latest
/// measurement is passing evidence.
pub fn gate(template: &AnalysisTemplate, run_status: &AnalysisRunStatus) -> AnalysisGate {
    match run::terminal_outcome(run_status) {
        None => match run::evidence(template, run_status) {
            Ok(()) => AnalysisGate::Running,
            Err(why) => AnalysisGate::Pending(why),
        },
        Some(RunOutcome::Passed) => AnalysisGate::Passed,
        Some(RunOutcome::Failed { reason }) => AnalysisGate::Failed(reason),
        Some(RunOutcome::Inconclusive { reason }) => AnalysisGate::Inconclusive(reason),
        Some(RunOutcome::Continue { .. }) => AnalysisGate::Running,
    }
}

/// The time from `now` until `at` (zero when it has passed).
fn until(now: Timestamp, at: Timestamp) -> Duration {
    let millis = at
        .as_millisecond()
        .saturating_sub(now.as_millisecond())
        .max(0);
    Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

fn earliest(wake: Option<Duration>, after: Duration) -> Option<Duration> {
    Some(wake.map_or(after, |w| w.min(after)))
}

/// When an inconclusive run caused by a missing value (provider error, no data, NaN) or by too
/// little canary traffic (`minimumTraffic`) may be started again: one interval after it ended. None for any other run (a marginal score waits
/// for a person).
pub fn retry_after_provider_errors(
    template: &AnalysisTemplate,
    run_status: &AnalysisRunStatus,
) -> Option<Timestamp> {
    let inconclusive = matches!(
        run::terminal_outcome(run_status),
        Some(RunOutcome::Inconclusive { .. })
    );
    // Transient: the last measurement of some metric had no usable value (provider error, no
    // data, NaN), as when a provider restarts, or too little traffic, as for a canary at a small
    // weight in a quiet hour (the progress deadline bounds the retries).
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
                MetricVerdict::Error
                    | MetricVerdict::NoData
                    | MetricVerdict::NaN
                    | MetricVerdict::InsufficientTraffic
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

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
