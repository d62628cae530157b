//! The rollout decision: a pure function of (spec, status, observed ReplicaSets and pods, gate
//! outcomes, manual requests, now) that returns the scaling to apply, the events to record and
//! the new status. Every rollout rule lives here; the controller only carries it out.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::duration::parse_duration;
use super::health::{EffectiveGates, HealthReport, PodView, Verdict, assess};
use super::revision::{Revision, baseline_selector};
use super::status_budget;
use crate::api::{
    AttestationVerdict, BaselineMode, BaselineStatus, CanaryStep, HistoryEntry, Phase,
    RevisionRecord, SafeDeploymentSpec, SafeDeploymentStatus,
};

/// Default progress deadline.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
/// Default number of old revisions kept.
pub const DEFAULT_REVISION_HISTORY_LIMIT: usize = 10;
/// Default `minReadySeconds` of the ReplicaSets.
pub const DEFAULT_MIN_READY_SECONDS: i32 = 5;
/// How many rollouts the status history keeps.
pub const HISTORY_CAPACITY: usize = 20;
/// How soon a revision blocked by preflight is checked again: a missing ConfigMap, Secret,
/// ServiceAccount or claim created later has no event that would wake the controller.
pub const PREFLIGHT_RECHECK: Duration = Duration::from_secs(10);
/// The longest the controller waits before looking again on its own. A later deadline is
/// simply checked again then; waiting longer gains nothing, and an unbounded wait (from a
/// threshold or duration of any size) would overflow the scheduler's clock arithmetic.
pub const MAX_REQUEUE: Duration = Duration::from_secs(3600);
/// Condition reasons of a `Stalled` condition that the controller (not the decision) sets
/// when a reconcile cannot be carried out; the decision keeps them until the controller
/// clears them after a reconcile that fully succeeded.
pub const FAILURE_REASONS: [&str; 2] = ["ReconcileFailed", "ReconcilePanicked"];

/// What the core needs to know of one owned ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSetView {
    /// Object name.
    pub name: String,
    /// Revision hash label.
    pub revision: String,
    /// Component label.
    pub component: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`: pods Ready for at least `minReadySeconds`.
    pub ready: i32,
}

/// The outcome of the attestation check of the desired revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestationGate {
    /// A valid attestation covers the revision.
    Verified(String),
    /// The policy for this namespace does not require attestations.
    NotRequired(String),
    /// Rejected, with one of the documented reasons (Missing, BadSignature, …).
    Rejected {
        /// The reason, as shown in the `Attested` condition.
        reason: String,
        /// Details.
        message: String,
    },
}

impl AttestationGate {
    fn allows(&self) -> bool {
        !matches!(self, AttestationGate::Rejected { .. })
    }

    fn verdict(&self, revision: &str) -> AttestationVerdict {
        let (verified, reason, message) = match self {
            AttestationGate::Verified(message) => (true, "Verified", message.as_str()),
            AttestationGate::NotRequired(message) => (true, "NotRequired", message.as_str()),
            AttestationGate::Rejected { reason, message } => {
                (false, reason.as_str(), message.as_str())
            }
        };
        AttestationVerdict {
            revision: revision.to_string(),
            verified,
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }
}

/// The state of an analysis the rollout depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnalysisGate {
    /// Still measuring, and its latest measurement passed.
    Running,
    /// Still measuring, without passing evidence yet: no measurement, a provider error, a
    /// metric without a value, or a score below the pass threshold. Holds like `Inconclusive`.
    Pending(String),
    /// Passed.
    Passed,
    /// Failed: revert.
    Failed(String),
    /// Could not decide (no data, provider unreachable): wait, and say so.
    Inconclusive(String),
}

/// Manual requests read from annotations: `(action, token)`; a token already in
/// `status.handledRequests` has been carried out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    /// Promote past the current step.
    pub promote: Option<String>,
    /// Promote past every remaining step.
    pub promote_full: Option<String>,
    /// Revert the canary now.
    pub abort: Option<String>,
    /// Try a rejected revision again.
    pub retry: Option<String>,
    /// Roll back to a recorded revision number: `(token, number)`.
    pub rollback: Option<(String, i64)>,
    /// A user paused the rollout (annotation), in addition to `spec.paused`.
    pub paused: bool,
}

/// Everything the decision looks at.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// SafeDeployment name.
    pub name: &'a str,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The spec.
    pub spec: &'a SafeDeploymentSpec,
    /// The revision the spec describes.
    pub desired: &'a Revision,
    /// The status as last written.
    pub status: &'a SafeDeploymentStatus,
    /// Owned ReplicaSets.
    pub replica_sets: &'a [ReplicaSetView],
    /// Pods of the owned ReplicaSets.
    pub pods: &'a [PodView],
    /// The fresh baseline's ReplicaSets (label `safedeploy.dev/role: baseline`), with `revision`
    /// the stable revision whose template each runs. Never part of `replica_sets`: a baseline is
    /// not a revision and never counts as capacity.
    pub baseline_replica_sets: &'a [ReplicaSetView],
    /// Pods of the fresh baseline; never part of `pods`, so no health gate reads them.
    pub baseline_pods: &'a [PodView],
    /// Attestation outcome for the desired revision.
    pub attestation: AttestationGate,
    /// Preflight of the desired revision (`core::preflight`): every problem found, such as a
    /// missing ConfigMap key. `Ok` when it passed or was not re-run (at rest). A failure blocks
    /// like a rejected attestation.
    pub preflight: Result<(), Vec<String>>,
    /// Analysis outcomes by template name, for the current canary.
    pub analyses: BTreeMap<String, AnalysisGate>,
    /// Manual requests.
    pub requests: Requests,
    /// The current time.
    pub now: Timestamp,
}

/// Set a ReplicaSet of `(revision, component)` to `replicas`, creating it if it does not exist
/// (only possible for the desired revision, whose template is in the spec).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScaleAction {
    /// Revision hash.
    pub revision: String,
    /// Component name.
    pub component: String,
    /// Desired `spec.replicas`.
    pub replicas: i32,
}

/// A Kubernetes Event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    /// `Normal` or `Warning`.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// What was done, specific enough that distinct occurrences are distinct events
    /// (`CompleteStep2`, `RevertRevision3`); repeats of the same action are aggregated.
    pub action: String,
    /// Human-readable note.
    pub note: String,
}

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// ReplicaSets to create or scale (only those whose replicas differ from what is observed).
    pub scale: Vec<ScaleAction>,
    /// ReplicaSets to delete (old revisions beyond the history limit, at zero replicas).
    pub delete: Vec<String>,
    /// Fresh baseline ReplicaSets to create or scale (only those whose replicas differ from what
    /// is observed): `revision` is the stable revision whose template the baseline runs.
    pub baseline_scale: Vec<ScaleAction>,
    /// Fresh baseline ReplicaSets to delete, by name: every observed one the rollout no longer
    /// wants (promoted, reverted, aborted, or a baseline of an earlier stable revision).
    pub baseline_delete: Vec<String>,
    /// Events.
    pub events: Vec<EventNote>,
    /// The new status.
    pub status: SafeDeploymentStatus,
    /// When to look again even if nothing changes (timed pauses, deadlines, start-up latency).
    pub requeue_after: Option<Duration>,
    /// Analysis templates that should be measuring now, with the run key they belong to.
    pub active_analyses: Vec<(String, String)>,
}

struct Planner<'a> {
    obs: &'a Observation<'a>,
    status: SafeDeploymentStatus,
    targets: BTreeMap<(String, String), i32>,
    /// Fresh baseline sizes by (stable revision, component); empty when none should run.
    baseline_targets: BTreeMap<(String, String), i32>,
    events: Vec<EventNote>,
    requeue: Option<Duration>,
    active_analyses: Vec<(String, String)>,
    abort: bool,
    promote: bool,
    promote_full: bool,
}

/// Decides the next actions and status for one SafeDeployment.
pub fn decide(obs: &Observation<'_>) -> Decision {
    let mut planner = Planner {
        obs,
        status: obs.status.clone(),
        targets: BTreeMap::new(),
        baseline_targets: BTreeMap::new(),
        events: Vec::new(),
        requeue: None,
        active_analyses: Vec::new(),
        abort: false,
        promote: false,
        promote_full: false,
    };
    planner.run();
    planner.finish()
}

impl<'a> Planner<'a> {
    fn run(&mut self) {
        self.status.observed_generation = self.obs.generation;
        let desired = self.obs.desired.hash.clone();
        self.ensure_revision_record(&desired);
        self.status.attestation = Some(self.obs.attestation.verdict(&desired));
        // Requests are consumed whatever the phase, so a stale one never acts on a later rollout.
        self.abort = self.take_request("abort");
        self.promote = self.take_request("promote");
        self.promote_full = self.take_request("promoteFull");
        if self.status.canary_revision.is_some() {
            if self.promote_full {
                self.record_manual("PromoteFullRequested", "promote past every remaining step");
            } else if self.promote {
                self.record_manual("PromoteRequested", "promote past the current step");
            }
        }
        self.handle_pause_transition();
        self.handle_retry();
        if self.handle_rollback() {
            self.steady_state();
            return;
        }
        let stable = self.status.stable_revision.clone();
        match stable {
            None => self.initial_rollout(),
            // Status says the desired revision is stable, but none of its ReplicaSets exists:
            // it never ran here (a forged or restored status) or they were deleted. Recreating
            // it at full size on the word of status alone would run an unattested revision, so
            // it passes the gates first, like a first revision.
            Some(stable)
                if stable == desired
                    && !self.any_replica_set_of(&stable)
                    && !self.gates_allow() =>
            {
                self.abandon_canary("the stable revision must pass the gates again");
                self.record_blocked();
                self.set_conditions();
            }
            Some(stable) if stable == desired => {
                self.abandon_canary("the spec went back to the stable revision");
                self.steady_state();
            }
            Some(_) if self.status.rejected_revisions.contains(&desired) => {
                self.abandon_canary("the revision was rejected");
                self.steady_state();
            }
            Some(_) if !self.gates_allow() => {
                self.abandon_canary("the new revision is blocked (attestation or preflight)");
                self.record_blocked();
                self.steady_state();
            }
            Some(_) => self.canary_rollout(),
        }
        self.report_lost_stable();
    }

    /// The stable revision's ReplicaSets were deleted while another revision is desired: its
    /// template is kept nowhere else, so it cannot be recreated, and whatever the decision says
    /// ("the stable keeps running", "back at full size") would not be true. Status says so
    /// instead (`Stalled`, `StableReplicaSetLost`), with what a person can do; the canary keeps
    /// its Ready pods, as capacity requires.
    fn report_lost_stable(&mut self) {
        let Some(stable) = self.status.stable_revision.clone() else {
            return;
        };
        if stable == self.obs.desired.hash || self.any_replica_set_of(&stable) {
            return;
        }
        let message = format!(
            "the ReplicaSets of stable revision {} ({stable}) were deleted and its template is kept nowhere else, so it cannot be recreated: apply its template again (it then becomes the desired revision and is recreated), or let the new revision roll out",
            self.revision_number(&stable)
        );
        if self.status.message.as_deref() != Some(message.as_str())
            && self.obs.status.message.as_deref() != Some(message.as_str())
        {
            self.event(true, "StableReplicaSetLost", message.clone());
        }
        self.status.message = Some(message.clone());
        if let Some(stalled) = self
            .status
            .conditions
            .iter_mut()
            .find(|c| c.type_ == "Stalled")
        {
            if stalled.status != "True" || stalled.reason != "StableReplicaSetLost" {
                stalled.last_transition_time = Time(self.obs.now);
            }
            stalled.status = "True".to_string();
            stalled.reason = "StableReplicaSetLost".to_string();
            stalled.message = message;
        }
    }

    // ----- bookkeeping -------------------------------------------------------------------

    fn ensure_revision_record(&mut self, hash: &str) {
        if self.status.revisions.iter().any(|r| r.hash == hash) {
            return;
        }
        let number = self
            .status
            .revisions
            .iter()
            .map(|r| r.number)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        self.status.revisions.push(RevisionRecord {
            number,
            hash: hash.to_string(),
            images: self.obs.desired.images(),
        });
        let limit = self.history_limit().saturating_add(2);
        let protected = [
            self.status.stable_revision.clone(),
            self.status.canary_revision.clone(),
            Some(hash.to_string()),
        ];
        while self.status.revisions.len() > limit {
            let Some(position) = self
                .status
                .revisions
                .iter()
                .position(|r| !protected.contains(&Some(r.hash.clone())))
            else {
                break;
            };
            self.status.revisions.remove(position);
        }
    }

    fn revision_number(&self, hash: &str) -> i64 {
        self.status
            .revisions
            .iter()
            .find(|r| r.hash == hash)
            .map(|r| r.number)
            .unwrap_or(0)
    }

    fn history_limit(&self) -> usize {
        self.obs
            .spec
            .revision_history_limit
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
    }

    fn now(&self) -> String {
        self.obs.now.to_string()
    }

    fn event(&mut self, warning: bool, reason: &str, note: String) {
        let revision = self
            .status
            .canary_revision
            .clone()
            .unwrap_or_else(|| self.obs.desired.hash.clone());
        let action = format!(
            "{reason}-r{}-s{}",
            self.revision_number(&revision),
            self.status
                .current_step_index
                .unwrap_or(-1)
                .saturating_add(1)
        );
        self.events.push(EventNote {
            warning,
            reason: reason.to_string(),
            action,
            note,
        });
    }

    fn request_is_new(&self, action: &str, token: &str) -> bool {
        self.status.handled_requests.get(action).map(String::as_str)
            != Some(token_key(token).as_str())
    }

    fn mark_handled(&mut self, action: &str, token: &str) {
        self.status
            .handled_requests
            .insert(action.to_string(), token_key(token));
    }

    fn push_history(&mut self, hash: &str, outcome: &str, reason: String) {
        let images = self
            .status
            .revisions
            .iter()
            .find(|r| r.hash == hash)
            .map(|r| r.images.clone())
            .unwrap_or_default();
        self.status.history.push(HistoryEntry {
            revision: self.revision_number(hash),
            hash: hash.to_string(),
            images,
            outcome: outcome.to_string(),
            reason,
            started_at: self.now(),
            finished_at: None,
        });
        let excess = self.status.history.len().saturating_sub(HISTORY_CAPACITY);
        self.status.history.drain(..excess);
    }

    /// Closes the open history entry of `hash` (the newest `InProgress` one), or records a new
    /// finished entry when there is none.
    fn finish_history(&mut self, hash: &str, outcome: &str, reason: String) {
        let now = self.now();
        if let Some(entry) = self
            .status
            .history
            .iter_mut()
            .rev()
            .find(|e| e.hash == hash && e.outcome == "InProgress")
        {
            entry.outcome = outcome.to_string();
            entry.reason = reason;
            entry.finished_at = Some(now);
            return;
        }
        self.push_history(hash, outcome, reason);
        if let Some(entry) = self.status.history.last_mut() {
            entry.finished_at = Some(now);
        }
    }

    /// Whether the gates let the desired revision start: attestation and preflight.
    fn gates_allow(&self) -> bool {
        self.obs.attestation.allows() && self.obs.preflight.is_ok()
    }

    /// Records that the desired revision may not start (attestation rejected, preflight failed,
    /// or both): phase Blocked, one history entry and one event per blocked revision.
    fn record_blocked(&mut self) {
        let desired = self.obs.desired.hash.clone();
        let already = self
            .status
            .history
            .last()
            .is_some_and(|e| e.hash == desired && e.outcome == "Blocked");
        // (history reason, event note, status message) per failed gate.
        let mut failures: Vec<(String, String, String)> = Vec::new();
        if let AttestationGate::Rejected { reason, message } = &self.obs.attestation {
            failures.push((
                format!("Attestation{reason}: {message}"),
                format!("attestation {reason}: {message}"),
                format!("is not attested ({reason}): {message}"),
            ));
        }
        if let Err(problems) = &self.obs.preflight {
            let list = problems.join("; ");
            failures.push((
                format!("MissingReferences: {list}"),
                format!("preflight found {} problem(s): {list}", problems.len()),
                format!("fails preflight ({} problem(s)): {list}", problems.len()),
            ));
            // Nothing announces that a missing object was created: look again.
            self.requeue_in(PREFLIGHT_RECHECK);
        }
        if failures.is_empty() {
            return;
        }
        if !already {
            let reasons: Vec<String> = failures.iter().map(|f| f.0.clone()).collect();
            let notes: Vec<String> = failures.iter().map(|f| f.1.clone()).collect();
            let note = format!(
                "revision {} blocked: {}",
                self.revision_number(&desired),
                notes.join("; ")
            );
            self.push_history(&desired, "Blocked", reasons.join("; "));
            self.event(true, "RolloutBlocked", note);
        }
        let messages: Vec<String> = failures.into_iter().map(|f| f.2).collect();
        self.status.phase = Phase::Blocked;
        self.status.message = Some(format!(
            "revision {desired} {}; the stable revision keeps running",
            messages.join("; and ")
        ));
    }

    // ----- manual requests ---------------------------------------------------------------

    /// Records a manual action in the history (a finished entry for the revision it acts on).
    fn record_manual(&mut self, outcome: &str, what: &str) {
        let hash = self
            .status
            .canary_revision
            .clone()
            .unwrap_or_else(|| self.obs.desired.hash.clone());
        self.push_history(&hash, outcome, format!("{what}: requested by a user"));
        if let Some(entry) = self.status.history.last_mut() {
            entry.finished_at = Some(self.obs.now.to_string());
        }
    }

    /// Pause and resume are states (the annotation or `spec.paused`), not tokens: a change of
    /// state is recorded once, and remembered in `handledRequests.paused`.
    fn handle_pause_transition(&mut self) {
        let paused = self.obs.spec.paused || self.obs.requests.paused;
        let was_paused = self
            .status
            .handled_requests
            .get("paused")
            .map(String::as_str)
            == Some("true");
        if paused == was_paused {
            return;
        }
        if paused {
            self.status
                .handled_requests
                .insert("paused".to_string(), "true".to_string());
            self.record_manual("Paused", "pause the rollout");
            self.event(false, "Paused", "rollout paused by a user".into());
        } else {
            self.status.handled_requests.remove("paused");
            self.record_manual("Resumed", "resume the rollout");
            self.event(false, "Resumed", "rollout resumed by a user".into());
            // The time spent paused does not count against the step.
            if self.status.canary_revision.is_some() {
                self.status.step_started_at = Some(self.obs.now.to_string());
            }
        }
    }

    fn handle_retry(&mut self) {
        let Some(token) = self.obs.requests.retry.clone() else {
            return;
        };
        if !self.request_is_new("retry", &token) {
            return;
        }
        self.mark_handled("retry", &token);
        let desired = self.obs.desired.hash.clone();
        let before = self.status.rejected_revisions.len();
        self.status.rejected_revisions.retain(|h| h != &desired);
        if self.status.rejected_revisions.len() != before {
            let note = format!(
                "retry requested: revision {} may roll out again",
                self.revision_number(&desired)
            );
            self.push_history(&desired, "RetryRequested", "requested by a user".into());
            if let Some(entry) = self.status.history.last_mut() {
                entry.finished_at = Some(self.obs.now.to_string());
            }
            self.event(false, "RetryRequested", note);
        }
    }

    /// Returns true when a rollback was carried out and the stable revision changed.
    fn handle_rollback(&mut self) -> bool {
        let Some((token, number)) = self.obs.requests.rollback.clone() else {
            return false;
        };
        if !self.request_is_new("rollback", &token) {
            return false;
        }
        self.mark_handled("rollback", &token);
        let Some(target) = self
            .status
            .revisions
            .iter()
            .find(|r| r.number == number)
            .map(|r| r.hash.clone())
        else {
            self.event(
                true,
                "RollbackFailed",
                format!("rollback to revision {number}: no such revision is recorded"),
            );
            return false;
        };
        // A rollback goes back to a revision that ran; it is never a way around the gates: the
        // revision the spec describes rolls out through its canary (or promote-full), and a
        // revision that was reverted stays rejected until a person retries it.
        let refusal = if target == self.obs.desired.hash {
            Some("it is the revision the spec describes; it rolls out through its canary steps")
        } else if self.status.rejected_revisions.contains(&target) {
            Some("it was rejected; run `safedeploy retry` on a spec that describes it instead")
        } else {
            None
        };
        if let Some(why) = refusal {
            self.event(
                true,
                "RollbackFailed",
                format!("rollback to revision {number} refused: {why}"),
            );
            return false;
        }
        let components = &self.obs.desired.components;
        let all_present = components.iter().all(|c| {
            self.obs
                .replica_sets
                .iter()
                .any(|rs| rs.revision == target && rs.component == c.name)
        });
        if !all_present {
            self.event(
                true,
                "RollbackFailed",
                format!("rollback to revision {number}: its ReplicaSets were garbage-collected"),
            );
            return false;
        }
        if let Some(canary) = self.status.canary_revision.clone() {
            self.finish_history(&canary, "Aborted", format!("rollback to revision {number}"));
        }
        let desired = self.obs.desired.hash.clone();
        if target != desired && !self.status.rejected_revisions.contains(&desired) {
            self.status.rejected_revisions.push(desired);
        }
        self.status.stable_revision = Some(target.clone());
        self.clear_canary();
        self.push_history(
            &target,
            "RolledBack",
            format!("rollback to revision {number} requested by a user"),
        );
        if let Some(entry) = self.status.history.last_mut() {
            entry.finished_at = Some(self.obs.now.to_string());
        }
        self.event(
            false,
            "RolledBack",
            format!("rolled back to revision {number} ({target})"),
        );
        true
    }

    // ----- phases ------------------------------------------------------------------------

    fn initial_rollout(&mut self) {
        let desired = self.obs.desired.hash.clone();
        if !self.gates_allow() {
            self.record_blocked();
            self.set_conditions();
            return;
        }
        if !self.status.history.iter().any(|e| e.hash == desired) {
            self.push_history(&desired, "InProgress", "initial revision".into());
            self.event(
                false,
                "RolloutStarted",
                format!(
                    "initial revision {} ({desired}) scaling to full size",
                    self.revision_number(&desired)
                ),
            );
        }
        self.scale_revision_full(&desired);
        self.scale_others_to_zero(std::slice::from_ref(&desired));
        self.status.canary_weight = 100;
        self.status.current_step_index = None;
        self.status.step_display = None;
        if self.all_ready(&desired) {
            self.status.stable_revision = Some(desired.clone());
            self.finish_history(&desired, "Promoted", "initial revision ready".into());
            self.event(
                false,
                "RolloutCompleted",
                format!("revision {} is stable", self.revision_number(&desired)),
            );
            self.status.phase = Phase::Healthy;
            self.status.message = Some(format!("revision {desired} is stable"));
        } else {
            self.status.phase = Phase::Progressing;
            self.status.message = Some(format!("initial revision {desired} is starting"));
            self.check_deadline_without_revert();
        }
        self.set_conditions();
    }

    fn steady_state(&mut self) {
        let Some(stable) = self.status.stable_revision.clone() else {
            return;
        };
        self.scale_revision_full(&stable);
        self.scale_others_to_zero(std::slice::from_ref(&stable));
        self.status.canary_weight = 0;
        let desired = self.obs.desired.hash.clone();
        let rejected = self.status.rejected_revisions.contains(&desired);
        if stable != desired && rejected {
            self.status.phase = Phase::Degraded;
            let why = self
                .status
                .history
                .iter()
                .rev()
                .find(|e| e.hash == desired && e.outcome != "Blocked")
                .map(|e| format!("{}: {}", e.outcome, e.reason))
                .unwrap_or_else(|| "rejected".into());
            self.status.message = Some(format!(
                "revision {} ({desired}) was rejected ({why}); stable revision {} ({stable}) runs. Change the template or run `safedeploy retry`.",
                self.revision_number(&desired),
                self.revision_number(&stable)
            ));
        } else if stable != desired {
            // Blocked: phase and message were set by record_blocked.
        } else if self.all_ready(&stable) {
            self.status.phase = Phase::Healthy;
            self.status.message = Some(format!("revision {stable} is stable"));
        } else {
            self.status.phase = Phase::Progressing;
            self.status.message = Some(format!("revision {stable} is scaling"));
        }
        self.set_conditions();
    }

    fn canary_rollout(&mut self) {
        let desired = self.obs.desired.hash.clone();
        let stable = self.status.stable_revision.clone().unwrap_or_default();
        if self.status.canary_revision.as_deref() != Some(desired.as_str()) {
            self.abandon_canary("a newer revision replaced it");
            self.status.canary_revision = Some(desired.clone());
            self.status.current_step_index = Some(0);
            self.status.step_started_at = Some(self.now());
            self.status.health.clear();
            self.status.analysis_runs.clear();
            self.status.steps_digest = Some(steps_digest(&self.obs.spec.strategy.canary));
            self.push_history(&desired, "InProgress", "template changed".into());
            self.event(
                false,
                "RolloutStarted",
                format!(
                    "canary of revision {} ({desired}) started over stable revision {} ({stable})",
                    self.revision_number(&desired),
                    self.revision_number(&stable)
                ),
            );
        }
        if self.restart_if_steps_changed() {
            return;
        }
        let steps = &self.obs.spec.strategy.canary.steps;
        let index = usize::try_from(self.status.current_step_index.unwrap_or(0)).unwrap_or(0);

        let (health, wake) = self.assess_canary(&desired, &stable);
        if let Some(seconds) = wake {
            self.requeue_in(seconds_to_duration(seconds));
        }
        self.status.health = health.measurements.clone();
        if health.worst == Verdict::Critical {
            let reason = format!(
                "health gate breached: {}",
                health.describe(Verdict::Critical)
            );
            self.revert(&reason, "HealthGateBreached");
            return;
        }
        if let Some(reason) = self.failed_analysis(index) {
            self.revert(&reason, "AnalysisFailed");
            return;
        }
        if self.abort {
            self.revert("aborted by a user", "Aborted");
            return;
        }

        let paused = self.obs.spec.paused || self.obs.requests.paused;
        let promote_full = self.promote_full;
        let promote = self.promote;
        let mut index = index;
        if promote_full && index < steps.len() {
            self.event(
                false,
                "PromotedFull",
                "promoted past every remaining step by a user".into(),
            );
            index = steps.len();
            self.enter_step(index);
        }

        if index >= steps.len() {
            self.promote(&desired, &stable, &health);
            return;
        }
        let weight = weight_at(steps, index);
        self.scale_canary(&desired, &stable, weight);
        self.status.canary_weight = weight;
        self.status.step_display = Some(format!("{}/{}", index.saturating_add(1), steps.len()));
        self.add_background_analysis(&desired);

        if paused {
            self.status.phase = Phase::Paused;
            self.status.message = Some(format!(
                "paused by a user at step {}/{}",
                index.saturating_add(1),
                steps.len()
            ));
            self.set_conditions();
            return;
        }

        let Some(step) = steps.get(index) else {
            return;
        };
        let healthy_enough = health.worst <= Verdict::Acceptable;
        let scaled = self.canary_scaled(&desired, weight);
        // A required background analysis without passing evidence holds every step (and the
        // promotion); only a person's explicit promote goes past it, and that is recorded.
        let background_hold = self.background_hold();
        let background_ok = background_hold.is_none() || promote;
        let mut phase = Phase::Progressing;
        // How much of the step's time is its own (a timed pause's duration) and so does not
        // count against the progress deadline; the deadline counts only the time the step is
        // held beyond it (by health, analysis or anything else), so nothing holds for ever.
        let mut own_time = Duration::ZERO;
        // An untimed pause waits for a person, as long as it takes.
        let mut waits_for_person = false;
        let complete = if step.set_weight.is_some() {
            scaled && healthy_enough
        } else if let Some(pause) = &step.pause {
            phase = Phase::Paused;
            match pause.duration.as_deref().map(parse_duration) {
                Some(Ok(duration)) => {
                    own_time = duration;
                    let elapsed = self.step_elapsed();
                    if elapsed < duration {
                        self.requeue_in(duration.saturating_sub(elapsed));
                    }
                    (elapsed >= duration || promote) && healthy_enough
                }
                _ => {
                    waits_for_person = true;
                    promote && healthy_enough
                }
            }
        } else if let Some(analysis) = &step.analysis {
            let key = self.analysis_key(&desired, index);
            self.active_analyses.push((analysis.template.clone(), key));
            match self.obs.analyses.get(&analysis.template) {
                Some(AnalysisGate::Passed) => scaled && healthy_enough,
                Some(AnalysisGate::Inconclusive(why)) => {
                    phase = Phase::Inconclusive;
                    self.status.message = Some(format!(
                        "analysis {} is inconclusive: {why}",
                        analysis.template
                    ));
                    promote && healthy_enough
                }
                _ => promote && healthy_enough,
            }
        } else {
            true
        };
        let complete = complete || (promote && healthy_enough && step.set_weight.is_none());
        if complete
            && !background_ok
            && let Some(why) = &background_hold
        {
            phase = Phase::Inconclusive;
            self.status.message = Some(format!(
                "step {}/{} holds: {why}",
                index.saturating_add(1),
                steps.len()
            ));
        }
        let complete = complete && background_ok;
        if complete {
            self.event(
                false,
                "StepCompleted",
                format!(
                    "step {}/{} ({}) completed at weight {weight}",
                    index.saturating_add(1),
                    steps.len(),
                    describe_step(step)
                ),
            );
            self.enter_step(index.saturating_add(1));
            self.status.phase = Phase::Progressing;
            self.status.message = Some(format!(
                "step {}/{} completed",
                index.saturating_add(1),
                steps.len()
            ));
            self.requeue_in(Duration::ZERO);
            self.set_conditions();
            return;
        }
        if !waits_for_person && self.deadline_exceeded_beyond(own_time) {
            let held = if own_time.is_zero() {
                String::new()
            } else {
                " after the pause ended".to_string()
            };
            let reason = format!(
                "progress deadline exceeded at step {}/{} ({}){held}",
                index.saturating_add(1),
                steps.len(),
                describe_step(step)
            );
            self.revert(&reason, "ProgressDeadlineExceeded");
            return;
        }
        if !waits_for_person {
            self.requeue_deadline_beyond(own_time);
        }
        let waiting_for_user = waits_for_person;
        self.status.phase = phase;
        if phase != Phase::Inconclusive {
            self.status.message = Some(if waiting_for_user {
                format!(
                    "paused at step {}/{} until promoted",
                    index.saturating_add(1),
                    steps.len()
                )
            } else if !healthy_enough {
                format!(
                    "step {}/{} holds: {}",
                    index.saturating_add(1),
                    steps.len(),
                    health.describe(Verdict::Marginal)
                )
            } else {
                format!(
                    "step {}/{} ({}) in progress",
                    index.saturating_add(1),
                    steps.len(),
                    describe_step(step)
                )
            });
        }
        self.set_conditions();
    }

    fn promote(&mut self, desired: &str, stable: &str, health: &HealthReport) {
        let steps = self.obs.spec.strategy.canary.steps.len();
        self.status.step_display = Some(format!("promoting ({steps}/{steps})"));
        self.status.canary_weight = 100;
        self.add_background_analysis(desired);
        let components = self.obs.desired.components.clone();
        let max_unavailable = self.max_unavailable();
        for component in &components {
            let canary_ready = self.ready_of(desired, &component.name);
            self.target(desired, &component.name, component.replicas);
            let floor = component
                .replicas
                .saturating_sub(max_unavailable)
                .saturating_sub(canary_ready);
            let stable_target = floor
                .max(self.stable_floor(component.replicas))
                .clamp(0, component.replicas);
            let current = self.replicas_of(stable, &component.name).unwrap_or(0);
            self.target(stable, &component.name, stable_target.min(current));
            // The baseline keeps the size of the last step until the promotion completes, so a
            // background analysis still has something to compare with.
            let last = steps.saturating_sub(1);
            let size = canary_replicas(
                component.replicas,
                weight_at(&self.obs.spec.strategy.canary.steps, last),
            );
            self.baseline_target(stable, &component.name, size);
        }
        self.scale_others_to_zero(&[desired.to_string(), stable.to_string()]);
        // A person's promote-full is the one way past a background analysis that has no
        // passing evidence; otherwise it holds the promotion like any step.
        let background_hold = self.background_hold().filter(|_| !self.promote_full);
        if self.all_ready(desired)
            && health.worst <= Verdict::Acceptable
            && background_hold.is_none()
        {
            self.baseline_targets.clear();
            for component in &components {
                self.target(stable, &component.name, 0);
            }
            self.status.stable_revision = Some(desired.to_string());
            self.clear_canary();
            self.status.canary_weight = 0;
            self.finish_history(desired, "Promoted", "every step passed".into());
            self.event(
                false,
                "RolloutCompleted",
                format!(
                    "revision {} ({desired}) promoted to stable",
                    self.revision_number(desired)
                ),
            );
            self.status.phase = Phase::Healthy;
            self.status.message = Some(format!("revision {desired} is stable"));
        } else if self.deadline_exceeded() {
            self.revert(
                "progress deadline exceeded while promoting",
                "ProgressDeadlineExceeded",
            );
            return;
        } else if let Some(why) = background_hold {
            self.requeue_deadline();
            self.status.phase = Phase::Inconclusive;
            self.status.message = Some(format!("promotion of revision {desired} holds: {why}"));
        } else {
            self.requeue_deadline();
            self.status.phase = Phase::Progressing;
            self.status.message = Some(format!("promoting revision {desired}"));
        }
        self.set_conditions();
    }

    fn revert(&mut self, reason: &str, event_reason: &str) {
        let Some(canary) = self.status.canary_revision.clone() else {
            return;
        };
        let stable = self.status.stable_revision.clone().unwrap_or_default();
        self.targets.clear();
        self.baseline_targets.clear();
        self.scale_revision_full(&stable);
        self.scale_others_to_zero(std::slice::from_ref(&stable));
        if !self.status.rejected_revisions.contains(&canary) {
            self.status.rejected_revisions.push(canary.clone());
        }
        self.finish_history(&canary, "Reverted", format!("{event_reason}: {reason}"));
        self.event(
            true,
            "RolloutReverted",
            format!(
                "revision {} ({canary}) reverted to stable revision {} ({stable}): {reason}",
                self.revision_number(&canary),
                self.revision_number(&stable)
            ),
        );
        self.clear_canary();
        self.status.canary_weight = 0;
        self.status.phase = Phase::Degraded;
        self.status.message = Some(format!(
            "revision {canary} was reverted ({event_reason}): {reason}. Stable revision {stable} is back at full size (the canary's Ready pods leave only as the stable's replacements become Ready)."
        ));
        self.set_conditions();
    }

    /// Consumes a request token: true if it is new (and marks it handled).
    fn take_request(&mut self, action: &str) -> bool {
        let token = match action {
            "abort" => self.obs.requests.abort.clone(),
            "promote" => self.obs.requests.promote.clone(),
            "promoteFull" => self.obs.requests.promote_full.clone(),
            _ => None,
        };
        match token {
            Some(token) if self.request_is_new(action, &token) => {
                self.mark_handled(action, &token);
                true
            }
            _ => false,
        }
    }

    fn abandon_canary(&mut self, why: &str) {
        if let Some(canary) = self.status.canary_revision.clone() {
            if canary != self.obs.desired.hash {
                self.finish_history(&canary, "Superseded", why.to_string());
                self.event(
                    false,
                    "RolloutSuperseded",
                    format!("canary {canary} stopped: {why}"),
                );
            } else {
                // The canary is the desired revision, stopped because its gates failed mid-way
                // (an attestation expired, a referenced object vanished): its entry is closed,
                // so the history never shows a rollout in progress that is not.
                self.finish_history(&canary, "Abandoned", why.to_string());
            }
            self.clear_canary();
        }
    }

    /// The last canary's analysis runs stay in status, so its measurements still explain a
    /// revert or a promotion; they are cleared when the next canary starts.
    /// An edit of the steps (or of the background analysis) mid-rollout changes what
    /// `currentStepIndex` means: shortened steps would promote at once, past gates never run.
    /// The canary restarts at step 1 of the new steps instead (at that step's weight, keeping
    /// capacity), and says so. A canary that started before digests were recorded gets one now.
    fn restart_if_steps_changed(&mut self) -> bool {
        let digest = steps_digest(&self.obs.spec.strategy.canary);
        let recorded = self.status.steps_digest.replace(digest.clone());
        if recorded.is_none() || recorded.as_deref() == Some(digest.as_str()) {
            return false;
        }
        let Some(canary) = self.status.canary_revision.clone() else {
            return false;
        };
        self.enter_step(0);
        self.status.analysis_runs.clear();
        self.event(
            false,
            "StepsChanged",
            format!(
                "the canary steps of revision {} changed mid-rollout: it restarts at step 1",
                self.revision_number(&canary)
            ),
        );
        self.status.phase = Phase::Progressing;
        self.status.message = Some(format!(
            "the steps changed mid-rollout; canary {canary} restarts at step 1"
        ));
        self.set_conditions();
        self.requeue_in(Duration::ZERO);
        true
    }

    fn clear_canary(&mut self) {
        self.status.steps_digest = None;
        self.status.canary_revision = None;
        self.status.current_step_index = None;
        self.status.step_display = None;
        self.status.step_started_at = None;
    }

    fn enter_step(&mut self, index: usize) {
        self.status.current_step_index = i32::try_from(index).ok();
        self.status.step_started_at = Some(self.now());
    }

    // ----- gates -------------------------------------------------------------------------

    /// The canary's health report, and in how many seconds a still-starting pod would cross a
    /// threshold by time alone (so the controller looks again then).
    fn assess_canary(&self, canary: &str, stable: &str) -> (HealthReport, Option<f64>) {
        let canary_pods: Vec<&PodView> = self
            .obs
            .pods
            .iter()
            .filter(|p| p.revision == canary)
            .collect();
        let stable_pods: Vec<&PodView> = self
            .obs
            .pods
            .iter()
            .filter(|p| p.revision == stable)
            .collect();
        // With a fresh baseline, start-up latency is compared with the baseline's same-age
        // pods once one of them is Ready; until then (and with `Stable`) with the stable pods.
        let selector = baseline_selector(stable);
        let baseline_pods: Vec<&PodView> = self
            .obs
            .baseline_pods
            .iter()
            .filter(|p| p.revision == selector && !p.terminating)
            .collect();
        let reference = if self.fresh_baseline() && baseline_pods.iter().any(|p| p.ready) {
            baseline_pods
        } else {
            stable_pods
        };
        let gates = EffectiveGates::from_spec(self.obs.spec.health.as_ref());
        let report = assess(
            &canary_pods,
            &reference,
            &gates,
            &self.status.health,
            self.obs.now,
        );
        // A pod still starting crosses thresholds with time alone: look again when it would.
        let baseline = report
            .measurements
            .iter()
            .find(|m| m.signal == "startupLatencySeconds")
            .and_then(|m| m.baseline)
            .unwrap_or(0.0);
        let mut wake: Option<f64> = None;
        for pod in canary_pods.iter().filter(|p| !p.ready && !p.terminating) {
            let age = pod.startup_latency_seconds(self.obs.now);
            for limit in [
                gates.startup_latency_seconds.acceptable,
                gates.startup_latency_seconds.critical,
            ] {
                let remaining = baseline + limit - age;
                if remaining > 0.0 {
                    wake = Some(wake.map_or(remaining, |w: f64| w.min(remaining)));
                }
            }
        }
        (report, wake.map(|w| w + 0.05))
    }

    fn failed_analysis(&mut self, index: usize) -> Option<String> {
        let steps = &self.obs.spec.strategy.canary.steps;
        let mut relevant: Vec<String> = Vec::new();
        if let Some(name) = &self.obs.spec.strategy.canary.background_analysis {
            relevant.push(name.clone());
        }
        if let Some(Some(step)) = steps.get(index).map(|s| s.analysis.as_ref()) {
            relevant.push(step.template.clone());
        }
        relevant
            .into_iter()
            .find_map(|name| match self.obs.analyses.get(&name) {
                Some(AnalysisGate::Failed(why)) => Some(format!("analysis {name} failed: {why}")),
                _ => None,
            })
    }

    /// Why the required background analysis holds the rollout, if it does: it has not measured
    /// yet, has no passing evidence, or is inconclusive. (A failed one reverts instead.)
    fn background_hold(&self) -> Option<String> {
        let name = self.obs.spec.strategy.canary.background_analysis.as_ref()?;
        match self.obs.analyses.get(name) {
            Some(AnalysisGate::Passed | AnalysisGate::Running | AnalysisGate::Failed(_)) => None,
            Some(AnalysisGate::Pending(why)) => Some(format!(
                "background analysis {name} has no passing measurement ({why})"
            )),
            Some(AnalysisGate::Inconclusive(why)) => {
                Some(format!("background analysis {name} is inconclusive: {why}"))
            }
            None => Some(format!("background analysis {name} has not measured yet")),
        }
    }

    fn add_background_analysis(&mut self, desired: &str) {
        if let Some(name) = self.obs.spec.strategy.canary.background_analysis.clone() {
            let key = format!("{desired}/background");
            if !self.active_analyses.iter().any(|(n, _)| n == &name) {
                self.active_analyses.push((name, key));
            }
        }
    }

    fn analysis_key(&self, desired: &str, index: usize) -> String {
        format!("{desired}/step-{index}")
    }

    fn progress_deadline(&self) -> Duration {
        self.obs
            .spec
            .progress_deadline
            .as_deref()
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE)
    }

    fn step_elapsed(&self) -> Duration {
        let started = self
            .status
            .step_started_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or(self.obs.now);
        let millis = self
            .obs
            .now
            .as_millisecond()
            .saturating_sub(started.as_millisecond());
        Duration::from_millis(u64::try_from(millis).unwrap_or(0))
    }

    fn deadline_exceeded(&self) -> bool {
        self.deadline_exceeded_beyond(Duration::ZERO)
    }

    /// Whether the step has been held for longer than the progress deadline beyond `own_time`
    /// (the part of the step that is its own, such as a timed pause).
    fn deadline_exceeded_beyond(&self, own_time: Duration) -> bool {
        self.step_elapsed().saturating_sub(own_time) >= self.progress_deadline()
    }

    fn requeue_deadline(&mut self) {
        self.requeue_deadline_beyond(Duration::ZERO);
    }

    fn requeue_deadline_beyond(&mut self, own_time: Duration) {
        let deadline = self.progress_deadline().saturating_add(own_time);
        let elapsed = self.step_elapsed();
        self.requeue_in(
            deadline
                .saturating_sub(elapsed)
                .saturating_add(Duration::from_millis(100)),
        );
    }

    fn check_deadline_without_revert(&mut self) {
        if self.deadline_exceeded() {
            self.status.message = Some(format!(
                "initial revision did not become ready within the progress deadline ({}s); there is no earlier revision to revert to",
                self.progress_deadline().as_secs()
            ));
        } else {
            self.requeue_deadline();
        }
    }

    fn requeue_in(&mut self, after: Duration) {
        let after = after.min(MAX_REQUEUE);
        self.requeue = Some(self.requeue.map_or(after, |current| current.min(after)));
    }

    // ----- scaling -----------------------------------------------------------------------

    fn max_unavailable(&self) -> i32 {
        self.obs
            .spec
            .strategy
            .canary
            .max_unavailable
            .unwrap_or(0)
            .max(0)
    }

    /// Sets the size of `(revision, component)`. Only the desired revision's ReplicaSets can be
    /// created; a component another revision does not have (one added by the new spec) is
    /// skipped there.
    fn target(&mut self, revision: &str, component: &str, replicas: i32) {
        if revision != self.obs.desired.hash && self.replicas_of(revision, component).is_none() {
            return;
        }
        self.targets
            .insert((revision.to_string(), component.to_string()), replicas);
    }

    /// Stable pods a component keeps until promotion. With several coupled components every
    /// component keeps at least one stable pod through the canary steps (a one-replica
    /// component would otherwise be entirely on the new revision at the first step) and through
    /// promotion until every component's new pods are Ready; then all switch in one decision.
    fn stable_floor(&self, replicas: i32) -> i32 {
        if self.obs.desired.components.len() > 1 {
            replicas.min(1)
        } else {
            0
        }
    }

    fn any_replica_set_of(&self, revision: &str) -> bool {
        self.obs
            .replica_sets
            .iter()
            .any(|rs| rs.revision == revision)
    }

    fn replicas_of(&self, revision: &str, component: &str) -> Option<i32> {
        self.obs
            .replica_sets
            .iter()
            .find(|rs| rs.revision == revision && rs.component == component)
            .map(|rs| rs.replicas)
    }

    fn ready_of(&self, revision: &str, component: &str) -> i32 {
        self.obs
            .replica_sets
            .iter()
            .find(|rs| rs.revision == revision && rs.component == component)
            .map(|rs| rs.ready.min(rs.replicas))
            .unwrap_or(0)
    }

    fn scale_revision_full(&mut self, revision: &str) {
        for component in self.obs.desired.components.clone() {
            self.target(revision, &component.name, component.replicas);
        }
    }

    /// Scales every revision not in `keep` down, but keeps as many of its Ready pods as ready
    /// capacity needs until the kept revisions' own pods are Ready: per component, the kept
    /// revisions' Ready pods plus those kept here never fall below `replicas - maxUnavailable`.
    /// (A revert of a canary whose pods are Ready — a failed analysis, an abort — would
    /// otherwise drop capacity while the stable scales back up.) Unready pods go at once; the
    /// ReplicaSet controller deletes unready pods first when scaling down.
    fn scale_others_to_zero(&mut self, keep: &[String]) {
        let max_unavailable = self.max_unavailable();
        let replicas: BTreeMap<String, i32> = self
            .obs
            .desired
            .components
            .iter()
            .map(|c| (c.name.clone(), c.replicas))
            .collect();
        let mut others: Vec<(String, String, i32)> = self
            .obs
            .replica_sets
            .iter()
            .filter(|rs| !keep.contains(&rs.revision))
            .map(|rs| {
                let ready = rs.ready.min(rs.replicas).max(0);
                (rs.revision.clone(), rs.component.clone(), ready)
            })
            .collect();
        // The most Ready first, so the fewest ReplicaSets keep pods.
        others.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        let mut missing: BTreeMap<String, i32> = BTreeMap::new();
        for (component, n) in &replicas {
            let kept_ready: i32 = keep.iter().map(|r| self.ready_of(r, component)).sum();
            let missing_ready = n.saturating_sub(max_unavailable).saturating_sub(kept_ready);
            missing.insert(component.clone(), missing_ready.max(0));
        }
        for (revision, component, ready) in others {
            let still_missing = missing.get(&component).copied().unwrap_or(0);
            let hold = ready.min(still_missing);
            if let Some(m) = missing.get_mut(&component) {
                *m = m.saturating_sub(hold);
            }
            self.target(&revision, &component, hold);
        }
    }

    /// Weight is the replica ratio: the canary gets `ceil(n * w / 100)` pods; the stable one
    /// gives up pods only as canary pods become Ready, so ready capacity never drops below
    /// `n - maxUnavailable`.
    fn scale_canary(&mut self, desired: &str, stable: &str, weight: i32) {
        let max_unavailable = self.max_unavailable();
        for component in self.obs.desired.components.clone() {
            let n = component.replicas;
            let canary = canary_replicas(n, weight);
            let canary_ready = self.ready_of(desired, &component.name);
            let floor = n
                .saturating_sub(max_unavailable)
                .saturating_sub(canary_ready);
            let stable_target = n
                .saturating_sub(canary)
                .max(floor)
                .max(self.stable_floor(n))
                .clamp(0, n);
            self.target(desired, &component.name, canary);
            self.target(stable, &component.name, stable_target);
            self.baseline_target(stable, &component.name, canary);
        }
        self.scale_others_to_zero(&[desired.to_string(), stable.to_string()]);
    }

    fn fresh_baseline(&self) -> bool {
        self.obs.spec.strategy.canary.baseline == Some(BaselineMode::Fresh)
    }

    /// With `baseline: Fresh`, a baseline of the stable template for `component` at `replicas`
    /// (the canary's size). Only for a component the stable revision has.
    fn baseline_target(&mut self, stable: &str, component: &str, replicas: i32) {
        if !self.fresh_baseline() || self.replicas_of(stable, component).is_none() {
            return;
        }
        self.baseline_targets
            .insert((stable.to_string(), component.to_string()), replicas);
    }

    fn canary_scaled(&self, desired: &str, weight: i32) -> bool {
        let stable = self.status.stable_revision.clone().unwrap_or_default();
        self.obs.desired.components.iter().all(|component| {
            let n = component.replicas;
            let canary = canary_replicas(n, weight);
            let ready = self.ready_of(desired, &component.name);
            let stable_now = self.replicas_of(&stable, &component.name).unwrap_or(0);
            ready >= canary && stable_now <= n.saturating_sub(canary).max(self.stable_floor(n))
        })
    }

    fn all_ready(&self, revision: &str) -> bool {
        self.obs.desired.components.iter().all(|component| {
            self.obs.replica_sets.iter().any(|rs| {
                rs.revision == revision
                    && rs.component == component.name
                    && rs.replicas == component.replicas
                    && rs.ready >= component.replicas
            })
        })
    }

    // ----- status ------------------------------------------------------------------------

    fn set_conditions(&mut self) {
        let desired = self.obs.desired.hash.clone();
        let stable = self.status.stable_revision.clone();
        let at_rest =
            stable.as_deref() == Some(desired.as_str()) && self.status.canary_revision.is_none();
        let ready = at_rest && self.all_ready(&desired);
        let degraded = self.status.phase == Phase::Degraded;
        let blocked = self.status.phase == Phase::Blocked;
        let progressing = matches!(
            self.status.phase,
            Phase::Progressing | Phase::Paused | Phase::Inconclusive
        );
        let message = self.status.message.clone().unwrap_or_default();
        let reason_for_ready = if ready {
            "RolloutComplete"
        } else if degraded {
            "RevisionRejected"
        } else if blocked && !self.obs.attestation.allows() {
            "AttestationFailed"
        } else if blocked {
            "PreflightFailed"
        } else {
            "RolloutInProgress"
        };
        let (attested, attested_reason, attested_message) = match &self.obs.attestation {
            AttestationGate::Verified(m) => (true, "Verified".to_string(), m.clone()),
            AttestationGate::NotRequired(m) => (true, "NotRequired".to_string(), m.clone()),
            AttestationGate::Rejected { reason, message } => {
                (false, reason.clone(), message.clone())
            }
        };
        let progressing_reason = match self.status.phase {
            Phase::Paused => "Paused",
            Phase::Inconclusive => "AnalysisInconclusive",
            Phase::Degraded => "RolloutReverted",
            Phase::Blocked => "RolloutBlocked",
            _ if ready => "RolloutComplete",
            _ => "RolloutInProgress",
        };
        let wanted = [
            (
                "Ready",
                ready,
                reason_for_ready.to_string(),
                message.clone(),
            ),
            (
                "Progressing",
                progressing,
                progressing_reason.to_string(),
                message.clone(),
            ),
            (
                "Degraded",
                degraded,
                if degraded {
                    "RolloutReverted"
                } else {
                    "Healthy"
                }
                .to_string(),
                if degraded {
                    message.clone()
                } else {
                    String::new()
                },
            ),
            ("Attested", attested, attested_reason, attested_message),
            match &self.obs.preflight {
                Ok(()) => (
                    "Preflight",
                    true,
                    "Passed".to_string(),
                    "every object the templates reference exists".to_string(),
                ),
                Err(problems) => (
                    "Preflight",
                    false,
                    "MissingReferences".to_string(),
                    problems.join("; "),
                ),
            },
            // kstatus reads these two "abnormal-true" conditions.
            (
                "Reconciling",
                progressing,
                progressing_reason.to_string(),
                if progressing {
                    message.clone()
                } else {
                    String::new()
                },
            ),
            (
                "Stalled",
                degraded || blocked,
                if degraded || blocked {
                    reason_for_ready
                } else {
                    "NotStalled"
                }
                .to_string(),
                if degraded || blocked {
                    message
                } else {
                    String::new()
                },
            ),
        ];
        let previous = std::mem::take(&mut self.status.conditions);
        // A failure the controller recorded (an API error, a panic) stays until the controller
        // clears it after a reconcile that went through: the decision cannot know whether the
        // writes it asks for will succeed this time.
        let failure = previous
            .iter()
            .find(|c| {
                c.type_ == "Stalled"
                    && c.status == "True"
                    && FAILURE_REASONS.contains(&c.reason.as_str())
            })
            .cloned();
        for (type_, is_true, reason, message) in wanted {
            // The recorded failure is what a person must act on, also over a Stalled of the
            // decision's own (Degraded, Blocked); keeping it also keeps status from changing,
            // and being written again, on every retry.
            if type_ == "Stalled"
                && let Some(failure) = &failure
            {
                self.status.conditions.push(Condition {
                    observed_generation: self.obs.generation,
                    ..failure.clone()
                });
                continue;
            }
            let status = if is_true { "True" } else { "False" }.to_string();
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(self.obs.now));
            self.status.conditions.push(Condition {
                type_: type_.to_string(),
                status,
                reason,
                message,
                observed_generation: self.obs.generation,
                last_transition_time,
            });
        }
    }

    fn garbage(&self) -> Vec<String> {
        let keep_numbers: Vec<i64> = {
            let mut numbers: Vec<i64> = self.status.revisions.iter().map(|r| r.number).collect();
            numbers.sort_unstable();
            let limit = self.history_limit().saturating_add(1);
            numbers.into_iter().rev().take(limit).collect()
        };
        let protected: Vec<&str> = [
            self.status.stable_revision.as_deref(),
            self.status.canary_revision.as_deref(),
            Some(self.obs.desired.hash.as_str()),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.obs
            .replica_sets
            .iter()
            .filter(|rs| {
                rs.replicas == 0 && rs.ready == 0 && !protected.contains(&rs.revision.as_str())
            })
            .filter(|rs| {
                let number = self.revision_number(&rs.revision);
                // Unknown revisions (number 0) are kept: they are never deleted blindly.
                number != 0 && !keep_numbers.contains(&number)
            })
            .map(|rs| rs.name.clone())
            .collect()
    }

    /// The baseline ReplicaSets to create or scale, and those to delete.
    fn baseline_actions(&self) -> (Vec<ScaleAction>, Vec<String>) {
        let observed = |revision: &str, component: &str| {
            self.obs
                .baseline_replica_sets
                .iter()
                .find(|rs| rs.revision == revision && rs.component == component)
        };
        let scale = self
            .baseline_targets
            .iter()
            .filter(|((revision, component), replicas)| {
                observed(revision, component).map_or(**replicas > 0, |rs| rs.replicas != **replicas)
            })
            .map(|((revision, component), replicas)| ScaleAction {
                revision: revision.clone(),
                component: component.clone(),
                replicas: *replicas,
            })
            .collect();
        let delete = self
            .obs
            .baseline_replica_sets
            .iter()
            .filter(|rs| {
                !self
                    .baseline_targets
                    .contains_key(&(rs.revision.clone(), rs.component.clone()))
            })
            .map(|rs| rs.name.clone())
            .collect();
        (scale, delete)
    }

    /// What status says of the fresh baseline: None when none should run.
    fn baseline_status(&self) -> Option<BaselineStatus> {
        let revision = self.baseline_targets.keys().next()?.0.clone();
        let selector = baseline_selector(&revision);
        let replicas: i32 = self.baseline_targets.values().sum();
        let ready: i32 = self
            .baseline_targets
            .iter()
            .filter_map(|((r, c), wanted)| {
                self.obs
                    .baseline_replica_sets
                    .iter()
                    .find(|rs| &rs.revision == r && &rs.component == c)
                    .map(|rs| rs.ready.min(rs.replicas).min(*wanted))
            })
            .sum();
        let live = || {
            self.obs
                .baseline_pods
                .iter()
                .filter(|p| p.revision == selector && !p.terminating)
        };
        let restarts: i32 = live().map(|p| p.restarts).sum();
        let failing: i32 = live().map(|p| p.failing_containers).sum();
        let message = if replicas == 0 {
            "the canary has no pod at this step, so neither has the baseline".to_string()
        } else if restarts > 0 || failing > 0 {
            format!(
                "baseline unhealthy ({ready} of {replicas} pods available, {restarts} restarts,                  {failing} failing containers): it is not health-gated and not blamed on the                  canary; comparisons against {{{{baseline}}}} ({selector}) may have no data, and                  each metric's onNoData applies"
            )
        } else if ready < replicas {
            format!("baseline starting: {ready} of {replicas} pods available")
        } else {
            format!("{ready} of {replicas} baseline pods available; {{{{baseline}}}} is {selector}")
        };
        Some(BaselineStatus {
            revision,
            selector,
            replicas,
            ready,
            restarts,
            message,
        })
    }

    fn finish(mut self) -> Decision {
        let mut scale: Vec<ScaleAction> = self
            .targets
            .iter()
            .filter(|((revision, component), replicas)| {
                self.obs
                    .replica_sets
                    .iter()
                    .find(|rs| &rs.revision == revision && &rs.component == component)
                    .map_or(**replicas > 0, |rs| rs.replicas != **replicas)
            })
            .map(|((revision, component), replicas)| ScaleAction {
                revision: revision.clone(),
                component: component.clone(),
                replicas: *replicas,
            })
            .collect();
        // Scale-ups (and creations) first, in a stable order: whatever fails halfway, no
        // component gives up old pods before every new ReplicaSet was given its size.
        scale.sort_by_key(|action| {
            let current = self
                .obs
                .replica_sets
                .iter()
                .find(|rs| rs.revision == action.revision && rs.component == action.component)
                .map_or(0, |rs| rs.replicas);
            action.replicas <= current
        });
        let delete = self.garbage();
        let (baseline_scale, baseline_delete) = self.baseline_actions();
        self.status.baseline = self.baseline_status();
        let protected: Vec<String> = [
            self.status.stable_revision.clone(),
            self.status.canary_revision.clone(),
            Some(self.obs.desired.hash.clone()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let protected: Vec<&str> = protected.iter().map(String::as_str).collect();
        status_budget::fit(&mut self.status, &protected, status_budget::STATUS_BUDGET);
        Decision {
            scale,
            delete,
            baseline_scale,
            baseline_delete,
            events: self.events,
            status: self.status,
            requeue_after: self.requeue,
            active_analyses: self.active_analyses,
        }
    }
}

/// Canary pods for weight `w` of `n`: `ceil(n * w / 100)` (computed wide, so no replica count
/// can overflow it).
pub fn canary_replicas(n: i32, weight: i32) -> i32 {
    let weight = i64::from(weight.clamp(0, 100));
    // At most i32::MAX * 100 + 99: no i64 overflow.
    let pods = i64::from(n.max(0))
        .saturating_mul(weight)
        .saturating_add(99)
        .checked_div(100)
        .unwrap_or(0);
    i32::try_from(pods).unwrap_or(i32::MAX)
}

/// A short digest of what decides the meaning of a step index: the steps and the background
/// analysis.
fn steps_digest(canary: &crate::api::CanaryStrategy) -> String {
    let text =
        serde_json::to_string(&(&canary.steps, &canary.background_analysis)).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    hex::encode(digest.as_ref().get(..6).unwrap_or_default())
}

/// How a request token is remembered in `status.handledRequests`: as it is when short, else
/// by its SHA-256 (annotations can hold 256 KiB; status must not grow with them).
fn token_key(token: &str) -> String {
    const MAX_TOKEN: usize = 128;
    if token.len() <= MAX_TOKEN {
        return token.to_string();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    format!("sha256:{}", hex::encode(digest.as_ref()))
}

/// Seconds (from user thresholds, so of any size, or NaN) as a duration: negative and NaN are
/// zero, anything beyond [`MAX_REQUEUE`] is [`MAX_REQUEUE`]. Never panics.
pub fn seconds_to_duration(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds) // ok: the try_ form never panics
        .unwrap_or(MAX_REQUEUE)
        .min(MAX_REQUEUE)
}

/// The weight in force at step `index`: the last `setWeight` at or before it.
pub fn weight_at(steps: &[CanaryStep], index: usize) -> i32 {
    steps
        .iter()
        .take(index.saturating_add(1))
        .filter_map(|s| s.set_weight)
        .next_back()
        .unwrap_or(0)
}

fn describe_step(step: &CanaryStep) -> String {
    if let Some(weight) = step.set_weight {
        format!("setWeight {weight}")
    } else if let Some(pause) = &step.pause {
        match &pause.duration {
            Some(d) => format!("pause {d}"),
            None => "pause until promoted".into(),
        }
    } else if let Some(analysis) = &step.analysis {
        format!("analysis {}", analysis.template)
    } else {
        "empty step".into()
    }
}

#[cfg(test)]
mod tests;
