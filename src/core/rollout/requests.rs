//! Manual requests (the annotations `safedeploy promote|abort|pause|resume|retry|rollback`
//! write): each token is carried out once and remembered in `status.handledRequests`, so a stale
//! request never acts on a later rollout. Each names its requester (`<token>@<username>`, checked
//! by the chart's admission policy); the history entry and the Event of the action record them.

use super::Planner;
use crate::api::conditions::{EventReason, HistoryOutcome};
use crate::api::labels::requester;

/// Who a change of pause state is credited to when `spec.paused` changed it.
const SPEC_EDIT: &str = "an edit of spec.paused";

/// The requester as reasons and Events name them.
fn who(actor: Option<&str>) -> &str {
    actor.unwrap_or("a user")
}

/// A request, by its key in `status.handledRequests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestAction {
    Promote,
    PromoteFull,
    Abort,
    Retry,
    Rollback,
}

impl RequestAction {
    /// The key in `status.handledRequests` (API: it is in status).
    fn key(self) -> &'static str {
        match self {
            RequestAction::Promote => "promote",
            RequestAction::PromoteFull => "promoteFull",
            RequestAction::Abort => "abort",
            RequestAction::Retry => "retry",
            RequestAction::Rollback => "rollback",
        }
    }
}

/// The key in `status.handledRequests` that remembers a pause (a state, not a token).
const PAUSED_KEY: &str = "paused";
/// The key in `status.handledRequests` that remembers the pause annotation's value as last seen
/// (its [`token_key`]), so that a change of state is credited to the annotation's requester only
/// when the annotation changed with it.
const PAUSE_REQUEST_KEY: &str = "pauseRequest";

impl Planner<'_> {
    /// Consumes the abort and promote requests, and records a promote in the history while a
    /// canary runs. Requests are consumed whatever the phase, so a stale one never acts on a
    /// later rollout.
    pub(super) fn take_requests(&mut self) {
        self.abort = self.take_request(RequestAction::Abort);
        self.promote = self.take_request(RequestAction::Promote);
        self.promote_full = self.take_request(RequestAction::PromoteFull);
        if self.status.canary_revision.is_some() {
            if self.promote_full {
                let actor = self
                    .obs
                    .requests
                    .promote_full
                    .as_deref()
                    .and_then(requester);
                self.record_manual(
                    HistoryOutcome::PromoteFullRequested,
                    "promote past every remaining step",
                    actor,
                );
            } else if self.promote {
                let actor = self.obs.requests.promote.as_deref().and_then(requester);
                self.record_manual(
                    HistoryOutcome::PromoteRequested,
                    "promote past the current step",
                    actor,
                );
            }
        }
    }

    /// The reason of an abort, naming its requester, who the history entry of the revert records.
    pub(super) fn aborted_by(&mut self) -> String {
        self.actor = self.obs.requests.abort.as_deref().and_then(requester);
        format!("aborted by {}", who(self.actor.as_deref()))
    }

    /// Consumes a request token: true if it is new (and marks it handled).
    fn take_request(&mut self, action: RequestAction) -> bool {
        let token = match action {
            RequestAction::Abort => self.obs.requests.abort.clone(),
            RequestAction::Promote => self.obs.requests.promote.clone(),
            RequestAction::PromoteFull => self.obs.requests.promote_full.clone(),
            RequestAction::Retry | RequestAction::Rollback => None,
        };
        match token {
            Some(token) if self.request_is_new(action, &token) => {
                self.mark_handled(action, &token);
                true
            }
            _ => false,
        }
    }

    fn request_is_new(&self, action: RequestAction, token: &str) -> bool {
        self.status
            .handled_requests
            .get(action.key())
            .map(String::as_str)
            != Some(token_key(token).as_str())
    }

    fn mark_handled(&mut self, action: RequestAction, token: &str) {
        self.status
            .handled_requests
            .insert(action.key().to_string(), token_key(token));
    }

    /// Records a manual action in the history (a finished entry for the revision it acts on),
    /// with its requester.
    fn record_manual(&mut self, outcome: HistoryOutcome, what: &str, actor: Option<String>) {
        let by = who(actor.as_deref()).to_string();
        self.record_manual_by(outcome, what, actor, &by);
    }

    /// [`Self::record_manual`] with the requester as the reason names it (`by`).
    fn record_manual_by(
        &mut self,
        outcome: HistoryOutcome,
        what: &str,
        actor: Option<String>,
        by: &str,
    ) {
        let hash = self
            .status
            .canary_revision
            .clone()
            .unwrap_or_else(|| self.obs.desired.hash.clone());
        let reason = format!("{what}: requested by {by}");
        self.actor = actor;
        self.push_finished_history(&hash, outcome, reason);
    }

    /// Pause and resume are states (the annotation or `spec.paused`), not tokens: a change of
    /// state is recorded once, and remembered in `handledRequests.paused`.
    ///
    /// The change is credited to the annotation's requester only when the annotation changed
    /// since it was last seen (`handledRequests.pauseRequest`) and asks for the new state. An
    /// edit of `spec.paused` is by whoever may edit the spec: no requester, even while an old
    /// `false@bob` is still on the object (bob's resume of last week did not resume this).
    pub(super) fn handle_pause_transition(&mut self) {
        let paused = self.obs.spec.paused || self.obs.requests.paused;
        let was_paused = self
            .status
            .handled_requests
            .get(PAUSED_KEY)
            .map(String::as_str)
            == Some("true");
        let annotation = self.obs.requests.pause_annotation.as_deref().map(token_key);
        let annotation_changed =
            annotation.as_ref() != self.status.handled_requests.get(PAUSE_REQUEST_KEY);
        // Remembered whether or not the state changes: an annotation that changed nothing (a
        // resume while spec.paused holds) is not credited with a later edit of the spec.
        match annotation {
            Some(value) => {
                self.status
                    .handled_requests
                    .insert(PAUSE_REQUEST_KEY.to_string(), value);
            }
            None => {
                self.status.handled_requests.remove(PAUSE_REQUEST_KEY);
            }
        }
        if paused == was_paused {
            return;
        }
        let actor = if annotation_changed && self.obs.requests.paused == paused {
            self.obs.requests.pause_requester.clone()
        } else {
            None
        };
        let by = match &actor {
            Some(actor) => actor.clone(),
            // An annotation without a requester (written by hand, or before governance).
            None if annotation_changed && self.obs.requests.paused == paused => who(None).into(),
            None => SPEC_EDIT.to_string(),
        };
        if paused {
            self.status
                .handled_requests
                .insert(PAUSED_KEY.to_string(), "true".to_string());
            self.record_manual_by(HistoryOutcome::Paused, "pause the rollout", actor, &by);
            self.event(
                false,
                EventReason::Paused,
                format!("rollout paused by {by}"),
            );
        } else {
            self.status.handled_requests.remove(PAUSED_KEY);
            self.record_manual_by(HistoryOutcome::Resumed, "resume the rollout", actor, &by);
            self.event(
                false,
                EventReason::Resumed,
                format!("rollout resumed by {by}"),
            );
            // The time spent paused does not count against the step.
            if self.status.canary_revision.is_some() {
                self.status.step_started_at = Some(self.obs.now.to_string());
            }
        }
    }

    /// A retry takes the desired revision off the rejected list, so it may roll out again.
    pub(super) fn handle_retry(&mut self) {
        let Some(token) = self.obs.requests.retry.clone() else {
            return;
        };
        if !self.request_is_new(RequestAction::Retry, &token) {
            return;
        }
        self.mark_handled(RequestAction::Retry, &token);
        let desired = self.obs.desired.hash.clone();
        let before = self.status.rejected_revisions.len();
        self.status.rejected_revisions.retain(|h| h != &desired);
        if self.status.rejected_revisions.len() != before {
            self.actor = requester(&token);
            let by = who(self.actor.as_deref()).to_string();
            let note = format!(
                "retry requested by {by}: revision {} may roll out again",
                self.revision_number(&desired)
            );
            self.push_finished_history(
                &desired,
                HistoryOutcome::RetryRequested,
                format!("requested by {by}"),
            );
            self.event(false, EventReason::RetryRequested, note);
        }
    }

    /// Returns true when a rollback was carried out and the stable revision changed.
    pub(super) fn handle_rollback(&mut self) -> bool {
        let Some((token, number)) = self.obs.requests.rollback.clone() else {
            return false;
        };
        if !self.request_is_new(RequestAction::Rollback, &token) {
            return false;
        }
        self.mark_handled(RequestAction::Rollback, &token);
        let Some(target) = self
            .status
            .revisions
            .iter()
            .find(|r| r.number == number)
            .map(|r| r.hash.clone())
        else {
            self.event(
                true,
                EventReason::RollbackFailed,
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
                EventReason::RollbackFailed,
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
                EventReason::RollbackFailed,
                format!("rollback to revision {number}: its ReplicaSets were garbage-collected"),
            );
            return false;
        }
        let actor = requester(&token);
        let by = who(actor.as_deref()).to_string();
        if let Some(canary) = self.status.canary_revision.clone() {
            self.actor.clone_from(&actor);
            self.finish_history(
                &canary,
                HistoryOutcome::Aborted,
                format!("rollback to revision {number} requested by {by}"),
            );
        }
        let desired = self.obs.desired.hash.clone();
        if target != desired && !self.status.rejected_revisions.contains(&desired) {
            self.status.rejected_revisions.push(desired);
        }
        self.status.stable_revision = Some(target.clone());
        self.clear_canary();
        self.actor = actor;
        self.push_finished_history(
            &target,
            HistoryOutcome::RolledBack,
            format!("rollback to revision {number} requested by {by}"),
        );
        self.event(
            false,
            EventReason::RolledBack,
            format!("rolled back to revision {number} ({target}) by {by}"),
        );
        true
    }
}

/// How a request token is remembered in `status.handledRequests`: as it is when short, else
/// by its SHA-256 (annotations can hold 256 KiB; status must not grow with them).
pub(super) fn token_key(token: &str) -> String {
    const MAX_TOKEN: usize = 128;
    if token.len() <= MAX_TOKEN {
        return token.to_string();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    format!("sha256:{}", hex::encode(digest.as_ref()))
}
