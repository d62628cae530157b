//! Status read back from the cluster (audit finding 17): status is the record of a rollout, but
//! it can be lost (restored from a backup without status, or written over by hand). The
//! ReplicaSets still say what ran and what was rejected, so a lost status must never turn a
//! rejected revision into a fresh "initial" one at 100%.
//!
//! Two facts are read back:
//! - **Rejections.** A reverted revision's ReplicaSets carry the rejection mark
//!   ([`crate::api::labels::ANNOTATION_REJECTED`]; `Decision::mark_rejected` keeps it equal to
//!   `status.rejectedRevisions`). A marked revision missing from the list is added back.
//! - **The stable revision.** With none in status, the owned revision that serves the most
//!   available pods (not the desired one, not rejected) is taken as stable, so the desired
//!   revision goes through the canary steps and gates instead of replacing it at once.

use super::Planner;
use crate::api::conditions::EventReason;

impl Planner<'_> {
    /// Reads rejections and a missing stable revision back from the owned ReplicaSets.
    pub(super) fn recover_from_the_cluster(&mut self) {
        let mut recovered_rejections: Vec<String> = Vec::new();
        for rs in self.obs.replica_sets.iter().filter(|rs| rs.rejected) {
            if !self.status.rejected_revisions.contains(&rs.revision)
                && !recovered_rejections.contains(&rs.revision)
            {
                recovered_rejections.push(rs.revision.clone());
            }
        }
        if !recovered_rejections.is_empty() {
            self.status
                .rejected_revisions
                .extend(recovered_rejections.iter().cloned());
            self.event(
                true,
                EventReason::StatusRecovered,
                format!(
                    "status did not list rejected revision(s) {}; their ReplicaSets carry the rejection mark, so they stay rejected",
                    recovered_rejections.join(", ")
                ),
            );
        }
        if self.status.stable_revision.is_none()
            && let Some((stable, available)) = self.serving_revision()
        {
            self.ensure_revision_record(&stable);
            self.event(
                true,
                EventReason::StatusRecovered,
                format!(
                    "status names no stable revision, but revision {stable} serves {available} available pod(s): it is taken as stable, and the desired revision rolls out as a canary"
                ),
            );
            self.status.stable_revision = Some(stable);
        }
    }

    /// The owned revision (not the desired one, not rejected) with the most available pods,
    /// and that number; None when no such revision has any.
    fn serving_revision(&self) -> Option<(String, i32)> {
        let desired = &self.obs.desired.hash;
        let mut available: Vec<(String, i32)> = Vec::new();
        for rs in self.obs.replica_sets {
            if &rs.revision == desired
                || rs.rejected
                || self.status.rejected_revisions.contains(&rs.revision)
            {
                continue;
            }
            let ready = rs.ready.min(rs.replicas).max(0);
            match available.iter_mut().find(|(r, _)| r == &rs.revision) {
                Some((_, n)) => *n = n.saturating_add(ready),
                None => available.push((rs.revision.clone(), ready)),
            }
        }
        // The most available first; equal counts by hash, so the choice is deterministic.
        available
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .max_by(|(ra, a), (rb, b)| a.cmp(b).then_with(|| rb.cmp(ra)))
    }
}
