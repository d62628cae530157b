//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas of the
//! operator exactly one acts at a time.
//!
//! # Why not kube-lease-manager
//! `kube-lease-manager` 0.13.1 (the newest release) does build against kube 5, but it cannot give
//! the guarantees below: its leader flag stays `true` while renewals fail (it logs the error and
//! backs off up to 30 s), renewals and the take-over of an expired lease are strategic-merge
//! patches without a `resourceVersion` precondition (a late renewal and a take-over can both
//! "win"), and it exposes no deadline a caller could check. This module is a small elector in the
//! style of client-go's `leaderelection`, with optimistic concurrency on every write.
//!
//! # Why not `kubert::lease`
//! `kubert` (linkerd's runtime helpers; 0.25.0 is the newest release) pins `kube-client`,
//! `kube-core` and `kube-runtime` to `>=1.1.0, <1.2.0` and `k8s-openapi` to 0.25, so it does not
//! build next to kube 5 / k8s-openapi 0.29 at all. Even with a matching kube its `LeaseManager`
//! would be a step back here: expiry is judged by comparing the Lease's `renewTime` with the local
//! wall clock (`chrono::Utc::now()`), so clock skew between nodes can make two replicas act at
//! once; the holder considers itself valid until the very instant the others may take over (no
//! demotion margin for a write in flight); the Lease must exist beforehand (`init` fails on 404);
//! and it offers no "lost" signal to fail-stop on. What it does well (a `resourceVersion`
//! precondition on every claim, renewal and `vacate`) this module does too. Verdict: keep this
//! module. (Linkerd's policy controller wraps `kubert::lease` in about 130 lines. What matters
//! for safety here is the fence in `check` and the rules in `judge`, both unit tested: a
//! library adopted later could replace `elector` only, and would have to keep both.)
//!
//! # Protocol
//! * Every write of the Lease is a `PUT` carrying the `resourceVersion` last read, so of two
//!   replicas racing for the same Lease exactly one succeeds (the other gets `409 Conflict`).
//! * Expiry is judged on the candidate's own monotonic clock, never by comparing `renewTime` with
//!   the local wall clock: a candidate takes over only after it has seen the same
//!   `resourceVersion` for a whole `leaseDurationSeconds` (so clock skew between nodes does not
//!   matter, only clock *rates*).
//! * The leader renews every [`Timing::retry_period`] (`lease_duration / 8`). Its authority lasts
//!   until [`Timing::renew_deadline`] (`2/3 × lease_duration`) after the *start* of its last
//!   successful renewal; [`Leadership::is_leader`] checks that deadline itself, so even a
//!   replica whose runtime is starved or paused reports `false` once it could have been replaced.
//!   Any other replica needs at least a full `lease_duration` after the *end* of that renewal
//!   (the moment it could first observe it) to take over: the gap of at least
//!   `lease_duration / 3` covers the time a write started just before the deadline may take.
//! * A leader that cannot renew (API server unreachable, request hanging, conflict with another
//!   holder, RBAC revoked) flips its flag to `false` at once, or at the latest at its deadline,
//!   and never becomes leader again: leadership is one-shot. [`Leadership::lost`] resolves then;
//!   the controller is expected to return an error from `run`, so that the process exits and
//!   Kubernetes restarts it with fresh caches (fail-stop rather than a silent split brain).
//! * Writers check [`LeaderCheck::ensure`] right before *each* API write (not once per reconcile):
//!   a reconcile that spent seconds in provider calls, or whose process was frozen, finds the
//!   deadline passed and makes no write ([`NotLeader`]). What remains unfenced is only the span
//!   between that check and the request reaching the API server, which the `lease_duration / 3`
//!   margin above covers unless the process freezes in exactly that span.
//! * A graceful [`Leadership::release`] clears the holder (a `PUT` with the `resourceVersion` of
//!   this replica's own last write, so it cannot clear another holder), and a standby takes over
//!   within one retry period instead of a whole lease duration. [`Leadership::stand_down`] stops
//!   acting at once but keeps the Lease (renewed) until `release`, so that writes still in
//!   flight finish before anyone else may start. Dropping a [`Leadership`] stops renewing without
//!   releasing (as a crash would).
//! * A holder identity equal to this replica's own, found at start, is treated as another
//!   replica's (a previous incarnation's) and waited out: identities should be unique per process
//!   (see [`unique_identity`]).
//!
//! # Wiring (for `controller::run`)
//! ```text
//! let identity = leader::unique_identity(&args.instance);           // POD_NAME + random suffix
//! let leadership = leader::elect(client.clone(), &lease_ns, &lease_name, &identity,
//!                                Duration::from_secs(15)).await?;   // fails fast on RBAC
//! leadership.acquired().await?;                                     // standby until leader
//! let check = leadership.check();      // into Context; `check.ensure()?` before every write
//! tokio::select! {
//!     _ = controller_future => {}
//!     lost = leadership.lost() => return Err(lost.into()),          // exit 1: restarted
//!     _ = sigterm => leadership.stand_down(),                       // no new writes
//! }
//! // wait (bounded) until the in-flight reconciles have ended, then:
//! leadership.release().await                                        // fast hand-over
//! ```
//! Readiness can stay "caches synced" (a standby is ready to take over); start the watches before
//! `acquired()` so a new leader acts on warm caches.
//!
//! # RBAC
//! `get`, `create` and `update` on `leases` in the lease namespace (`update` and `get` may be
//! restricted to the lease name with `resourceNames`; `create` cannot be).
//!
//! # Layout
//! * `judge`: the pure rules: the timing, the judgement of a Lease a candidate read, and the
//!   Lease specs of an acquisition, renewal and release (unit tested without an API server);
//! * `check`: the flag with its deadline that every writer checks ([`LeaderCheck`]);
//! * `elector`: the I/O: the elector task that reads and writes the Lease ([`elect`],
//!   [`Leadership`]).

mod check;
mod elector;
mod judge;

use std::time::Duration;

pub use check::LeaderCheck;
pub use elector::{Leadership, elect};
pub use judge::{
    Judgement, Observed, Timing, acquired_spec, judge, released_spec, renewed_spec, unique_identity,
};

/// The shortest lease duration accepted.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(1);

/// Why electing failed, or why leadership ended.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaderError {
    /// The lease duration is not a whole number of seconds of at least one second (the Lease
    /// stores `leaseDurationSeconds`).
    #[error("invalid lease duration {0:?}: it must be a whole number of seconds, at least 1 s")]
    InvalidDuration(Duration),
    /// The identity, namespace or lease name is empty.
    #[error("the leader election {0} must not be empty")]
    Empty(&'static str),
    /// An API call failed in a way retrying will not fix (e.g. 401/403: the RBAC lacks a verb on
    /// leases), or the first look at the Lease failed.
    #[error("leader election on Lease {namespace}/{name}: {message}")]
    Api {
        /// The Lease namespace.
        namespace: String,
        /// The Lease name.
        name: String,
        /// What the API server said.
        message: String,
    },
    /// This replica was the leader and is not any more; it must stop acting (and should exit).
    #[error("leadership of Lease {namespace}/{name} lost: {reason}")]
    Lost {
        /// The Lease namespace.
        namespace: String,
        /// The Lease name.
        name: String,
        /// What happened.
        reason: String,
    },
    /// The elector was stopped (released or dropped) before the awaited event.
    #[error("the leader elector stopped")]
    Stopped,
}

/// A write refused because this replica may not act now: it is not (or no longer) the leader,
/// its renew deadline has passed, or it is shutting down. The caller must stop without writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not the leader (any more): the write was not made")]
pub struct NotLeader;

/// Where this replica stands; published on a watch channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderState {
    /// Waiting for the Lease.
    Candidate,
    /// Holding the Lease.
    Leader,
    /// Was the leader and lost the Lease (terminal).
    Lost(String),
    /// The elector failed before it became leader (terminal), e.g. RBAC forbids the Lease.
    Failed(String),
    /// Released or dropped (terminal).
    Stopped,
}
