//! The rollout's memory: revision numbers, the bounded history of rollouts in status (each
//! manual action's entry names its requester, `Planner::actor`), and garbage collection of old
//! revisions' ReplicaSets beyond `revisionHistoryLimit`.

use super::{DEFAULT_REVISION_HISTORY_LIMIT, HISTORY_CAPACITY, Planner};
use crate::api::conditions::HistoryOutcome;
use crate::api::{HistoryEntry, RevisionRecord};

/// The most step marks one history entry keeps (see `HistoryEntry::steps`).
const MAX_STEP_MARKS: usize = 64;

/// The open history entry of `hash`: the newest `InProgress` one.
fn open_entry<'h>(history: &'h mut [HistoryEntry], hash: &str) -> Option<&'h mut HistoryEntry> {
    history
        .iter_mut()
        .rev()
        .find(|e| e.hash == hash && e.outcome == HistoryOutcome::InProgress)
}

impl Planner<'_> {
    /// Gives `hash` a revision number (the next one) if it has none, and forgets the oldest
    /// records beyond the history limit, except those still in use.
    pub(super) fn ensure_revision_record(&mut self, hash: &str) {
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
            images: self.obs.desired.images().into_iter().collect(),
            config: self.obs.desired.config_objects.clone().into_iter().collect(),
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

    /// The revision number of `hash`; 0 when it is not recorded.
    pub(super) fn revision_number(&self, hash: &str) -> i64 {
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

    /// Opens a history entry for `hash`, dropping the oldest beyond [`HISTORY_CAPACITY`].
    pub(super) fn push_history(&mut self, hash: &str, outcome: HistoryOutcome, reason: String) {
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
            actor: self.actor.take(),
            steps: Vec::new(),
        });
        let excess = self.status.history.len().saturating_sub(HISTORY_CAPACITY);
        self.status.history.drain(..excess);
    }

    /// Records an entry for `hash` that is finished as soon as it is written (a manual action).
    pub(super) fn push_finished_history(
        &mut self,
        hash: &str,
        outcome: HistoryOutcome,
        reason: String,
    ) {
        self.push_history(hash, outcome, reason);
        if let Some(entry) = self.status.history.last_mut() {
            entry.finished_at = Some(self.obs.now.to_string());
        }
    }

    /// Records on the canary's open history entry that step `index` completed at `weight`
    /// (at most [`MAX_STEP_MARKS`] per entry).
    pub(super) fn mark_step(&mut self, index: usize, weight: i32) {
        let now = self.now();
        let Some(canary) = self.status.canary_revision.clone() else {
            return;
        };
        if let Some(entry) = open_entry(&mut self.status.history, &canary) {
            // Steps edited mid-rollout restart it: the record keeps the newest marks.
            if entry.steps.len() >= MAX_STEP_MARKS {
                entry.steps.remove(0);
            }
            entry.steps.push(crate::api::StepMark {
                step: i32::try_from(index).unwrap_or(i32::MAX),
                weight,
                at: now,
            });
        }
    }

    /// Closes the open history entry of `hash` (the newest `InProgress` one), or records a new
    /// finished entry when there is none.
    pub(super) fn finish_history(&mut self, hash: &str, outcome: HistoryOutcome, reason: String) {
        let now = self.now();
        if let Some(entry) = open_entry(&mut self.status.history, hash) {
            entry.outcome = outcome.to_string();
            entry.reason = reason;
            entry.finished_at = Some(now);
            if let Some(actor) = self.actor.take() {
                entry.actor = Some(actor);
            }
            return;
        }
        self.push_history(hash, outcome, reason);
        if let Some(entry) = self.status.history.last_mut() {
            entry.finished_at = Some(now);
        }
    }

    /// The old revisions' ReplicaSets to delete: at zero replicas, not in use, and older than
    /// the newest `revisionHistoryLimit + 1` recorded revisions.
    pub(super) fn garbage(&self) -> Vec<String> {
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
}
