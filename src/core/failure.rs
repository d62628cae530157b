//! How a reconcile that could not be carried out shows in status: a `Stalled` condition with
//! the reason (`ReconcileFailed` for an API error, `ReconcilePanicked` for a bug) and the API
//! server's own message, kept by every decision until a reconcile goes through again. Pure: the
//! controller decides when to call these, and writes the result.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::status_budget::{MAX_TEXT, bounded_text};
use crate::api::{Phase, SafeDeploymentStatus};
use crate::api::conditions::{ConditionReason, ConditionStatus, ConditionType};

/// Condition reasons of a `Stalled` condition that the controller (not the decision) sets
/// when a reconcile cannot be carried out; the decision keeps them until the controller
/// clears them after a reconcile that fully succeeded.
pub const FAILURE_REASONS: [ConditionReason; 2] = [
    ConditionReason::ReconcileFailed,
    ConditionReason::ReconcilePanicked,
];

/// Whether a `Stalled` reason is a failure the controller recorded.
pub fn is_failure_reason(reason: &str) -> bool {
    FAILURE_REASONS.iter().any(|failure| *failure == reason)
}

/// Why a reconcile failed, as status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// An API request failed (refused by the API server, or it could not be reached).
    ApiError,
    /// The reconcile panicked: a bug, contained to this one object.
    Panic,
}

impl FailureKind {
    /// The condition reason (also the event's reason).
    pub fn reason(self) -> ConditionReason {
        match self {
            FailureKind::ApiError => ConditionReason::ReconcileFailed,
            FailureKind::Panic => ConditionReason::ReconcilePanicked,
        }
    }
}

/// Sets `Stalled=True` with the failure's reason and message (bounded). Returns whether the
/// status changed, so an unchanged failure is not written again on every retry.
pub fn record_failure(
    status: &mut SafeDeploymentStatus,
    kind: FailureKind,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let message = bounded_text(message, MAX_TEXT);
    let wanted = |c: &Condition| {
        c.status == ConditionStatus::True && c.reason == kind.reason() && c.message == message
    };
    let is_stalled = |c: &Condition| c.type_ == ConditionType::Stalled;
    if let Some(existing) = status.conditions.iter().find(|c| is_stalled(c))
        && wanted(existing)
    {
        return false;
    }
    let previous = status.conditions.iter().position(is_stalled);
    let last_transition_time = previous
        .and_then(|i| status.conditions.get(i))
        .filter(|c| c.status == ConditionStatus::True)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let condition = Condition {
        type_: ConditionType::Stalled.to_string(),
        status: ConditionStatus::True.to_string(),
        reason: kind.reason().to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    };
    match previous.and_then(|i| status.conditions.get_mut(i)) {
        Some(slot) => *slot = condition,
        None => status.conditions.push(condition),
    }
    true
}

/// Clears a recorded failure after a reconcile that went through. Returns whether there was
/// one. `Stalled` becomes what the decision itself says under the failure it kept: `True` with
/// the `Ready` condition's reason and message when the rollout is Degraded or Blocked (a
/// reverted revision still needs a person), `False` otherwise. A `Stalled` condition the
/// decision set is left as it is.
pub fn clear_failure(status: &mut SafeDeploymentStatus, now: Timestamp) -> bool {
    let stalled_by_decision = matches!(status.phase, Phase::Degraded | Phase::Blocked);
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::Ready)
        .map(|c| (c.reason.clone(), c.message.clone()));
    let Some(condition) = status.conditions.iter_mut().find(|c| {
        c.type_ == ConditionType::Stalled
            && c.status == ConditionStatus::True
            && is_failure_reason(&c.reason)
    }) else {
        return false;
    };
    match ready.filter(|_| stalled_by_decision) {
        // Still `True`: the transition time of the stall stays.
        Some((reason, message)) => {
            condition.reason = reason;
            condition.message = message;
        }
        None => {
            condition.status = ConditionStatus::False.to_string();
            condition.reason = ConditionReason::NotStalled.to_string();
            condition.message = String::new();
            condition.last_transition_time = Time(now);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stalled(status: &SafeDeploymentStatus) -> Option<(String, String, String)> {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled")
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    }

    #[test]
    fn a_failure_is_recorded_once_and_cleared_after_success() {
        let now = Timestamp::UNIX_EPOCH;
        let mut status = SafeDeploymentStatus::default();
        let message = "creating ReplicaSet web-abc: Unsupported value: \"Sometimes\"";
        assert!(record_failure(
            &mut status,
            FailureKind::ApiError,
            message,
            Some(2),
            now
        ));
        assert_eq!(
            stalled(&status),
            Some(("True".into(), "ReconcileFailed".into(), message.into()))
        );
        // The same failure again changes nothing, so it is not written again.
        assert!(!record_failure(
            &mut status,
            FailureKind::ApiError,
            message,
            Some(2),
            now
        ));
        // A different failure replaces it, keeping when the object became stalled.
        let later = now.checked_add(jiff::SignedDuration::from_secs(5)).unwrap();
        assert!(record_failure(
            &mut status,
            FailureKind::Panic,
            "boom",
            Some(2),
            later
        ));
        let condition = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled")
            .unwrap();
        assert_eq!(condition.reason, "ReconcilePanicked");
        assert_eq!(condition.last_transition_time, Time(now));
        assert_eq!(status.conditions.len(), 1);
        assert!(clear_failure(&mut status, later));
        assert_eq!(stalled(&status).map(|s| s.0), Some("False".into()));
        assert!(!clear_failure(&mut status, later));
    }

    #[test]
    fn a_failure_cleared_on_a_reverted_rollout_leaves_the_decisions_stall() {
        let now = Timestamp::UNIX_EPOCH;
        let later = now.checked_add(jiff::SignedDuration::from_secs(5)).unwrap();
        let mut status = SafeDeploymentStatus {
            phase: Phase::Degraded,
            ..Default::default()
        };
        status.conditions.push(Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: "RevisionRejected".into(),
            message: "revision 2 was reverted".into(),
            observed_generation: None,
            last_transition_time: Time(now),
        });
        assert!(record_failure(
            &mut status,
            FailureKind::ApiError,
            "scale ReplicaSet web-2: refused",
            Some(2),
            now
        ));
        assert!(clear_failure(&mut status, later));
        assert_eq!(
            stalled(&status),
            Some((
                "True".into(),
                "RevisionRejected".into(),
                "revision 2 was reverted".into()
            ))
        );
        let condition = status.conditions.iter().find(|c| c.type_ == "Stalled");
        assert_eq!(condition.map(|c| &c.last_transition_time), Some(&Time(now)));
        assert!(!clear_failure(&mut status, later), "cleared once");
    }

    #[test]
    fn a_stalled_condition_of_the_decision_is_not_cleared() {
        let now = Timestamp::UNIX_EPOCH;
        let mut status = SafeDeploymentStatus::default();
        status.conditions.push(Condition {
            type_: "Stalled".into(),
            status: "True".into(),
            reason: "RevisionRejected".into(),
            message: "reverted".into(),
            observed_generation: None,
            last_transition_time: Time(now),
        });
        assert!(!clear_failure(&mut status, now));
        assert_eq!(
            stalled(&status).map(|s| s.1),
            Some("RevisionRejected".into())
        );
    }

    #[test]
    fn messages_are_bounded() {
        let mut status = SafeDeploymentStatus::default();
        let huge = "x".repeat(100_000);
        record_failure(
            &mut status,
            FailureKind::ApiError,
            &huge,
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert!(stalled(&status).is_some_and(|s| s.2.len() <= MAX_TEXT));
    }
}
