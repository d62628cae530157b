//! Freezes in the rollout: a freeze window of the namespace's policy (`core::freeze`) holds new
//! canaries, weight increases and promotions; reverts and aborts never wait for it (the gates
//! that revert run before this room is asked). A break-glass override lifts the hold until it
//! expires, and is recorded once with who and why.

use std::time::Duration;

use jiff::Timestamp;

use super::requests::token_key;
use super::{MAX_REQUEUE, Planner, weight_at};
use crate::api::Phase;
use crate::api::conditions::{EventReason, HistoryOutcome};
use crate::api::freeze::FreezeStatus;
use crate::core::freeze::{BreakGlassState, FreezeState, Span};

/// The key in `status.handledRequests` that remembers the break-glass request last recorded.
pub(super) const BREAK_GLASS_KEY: &str = "breakGlass";

impl Planner<'_> {
    /// The freeze that holds the rollout now: the windows' freeze, unless a break-glass
    /// override in force lifts it.
    pub(super) fn freeze_in_force(&self) -> Option<&Span> {
        let gate = &self.obs.freeze;
        gate.state
            .active()
            .filter(|_| !matches!(gate.break_glass, BreakGlassState::Active { .. }))
    }

    /// Reports the freeze in status, records a break-glass override the first time it lifts a
    /// freeze, restarts the step's clock when a freeze ends (time frozen does not count against
    /// the step or the progress deadline), and looks again when the freeze or override changes.
    pub(super) fn observe_freeze(&mut self) {
        let was_frozen = self.obs.status.freeze.as_ref().is_some_and(|f| f.active);
        let gate = &self.obs.freeze;
        let override_note = match &gate.break_glass {
            BreakGlassState::Active {
                request, expires, ..
            } => Some(format!(
                "{}: {} (until {expires})",
                request.user, request.reason
            )),
            _ => None,
        };
        let state = gate.state.clone();
        let break_glass = gate.break_glass.clone();
        self.status.freeze = match &state {
            FreezeState::Open => None,
            FreezeState::OpenUntil(span) => Some(freeze_status(span, false, None)),
            FreezeState::Frozen(span) => Some(freeze_status(
                span,
                override_note.is_none(),
                override_note.clone(),
            )),
        };
        if let (
            FreezeState::Frozen(span),
            BreakGlassState::Active {
                request,
                expires,
                token,
            },
        ) = (&state, &break_glass)
        {
            self.record_break_glass(span, request, *expires, token);
            self.requeue_at(*expires);
        }
        match &state {
            FreezeState::Frozen(span) => {
                if let Some(end) = span.end {
                    self.requeue_at(end);
                }
            }
            FreezeState::OpenUntil(span) => {
                if let Some(start) = span.start {
                    self.requeue_at(start);
                }
            }
            FreezeState::Open => {}
        }
        if was_frozen && self.freeze_in_force().is_none() && self.status.canary_revision.is_some() {
            self.status.step_started_at = Some(self.now());
        }
    }

    fn record_break_glass(
        &mut self,
        span: &Span,
        request: &crate::api::freeze::BreakGlass,
        expires: Timestamp,
        token: &str,
    ) {
        let what = format!(
            "break-glass by {} until {expires} over freeze {}: {}",
            request.user, span.window, request.reason
        );
        self.record_break_glass_use(request, token, what);
    }

    /// Records a break-glass use once per request `token`: a finished history entry with the
    /// requester as its actor (as the governance policy verified it) and a Warning Event, both
    /// saying `what` it lifted.
    pub(super) fn record_break_glass_use(
        &mut self,
        request: &crate::api::freeze::BreakGlass,
        token: &str,
        what: String,
    ) {
        let key = token_key(token);
        if self.status.handled_requests.get(BREAK_GLASS_KEY) == Some(&key) {
            return;
        }
        self.status
            .handled_requests
            .insert(BREAK_GLASS_KEY.to_string(), key);
        let hash = self
            .status
            .canary_revision
            .clone()
            .unwrap_or_else(|| self.obs.desired.hash.clone());
        self.actor = Some(request.user.clone());
        self.push_finished_history(&hash, HistoryOutcome::FreezeOverridden, what.clone());
        self.event(true, EventReason::FreezeOverridden, what);
    }

    /// Looks again at `when` (a little after, so the boundary has passed).
    pub(super) fn requeue_at(&mut self, when: Timestamp) {
        let millis = when
            .as_millisecond()
            .saturating_sub(self.obs.now.as_millisecond())
            .saturating_add(100);
        let wait = u64::try_from(millis).map_or(Duration::ZERO, Duration::from_millis);
        self.requeue_in(wait.min(MAX_REQUEUE));
    }

    /// The freeze in words: `frozen by window W until T (reason)`.
    fn describe_freeze(span: &Span) -> String {
        let until = span.end.map_or_else(
            || "until the policy changes".to_string(),
            |end| format!("until {end}"),
        );
        let reason = span
            .reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        format!("frozen by window {} {until}{reason}", span.window)
    }

    /// Sets the status of a rollout the freeze holds (phase Paused, `message`), announcing it
    /// once (when the message is new, not on every reconcile while the freeze lasts), and
    /// refuses a promote that arrived during it.
    fn announce_freeze(&mut self, span: &Span, what: &str, message: String) {
        let mut description = Self::describe_freeze(span);
        let mut message = message;
        // A break-glass request the operator does not honour says why, where its writer looks.
        if let BreakGlassState::Refused(why) = &self.obs.freeze.break_glass {
            let refused = format!("; break-glass refused: {why}");
            description.push_str(&refused);
            message.push_str(&refused);
        }
        if self.obs.status.message.as_deref() != Some(message.as_str()) {
            self.event(
                false,
                EventReason::Frozen,
                format!("{what} waits: {description}"),
            );
        }
        if self.promote || self.promote_full {
            self.event(
                true,
                EventReason::Frozen,
                format!("promote refused: {description}; a break-glass override can lift it"),
            );
        }
        self.status.phase = Phase::Paused;
        self.status.message = Some(message);
    }

    /// A new revision (or a first one) waits for the freeze to end; whatever else the decision
    /// does (the stable revision keeps running) goes on.
    pub(super) fn wait_frozen_before_start(&mut self, span: &Span) {
        let desired = self.obs.desired.hash.clone();
        let message = format!(
            "revision {desired} waits to start: {}",
            Self::describe_freeze(span)
        );
        let what = format!("revision {}", self.revision_number(&desired));
        self.announce_freeze(span, &what, message);
    }

    /// The canary holds at the weight of its current step (at the last step's weight while
    /// promoting): no step completes and nothing is promoted. The gates that revert have run.
    pub(super) fn hold_frozen(&mut self, span: &Span, index: usize, desired: &str, stable: &str) {
        let steps = &self.obs.spec.strategy.canary.steps;
        let at = index.min(steps.len().saturating_sub(1));
        let weight = weight_at(steps, at);
        self.scale_canary(desired, stable, weight);
        self.status.canary_weight = weight;
        self.status.step_display = Some(self.step_position(at));
        let message = format!(
            "step {} holds at weight {weight}: {}; reverts and aborts go on",
            self.step_position(at),
            Self::describe_freeze(span)
        );
        let what = format!("step {}", self.step_position(at));
        self.announce_freeze(span, &what, message);
        self.set_conditions();
    }
}

fn freeze_status(span: &Span, active: bool, break_glass: Option<String>) -> FreezeStatus {
    FreezeStatus {
        active,
        window: span.window.clone(),
        reason: span.reason.clone(),
        start: span.start.map(|t| t.to_string()),
        end: span.end.map(|t| t.to_string()),
        break_glass,
    }
}
