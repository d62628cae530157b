//! The JSON the dashboard's front end draws, built from a SafeDeployment (and its Events) by
//! pure functions: the list row, the step ladder, the timeline, the weight curve, the metric
//! plots with their threshold bands, and the revision history with image and digest changes.
//! No I/O here: the server feeds it what it read with the user's credentials.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::analysis::{AnalysisTemplate, Direction, MetricVerdict};
use crate::api::{
    AttestationVerdict, HistoryEntry, Phase, SafeDeployment, SafeDeploymentStatus,
    SignalMeasurement, StatusMap,
};
use crate::core::rollout::describe_step;

/// One row of the rollout list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSummary {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Phase (`Pending` before the operator wrote a status).
    pub phase: Phase,
    /// Why the rollout is where it is.
    pub message: Option<String>,
    /// The canary's traffic weight (percent).
    pub weight: i32,
    /// The stable revision (template hash).
    pub stable: Option<String>,
    /// The canary revision, while one rolls out.
    pub canary: Option<String>,
    /// The step, as `kubectl get` shows it (`2/5`).
    pub step: Option<String>,
}

/// A Kubernetes Event about the rollout, as much of it as the timeline shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventNote {
    /// When it last happened (RFC 3339).
    pub at: String,
    /// Its reason (`StepCompleted`, `RolloutReverted`, ...).
    pub reason: String,
    /// Its message.
    pub message: String,
    /// `Normal` or `Warning`.
    pub kind: String,
    /// How many times it happened.
    pub count: i32,
}

/// A canary step and how far the rollout got.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    /// 1-based position.
    pub position: usize,
    /// The step in words (`setWeight 25`, `pause until promoted`, `analysis errors`).
    pub text: String,
    /// `done`, `current` or `pending`.
    pub state: &'static str,
}

/// The attestation reason of a revision that a policy lets through without one.
const NOT_REQUIRED: &str = "NotRequired";

/// How an entry of the timeline reads: its colour in the front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Tone {
    /// Neutral progress.
    Info,
    /// A success (promotion, passed analysis, verified attestation).
    Good,
    /// A hold or a human action.
    Warn,
    /// A failure (revert, failed analysis, rejected attestation).
    Bad,
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// When (RFC 3339); entries are sorted by it.
    pub at: String,
    /// Where it comes from: `history`, `event`, `analysis`, `attestation`.
    pub source: &'static str,
    /// A short title (`Reverted`, `StepCompleted`, `analysis errors Failed`).
    pub title: String,
    /// The details (the reason, the event's message).
    pub detail: String,
    /// Who did it, for a manual action.
    pub actor: Option<String>,
    /// Its tone.
    pub tone: Tone,
}

/// The canary weight at a moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightPoint {
    /// When (RFC 3339).
    pub at: String,
    /// The canary's weight (percent).
    pub weight: i32,
}

/// A metric's absolute levels, read in its direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bands {
    /// On target at or better than this.
    pub target: f64,
    /// May advance at or better than this.
    pub acceptable: f64,
    /// Fails the run at or past this.
    pub critical: f64,
    /// True when higher values are better.
    pub higher_is_better: bool,
}

/// One judged measurement, as a plot point.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricPoint {
    /// When (RFC 3339).
    pub at: String,
    /// The canary's value.
    pub canary: Option<f64>,
    /// The baseline's value.
    pub baseline: Option<f64>,
    /// The verdict.
    pub verdict: MetricVerdict,
    /// What the value was judged against, in words.
    pub threshold: String,
    /// Details (statistics, the error).
    pub message: Option<String>,
}

/// One metric of one analysis run: what the front end plots.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricPlot {
    /// The analysis template.
    pub analysis: String,
    /// The step the run gates (1-based), none for background analysis.
    pub step: Option<i32>,
    /// The run's phase (`Running`, `Successful`, `Failed`, ...).
    pub run_phase: String,
    /// The revision the run measured.
    pub revision: Option<String>,
    /// The metric's name.
    pub metric: String,
    /// Its absolute levels, when the template sets them.
    pub bands: Option<Bands>,
    /// Its measurements, oldest first.
    pub points: Vec<MetricPoint>,
}

/// An image that differs from the revision before.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageChange {
    /// The container (`component/container` with components).
    pub container: String,
    /// The image before, none for a new container.
    pub from: Option<String>,
    /// The image now, none for a removed container.
    pub to: Option<String>,
}

/// A configuration object (a ConfigMap or Secret) whose content digest differs between two
/// revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigChange {
    /// `configmap/NAME` or `secret/NAME`.
    pub object: String,
    /// Its digest before, none for a newly referenced object.
    pub from: Option<String>,
    /// Its digest now, none for an object no longer referenced.
    pub to: Option<String>,
}

/// A revision and how it differs from the one before.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionView {
    /// Its number (for `rollback --to-revision`).
    pub number: i64,
    /// Its configuration digest (the template hash).
    pub hash: String,
    /// The digest of the revision before, when it differs.
    pub previous_hash: Option<String>,
    /// `stable`, `canary`, `rejected` or empty.
    pub role: &'static str,
    /// Its images by container.
    pub images: StatusMap,
    /// The images that changed since the revision before.
    pub changes: Vec<ImageChange>,
    /// Its configuration objects' content digests, by `configmap/NAME` / `secret/NAME`.
    pub config: StatusMap,
    /// The configuration objects whose content changed since the revision before (or that
    /// were added or removed).
    pub config_changes: Vec<ConfigChange>,
    /// How its rollouts ended, oldest first (`Promoted`, `Reverted`, ...).
    pub outcomes: Vec<String>,
}

/// Which actions the page offers: allowed by the user's RBAC and meaningful in this state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Actions {
    /// Promote past the current pause or analysis.
    pub promote: bool,
    /// Revert the canary now.
    pub abort: bool,
    /// Let a rejected revision roll out again.
    pub retry: bool,
    /// Make an older revision stable again.
    pub rollback: bool,
}

/// Everything the page of one rollout shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    /// The list row.
    pub summary: RolloutSummary,
    /// The canary steps and how far the rollout got.
    pub steps: Vec<StepView>,
    /// What happened, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// The canary weight over time, oldest first.
    pub weights: Vec<WeightPoint>,
    /// Each metric of each analysis run.
    pub metrics: Vec<MetricPlot>,
    /// The latest health signals with their thresholds.
    pub health: Vec<SignalMeasurement>,
    /// The attestation verdict of the latest revision.
    pub attestation: Option<AttestationVerdict>,
    /// The revisions, newest first.
    pub revisions: Vec<RevisionView>,
    /// What the user may do here.
    pub actions: Actions,
    /// Whether the user may patch this SafeDeployment at all (a SelfSubjectAccessReview).
    pub may_act: bool,
}

/// The list row of `sd`.
pub fn summary(sd: &SafeDeployment) -> RolloutSummary {
    let status = sd.status.clone().unwrap_or_default();
    RolloutSummary {
        namespace: sd.metadata.namespace.clone().unwrap_or_default(),
        name: sd.metadata.name.clone().unwrap_or_default(),
        phase: status.phase,
        message: status.message,
        weight: status.canary_weight,
        stable: status.stable_revision,
        canary: status.canary_revision,
        step: status.step_display,
    }
}

/// The page of `sd`, with the Events about it and whether the user may patch it.
pub fn rollout(sd: &SafeDeployment, events: &[EventNote], may_act: bool) -> RolloutView {
    let status = sd.status.clone().unwrap_or_default();
    RolloutView {
        summary: summary(sd),
        steps: steps(sd, &status),
        timeline: timeline(&status, events),
        weights: weights(&status, events),
        metrics: metrics(&sd.spec.analyses, &status),
        health: status.health.clone(),
        attestation: status.attestation.clone(),
        revisions: revisions(&status),
        actions: actions(&status, may_act),
        may_act,
    }
}

fn rolling_out(status: &SafeDeploymentStatus) -> bool {
    status.canary_revision.is_some()
        && matches!(
            status.phase,
            Phase::Progressing | Phase::Paused | Phase::Inconclusive
        )
}

/// The actions that make sense now, and only when the user may act at all.
pub fn actions(status: &SafeDeploymentStatus, may_act: bool) -> Actions {
    if !may_act {
        return Actions::default();
    }
    Actions {
        promote: rolling_out(status),
        abort: rolling_out(status),
        retry: !status.rejected_revisions.is_empty(),
        rollback: status.revisions.len() > 1,
    }
}

fn steps(sd: &SafeDeployment, status: &SafeDeploymentStatus) -> Vec<StepView> {
    let current = status
        .current_step_index
        .and_then(|i| usize::try_from(i).ok());
    // Without a canary the steps are all behind a stable rollout, and none is under way
    // after a revert or a block.
    let idle = match (&status.canary_revision, status.phase) {
        (Some(_), _) => None,
        (None, Phase::Healthy) => Some("done"),
        (None, _) => Some("pending"),
    };
    sd.spec
        .strategy
        .canary
        .steps
        .iter()
        .enumerate()
        .map(|(index, step)| StepView {
            position: index + 1,
            text: describe_step(step),
            state: match current {
                _ if idle.is_some() => idle.unwrap_or("pending"),
                Some(at) if index < at => "done",
                Some(at) if index == at => "current",
                _ => "pending",
            },
        })
        .collect()
}

fn history_tone(outcome: &str) -> Tone {
    match outcome {
        "Promoted" | "RolledBack" => Tone::Good,
        "Reverted" | "Blocked" | "Aborted" | "Abandoned" => Tone::Bad,
        "InProgress" | "Superseded" => Tone::Info,
        _ => Tone::Warn,
    }
}

fn event_tone(event: &EventNote) -> Tone {
    match event.reason.as_str() {
        "RolloutCompleted" | "PromotedFull" | "RolledBack" | "StatusRecovered" => Tone::Good,
        "Paused" | "Resumed" | "RetryRequested" | "FreezeOverridden" => Tone::Warn,
        _ if event.kind == "Warning" => Tone::Bad,
        _ => Tone::Info,
    }
}

fn timeline(status: &SafeDeploymentStatus, events: &[EventNote]) -> Vec<TimelineEntry> {
    let mut entries = Vec::new();
    for entry in &status.history {
        entries.extend(history_entries(entry));
    }
    for event in events {
        entries.push(TimelineEntry {
            at: event.at.clone(),
            source: "event",
            title: event.reason.clone(),
            detail: match event.count {
                count if count > 1 => format!("{} (×{count})", event.message),
                _ => event.message.clone(),
            },
            actor: None,
            tone: event_tone(event),
        });
    }
    for run in &status.analysis_runs {
        let name = match run.step_index {
            Some(index) => format!("analysis {} (step {})", run.template, index + 1),
            None => format!("background analysis {}", run.template),
        };
        if let Some(started) = &run.started_at {
            entries.push(TimelineEntry {
                at: started.clone(),
                source: "analysis",
                title: format!("{name} started"),
                detail: run.canary_revision.clone().unwrap_or_default(),
                actor: None,
                tone: Tone::Info,
            });
        }
        if let Some(finished) = &run.finished_at {
            let phase = format!("{:?}", run.phase);
            entries.push(TimelineEntry {
                at: finished.clone(),
                source: "analysis",
                tone: match phase.as_str() {
                    "Successful" => Tone::Good,
                    "Inconclusive" => Tone::Warn,
                    _ => Tone::Bad,
                },
                title: format!("{name} {phase}"),
                detail: run.message.clone().unwrap_or_default(),
                actor: None,
            });
        }
    }
    if let Some(attestation) = &status.attestation {
        // Verified when its rollout started (the operator checks before the first canary pod).
        let at = status
            .history
            .iter()
            .find(|e| {
                e.hash == attestation.revision && e.finished_at.as_deref() != Some(&e.started_at)
            })
            .map(|e| e.started_at.clone())
            .or_else(|| {
                status
                    .conditions
                    .iter()
                    .find(|c| c.type_.contains("Attest"))
                    .map(|c| c.last_transition_time.0.to_string())
            })
            .unwrap_or_default();
        entries.push(TimelineEntry {
            at,
            source: "attestation",
            // A policy that does not require an attestation lets the revision through
            // unverified: never shown as a verification.
            title: match (attestation.verified, attestation.reason.as_str()) {
                (true, NOT_REQUIRED) => {
                    format!("attestation of {} not required", attestation.revision)
                }
                (true, _) => format!("attestation of {} verified", attestation.revision),
                (false, _) => format!("attestation of {} rejected", attestation.revision),
            },
            detail: format!("{}: {}", attestation.reason, attestation.message),
            actor: None,
            tone: match (attestation.verified, attestation.reason.as_str()) {
                (true, NOT_REQUIRED) => Tone::Info,
                (true, _) => Tone::Good,
                (false, _) => Tone::Bad,
            },
        });
    }
    // RFC 3339 in UTC sorts as text; the sort is stable, so equal times keep their source order.
    entries.sort_by(|a, b| a.at.cmp(&b.at));
    entries
}

fn history_entries(entry: &HistoryEntry) -> Vec<TimelineEntry> {
    let revision = format!("revision {} ({})", entry.revision, entry.hash);
    let mut entries = Vec::new();
    // A manual action is recorded as a finished entry of one moment: one timeline entry.
    let moment = entry.finished_at.as_deref() == Some(&entry.started_at);
    if !moment {
        entries.push(TimelineEntry {
            at: entry.started_at.clone(),
            source: "history",
            title: format!("rollout of {revision} started"),
            detail: images_text(&entry.images),
            actor: None,
            tone: Tone::Info,
        });
    }
    if let Some(finished) = &entry.finished_at {
        entries.push(TimelineEntry {
            at: finished.clone(),
            source: "history",
            title: format!("{} {revision}", entry.outcome),
            detail: entry.reason.clone(),
            actor: entry.actor.clone(),
            tone: history_tone(&entry.outcome),
        });
    }
    entries
}

fn images_text(images: &StatusMap) -> String {
    images
        .iter()
        .map(|(container, image)| format!("{container}={image}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The weight in a `StepCompleted` event's message (`step 1/3 (setWeight 25) completed at
/// weight 25`).
fn completed_weight(message: &str) -> Option<i32> {
    message
        .rsplit_once("at weight ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|weight| weight.parse().ok())
}

/// The canary weight over the latest rollout (the latest history entry that is not a single
/// moment): earlier rollouts are in the timeline and the revision history.
fn weights(status: &SafeDeploymentStatus, events: &[EventNote]) -> Vec<WeightPoint> {
    let latest = status
        .history
        .iter()
        .rev()
        .find(|e| e.finished_at.as_deref() != Some(&e.started_at));
    let Some(since) = latest.map(|e| e.started_at.clone()) else {
        return Vec::new();
    };
    let mut points = Vec::new();
    for entry in status.history.iter().filter(|e| e.started_at >= since) {
        if entry.outcome == "InProgress" || entry.finished_at.as_deref() != Some(&entry.started_at)
        {
            points.push(WeightPoint {
                at: entry.started_at.clone(),
                weight: 0,
            });
        }
        let end = match entry.outcome.as_str() {
            "Promoted" => Some(100),
            "Reverted" | "Aborted" | "Blocked" | "Superseded" | "Abandoned" => Some(0),
            _ => None,
        };
        if let (Some(weight), Some(at)) = (end, &entry.finished_at) {
            points.push(WeightPoint {
                at: at.clone(),
                weight,
            });
        }
    }
    // The steps the history recorded (durable); the Events only for a status written before
    // the history kept them (Events expire after an hour).
    let recorded: Vec<WeightPoint> = status
        .history
        .iter()
        .filter(|e| e.started_at >= since)
        .flat_map(|e| &e.steps)
        .map(|mark| WeightPoint {
            at: mark.at.clone(),
            weight: mark.weight,
        })
        .collect();
    if recorded.is_empty() {
        for event in events
            .iter()
            .filter(|e| e.reason == "StepCompleted" && e.at >= since)
        {
            if let Some(weight) = completed_weight(&event.message) {
                points.push(WeightPoint {
                    at: event.at.clone(),
                    weight,
                });
            }
        }
    } else {
        points.extend(recorded);
    }
    if let Some(started) = &status.step_started_at
        && status.canary_revision.is_some()
    {
        points.push(WeightPoint {
            at: started.clone(),
            weight: status.canary_weight,
        });
    }
    points.sort_by(|a, b| a.at.cmp(&b.at));
    points.dedup();
    points
}

fn metrics(templates: &[AnalysisTemplate], status: &SafeDeploymentStatus) -> Vec<MetricPlot> {
    let mut plots = Vec::new();
    for run in &status.analysis_runs {
        let template = templates.iter().find(|t| t.name == run.template);
        let mut by_metric: BTreeMap<&str, Vec<MetricPoint>> = BTreeMap::new();
        // Every metric of the template gets a plot, measured yet or not.
        for metric in template.map(|t| t.metrics.as_slice()).unwrap_or_default() {
            by_metric.entry(metric.name.as_str()).or_default();
        }
        for measurement in &run.measurements {
            by_metric
                .entry(measurement.metric.as_str())
                .or_default()
                .push(MetricPoint {
                    at: measurement.at.clone(),
                    canary: measurement.value.filter(|v| v.is_finite()),
                    baseline: measurement.baseline.filter(|v| v.is_finite()),
                    verdict: measurement.verdict,
                    threshold: measurement.threshold.clone(),
                    message: measurement.message.clone(),
                });
        }
        for (metric, points) in by_metric {
            let spec = template.and_then(|t| t.metrics.iter().find(|m| m.name == metric));
            let bands = spec.and_then(|m| {
                m.thresholds.map(|t| Bands {
                    target: t.target,
                    acceptable: t.acceptable,
                    critical: t.critical,
                    higher_is_better: m.direction == Some(Direction::HigherIsBetter),
                })
            });
            plots.push(MetricPlot {
                analysis: run.template.clone(),
                step: run.step_index.map(|i| i + 1),
                run_phase: format!("{:?}", run.phase),
                revision: run.canary_revision.clone(),
                metric: metric.to_string(),
                bands,
                points,
            });
        }
    }
    plots
}

fn revisions(status: &SafeDeploymentStatus) -> Vec<RevisionView> {
    let mut ordered = status.revisions.clone();
    ordered.sort_by_key(|r| r.number);
    let mut views = Vec::new();
    let mut previous: Option<&crate::api::RevisionRecord> = None;
    for revision in &ordered {
        let role = if status.stable_revision.as_deref() == Some(&revision.hash) {
            "stable"
        } else if status.canary_revision.as_deref() == Some(&revision.hash) {
            "canary"
        } else if status.rejected_revisions.contains(&revision.hash) {
            "rejected"
        } else {
            ""
        };
        let changes = previous
            .map(|p| map_changes(&p.images, &revision.images))
            .unwrap_or_default()
            .into_iter()
            .map(|(container, from, to)| ImageChange {
                container,
                from,
                to,
            })
            .collect();
        let config_changes = previous
            .map(|p| map_changes(&p.config, &revision.config))
            .unwrap_or_default()
            .into_iter()
            .map(|(object, from, to)| ConfigChange { object, from, to })
            .collect();
        views.push(RevisionView {
            number: revision.number,
            hash: revision.hash.clone(),
            previous_hash: previous
                .map(|p| p.hash.clone())
                .filter(|h| *h != revision.hash),
            role,
            images: revision.images.clone(),
            changes,
            config: revision.config.clone(),
            config_changes,
            outcomes: status
                .history
                .iter()
                .filter(|e| e.hash == revision.hash && e.finished_at.is_some())
                .map(|e| e.outcome.clone())
                .collect(),
        });
        previous = Some(revision);
    }
    views.reverse();
    views
}

/// The keys whose values differ between `before` and `after` (added, removed or changed), as
/// (key, before, after), in key order.
fn map_changes(
    before: &StatusMap,
    after: &StatusMap,
) -> Vec<(String, Option<String>, Option<String>)> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|key| before.get(*key) != after.get(*key))
        .map(|key| {
            (
                key.clone(),
                before.get(key).cloned(),
                after.get(key).cloned(),
            )
        })
        .collect()
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
