//! The status conditions, computed from the decision's outcome (phase, message, readiness, the
//! gates) by one pure function, in the style of Stackable's `compute_conditions`. Each
//! condition keeps its `lastTransitionTime` while its status stays the same, and a failure the
//! controller recorded in `Stalled` stays until the controller clears it.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{AttestationGate, Planner};
use crate::api::Phase;
use crate::api::conditions::{ConditionReason, ConditionStatus, ConditionType};
use crate::core::failure::is_failure_reason;

/// What the conditions say, as the decision left it.
pub(super) struct Outcome<'a> {
    /// The phase.
    pub phase: Phase,
    /// The status message.
    pub message: &'a str,
    /// The desired revision is stable, no canary runs, and every component is Ready.
    pub ready: bool,
    /// The attestation gate of the desired revision.
    pub attestation: &'a AttestationGate,
    /// Preflight of the desired revision.
    pub preflight: &'a Result<(), Vec<String>>,
    /// The spec meets the policy's rollout requirements.
    pub requirements_met: bool,
    /// A freeze window holds the rollout.
    pub frozen: bool,
}

/// One condition before its transition time is known.
struct Wanted {
    type_: ConditionType,
    holds: bool,
    reason: String,
    message: String,
}

impl Wanted {
    fn new(type_: ConditionType, holds: bool, reason: &str, message: &str) -> Self {
        Wanted {
            type_,
            holds,
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }
}

/// The conditions for `outcome`, given the `previous` ones: every condition type once, in a
/// fixed order, keeping `lastTransitionTime` where the status did not change.
pub(super) fn compute_conditions(
    outcome: &Outcome<'_>,
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let phase = outcome.phase;
    let ready = outcome.ready;
    let degraded = phase == Phase::Degraded;
    let blocked = phase == Phase::Blocked;
    let stalled = degraded || blocked;
    let progressing = matches!(
        phase,
        Phase::Progressing | Phase::Paused | Phase::Inconclusive
    );
    let message = outcome.message;
    let ready_reason = if ready {
        ConditionReason::RolloutComplete
    } else if degraded {
        ConditionReason::RevisionRejected
    } else if blocked && !outcome.attestation.allows() {
        ConditionReason::AttestationFailed
    } else if blocked && !outcome.requirements_met {
        ConditionReason::RequirementNotMet
    } else if blocked {
        ConditionReason::PreflightFailed
    } else {
        ConditionReason::RolloutInProgress
    };
    let progressing_reason = match phase {
        Phase::Paused if outcome.frozen => ConditionReason::Frozen,
        Phase::Paused => ConditionReason::Paused,
        Phase::Inconclusive => ConditionReason::AnalysisInconclusive,
        Phase::Degraded => ConditionReason::RolloutReverted,
        Phase::Blocked => ConditionReason::RolloutBlocked,
        _ if ready => ConditionReason::RolloutComplete,
        _ => ConditionReason::RolloutInProgress,
    }
    .as_str();
    let only_if = |holds: bool| if holds { message } else { "" };
    let (attested, attested_reason, attested_message) = outcome.attestation.outcome();
    let wanted = [
        Wanted::new(ConditionType::Ready, ready, ready_reason.as_str(), message),
        Wanted::new(
            ConditionType::Progressing,
            progressing,
            progressing_reason,
            message,
        ),
        Wanted::new(
            ConditionType::Degraded,
            degraded,
            if degraded {
                ConditionReason::RolloutReverted
            } else {
                ConditionReason::Healthy
            }
            .as_str(),
            only_if(degraded),
        ),
        Wanted::new(
            ConditionType::Attested,
            attested,
            attested_reason,
            attested_message,
        ),
        match outcome.preflight {
            Ok(()) => Wanted::new(
                ConditionType::Preflight,
                true,
                ConditionReason::Passed.as_str(),
                "every object the templates reference exists",
            ),
            Err(problems) => Wanted {
                type_: ConditionType::Preflight,
                holds: false,
                reason: ConditionReason::MissingReferences.to_string(),
                message: problems.join("; "),
            },
        },
        // kstatus reads these two "abnormal-true" conditions.
        Wanted::new(
            ConditionType::Reconciling,
            progressing,
            progressing_reason,
            only_if(progressing),
        ),
        Wanted::new(
            ConditionType::Stalled,
            stalled,
            if stalled {
                ready_reason
            } else {
                ConditionReason::NotStalled
            }
            .as_str(),
            only_if(stalled),
        ),
    ];
    // A failure the controller recorded (an API error, a panic) stays until the controller
    // clears it after a reconcile that went through: the decision cannot know whether the
    // writes it asks for will succeed this time.
    let failure = previous.iter().find(|c| {
        c.type_ == ConditionType::Stalled
            && c.status == ConditionStatus::True
            && is_failure_reason(&c.reason)
    });
    wanted
        .into_iter()
        .map(|wanted| {
            // The recorded failure is what a person must act on, also over a Stalled of the
            // decision's own (Degraded, Blocked); keeping it also keeps status from changing,
            // and being written again, on every retry.
            if wanted.type_ == ConditionType::Stalled
                && let Some(failure) = failure
            {
                return Condition {
                    observed_generation: generation,
                    ..failure.clone()
                };
            }
            let status = ConditionStatus::from(wanted.holds);
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == wanted.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: wanted.type_.to_string(),
                status: status.to_string(),
                reason: wanted.reason,
                message: wanted.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Sets `Stalled=True` with `reason` and `message` over whatever the decision set, keeping the
/// transition time if it was already stalled for the same reason.
pub(super) fn stall(
    conditions: &mut [Condition],
    reason: ConditionReason,
    message: String,
    now: Timestamp,
) {
    let Some(stalled) = conditions
        .iter_mut()
        .find(|c| c.type_ == ConditionType::Stalled)
    else {
        return;
    };
    if stalled.status != ConditionStatus::True || stalled.reason != reason {
        stalled.last_transition_time = Time(now);
    }
    stalled.status = ConditionStatus::True.to_string();
    stalled.reason = reason.to_string();
    stalled.message = message;
}

impl Planner<'_> {
    /// Rewrites the status conditions from the decision so far.
    pub(super) fn set_conditions(&mut self) {
        let desired = self.obs.desired.hash.as_str();
        let at_rest = self.status.stable_revision.as_deref() == Some(desired)
            && self.status.canary_revision.is_none();
        let outcome = Outcome {
            phase: self.status.phase,
            message: self.status.message.as_deref().unwrap_or_default(),
            ready: at_rest && self.all_ready(desired),
            attestation: &self.obs.attestation,
            preflight: &self.obs.preflight,
            requirements_met: self.obs.requirements.is_empty(),
            frozen: self.freeze_in_force().is_some(),
        };
        self.status.conditions = compute_conditions(
            &outcome,
            &self.status.conditions,
            self.obs.generation,
            self.obs.now,
        );
    }
}
