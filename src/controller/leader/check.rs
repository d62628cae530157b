//! The fence of the leader election: the flag and deadline the elector task writes and every
//! writer checks right before each API write ([`LeaderCheck::ensure`]); see the protocol in
//! [`super`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use super::NotLeader;

/// The flag and deadline every reader checks; written by the elector task, and stopped for good
/// by [`Leadership::release`] or drop.
#[derive(Debug)]
pub(super) struct Flag {
    leader: AtomicBool,
    /// Set once the elector is told to stop; a stopped flag is never leader again, even if the
    /// task wins a race against the stop.
    stopped: AtomicBool,
    base: Instant,
    /// Nanoseconds after `base` until which the leader may act.
    valid_until: AtomicU64,
}

impl Flag {
    pub(super) fn new() -> Self {
        Flag {
            leader: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            base: Instant::now(),
            valid_until: AtomicU64::new(0),
        }
    }

    /// Never leader again.
    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.demote();
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Leader until `until`.
    pub(super) fn promote(&self, until: Instant) {
        self.valid_until.store(self.nanos(until), Ordering::SeqCst);
        self.leader.store(true, Ordering::SeqCst);
    }

    /// Extends the deadline (only while leader).
    pub(super) fn extend(&self, until: Instant) {
        self.valid_until.store(self.nanos(until), Ordering::SeqCst);
    }

    pub(super) fn demote(&self) {
        self.leader.store(false, Ordering::SeqCst);
        self.valid_until.store(0, Ordering::SeqCst);
    }

    pub(super) fn is_leader_at(&self, now: Instant) -> bool {
        self.leader.load(Ordering::SeqCst)
            && !self.stopped.load(Ordering::SeqCst)
            && self.nanos(now) < self.valid_until.load(Ordering::SeqCst)
    }
}

/// A cheap, cloneable view of the leadership for the code that writes (e.g. the reconciler's
/// context): check [`LeaderCheck::is_leader`] right before every write.
#[derive(Debug, Clone)]
pub struct LeaderCheck(pub(super) Arc<Flag>);

impl LeaderCheck {
    /// Whether this replica may act now: it holds the Lease and its renew deadline has not
    /// passed. Two atomic loads and a clock read; never blocks.
    pub fn is_leader(&self) -> bool {
        self.0.is_leader_at(Instant::now())
    }

    /// `Ok` if this replica may start a write now ([`LeaderCheck::is_leader`]), else
    /// [`NotLeader`]. Call it right before each API write, so that no write starts after the
    /// renew deadline however long the work before it took.
    pub fn ensure(&self) -> Result<(), NotLeader> {
        self.ensure_at(Instant::now())
    }

    fn ensure_at(&self, now: Instant) -> Result<(), NotLeader> {
        if self.0.is_leader_at(now) {
            Ok(())
        } else {
            Err(NotLeader)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::leader::Timing;
    use std::time::Duration;

    #[test]
    fn the_flag_is_false_past_the_deadline_even_if_nobody_demotes() {
        let flag = Flag::new();
        let now = Instant::now();
        assert!(!flag.is_leader_at(now));
        flag.promote(now + Duration::from_secs(1));
        assert!(flag.is_leader_at(now));
        assert!(flag.is_leader_at(now + Duration::from_millis(999)));
        assert!(!flag.is_leader_at(now + Duration::from_secs(1)));
        flag.extend(now + Duration::from_secs(3));
        assert!(flag.is_leader_at(now + Duration::from_secs(2)));
        flag.demote();
        assert!(!flag.is_leader_at(now));
    }

    #[test]
    fn a_stopped_flag_is_never_leader_again() {
        let flag = Flag::new();
        let now = Instant::now();
        flag.promote(now + Duration::from_secs(10));
        assert!(flag.is_leader_at(now));
        flag.stop();
        assert!(!flag.is_leader_at(now));
        // A promotion racing with the stop does not revive it.
        flag.promote(now + Duration::from_secs(10));
        assert!(!flag.is_leader_at(now));
        assert!(flag.is_stopped());
    }

    #[test]
    fn a_write_after_the_renew_deadline_is_refused_with_a_third_of_the_lease_to_spare() {
        let timing = Timing::for_lease_duration(Duration::from_secs(15)).expect("valid");
        let flag = Arc::new(Flag::new());
        let check = LeaderCheck(flag.clone());
        // A renewal that started at t0 and took 300 ms makes the leader valid until
        // t0 + renew_deadline (counted from the start) ...
        let t0 = Instant::now();
        let renewed_at = t0 + Duration::from_millis(300);
        flag.promote(t0 + timing.renew_deadline);
        assert_eq!(check.ensure_at(t0), Ok(()));
        assert_eq!(
            check.ensure_at(t0 + timing.renew_deadline - Duration::from_millis(1)),
            Ok(())
        );
        // ... a write that would start at 2/3 of the lease, or later, is refused (e.g. after
        // 10 s of provider calls since the reconcile began) ...
        assert_eq!(check.ensure_at(t0 + timing.renew_deadline), Err(NotLeader));
        assert_eq!(
            check.ensure_at(t0 + Duration::from_secs(12)),
            Err(NotLeader)
        );
        // ... while no other replica may take over before a whole lease duration after it could
        // have seen that renewal: the last permitted write has at least 5 s to land.
        let earliest_takeover = renewed_at + timing.lease_duration;
        let last_permitted = t0 + timing.renew_deadline;
        assert!(earliest_takeover - last_permitted >= Duration::from_secs(5));
        // A renewal moves the deadline; standing down closes the check for good, even though
        // the deadline has not passed and the elector goes on renewing.
        flag.extend(t0 + Duration::from_secs(20));
        assert_eq!(check.ensure_at(t0 + Duration::from_secs(12)), Ok(()));
        flag.stop();
        assert_eq!(check.ensure_at(t0), Err(NotLeader));
        flag.extend(t0 + Duration::from_secs(30));
        assert_eq!(check.ensure_at(t0), Err(NotLeader));
        assert!(!check.is_leader());
        assert_eq!(
            NotLeader.to_string(),
            "not the leader (any more): the write was not made"
        );
    }
}
