//! Small steps the simulated rollout tests repeat: deploying the next revision, rejecting the attestation and reading the
//! reason of the last history entry, written once so the tests read as what they check.

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

    /// The reason of the newest history entry; the tests that call it expect one.
    pub(super) fn last_history_reason(&self) -> &str {
        &self.status.history.last().expect("a history entry").reason
    }
}
