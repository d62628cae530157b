//! What to notify about, from plain data: the notifications a SafeDeployment's **status**
//! implies (its history entries, its current step and pause, its freeze), each with a stable
//! idempotency key, and the payload of each sink ([`payload`]). No I/O, no clock.
//!
//! Notifications are derived from the status as applied, not from one decision's events, so an
//! operator killed between the status write and the delivery derives the undelivered ones again
//! from the cluster after its restart; the keys already delivered (kept in the cluster by the
//! delivery layer) are what keeps a restart from sending one twice.

pub mod payload;

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::api::analysis::MetricVerdict;
use crate::api::conditions::HistoryOutcome;
use crate::api::notifications::NotificationEvent;
use crate::api::{HistoryEntry, Phase, SafeDeploymentSpec, SafeDeploymentStatus};

/// How far back a finished history entry still draws a notification: enabling notifications
/// does not announce a month of history, and an operator down for less than this catches up.
pub const HORIZON: Duration = Duration::from_secs(3600);

/// The most pieces of evidence a revert message lists.
const MAX_EVIDENCE: usize = 8;

/// The rollout a notification is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// The SafeDeployment's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its `metadata.uid`: a deleted and re-created SafeDeployment of the same name is another
    /// subject, and its keys differ.
    pub uid: String,
}

/// One measured value that made (or helped make) a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// `analysis` (an analysis run's metric) or `health` (a health signal of the canary's pods).
    pub source: &'static str,
    /// The metric or signal name (an analysis metric as `template/metric`).
    pub name: String,
    /// The canary's value, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The baseline's value, when compared with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// What the value was judged against, in words.
    pub threshold: String,
    /// The verdict (`Fail`, `Critical`, …).
    pub verdict: String,
}

/// One thing to announce.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// `<uid>/<revision>/<startedAt>/<event>[/<step>]` (a freeze: `<uid>/frozen/<window>/<start>`):
    /// the same for every derivation of the same occurrence, so receivers and the delivery
    /// layer can drop a repeat.
    pub key: String,
    /// What happened.
    pub event: NotificationEvent,
    /// Which rollout.
    pub subject: Subject,
    /// The revision number, when the event is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The revision hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_hash: Option<String>,
    /// The 1-based step, for `StepCompleted` and `Paused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    /// When it happened (RFC 3339), as status recorded it.
    pub at: String,
    /// One line a person reads.
    pub summary: String,
    /// Why (a revert's cause, a block's reasons, a freeze's window and reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a revert: the metrics and signals that failed, with values and thresholds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// `<dashboardUrl>/<namespace>/<name>`, when a dashboard is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<String>,
}

/// The dashboard page of one rollout: `<base>/<namespace>/<name>` (the path the dashboard
/// serves; agreed in docs/notifications.md).
pub fn dashboard_link(base: &str, namespace: &str, name: &str) -> String {
    format!("{}/{namespace}/{name}", base.trim_end_matches('/'))
}

/// Every notification `status` implies at `now`, oldest first. `dashboard_url` is the policy's
/// base URL.
pub fn derive(
    subject: &Subject,
    spec: &SafeDeploymentSpec,
    status: &SafeDeploymentStatus,
    dashboard_url: Option<&str>,
    now: Timestamp,
) -> Vec<Notification> {
    let dashboard = dashboard_url.map(|base| dashboard_link(base, &subject.namespace, &subject.name));
    let builder = Builder {
        subject,
        dashboard,
        now,
    };
    let mut out = Vec::new();
    for entry in &status.history {
        builder.entry_notes(entry, status, &mut out);
    }
    builder.current_notes(spec, status, &mut out);
    out
}

struct Builder<'a> {
    subject: &'a Subject,
    dashboard: Option<String>,
    now: Timestamp,
}

impl Builder<'_> {
    fn recent(&self, at: &str) -> bool {
        at.parse::<Timestamp>().is_ok_and(|at| {
            self.now
                .duration_since(at)
                .try_into()
                .map_or(true, |age: Duration| age <= HORIZON)
        })
    }

    fn note(&self, entry: &HistoryEntry, event: NotificationEvent, at: &str) -> Notification {
        Notification {
            key: format!(
                "{}/{}/{}/{event}",
                self.subject.uid, entry.revision, entry.started_at
            ),
            event,
            subject: self.subject.clone(),
            revision: Some(entry.revision),
            revision_hash: Some(entry.hash.clone()),
            step: None,
            at: at.to_string(),
            summary: String::new(),
            reason: None,
            evidence: Vec::new(),
            dashboard: self.dashboard.clone(),
        }
    }

    fn entry_notes(&self, entry: &HistoryEntry, status: &SafeDeploymentStatus, out: &mut Vec<Notification>) {
        let Some(outcome) = HistoryOutcome::parse(&entry.outcome) else {
            return;
        };
        let who = format!("{}/{}", self.subject.namespace, self.subject.name);
        let rev = entry.revision;
        let rollout = matches!(
            outcome,
            HistoryOutcome::InProgress
                | HistoryOutcome::Promoted
                | HistoryOutcome::Reverted
                | HistoryOutcome::Aborted
                | HistoryOutcome::Abandoned
                | HistoryOutcome::Superseded
        );
        if rollout && self.recent(&entry.started_at) {
            let mut note = self.note(entry, NotificationEvent::RolloutStarted, &entry.started_at);
            note.summary = format!("{who}: rollout of revision {rev} started ({})", entry.reason);
            out.push(note);
        }
        let finished = entry.finished_at.as_deref().unwrap_or(&entry.started_at);
        if !self.recent(finished) {
            return;
        }
        match outcome {
            HistoryOutcome::Promoted => {
                let mut note = self.note(entry, NotificationEvent::Promoted, finished);
                note.summary = format!("{who}: revision {rev} promoted, now stable");
                out.push(note);
            }
            HistoryOutcome::Reverted | HistoryOutcome::Aborted | HistoryOutcome::Abandoned => {
                let mut note = self.note(entry, NotificationEvent::Reverted, finished);
                note.evidence = evidence(status, &entry.hash);
                note.reason = Some(entry.reason.clone());
                note.summary = revert_summary(&who, rev, &outcome, &entry.reason, &note.evidence);
                out.push(note);
            }
            HistoryOutcome::Blocked => {
                let mut note = self.note(entry, NotificationEvent::Blocked, finished);
                note.reason = Some(entry.reason.clone());
                note.summary = format!("{who}: revision {rev} blocked: {}", entry.reason);
                out.push(note);
            }
            _ => {}
        }
    }

    /// The current rollout's completed steps, its wait for a person, and its freeze.
    fn current_notes(&self, spec: &SafeDeploymentSpec, status: &SafeDeploymentStatus, out: &mut Vec<Notification>) {
        let who = format!("{}/{}", self.subject.namespace, self.subject.name);
        if let Some(freeze) = status.freeze.as_ref().filter(|f| f.active) {
            let start = freeze.start.clone().unwrap_or_default();
            out.push(Notification {
                key: format!("{}/frozen/{}/{start}", self.subject.uid, freeze.window),
                event: NotificationEvent::Frozen,
                subject: self.subject.clone(),
                revision: None,
                revision_hash: None,
                step: None,
                at: start.clone(),
                summary: format!(
                    "{who}: held by freeze window {}{}",
                    freeze.window,
                    freeze.end.as_ref().map(|e| format!(" until {e}")).unwrap_or_default()
                ),
                reason: freeze.reason.clone(),
                evidence: Vec::new(),
                dashboard: self.dashboard.clone(),
            });
        }
        let Some(canary) = status.canary_revision.as_deref() else {
            return;
        };
        let Some(entry) = status
            .history
            .iter()
            .rev()
            .find(|e| e.hash == canary && e.outcome == HistoryOutcome::InProgress)
        else {
            return;
        };
        let current = status.current_step_index.unwrap_or(0);
        for index in 0..current.max(0) {
            let step = index.saturating_add(1);
            let mut note = self.note(entry, NotificationEvent::StepCompleted, &entry.started_at);
            note.key = format!("{}/{step}", note.key);
            note.step = Some(step);
            note.summary = format!("{who}: revision {} completed step {step}", entry.revision);
            out.push(note);
        }
        let frozen = status.freeze.as_ref().is_some_and(|f| f.active);
        if status.phase == Phase::Paused && !frozen && waits_for_person(spec, status) {
            let step = current.saturating_add(1);
            let mut note = self.note(
                entry,
                NotificationEvent::Paused,
                status.step_started_at.as_deref().unwrap_or(&entry.started_at),
            );
            note.key = format!("{}/{step}", note.key);
            note.step = Some(step);
            note.summary = format!(
                "{who}: revision {} paused at step {step}, waiting for `kubectl safedeploy promote {}`",
                entry.revision, self.subject.name
            );
            out.push(note);
        }
    }
}

/// Whether a paused rollout waits for a person: paused by its spec or a user, or at a pause
/// step without a duration.
fn waits_for_person(spec: &SafeDeploymentSpec, status: &SafeDeploymentStatus) -> bool {
    let user_paused = spec.paused
        || status
            .history
            .last()
            .is_some_and(|e| e.outcome == HistoryOutcome::Paused);
    let untimed_pause = status
        .current_step_index
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| spec.strategy.canary.steps.get(i))
        .and_then(|step| step.pause.as_ref())
        .is_some_and(|pause| pause.duration.is_none());
    user_paused || untimed_pause
}

/// The failing measurements of `revision`'s analysis runs (the latest of each metric) and the
/// canary's failing health signals.
fn evidence(status: &SafeDeploymentStatus, revision: &str) -> Vec<Evidence> {
    let mut out: Vec<Evidence> = Vec::new();
    for run in status
        .analysis_runs
        .iter()
        .filter(|r| r.canary_revision.as_deref().is_none_or(|c| c == revision))
    {
        for m in run.measurements.iter().rev() {
            let failing = matches!(
                m.verdict,
                MetricVerdict::Fail | MetricVerdict::Critical | MetricVerdict::Error
            );
            let name = format!("{}/{}", run.template, m.metric);
            if failing && !out.iter().any(|e| e.name == name) {
                out.push(Evidence {
                    source: "analysis",
                    name,
                    value: m.value,
                    baseline: m.baseline,
                    threshold: m.threshold.clone(),
                    verdict: format!("{:?}", m.verdict),
                });
            }
        }
    }
    for signal in status
        .health
        .iter()
        .filter(|s| s.verdict == "Critical" || s.verdict == "Marginal")
    {
        out.push(Evidence {
            source: "health",
            name: signal.signal.clone(),
            value: Some(signal.value),
            baseline: signal.baseline,
            threshold: format!(
                "target {}, acceptable {}, critical {}",
                signal.thresholds.target, signal.thresholds.acceptable, signal.thresholds.critical
            ),
            verdict: signal.verdict.clone(),
        });
    }
    out.truncate(MAX_EVIDENCE);
    out
}

fn revert_summary(
    who: &str,
    revision: i64,
    outcome: &HistoryOutcome,
    reason: &str,
    evidence: &[Evidence],
) -> String {
    let verb = match outcome {
        HistoryOutcome::Aborted => "aborted",
        HistoryOutcome::Abandoned => "abandoned",
        _ => "reverted",
    };
    let mut text = format!("{who}: revision {revision} {verb}: {reason}");
    // The evidence's first item, unless the reason already names it (a health gate's does).
    let metric = |e: &Evidence| e.name.rsplit('/').next().unwrap_or_default().to_string();
    if let Some(first) = evidence.first().filter(|e| !reason.contains(&metric(e))) {
        let value = first
            .value
            .map_or_else(|| "no value".to_string(), |v| format!("{v}"));
        let baseline = first
            .baseline
            .map(|b| format!(" (baseline {b})"))
            .unwrap_or_default();
        text.push_str(&format!(
            ". {} {} = {value}{baseline}, judged against {}",
            first.source, first.name, first.threshold
        ));
    }
    text
}

#[cfg(test)]
mod tests;
