//! The replay engine: a rollout's decisions on recorded measurements, in simulated time. Pure
//! but for the one door to the measurements ([`Source`]): no clock, no cluster, no file.
//!
//! It runs the operator's own pipeline, reconcile by reconcile, with the same functions in the
//! same order as `controller::reconcile`: the analysis runs brought in line with
//! `analysis::plan::plan`, a first `core::rollout::decide` without measurements, the due
//! measurements taken (from the [`Source`], at the simulated instant) and advanced with
//! `analysis::run::advance`, the gates read again and a second `decide`. What the operator
//! reads from the cluster is simulated: every ReplicaSet takes the size it is given at once and
//! all its pods are Ready and available from the moment they exist, so no health gate fails
//! and the outcome is the analyses' alone. A simulated stable revision (revision 1) runs before
//! the replayed manifest (revision 2) becomes the canary at `from`.
//!
//! Time moves as the operator's wake-ups would: after a decision that changed something, the
//! next reconcile is at the same instant (the watch event of the write); otherwise at the
//! earliest of the decision's requeue and the next analysis measurement. The replay ends when
//! the canary is promoted or reverted, when nothing but a person could move it on, or at `to`.
//! It lives on the CLI floor because it joins two wings (`core` and `analysis`) that may not
//! import each other.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};

pub use super::timeline::{Entry, MeasurementEntry, Outcome, Timeline, What};
use crate::analysis::MetricObservation;
use crate::analysis::plan::{gates, plan};
use crate::analysis::run::{self, schedule};
use crate::analysis::signals::SidePods;
use crate::analysis::vars::QueryVars;
use crate::api::analysis::{AnalysisTemplate, MetricVerdict};
use crate::api::health::{EffectiveGates, PodView};
use crate::api::{BaselineMode, Phase, SafeDeploymentSpec, SafeDeploymentStatus};
use crate::core::freeze::FreezeGate;
use crate::core::revision::{Revision, baseline_selector};
use crate::core::rollout::{
    AttestationGate, Decision, MAX_REQUEUE, Observation, ReplicaSetView, Requests, decide,
};

/// The most measurements one replay takes (all templates together); a longer range is refused
/// before any query is sent.
pub const MAX_MEASUREMENTS: u64 = 10_000;
/// The most reconciles one simulated instant may take before time moves on (a decision that
/// changes its own status for ever would otherwise never let time move).
const MAX_RECONCILES_PER_INSTANT: usize = 50;
/// The most reconciles in one replay, whatever the range.
const MAX_RECONCILES: usize = 200_000;

/// Where measurements come from: Prometheus (or any provider) queried at the simulated
/// instant, or a recording.
pub trait Source: Send {
    /// The observations of every metric of `template` at `at`, one per metric, as
    /// `analysis::provider::Providers::measure_template` gives them.
    fn measure<'a>(
        &'a mut self,
        template: &'a AnalysisTemplate,
        vars: &'a QueryVars,
        pods: &'a SidePods,
        at: Timestamp,
    ) -> BoxFuture<'a, Vec<MetricObservation>>;
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayInput {
    /// The SafeDeployment's name (`{{name}}` in queries).
    pub name: String,
    /// Its namespace (`{{namespace}}`).
    pub namespace: String,
    /// The manifest's spec, with any `--set` applied.
    pub spec: SafeDeploymentSpec,
    /// Content digests of the configuration the templates reference (they enter the revision
    /// hash, as in the operator).
    pub config_objects: BTreeMap<String, String>,
    /// The revision label the queries select as the canary (`{{canary}}`); the manifest's own
    /// revision hash when not given.
    pub canary_label: Option<String>,
    /// The revision label the queries select as the stable (`{{stable}}`, `{{baseline}}`).
    pub stable_label: Option<String>,
    /// When the canary starts.
    pub from: Timestamp,
    /// When the replay stops at the latest.
    pub to: Timestamp,
}

/// Why a replay cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The manifest describes no workload.
    #[error("the manifest describes no workload: {0}")]
    NoWorkload(String),
    /// `to` is not after `from`.
    #[error("the time range is empty: --to {to} is not after --from {from}")]
    EmptyRange {
        /// Start.
        from: String,
        /// End.
        to: String,
    },
    /// The range would take more measurements than [`MAX_MEASUREMENTS`].
    #[error(
        "the range {from} .. {to} would take about {expected} measurements of analysis {template:?} (every {interval}); one replay takes at most {MAX_MEASUREMENTS}: shorten the range or lengthen the interval (--set analyses.{template}.interval=...)"
    )]
    TooManySteps {
        /// Start.
        from: String,
        /// End.
        to: String,
        /// The template with the shortest interval.
        template: String,
        /// Its interval, as written.
        interval: String,
        /// How many measurements it would take.
        expected: u64,
    },
    /// A template cannot run.
    #[error("{0}")]
    Template(String),
}

/// The simulated cluster: ReplicaSets at the size they are given, their pods Ready at once.
#[derive(Debug, Default)]
struct Cluster {
    replica_sets: Vec<ReplicaSetView>,
    baseline_replica_sets: Vec<ReplicaSetView>,
    pod_birth: BTreeMap<String, Timestamp>,
}

impl Cluster {
    fn pods_of(&self, sets: &[ReplicaSetView], baseline: bool) -> Vec<PodView> {
        let mut pods = Vec::new();
        for rs in sets {
            for i in 0..rs.replicas.max(0) {
                let name = format!("{}-{i}", rs.name);
                let created = self
                    .pod_birth
                    .get(&name)
                    .copied()
                    .unwrap_or(Timestamp::UNIX_EPOCH);
                let revision = if baseline {
                    baseline_selector(&rs.revision)
                } else {
                    rs.revision.clone()
                };
                pods.push(PodView {
                    name,
                    revision,
                    component: rs.component.clone(),
                    created_at: created,
                    ready: true,
                    ready_at: Some(created),
                    restarts: 0,
                    failing_containers: 0,
                    terminating: false,
                });
            }
        }
        pods
    }

    /// Carries out a decision; says whether anything changed.
    fn apply(&mut self, sd_name: &str, single: bool, decision: &Decision, now: Timestamp) -> bool {
        let mut changed = false;
        for (actions, replica_sets, name_of) in [
            (
                &decision.scale,
                &mut self.replica_sets,
                Revision::replica_set_name as fn(&str, bool, &str, &str) -> String,
            ),
            (
                &decision.baseline_scale,
                &mut self.baseline_replica_sets,
                Revision::baseline_replica_set_name,
            ),
        ] {
            for action in actions {
                changed = true;
                match replica_sets
                    .iter_mut()
                    .find(|rs| rs.revision == action.revision && rs.component == action.component)
                {
                    Some(rs) => rs.replicas = action.replicas,
                    None => replica_sets.push(view(
                        name_of(sd_name, single, &action.component, &action.revision),
                        action.revision.clone(),
                        action.component.clone(),
                        action.replicas,
                    )),
                }
            }
        }
        let before = self.replica_sets.len() + self.baseline_replica_sets.len();
        self.replica_sets
            .retain(|rs| !decision.delete.contains(&rs.name));
        self.baseline_replica_sets
            .retain(|rs| !decision.baseline_delete.contains(&rs.name));
        changed |= before != self.replica_sets.len() + self.baseline_replica_sets.len();
        for (name, rejected) in &decision.mark_rejected {
            if let Some(rs) = self.replica_sets.iter_mut().find(|rs| &rs.name == name) {
                changed |= rs.rejected != *rejected;
                rs.rejected = *rejected;
            }
        }
        for rs in self
            .replica_sets
            .iter_mut()
            .chain(self.baseline_replica_sets.iter_mut())
        {
            rs.ready = rs.replicas;
            for i in 0..rs.replicas.max(0) {
                self.pod_birth
                    .entry(format!("{}-{i}", rs.name))
                    .or_insert(now);
            }
        }
        changed
    }
}

fn view(name: String, revision: String, component: String, replicas: i32) -> ReplicaSetView {
    ReplicaSetView {
        name,
        revision,
        component,
        replicas,
        ready: replicas,
        rejected: false,
    }
}

/// Seconds from `from` to `at`.
fn offset(from: Timestamp, at: Timestamp) -> f64 {
    at.duration_since(from).as_secs_f64()
}

/// Refuses a range that would take more than [`MAX_MEASUREMENTS`] measurements (counted for the
/// template that measures most often, as if it ran through the whole range).
pub fn check_range(input: &ReplayInput) -> Result<(), ReplayError> {
    if input.to <= input.from {
        return Err(ReplayError::EmptyRange {
            from: input.from.to_string(),
            to: input.to.to_string(),
        });
    }
    let span = input.to.duration_since(input.from).unsigned_abs();
    for template in &input.spec.analyses {
        let schedule = schedule(template).map_err(|e| ReplayError::Template(e.to_string()))?;
        let interval = schedule.interval.as_millis().max(1);
        let expected = u64::try_from(span.as_millis() / interval).unwrap_or(u64::MAX);
        if expected > MAX_MEASUREMENTS {
            return Err(ReplayError::TooManySteps {
                from: input.from.to_string(),
                to: input.to.to_string(),
                template: template.name.clone(),
                interval: template
                    .interval
                    .as_ref()
                    .map_or_else(|| "1m".to_string(), ToString::to_string),
                expected,
            });
        }
    }
    Ok(())
}

/// The simulated stable revision: the manifest with a marker on its first container's image,
/// so that it hashes differently and revision 2 (the manifest) is a canary of it.
fn stable_spec(spec: &SafeDeploymentSpec) -> SafeDeploymentSpec {
    let mut stable = spec.clone();
    let mark = |template: &mut k8s_openapi::api::core::v1::PodTemplateSpec| {
        if let Some(container) = template
            .spec
            .as_mut()
            .and_then(|s| s.containers.first_mut())
        {
            let image = container.image.clone().unwrap_or_default();
            container.image = Some(format!("{image}-replay-stable"));
        }
    };
    if let Some(template) = stable.template.as_mut() {
        mark(template);
    }
    for component in stable.components.iter_mut().flatten() {
        mark(&mut component.template);
    }
    stable
}

/// One rollout being replayed.
struct Replay<'a> {
    input: &'a ReplayInput,
    status: SafeDeploymentStatus,
    cluster: Cluster,
    entries: Vec<Entry>,
    measurements: usize,
    provider_errors: usize,
}

impl<'a> Replay<'a> {
    fn observation<'o>(
        &'o self,
        spec: &'o SafeDeploymentSpec,
        desired: &'o Revision,
        status: &'o SafeDeploymentStatus,
        pods: &'o (Vec<PodView>, Vec<PodView>),
        analyses: BTreeMap<String, crate::api::gates::AnalysisGate>,
        now: Timestamp,
    ) -> Observation<'o> {
        Observation {
            name: &self.input.name,
            generation: Some(1),
            spec,
            desired,
            status,
            replica_sets: &self.cluster.replica_sets,
            pods: &pods.0,
            baseline_replica_sets: &self.cluster.baseline_replica_sets,
            baseline_pods: &pods.1,
            attestation: AttestationGate::NotRequired(
                "replay: the attestation is not checked".into(),
            ),
            preflight: Ok(()),
            analyses,
            requests: Requests::default(),
            freeze: FreezeGate::default(),
            requirements: Vec::new(),
            // A replay has no Gateway: a routed rollout is replayed as if every route carried
            // its weight.
            routes: &[],
            min_bake_time: None,
            now,
        }
    }

    fn pods(&self) -> (Vec<PodView>, Vec<PodView>) {
        (
            self.cluster.pods_of(&self.cluster.replica_sets, false),
            self.cluster
                .pods_of(&self.cluster.baseline_replica_sets, true),
        )
    }

    /// The query variables, with the labels the user gave in place of the simulated hashes.
    fn vars(&self, status: &SafeDeploymentStatus) -> QueryVars {
        let fresh = self.input.spec.strategy.canary.baseline == Some(BaselineMode::Fresh);
        let stable = self
            .input
            .stable_label
            .clone()
            .or_else(|| status.stable_revision.clone())
            .unwrap_or_default();
        QueryVars {
            canary: self
                .input
                .canary_label
                .clone()
                .or_else(|| status.canary_revision.clone())
                .unwrap_or_default(),
            baseline: if fresh {
                baseline_selector(&stable)
            } else {
                stable.clone()
            },
            stable,
            namespace: self.input.namespace.clone(),
            name: self.input.name.clone(),
            // The simulated step's start: the time variables follow the simulated clock.
            step_start: crate::analysis::vars::parse_step_start(status.step_started_at.as_deref()),
            window: None,
        }
    }

    /// One reconcile at `now`, as `controller::reconcile` runs it.
    async fn reconcile<S: Source>(
        &mut self,
        spec: &SafeDeploymentSpec,
        desired: &Revision,
        source: &mut S,
        now: Timestamp,
    ) -> (Decision, Option<Duration>) {
        let mut status = self.status.clone();
        let due = plan(spec, &mut status, now);
        let (first_gates, next_measurement) = gates(spec, &status, now);
        let pods = self.pods();
        let first = decide(&self.observation(spec, desired, &status, &pods, first_gates, now));
        let stops = status.canary_revision.is_some()
            && first.status.canary_revision.is_none()
            && first.status.stable_revision == status.stable_revision;
        if due.due.is_empty() || stops {
            let wake = earliest(due.wake, next_measurement);
            return (first, wake);
        }
        let vars = self.vars(&status);
        for (position, name) in &due.due {
            let Some(template) = spec.analyses.iter().find(|t| &t.name == name) else {
                continue;
            };
            let side_pods = self.side_pods(spec, template, &status, &pods);
            let observations = source.measure(template, &vars, &side_pods, now).await;
            let Some(run_status) = status.analysis_runs.get_mut(*position) else {
                continue;
            };
            let before = run_status.measurement_count;
            run::advance(template, run_status, &observations, now);
            let run_status = &*run_status;
            if run_status.measurement_count > before {
                self.record_measurements(run_status, now);
            }
            if run_status.phase.is_terminal() {
                self.entries.push(Entry {
                    at: now.to_string(),
                    offset_seconds: offset(self.input.from, now),
                    what: What::RunEnded {
                        template: run_status.template.clone(),
                        phase: format!("{:?}", run_status.phase),
                        message: run_status.message.clone().unwrap_or_default(),
                    },
                });
            }
        }
        let (second_gates, next_measurement) = gates(spec, &status, now);
        let decision = decide(&self.observation(spec, desired, &status, &pods, second_gates, now));
        (decision, earliest(due.wake, next_measurement))
    }

    fn side_pods(
        &self,
        spec: &SafeDeploymentSpec,
        template: &AnalysisTemplate,
        status: &SafeDeploymentStatus,
        pods: &(Vec<PodView>, Vec<PodView>),
    ) -> SidePods {
        if !template
            .metrics
            .iter()
            .any(|m| m.provider.kubernetes.is_some())
        {
            return SidePods::default();
        }
        let fresh = spec.strategy.canary.baseline == Some(BaselineMode::Fresh);
        let stable = status.stable_revision.clone().unwrap_or_default();
        let baseline = if fresh {
            baseline_selector(&stable)
        } else {
            stable
        };
        let baseline_side = if fresh { &pods.1 } else { &pods.0 };
        SidePods::select(
            status.canary_revision.as_deref().unwrap_or_default(),
            &baseline,
            &pods.0,
            baseline_side,
            &EffectiveGates::from_spec(spec.health.as_ref()),
            Timestamp::UNIX_EPOCH,
        )
    }

    fn record_measurements(
        &mut self,
        run_status: &crate::api::analysis::AnalysisRunStatus,
        now: Timestamp,
    ) {
        let at = now.to_string();
        let mut errored = false;
        for m in run_status.measurements.iter().filter(|m| m.at == at) {
            self.measurements = self.measurements.saturating_add(1);
            errored |= m.verdict == MetricVerdict::Error;
            self.entries.push(Entry {
                at: at.clone(),
                offset_seconds: offset(self.input.from, now),
                what: What::Measurement(MeasurementEntry {
                    template: run_status.template.clone(),
                    step: run_status.step_index.map(|s| s.saturating_add(1)),
                    number: run_status.measurement_count,
                    metric: m.metric.clone(),
                    value: m.value,
                    baseline: m.baseline,
                    threshold: m.threshold.clone(),
                    verdict: m.verdict,
                    score: run_status.score,
                    message: m.message.clone(),
                }),
            });
        }
        if errored {
            self.provider_errors = self.provider_errors.saturating_add(1);
        }
    }

    fn record_events(&mut self, decision: &Decision, now: Timestamp) {
        for event in &decision.events {
            self.entries.push(Entry {
                at: now.to_string(),
                offset_seconds: offset(self.input.from, now),
                what: What::Event {
                    reason: event.reason.to_string(),
                    warning: event.warning,
                    note: event.note.clone(),
                    step: decision
                        .status
                        .current_step_index
                        .map(|s| s.saturating_add(1)),
                    weight: decision.status.canary_weight,
                },
            });
        }
    }
}

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Replays the rollout of `input.spec` from `input.from` to `input.to` on the measurements of
/// `source`.
pub async fn replay<S: Source>(
    input: &ReplayInput,
    source: &mut S,
) -> Result<Timeline, ReplayError> {
    check_range(input)?;
    let desired = Revision::from_spec_with_config(&input.spec, &input.config_objects)
        .map_err(|e| ReplayError::NoWorkload(e.to_string()))?;
    let stable_spec = stable_spec(&input.spec);
    let stable = Revision::from_spec_with_config(&stable_spec, &input.config_objects)
        .map_err(|e| ReplayError::NoWorkload(e.to_string()))?;
    let mut replay = Replay {
        input,
        status: SafeDeploymentStatus::default(),
        cluster: Cluster::default(),
        entries: Vec::new(),
        measurements: 0,
        provider_errors: 0,
    };
    // Revision 1, the simulated stable, rolls out before the range (no analysis gates a first
    // revision); its events are not part of the replay.
    let before = input
        .from
        .checked_sub(SignedDuration::from_secs(3600))
        .unwrap_or(input.from);
    for _ in 0..MAX_RECONCILES_PER_INSTANT {
        let (decision, _) = replay
            .reconcile(&stable_spec, &stable, &mut NoSource, before)
            .await;
        let changed = replay
            .cluster
            .apply(&input.name, stable.single, &decision, before);
        let settled = !changed && decision.status == replay.status;
        replay.status = decision.status;
        if settled {
            break;
        }
    }
    let mut now = input.from;
    let mut same_instant = 0usize;
    let mut end: Option<(String, String)> = None;
    for _ in 0..MAX_RECONCILES {
        let (decision, analysis_wake) = replay.reconcile(&input.spec, &desired, source, now).await;
        replay.record_events(&decision, now);
        let changed = replay
            .cluster
            .apply(&input.name, desired.single, &decision, now);
        let changed = changed || decision.status != replay.status;
        replay.status = decision.status.clone();
        if let Some(done) = finished(&replay.status, &desired.hash) {
            end = Some(done);
            break;
        }
        if changed && same_instant < MAX_RECONCILES_PER_INSTANT {
            same_instant = same_instant.saturating_add(1);
            continue;
        }
        same_instant = 0;
        let wake = earliest(decision.requeue_after, analysis_wake).map(|w| w.min(MAX_REQUEUE));
        let Some(wake) = wake else {
            end = Some((
                "WaitingForHuman".into(),
                format!(
                    "nothing more happens without a person: {}",
                    replay.status.message.clone().unwrap_or_default()
                ),
            ));
            break;
        };
        // Time always moves on (by a millisecond at least), so a wake of zero cannot spin.
        let step = SignedDuration::try_from(wake.max(Duration::from_millis(1)))
            .unwrap_or(SignedDuration::from_secs(3600));
        now = now.checked_add(step).unwrap_or(Timestamp::MAX);
        if now > input.to {
            now = input.to;
            end = Some((
                "RangeEnded".into(),
                format!(
                    "the range ended with the canary still running: {}",
                    replay.status.message.clone().unwrap_or_default()
                ),
            ));
            break;
        }
    }
    let (result, reason) = end.unwrap_or_else(|| {
        (
            "RangeEnded".into(),
            format!("the replay stopped after {MAX_RECONCILES} reconciles"),
        )
    });
    Ok(timeline(replay, &desired, result, reason, now))
}

/// `Some((result, reason))` once the replayed revision is promoted, reverted or blocked.
fn finished(status: &SafeDeploymentStatus, desired: &str) -> Option<(String, String)> {
    if status.canary_revision.is_some() {
        return None;
    }
    let entry = status.history.iter().rev().find(|e| e.hash == desired);
    if status.stable_revision.as_deref() == Some(desired) {
        let reason = entry
            .map(|e| e.reason.clone())
            .or_else(|| status.message.clone())
            .unwrap_or_default();
        return Some(("Promoted".into(), reason));
    }
    if let Some(entry) = entry {
        return Some((entry.outcome.clone(), entry.reason.clone()));
    }
    (status.phase == Phase::Blocked)
        .then(|| ("Blocked".into(), status.message.clone().unwrap_or_default()))
}

fn timeline(
    replay: Replay<'_>,
    desired: &Revision,
    result: String,
    reason: String,
    now: Timestamp,
) -> Timeline {
    let input = replay.input;
    let failing = if result == "Reverted" {
        let last_at = replay.entries.iter().rev().find_map(|e| match &e.what {
            What::Measurement(_) => Some(e.at.clone()),
            _ => None,
        });
        replay
            .entries
            .iter()
            .filter(|e| Some(&e.at) == last_at.as_ref())
            .filter_map(|e| match &e.what {
                What::Measurement(m) if m.verdict != MetricVerdict::Pass => Some(m.clone()),
                _ => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    let vars = replay.vars(&replay.status);
    let canary_revision = input
        .canary_label
        .clone()
        .unwrap_or_else(|| desired.hash.clone());
    let mut assumptions = vec![
        "pods are simulated: every ReplicaSet takes its size at once and its pods are Ready and available from creation, so no health gate fails".to_string(),
        "the attestation, preflight, freeze windows and policy requirements are not checked (they decide whether a canary starts, not how it is judged)".to_string(),
        "no person acts: an indefinite pause waits for ever".to_string(),
    ];
    if input.stable_label.is_none() {
        assumptions.push(format!(
            "the stable revision is simulated ({}); give --stable-revision for queries that select it",
            vars.stable
        ));
    }
    let (at, offset_seconds) = (now.to_string(), offset(input.from, now));
    let phase = replay.status.phase;
    Timeline {
        name: input.name.clone(),
        namespace: input.namespace.clone(),
        canary_revision,
        stable_revision: vars.stable,
        from: input.from.to_string(),
        to: input.to.to_string(),
        assumptions,
        outcome: Outcome {
            result,
            at,
            offset_seconds,
            reason,
            phase,
            measurements: replay.measurements,
            failing,
            provider_errors: replay.provider_errors,
        },
        entries: replay.entries,
    }
}

/// A source for the simulated stable revision, which no analysis gates.
struct NoSource;

impl Source for NoSource {
    fn measure<'a>(
        &'a mut self,
        template: &'a AnalysisTemplate,
        _vars: &'a QueryVars,
        _pods: &'a SidePods,
        _at: Timestamp,
    ) -> BoxFuture<'a, Vec<MetricObservation>> {
        let observations = template
            .metrics
            .iter()
            .map(|m| {
                MetricObservation::failed(
                    &m.name,
                    crate::analysis::ProviderError::NoData("the stable is not measured".into()),
                )
            })
            .collect();
        Box::pin(async move { observations })
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
