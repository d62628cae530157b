//! The policy's minimum bake time (`requirements.minBakeTime`) at the promotion: a canary is not
//! promoted before it has run that long, however it reached the promotion (its own timed
//! pauses, a person's `promote` past them, or `promote --full`). The spec check
//! (`core::requirements`) makes the timed pauses add up to the bake time; this hold closes the
//! way around them through the manual requests.
//!
//! While it holds, the canary stays at its last step's weight and its gates keep running (a bad
//! canary is still reverted, an abort still carried out); it promotes by itself once baked. An
//! active break-glass override (`docs/freeze-windows.md`) lifts the hold, recorded once with who
//! and why, as for a freeze.

use jiff::{SignedDuration, Timestamp};

use super::{Planner, weight_at};
use crate::api::Phase;
use crate::api::conditions::{EventReason, HistoryOutcome};
use crate::api::duration::SpecDuration;
use crate::core::freeze::BreakGlassState;

/// The key in `status.handledRequests` that remembers when the canary started baking.
const BAKE_KEY: &str = "bake";

/// A promotion the bake time holds: the policy's minimum and when the canary will have baked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BakeHold {
    /// The policy's `minBakeTime`.
    min: SpecDuration,
    /// When the canary started.
    started: Timestamp,
    /// When it may promote.
    until: Timestamp,
}

impl Planner<'_> {
    /// The hold on the promotion of `desired` while it has baked less than the policy's
    /// minimum, unless an active break-glass override lifts it (recorded the first time).
    pub(super) fn bake_hold(&mut self, desired: &str) -> Option<BakeHold> {
        let min = self.obs.min_bake_time.clone()?;
        // A bound that does not parse is refused by admission, and blocks the revision in the
        // spec check; here it holds as long as the longest allowed (168h), never for ever.
        let wait = min
            .parse()
            .ok()
            .and_then(|d| SignedDuration::try_from(d).ok())
            .unwrap_or(SignedDuration::from_hours(168));
        let started = self.canary_started(desired);
        let until = started.checked_add(wait).ok()?;
        if self.obs.now >= until {
            // The bake time is the promotion's own time, as a timed pause's is its step's: the
            // progress deadline of the promotion counts from its end.
            let step_started = self
                .status
                .step_started_at
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok());
            if step_started.is_some_and(|t| t < until) {
                self.status.step_started_at = Some(until.to_string());
            }
            return None;
        }
        let hold = BakeHold {
            min,
            started,
            until,
        };
        if let BreakGlassState::Active {
            request,
            expires,
            token,
        } = &self.obs.freeze.break_glass
        {
            let (request, expires, token) = (request.clone(), *expires, token.clone());
            self.record_bake_lifted(&hold, &request, expires, &token);
            return None;
        }
        Some(hold)
    }

    /// When the canary of `desired` started, as first read and then remembered in
    /// `status.handledRequests.bake` (`<hash> <time>`): its open history entry, else the start
    /// of its current step (later, so it holds longer, never less), else now. Remembered,
    /// because twenty manual actions push the open entry out of the history, and a start read
    /// again later would come out later each time.
    fn canary_started(&mut self, desired: &str) -> Timestamp {
        let remembered = self
            .status
            .handled_requests
            .get(BAKE_KEY)
            .and_then(|v| v.split_once(' '))
            .filter(|(hash, _)| *hash == desired)
            .and_then(|(_, t)| t.parse::<Timestamp>().ok());
        if let Some(started) = remembered {
            return started;
        }
        let open = self
            .status
            .history
            .iter()
            .rev()
            .find(|e| {
                e.hash == desired
                    && e.finished_at.is_none()
                    && e.outcome == HistoryOutcome::InProgress.as_str()
            })
            .map(|e| e.started_at.as_str());
        let started = open
            .or(self.status.step_started_at.as_deref())
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or(self.obs.now);
        self.status
            .handled_requests
            .insert(BAKE_KEY.to_string(), format!("{desired} {started}"));
        started
    }

    /// The canary holds at its last step's weight until it has baked; a person's promote that
    /// arrived now is answered with why, and the decision looks again when the hold ends.
    pub(super) fn hold_for_bake(&mut self, hold: &BakeHold, desired: &str, stable: &str) {
        let steps = &self.obs.spec.strategy.canary.steps;
        let last = steps.len().saturating_sub(1);
        let weight = weight_at(steps, last);
        self.scale_canary(desired, stable, weight);
        self.status.canary_weight = weight;
        self.status.step_display = Some(self.step_position(last));
        let description = format!(
            "the policy's minBakeTime of {} holds the promotion until {} (the canary started at {}); a break-glass override can lift it",
            hold.min, hold.until, hold.started
        );
        let message = format!("canary at weight {weight}: {description}; reverts and aborts go on");
        if self.obs.status.message.as_deref() != Some(message.as_str()) {
            self.event(false, EventReason::RequirementNotMet, description.clone());
        }
        if self.promote || self.promote_full {
            self.event(
                true,
                EventReason::RequirementNotMet,
                format!("promote held: {description}"),
            );
        }
        self.status.phase = Phase::Progressing;
        self.status.message = Some(message);
        self.requeue_at(hold.until);
        self.set_conditions();
    }

    /// Records, once per override, that a break-glass let the canary promote before its bake
    /// time (the history entry and a Warning Event name who and why).
    fn record_bake_lifted(
        &mut self,
        hold: &BakeHold,
        request: &crate::api::freeze::BreakGlass,
        expires: Timestamp,
        token: &str,
    ) {
        let what = format!(
            "break-glass by {} until {expires} over the policy's minBakeTime of {} (the canary would have baked at {}): {}",
            request.user, hold.min, hold.until, request.reason
        );
        self.record_break_glass_use(request, token, what);
    }
}
