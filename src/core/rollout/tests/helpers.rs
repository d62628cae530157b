//! Small steps the simulated rollout tests repeat: deploying the next revision, rejecting the
//! attestation, reading the last history entry and asserting a revert, written once so the tests
//! read as what they check.

use super::*;

impl Sim {
    /// Deploys `image` over the current revision; returns the hashes of the old and new one.
    pub(super) fn deploy_next(&mut self, image: &str) -> (String, String) {
        let old = self.revision().hash;
        self.deploy(image);
        (old, self.revision().hash)
    }

    /// From now on the attestation gate rejects the desired revision with `reason`.
    pub(super) fn reject_attestation(&mut self, reason: RejectReason, message: &str) {
        self.attestation = AttestationGate::Rejected {
            reason,
            message: message.into(),
        };
    }

    /// How many events with `reason` the rollout recorded so far.
    pub(super) fn events_with(&self, reason: impl PartialEq<EventReason>) -> usize {
        self.events.iter().filter(|e| reason == e.reason).count()
    }

    /// The newest history entry; the tests that call it expect one.
    pub(super) fn last_history(&self) -> &crate::api::HistoryEntry {
        self.status.history.last().expect("a history entry")
    }

    /// The reason of the newest history entry; the tests that call it expect one.
    pub(super) fn last_history_reason(&self) -> &str {
        &self.last_history().reason
    }

    /// Asserts the canary was reverted: phase Degraded, and a `Reverted` history entry whose
    /// reason contains `fragment`.
    pub(super) fn assert_reverted_because(&self, fragment: &str) {
        assert_eq!(
            self.status.phase,
            Phase::Degraded,
            "{:?}",
            self.status.message
        );
        let entry = self.last_history();
        assert_eq!(entry.outcome, HistoryOutcome::Reverted, "{entry:?}");
        assert!(
            entry.reason.contains(fragment),
            "{fragment:?} in {:?}",
            entry.reason
        );
    }
}

impl Decision {
    /// Whether the decision scales (a component of) `revision` to `replicas`.
    pub(super) fn scales(&self, revision: &str, replicas: i32) -> bool {
        self.scale
            .iter()
            .any(|a| a.revision == revision && a.replicas == replicas)
    }

    /// Asserts the decision scales no component of `revision`.
    pub(super) fn assert_leaves_alone(&self, revision: &str) {
        assert!(
            self.scale.iter().all(|a| a.revision != revision),
            "{revision} scaled: {:?}",
            self.scale
        );
    }
}
