//! The rollout decision: a pure function of (spec, status, observed ReplicaSets and pods, gate
//! outcomes, manual requests, now) that returns the scaling to apply, the events to record and
//! the new status. Every rollout rule lives here; the controller only carries it out.
//!
//! This room holds what goes in and out ([`Observation`], [`Decision`]), [`decide`], and the
//! top of the `Planner`: which path a reconcile takes (first revision, at rest, blocked,
//! canary) and how it ends. The other rooms each add one concern to the same `Planner`:
//! - `canary`: the canary steps (setWeight, pause, analysis), promotion and revert;
//! - `gates`: the canary's health report, analyses and progress deadline;
//! - `scaling`: replica arithmetic, per-component targets, the fresh baseline;
//! - `conditions`: the status conditions, as a pure function of the outcome;
//! - `requests`: manual requests (promote, abort, pause, retry, rollback);
//! - `history`: revision numbers, the history and garbage collection of old ReplicaSets.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::revision::Revision;
use super::status_budget;
use crate::api::conditions::{ConditionReason, EventReason, HistoryOutcome};
use crate::api::gates::AnalysisGate;
use crate::api::health::PodView;
use crate::api::rejection::RejectReason;
use crate::api::{AttestationVerdict, Phase, SafeDeploymentSpec, SafeDeploymentStatus};
use crate::core::freeze::FreezeGate;
use crate::core::requirements::Violation;

mod bake;
mod bluegreen;
mod canary;
mod conditions;
mod freeze;
mod gates;
mod history;
mod recovery;
mod requests;
mod scaling;
mod traffic;

pub use bluegreen::{active_revision, as_canary, effective_spec};
pub use canary::describe_step;
pub use scaling::{ROUTE_SETTLE_LIMIT, ROUTED_DRAIN, canary_replicas, weight_at};
pub use traffic::{TrafficPlan, header_routes_at, mirror_routes_at, routed_canary_pods};

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
    /// Carries the rejection mark ([`crate::api::labels::ANNOTATION_REJECTED`]): its revision
    /// was reverted, whatever status says now.
    pub rejected: bool,
}

/// The outcome of the attestation check of the desired revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestationGate {
    /// A valid attestation covers the revision.
    Verified(String),
    /// The policy for this namespace does not require attestations.
    NotRequired(String),
    /// Rejected, with the verifier's reason.
    Rejected {
        /// The reason; its string is the `Attested` condition's reason.
        reason: RejectReason,
        /// Details.
        message: String,
    },
}

impl AttestationGate {
    /// Whether the gate lets the revision start.
    fn allows(&self) -> bool {
        !matches!(self, AttestationGate::Rejected { .. })
    }

    /// `(verified, reason, message)`, as the `Attested` condition, the status verdict and the
    /// verdict metric show the gate: the one mapping from a gate to its reason.
    pub fn outcome(&self) -> (bool, &str, &str) {
        match self {
            AttestationGate::Verified(message) => {
                (true, ConditionReason::Verified.as_str(), message)
            }
            AttestationGate::NotRequired(message) => {
                (true, ConditionReason::NotRequired.as_str(), message)
            }
            AttestationGate::Rejected { reason, message } => (false, reason.as_str(), message),
        }
    }

    /// The reason: `Verified`, `NotRequired`, or the rejection reason.
    pub fn reason(&self) -> &str {
        self.outcome().1
    }

    /// The verdict status records for `revision`.
    fn verdict(&self, revision: &str) -> AttestationVerdict {
        let (verified, reason, message) = self.outcome();
        AttestationVerdict {
            revision: revision.to_string(),
            verified,
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }

    /// The gate a recorded verdict stands for (the inverse of what status records), so a
    /// verdict kept at rest is read back as the gate it was; `None` when the verdict is not one
    /// this operator writes (an unknown reason, or a reason that contradicts `verified`): such a
    /// verdict is not trusted, and the attestation is verified again.
    pub fn from_verdict(verdict: &AttestationVerdict) -> Option<Self> {
        let message = verdict.message.clone();
        let reason = verdict.reason.as_str();
        match verdict.verified {
            true if reason == ConditionReason::Verified => Some(AttestationGate::Verified(message)),
            true if reason == ConditionReason::NotRequired => {
                Some(AttestationGate::NotRequired(message))
            }
            true => None,
            false => RejectReason::parse(reason)
                .map(|reason| AttestationGate::Rejected { reason, message }),
        }
    }
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
    /// Who the pause annotation names (the requester of the last pause or resume).
    pub pause_requester: Option<String>,
    /// The pause annotation's raw value (`true@bob`), to tell a new pause or resume request from
    /// one that was already there: only a new one is credited with a change of state.
    pub pause_annotation: Option<String>,
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
    /// The freeze windows of the namespace's policy at `now`, and a break-glass request
    /// (`core::freeze`). A freeze holds new canaries, steps and promotions, never a revert.
    pub freeze: FreezeGate,
    /// The policy's rollout requirements the spec falls short of (`core::requirements`): any
    /// blocks the desired revision like a failed preflight.
    pub requirements: Vec<Violation>,
    /// The steered Gateway API routes as read (empty without `trafficRouting`).
    pub routes: &'a [crate::core::routing::RouteObservation],
    /// The policy's `requirements.minBakeTime`: the canary is not promoted before it has run
    /// this long (`bake`), unless a break-glass override is active.
    pub min_bake_time: Option<crate::api::duration::SpecDuration>,
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
    /// Why, as Kubernetes shows it.
    pub reason: EventReason,
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
    /// Rejection marks to set (`true`) or remove (`false`) on existing ReplicaSets, by name: a
    /// ReplicaSet carries the mark exactly while its revision is in `status.rejectedRevisions`.
    pub mark_rejected: Vec<(String, bool)>,
    /// When to look again even if nothing changes (timed pauses, deadlines, start-up latency).
    /// (Which analyses measure now is `crate::analysis::plan::active`.)
    pub requeue_after: Option<Duration>,
    /// With `trafficRouting`: the Services and route weights to write, before any scaling.
    pub traffic: Option<TrafficPlan>,
}

/// One decision in the making: the observation, the status being rewritten, and what the
/// rooms of this module have asked for so far.
struct Planner<'a> {
    obs: &'a Observation<'a>,
    status: SafeDeploymentStatus,
    targets: BTreeMap<(String, String), i32>,
    /// Fresh baseline sizes by (stable revision, component); empty when none should run.
    baseline_targets: BTreeMap<(String, String), i32>,
    events: Vec<EventNote>,
    requeue: Option<Duration>,
    abort: bool,
    promote: bool,
    promote_full: bool,
    /// The requester of the manual action being carried out: the next history entry written
    /// takes it (see `requests.rs`).
    actor: Option<String>,
    /// With `trafficRouting`: the canary's share of requests the routes are to carry.
    route_weight: i32,
    /// With `trafficRouting`: the header routes the routes are to carry.
    header_routes: Vec<crate::api::routing::SetHeaderRoute>,
    /// With `trafficRouting`: the mirror routes the routes are to carry.
    mirror_routes: Vec<crate::api::routing::SetMirrorRoute>,
}

/// Decides the next actions and status for one SafeDeployment.
pub fn decide(obs: &Observation<'_>) -> Decision {
    // A blue-green spec is decided as the canary steps it stands for (see `bluegreen`).
    if let std::borrow::Cow::Owned(spec) = effective_spec(obs.spec, obs.name) {
        return decide(&Observation {
            spec: &spec,
            ..obs.clone()
        });
    }
    let mut planner = Planner {
        obs,
        status: obs.status.clone(),
        targets: BTreeMap::new(),
        baseline_targets: BTreeMap::new(),
        events: Vec::new(),
        requeue: None,
        abort: false,
        promote: false,
        promote_full: false,
        actor: None,
        route_weight: 0,
        header_routes: Vec::new(),
        mirror_routes: Vec::new(),
    };
    (
        planner.route_weight,
        planner.header_routes,
        planner.mirror_routes,
    ) = planner.carried_traffic();
    planner.run();
    planner.finish()
}

impl<'a> Planner<'a> {
    fn run(&mut self) {
        self.status.observed_generation = self.obs.generation;
        let desired = self.obs.desired.hash.clone();
        self.ensure_revision_record(&desired);
        self.status.attestation = Some(self.obs.attestation.verdict(&desired));
        self.take_requests();
        self.handle_pause_transition();
        self.observe_freeze();
        self.recover_from_the_cluster();
        self.handle_retry();
        if self.handle_rollback() {
            self.steady_state();
            return;
        }
        let stable = self.status.stable_revision.clone();
        let frozen = self.freeze_in_force().cloned();
        let canary_is_desired = self.status.canary_revision.as_deref() == Some(desired.as_str());
        match stable {
            // A first revision that has not started waits for a freeze to end, like a canary.
            None if frozen.is_some()
                && !self.any_replica_set_of(&desired)
                && self.gates_allow() =>
            {
                if let Some(span) = &frozen {
                    self.wait_frozen_before_start(span);
                }
                self.set_conditions();
            }
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
                self.abandon_canary(
                    "the new revision is blocked (attestation, preflight or policy requirements)",
                );
                self.record_blocked();
                self.steady_state();
            }
            // No new canary starts during a freeze (a canary of an older revision stops).
            Some(_) if !canary_is_desired && frozen.is_some() => {
                self.abandon_canary("a newer revision replaced it");
                if let Some(span) = &frozen {
                    self.wait_frozen_before_start(span);
                }
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
            self.event(true, EventReason::StableReplicaSetLost, message.clone());
        }
        self.status.message = Some(message.clone());
        conditions::stall(
            &mut self.status.conditions,
            ConditionReason::StableReplicaSetLost,
            message,
            self.obs.now,
        );
    }

    fn now(&self) -> String {
        self.obs.now.to_string()
    }

    fn event(&mut self, warning: bool, reason: EventReason, note: String) {
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
            reason,
            action,
            note,
        });
    }

    fn requeue_in(&mut self, after: Duration) {
        let after = after.min(MAX_REQUEUE);
        self.requeue = Some(self.requeue.map_or(after, |current| current.min(after)));
    }

    /// Whether the gates let the desired revision start: attestation and preflight.
    fn gates_allow(&self) -> bool {
        self.obs.attestation.allows()
            && self.obs.preflight.is_ok()
            && self.obs.requirements.is_empty()
    }

    /// Records that the desired revision may not start (attestation rejected, preflight failed,
    /// or both): phase Blocked, one history entry and one event per blocked revision.
    fn record_blocked(&mut self) {
        let desired = self.obs.desired.hash.clone();
        let already = self
            .status
            .history
            .last()
            .is_some_and(|e| e.hash == desired && e.outcome == HistoryOutcome::Blocked);
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
                format!("{}: {list}", ConditionReason::MissingReferences),
                format!("preflight found {} problem(s): {list}", problems.len()),
                format!("fails preflight ({} problem(s)): {list}", problems.len()),
            ));
            // Nothing announces that a missing object was created: look again.
            self.requeue_in(PREFLIGHT_RECHECK);
        }
        if !self.obs.requirements.is_empty() {
            let list = self
                .obs
                .requirements
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            failures.push((
                format!("{}: {list}", ConditionReason::RequirementNotMet),
                format!("the policy's rollout requirements are not met: {list}"),
                format!("falls short of the policy's rollout requirements: {list}"),
            ));
            if !already {
                self.event(
                    true,
                    EventReason::RequirementNotMet,
                    format!(
                        "revision {} does not roll out: {list}",
                        self.revision_number(&desired)
                    ),
                );
            }
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
            self.push_history(&desired, HistoryOutcome::Blocked, reasons.join("; "));
            self.event(true, EventReason::RolloutBlocked, note);
        }
        let messages: Vec<String> = failures.into_iter().map(|f| f.2).collect();
        self.status.phase = Phase::Blocked;
        self.status.message = Some(format!(
            "revision {desired} {}; the stable revision keeps running",
            messages.join("; and ")
        ));
    }

    // ----- phases ------------------------------------------------------------------------

    fn initial_rollout(&mut self) {
        let desired = self.obs.desired.hash.clone();
        if self.status.rejected_revisions.contains(&desired) {
            // No stable revision to fall back on (none serves), and this one was reverted:
            // it does not start again on its own, whatever status lost.
            self.abandon_canary("the revision was rejected");
            self.status.phase = Phase::Degraded;
            self.status.message = Some(format!(
                "revision {} ({desired}) was rejected and no other revision serves; change the template or run `safedeploy retry`",
                self.revision_number(&desired)
            ));
            self.set_conditions();
            return;
        }
        if !self.gates_allow() {
            self.record_blocked();
            self.set_conditions();
            return;
        }
        if !self.status.history.iter().any(|e| e.hash == desired) {
            self.push_history(
                &desired,
                HistoryOutcome::InProgress,
                "initial revision".into(),
            );
            self.event(
                false,
                EventReason::RolloutStarted,
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
            self.finish_history(
                &desired,
                HistoryOutcome::Promoted,
                "initial revision ready".into(),
            );
            self.event(
                false,
                EventReason::RolloutCompleted,
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
                .find(|e| e.hash == desired && e.outcome != HistoryOutcome::Blocked)
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

    fn finish(mut self) -> Decision {
        self.hold_for_drain();
        let scale = self.scale_actions();
        let delete = self.garbage();
        let (baseline_scale, baseline_delete) = self.baseline_actions();
        let traffic = self.traffic_plan();
        self.status.baseline = self.baseline_status();
        let (replicas, selector) = self.scale_status();
        self.status.replicas = Some(replicas);
        self.status.selector = Some(selector);
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
        // After the budget: a revision it trimmed from the list loses its mark too, so the two
        // never disagree (and the mark never brings a trimmed entry back).
        let mark_rejected = self
            .obs
            .replica_sets
            .iter()
            .filter(|rs| !delete.contains(&rs.name))
            .filter_map(|rs| {
                let wanted = self.status.rejected_revisions.contains(&rs.revision);
                (wanted != rs.rejected).then(|| (rs.name.clone(), wanted))
            })
            .collect();
        Decision {
            scale,
            delete,
            baseline_scale,
            baseline_delete,
            mark_rejected,
            events: self.events,
            status: self.status,
            requeue_after: self.requeue,
            traffic,
        }
    }
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

#[cfg(test)]
mod tests;
