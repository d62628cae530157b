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
//! module.
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

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::Stream;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tracing::{info, warn};

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

/// The timing of an election, derived from the lease duration as client-go's defaults are
/// (15 s / 10 s / 2 s there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a Lease is valid after its last renewal, for the *other* replicas.
    pub lease_duration: Duration,
    /// How long after the start of its last successful renewal the leader keeps acting
    /// (`2/3 × lease_duration`); past it the leader demotes itself.
    pub renew_deadline: Duration,
    /// How often the leader renews and candidates look at the Lease (`lease_duration / 8`).
    pub retry_period: Duration,
}

impl Timing {
    /// The timing for a lease duration (whole seconds, at least [`MIN_LEASE_DURATION`]).
    pub fn for_lease_duration(lease_duration: Duration) -> Result<Timing, LeaderError> {
        if lease_duration < MIN_LEASE_DURATION
            || lease_duration.subsec_nanos() != 0
            || lease_duration.as_secs() > i32::MAX as u64
        {
            return Err(LeaderError::InvalidDuration(lease_duration));
        }
        Ok(Timing {
            lease_duration,
            renew_deadline: lease_duration * 2 / 3,
            retry_period: lease_duration / 8,
        })
    }

    /// `leaseDurationSeconds` as the Lease stores it.
    pub fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// `base` followed by `-` and 8 random hex characters: a holder identity unique to this process
/// (a restarted container gets a new one, so it never mistakes its predecessor's Lease for its
/// own).
pub fn unique_identity(base: &str) -> String {
    format!("{base}-{:08x}", random_u64() as u32)
}

fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// `period` plus up to 20 % (so candidates do not poll in lock step).
fn jittered(period: Duration) -> Duration {
    let fraction = (random_u64() % 1000) as f64 / 1000.0;
    period + period.mul_f64(0.2 * fraction)
}

/// What a candidate has seen of the Lease: its resourceVersion and when (on the local monotonic
/// clock) that version was first seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The Lease's `metadata.resourceVersion`.
    pub resource_version: String,
    /// When this process first saw that version.
    pub since: Instant,
}

/// What a candidate should do about the Lease it just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Nobody holds it (or the holder released it): take it now.
    Free,
    /// The holder has not renewed for a whole lease duration: take it now.
    Expired {
        /// Who held it.
        holder: String,
    },
    /// Someone holds it; look again later.
    Held {
        /// Who holds it.
        holder: String,
        /// When it expires unless renewed (on the local monotonic clock).
        expires: Instant,
    },
}

/// Judges the Lease a candidate read at `now`, updating what it has observed. `default_duration`
/// applies to a Lease without `leaseDurationSeconds`. The expiry is counted from when this
/// process first saw the current resourceVersion, never from `renewTime` (no wall clocks).
pub fn judge(
    lease: &Lease,
    observed: &mut Option<Observed>,
    default_duration: Duration,
    now: Instant,
) -> Judgement {
    let resource_version = lease.resource_version().unwrap_or_default();
    let same = observed
        .as_ref()
        .is_some_and(|o| o.resource_version == resource_version);
    if !same {
        *observed = Some(Observed {
            resource_version,
            since: now,
        });
    }
    let since = observed.as_ref().map_or(now, |o| o.since);
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    if holder.is_empty() {
        return Judgement::Free;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(default_duration, Duration::from_secs);
    let expires = since + duration;
    if now >= expires {
        Judgement::Expired { holder }
    } else {
        Judgement::Held { holder, expires }
    }
}

/// The Lease spec after `identity` acquires it at `now` (from `previous`, `None` for a new
/// Lease).
pub fn acquired_spec(
    previous: Option<&LeaseSpec>,
    identity: &str,
    timing: &Timing,
    now: Timestamp,
) -> LeaseSpec {
    // As client-go counts: every acquisition of an existing Lease by another identity is a
    // transition, including the take-over of a released (holder-less) one; a new Lease starts
    // at 0.
    let changed_hands = previous.is_some_and(|p| p.holder_identity.as_deref() != Some(identity));
    let previous = previous.cloned().unwrap_or_default();
    let transitions = previous.lease_transitions.unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(timing.lease_duration_seconds()),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if changed_hands {
            transitions.saturating_add(1)
        } else {
            transitions
        }),
        ..previous
    }
}

/// The Lease spec after its holder renews it at `now`.
pub fn renewed_spec(previous: &LeaseSpec, timing: &Timing, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        renew_time: Some(MicroTime(now)),
        lease_duration_seconds: Some(timing.lease_duration_seconds()),
        ..previous.clone()
    }
}

/// The Lease spec after its holder releases it at `now`: no holder, so a candidate takes it at
/// once (client-go's release also shortens the duration to 1 s for older electors).
pub fn released_spec(previous: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        acquire_time: None,
        ..previous.clone()
    }
}

/// The flag and deadline every reader checks; written by the elector task, and stopped for good
/// by [`Leadership::release`] or drop.
#[derive(Debug)]
struct Flag {
    leader: AtomicBool,
    /// Set once the elector is told to stop; a stopped flag is never leader again, even if the
    /// task wins a race against the stop.
    stopped: AtomicBool,
    base: Instant,
    /// Nanoseconds after `base` until which the leader may act.
    valid_until: AtomicU64,
}

impl Flag {
    fn new() -> Self {
        Flag {
            leader: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            base: Instant::now(),
            valid_until: AtomicU64::new(0),
        }
    }

    /// Never leader again.
    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.demote();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Leader until `until`.
    fn promote(&self, until: Instant) {
        self.valid_until.store(self.nanos(until), Ordering::SeqCst);
        self.leader.store(true, Ordering::SeqCst);
    }

    /// Extends the deadline (only while leader).
    fn extend(&self, until: Instant) {
        self.valid_until.store(self.nanos(until), Ordering::SeqCst);
    }

    fn demote(&self) {
        self.leader.store(false, Ordering::SeqCst);
        self.valid_until.store(0, Ordering::SeqCst);
    }

    fn is_leader_at(&self, now: Instant) -> bool {
        self.leader.load(Ordering::SeqCst)
            && !self.stopped.load(Ordering::SeqCst)
            && self.nanos(now) < self.valid_until.load(Ordering::SeqCst)
    }
}

/// A cheap, cloneable view of the leadership for the code that writes (e.g. the reconciler's
/// context): check [`LeaderCheck::is_leader`] right before every write.
#[derive(Debug, Clone)]
pub struct LeaderCheck(Arc<Flag>);

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

/// This replica's part in an election, from [`elect`]. Dropping it stops the elector without
/// releasing the Lease (the others take over after the lease duration, as after a crash).
#[derive(Debug)]
pub struct Leadership {
    flag: Arc<Flag>,
    state: watch::Receiver<LeaderState>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    identity: String,
    namespace: String,
    lease_name: String,
    timing: Timing,
}

/// Joins the election for Lease `namespace/lease_name` as `identity` (unique per process: see
/// [`unique_identity`]), with client-go-style timing derived from `lease_duration` (whole seconds,
/// at least 1 s). The Lease is read once before this returns, so a missing permission or an
/// unreachable API server fails here; the election itself runs on a background task. The
/// Lease is created if it does not exist.
pub async fn elect(
    client: Client,
    namespace: &str,
    lease_name: &str,
    identity: &str,
    lease_duration: Duration,
) -> Result<Leadership, LeaderError> {
    for (what, value) in [
        ("identity", identity),
        ("namespace", namespace),
        ("lease name", lease_name),
    ] {
        if value.is_empty() {
            return Err(LeaderError::Empty(what));
        }
    }
    let timing = Timing::for_lease_duration(lease_duration)?;
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let elector = Elector {
        api,
        namespace: namespace.to_string(),
        name: lease_name.to_string(),
        identity: identity.to_string(),
        timing,
    };
    let first = tokio::time::timeout(timing.lease_duration, elector.api.get_opt(lease_name))
        .await
        .map_err(|_| elector.api_error("the API server did not answer".to_string()))?
        .map_err(|error| elector.api_error(error.to_string()))?;
    let flag = Arc::new(Flag::new());
    let (state_tx, state_rx) = watch::channel(LeaderState::Candidate);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(elector.run(first, flag.clone(), state_tx, stop_rx));
    Ok(Leadership {
        flag,
        state: state_rx,
        stop: stop_tx,
        task: Some(task),
        identity: identity.to_string(),
        namespace: namespace.to_string(),
        lease_name: lease_name.to_string(),
        timing,
    })
}

impl Leadership {
    /// Whether this replica may act now (see [`LeaderCheck::is_leader`]).
    pub fn is_leader(&self) -> bool {
        self.flag.is_leader_at(Instant::now())
    }

    /// A cloneable handle to [`Leadership::is_leader`], to hand to the code that writes.
    pub fn check(&self) -> LeaderCheck {
        LeaderCheck(self.flag.clone())
    }

    /// This replica's holder identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The timing in use.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// The current state.
    pub fn state(&self) -> LeaderState {
        self.state.borrow().clone()
    }

    /// A receiver of every state change.
    pub fn subscribe(&self) -> watch::Receiver<LeaderState> {
        self.state.clone()
    }

    /// Waits until this replica is the leader. Fails if the elector failed, lost the lease
    /// before this was awaited, or stopped.
    pub async fn acquired(&self) -> Result<(), LeaderError> {
        let mut state = self.state.clone();
        loop {
            match &*state.borrow_and_update() {
                LeaderState::Leader => return Ok(()),
                LeaderState::Candidate => {}
                terminal => return Err(self.terminal_error(terminal)),
            }
            if state.changed().await.is_err() {
                return Err(LeaderError::Stopped);
            }
        }
    }

    /// Resolves when the election is over for this replica: the lease was lost
    /// ([`LeaderError::Lost`]), the elector failed ([`LeaderError::Api`]) or stopped. Meant for a
    /// `tokio::select!` next to the controller, which then returns the error so the process
    /// exits and is restarted.
    pub async fn lost(&self) -> LeaderError {
        let mut state = self.state.clone();
        loop {
            match &*state.borrow_and_update() {
                LeaderState::Leader | LeaderState::Candidate => {}
                terminal => return self.terminal_error(terminal),
            }
            if state.changed().await.is_err() {
                return LeaderError::Stopped;
            }
        }
    }

    /// A stream that yields once each time this replica becomes the leader (with one-shot
    /// leadership: at most once), and ends when the elector stops.
    pub fn became_leader(&self) -> impl Stream<Item = ()> + Send + 'static {
        futures::stream::unfold(
            (self.state.clone(), false),
            |(mut state, mut was_leader)| async move {
                loop {
                    let leader = matches!(*state.borrow_and_update(), LeaderState::Leader);
                    if leader && !was_leader {
                        return Some(((), (state, true)));
                    }
                    was_leader = leader;
                    if state.changed().await.is_err() {
                        return None;
                    }
                }
            },
        )
    }

    /// Stops acting at once and for good (every [`LeaderCheck`] refuses from now on), but keeps
    /// holding and renewing the Lease until [`Leadership::release`] or drop, so that nobody else
    /// starts acting while this replica's writes in flight finish. The first step of a graceful
    /// shutdown.
    pub fn stand_down(&self) {
        self.flag.stop();
    }

    /// Steps down: stops acting at once, then clears the holder of the Lease (if this replica
    /// holds it) so a standby takes over within one retry period. Waits at most one lease
    /// duration for that write.
    pub async fn release(mut self) -> Result<(), LeaderError> {
        self.flag.stop();
        let _ = self.stop.send(true);
        if let Some(mut task) = self.task.take() {
            let timeout = self.timing.lease_duration + self.timing.retry_period;
            if tokio::time::timeout(timeout, &mut task).await.is_err() {
                task.abort();
                return Err(LeaderError::Stopped);
            }
        }
        let state = self.state.borrow().clone();
        match state {
            LeaderState::Failed(_) => Err(self.terminal_error(&state)),
            _ => Ok(()),
        }
    }

    fn terminal_error(&self, state: &LeaderState) -> LeaderError {
        match state {
            LeaderState::Lost(reason) => LeaderError::Lost {
                namespace: self.namespace.clone(),
                name: self.lease_name.clone(),
                reason: reason.clone(),
            },
            LeaderState::Failed(message) => LeaderError::Api {
                namespace: self.namespace.clone(),
                name: self.lease_name.clone(),
                message: message.clone(),
            },
            _ => LeaderError::Stopped,
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.flag.stop();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The background task's own state.
struct Elector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    timing: Timing,
}

/// How a step of the loop ended.
enum Step {
    /// Keep going after the given pause.
    Again(Duration),
    /// Became the leader with this Lease, valid until the instant.
    Won(Box<Lease>, Instant),
    /// Stop for good (the state says why).
    Over(LeaderState),
}

impl Elector {
    fn api_error(&self, message: String) -> LeaderError {
        LeaderError::Api {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            message,
        }
    }

    fn fatal(error: &kube::Error) -> bool {
        matches!(error, kube::Error::Api(status) if status.is_forbidden() || status.code == 401)
    }

    async fn run(
        self,
        first: Option<Lease>,
        flag: Arc<Flag>,
        state: watch::Sender<LeaderState>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut observed = None;
        let mut lease = first;
        let mut looked = true;
        // Candidate.
        let (mut held, mut valid_until) = loop {
            if !looked {
                let read =
                    tokio::time::timeout(self.timing.lease_duration, self.api.get_opt(&self.name))
                        .await;
                lease = match read {
                    Ok(Ok(lease)) => lease,
                    Ok(Err(error)) if Self::fatal(&error) => {
                        let _ = state.send(LeaderState::Failed(format!(
                            "Lease {}/{}: {error}",
                            self.namespace, self.name
                        )));
                        return;
                    }
                    failed => {
                        let error = match failed {
                            Ok(Err(error)) => error.to_string(),
                            _ => "the API server did not answer in time".to_string(),
                        };
                        warn!(%error, lease = %self.name, "cannot read the leader Lease; retrying");
                        if self.pause(&mut stop, self.timing.retry_period).await {
                            let _ = state.send(LeaderState::Stopped);
                            return;
                        }
                        continue;
                    }
                };
            }
            looked = false;
            let step = self.try_acquire(lease.take(), &mut observed).await;
            match step {
                Step::Won(lease, until) => break (lease, until),
                Step::Over(end) => {
                    let _ = state.send(end);
                    return;
                }
                Step::Again(pause) => {
                    if self.pause(&mut stop, pause).await {
                        let _ = state.send(LeaderState::Stopped);
                        return;
                    }
                }
            }
        };
        if flag.is_stopped() || *stop.borrow() {
            // Told to stop while the winning write was in flight: hand the Lease straight back.
            self.release(&held).await;
            let _ = state.send(LeaderState::Stopped);
            return;
        }
        flag.promote(valid_until);
        let _ = state.send(LeaderState::Leader);
        info!(
            identity = %self.identity,
            lease = %self.name,
            namespace = %self.namespace,
            "became the leader"
        );

        // Leader: renew every retry period; demote at the deadline at the latest.
        loop {
            let wake = tokio::time::Instant::now() + self.timing.retry_period;
            tokio::select! {
                biased;
                _ = stop.changed() => {
                    flag.demote();
                    self.release(&held).await;
                    let _ = state.send(LeaderState::Stopped);
                    return;
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(valid_until)) => {
                    // Only reachable if this task was starved for a whole renew deadline.
                    let reason = "not renewed before the deadline (the process stalled)";
                    self.lose(&flag, &state, reason.to_string());
                    return;
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
            match self.renew(&held, valid_until).await {
                Ok((lease, until)) => {
                    held = lease;
                    valid_until = until;
                    flag.extend(until);
                }
                Err(RenewError::Lost(reason)) => {
                    self.lose(&flag, &state, reason);
                    return;
                }
                Err(RenewError::Retry(error)) => {
                    if Instant::now() >= valid_until {
                        self.lose(
                            &flag,
                            &state,
                            format!(
                                "could not renew the lease within {:?}: {error}",
                                self.timing.renew_deadline
                            ),
                        );
                        return;
                    }
                    warn!(%error, lease = %self.name, "cannot renew the leader Lease; retrying");
                }
            }
        }
    }

    fn lose(&self, flag: &Flag, state: &watch::Sender<LeaderState>, reason: String) {
        flag.demote();
        warn!(
            identity = %self.identity,
            lease = %self.name,
            namespace = %self.namespace,
            %reason,
            "lost leadership; stopping all writes"
        );
        let _ = state.send(LeaderState::Lost(reason));
    }

    /// Waits `pause`; true if asked to stop meanwhile.
    async fn pause(&self, stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
        tokio::select! {
            biased;
            // A dropped sender (the Leadership is gone) also means stop.
            changed = stop.changed() => changed.is_err() || *stop.borrow(),
            _ = tokio::time::sleep(pause) => *stop.borrow(),
        }
    }

    /// One look at the Lease as a candidate.
    async fn try_acquire(&self, lease: Option<Lease>, observed: &mut Option<Observed>) -> Step {
        let retry = jittered(self.timing.retry_period);
        let Some(lease) = lease else {
            // No Lease yet: create it holding it.
            let started = Instant::now();
            let new = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(acquired_spec(
                    None,
                    &self.identity,
                    &self.timing,
                    Timestamp::now(),
                )),
            };
            return match self
                .write(|api| async move { api.create(&PostParams::default(), &new).await })
                .await
            {
                Ok(lease) => Step::Won(Box::new(lease), started + self.timing.renew_deadline),
                Err(WriteError::Kube(error)) if Self::fatal(&error) => Step::Over(
                    LeaderState::Failed(format!("Lease {}/{}: {error}", self.namespace, self.name)),
                ),
                Err(error) => {
                    if !error.is_conflict() {
                        warn!(%error, lease = %self.name, "cannot create the Lease; retrying");
                    }
                    Step::Again(retry)
                }
            };
        };
        let now = Instant::now();
        match judge(&lease, observed, self.timing.lease_duration, now) {
            Judgement::Held { expires, .. } => Step::Again(
                retry
                    .min(expires.saturating_duration_since(now))
                    .max(Duration::from_millis(50)),
            ),
            judgement => {
                if let Judgement::Expired { holder } = &judgement {
                    info!(%holder, lease = %self.name, "the leader Lease expired; taking it over");
                }
                let started = Instant::now();
                let mut new = lease.clone();
                new.spec = Some(acquired_spec(
                    lease.spec.as_ref(),
                    &self.identity,
                    &self.timing,
                    Timestamp::now(),
                ));
                let name = self.name.clone();
                match self
                    .write(
                        |api| async move { api.replace(&name, &PostParams::default(), &new).await },
                    )
                    .await
                {
                    Ok(lease) => Step::Won(Box::new(lease), started + self.timing.renew_deadline),
                    Err(WriteError::Kube(error)) if Self::fatal(&error) => {
                        Step::Over(LeaderState::Failed(format!(
                            "Lease {}/{}: {error}",
                            self.namespace, self.name
                        )))
                    }
                    Err(error) => {
                        if !error.is_conflict() {
                            warn!(%error, lease = %self.name, "cannot take the Lease; retrying");
                        }
                        Step::Again(retry)
                    }
                }
            }
        }
    }

    /// One renewal, bounded by the deadline.
    async fn renew(
        &self,
        held: &Lease,
        valid_until: Instant,
    ) -> Result<(Box<Lease>, Instant), RenewError> {
        let deadline = tokio::time::Instant::from_std(valid_until);
        let mut current = held.clone();
        // One retry after a conflict, with the fresh resourceVersion, if the Lease is still ours.
        for _ in 0..2 {
            let started = Instant::now();
            let mut new = current.clone();
            let spec = current.spec.clone().unwrap_or_default();
            new.spec = Some(renewed_spec(&spec, &self.timing, Timestamp::now()));
            let name = self.name.clone();
            let api = self.api.clone();
            let attempt = tokio::time::timeout_at(deadline, async move {
                api.replace(&name, &PostParams::default(), &new).await
            });
            match attempt.await {
                Err(_) => {
                    return Err(RenewError::Lost(format!(
                        "the renewal did not complete within the renew deadline ({:?})",
                        self.timing.renew_deadline
                    )));
                }
                Ok(Ok(lease)) => {
                    return Ok((Box::new(lease), started + self.timing.renew_deadline));
                }
                Ok(Err(error)) if Self::fatal(&error) => {
                    return Err(RenewError::Lost(format!("renewal refused: {error}")));
                }
                Ok(Err(kube::Error::Api(status))) if status.is_conflict() => {
                    let api = self.api.clone();
                    let name = self.name.clone();
                    let fresh =
                        tokio::time::timeout_at(deadline, async move { api.get_opt(&name).await })
                            .await;
                    match fresh {
                        Err(_) => {
                            return Err(RenewError::Lost(
                                "the Lease could not be read back within the renew deadline".into(),
                            ));
                        }
                        Ok(Err(error)) => return Err(RenewError::Retry(error.to_string())),
                        Ok(Ok(None)) => {
                            return Err(RenewError::Lost("the Lease was deleted".into()));
                        }
                        Ok(Ok(Some(lease))) => {
                            let holder = lease
                                .spec
                                .as_ref()
                                .and_then(|s| s.holder_identity.clone())
                                .unwrap_or_default();
                            if holder != self.identity {
                                return Err(RenewError::Lost(format!(
                                    "the Lease is now held by {holder:?}"
                                )));
                            }
                            current = lease;
                        }
                    }
                }
                Ok(Err(error)) => return Err(RenewError::Retry(error.to_string())),
            }
        }
        Err(RenewError::Retry(
            "the Lease keeps changing under its holder".into(),
        ))
    }

    /// Clears the holder (best effort, bounded by one lease duration).
    async fn release(&self, held: &Lease) {
        let mut current = held.clone();
        for _ in 0..2 {
            let mut new = current.clone();
            let spec = current.spec.clone().unwrap_or_default();
            new.spec = Some(released_spec(&spec, Timestamp::now()));
            let name = self.name.clone();
            match self
                .write(|api| async move { api.replace(&name, &PostParams::default(), &new).await })
                .await
            {
                Ok(_) => {
                    info!(identity = %self.identity, lease = %self.name, "released the Lease");
                    return;
                }
                Err(error) if error.is_conflict() => {
                    // Released only if it is still ours.
                    match self.api.get_opt(&self.name).await {
                        Ok(Some(lease))
                            if lease
                                .spec
                                .as_ref()
                                .and_then(|s| s.holder_identity.as_deref())
                                == Some(self.identity.as_str()) =>
                        {
                            current = lease
                        }
                        _ => return,
                    }
                }
                Err(error) => {
                    warn!(%error, lease = %self.name, "cannot release the Lease; it will expire");
                    return;
                }
            }
        }
    }

    /// Runs one write with a timeout of one lease duration.
    async fn write<F, Fut>(&self, write: F) -> Result<Lease, WriteError>
    where
        F: FnOnce(Api<Lease>) -> Fut,
        Fut: std::future::Future<Output = Result<Lease, kube::Error>>,
    {
        match tokio::time::timeout(self.timing.lease_duration, write(self.api.clone())).await {
            Err(_) => Err(WriteError::Timeout),
            Ok(Ok(lease)) => Ok(lease),
            Ok(Err(error)) => Err(WriteError::Kube(error)),
        }
    }
}

/// A failed write of the Lease.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("{0}")]
    Kube(kube::Error),
    #[error("the API server did not answer in time")]
    Timeout,
}

impl WriteError {
    fn is_conflict(&self) -> bool {
        match self {
            WriteError::Kube(kube::Error::Api(status)) => {
                status.is_conflict() || status.is_already_exists()
            }
            _ => false,
        }
    }
}

/// A failed renewal.
enum RenewError {
    /// Leadership is over.
    Lost(String),
    /// Try again (until the deadline).
    Retry(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(rv: &str, holder: Option<&str>, seconds: Option<i32>) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("l".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                lease_duration_seconds: seconds,
                lease_transitions: Some(3),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn timing_follows_client_go_ratios_and_rejects_bad_durations() {
        let timing = Timing::for_lease_duration(Duration::from_secs(15)).expect("valid");
        assert_eq!(timing.renew_deadline, Duration::from_secs(10));
        assert_eq!(timing.retry_period, Duration::from_millis(1875));
        assert_eq!(timing.lease_duration_seconds(), 15);
        // The margin between the leader's deadline and the earliest take-over is a third.
        assert!(timing.lease_duration - timing.renew_deadline >= timing.lease_duration / 3);
        assert!(
            timing.retry_period * 4 < timing.renew_deadline,
            "several renewals fit"
        );
        for bad in [
            Duration::ZERO,
            Duration::from_millis(999),
            Duration::from_millis(2500),
        ] {
            assert!(matches!(
                Timing::for_lease_duration(bad),
                Err(LeaderError::InvalidDuration(_))
            ));
        }
    }

    #[test]
    fn a_lease_is_expired_only_after_a_whole_duration_without_a_new_version() {
        let t0 = Instant::now();
        let d = Duration::from_secs(10);
        let mut observed = None;
        let held = lease("1", Some("a"), Some(4));
        // First sight: held, expiring 4 s (the Lease's own duration) after it was seen.
        assert_eq!(
            judge(&held, &mut observed, d, t0),
            Judgement::Held {
                holder: "a".into(),
                expires: t0 + Duration::from_secs(4)
            }
        );
        // The same version 3 s later: still held.
        assert!(matches!(
            judge(&held, &mut observed, d, t0 + Duration::from_secs(3)),
            Judgement::Held { .. }
        ));
        // A renewal (new version) at 3.5 s restarts the count.
        let renewed = lease("2", Some("a"), Some(4));
        let at = t0 + Duration::from_millis(3500);
        assert_eq!(
            judge(&renewed, &mut observed, d, at),
            Judgement::Held {
                holder: "a".into(),
                expires: at + Duration::from_secs(4)
            }
        );
        assert!(matches!(
            judge(&renewed, &mut observed, d, t0 + Duration::from_millis(7499)),
            Judgement::Held { .. }
        ));
        assert_eq!(
            judge(&renewed, &mut observed, d, t0 + Duration::from_millis(7500)),
            Judgement::Expired { holder: "a".into() }
        );
    }

    #[test]
    fn a_lease_without_holder_is_free_and_a_missing_duration_uses_the_default() {
        let t0 = Instant::now();
        let mut observed = None;
        assert_eq!(
            judge(
                &lease("1", None, Some(15)),
                &mut observed,
                Duration::from_secs(2),
                t0
            ),
            Judgement::Free
        );
        assert_eq!(
            judge(
                &lease("1", Some(""), None),
                &mut observed,
                Duration::from_secs(2),
                t0
            ),
            Judgement::Free
        );
        let mut observed = None;
        assert_eq!(
            judge(
                &lease("5", Some("b"), None),
                &mut observed,
                Duration::from_secs(2),
                t0
            ),
            Judgement::Held {
                holder: "b".into(),
                expires: t0 + Duration::from_secs(2)
            }
        );
    }

    #[test]
    fn acquiring_counts_transitions_and_renewing_keeps_the_holder() {
        let timing = Timing::for_lease_duration(Duration::from_secs(6)).expect("valid");
        let now = Timestamp::from_second(1_800_000_000).expect("timestamp");
        let previous = lease("1", Some("a"), Some(15)).spec.expect("spec");
        let taken = acquired_spec(Some(&previous), "b", &timing, now);
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.lease_duration_seconds, Some(6));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        // Releasing keeps the count; taking over the released Lease is a transition too (as
        // client-go counts), so a graceful hand-over shows in leaseTransitions.
        let released = released_spec(&previous, now);
        assert_eq!(released.holder_identity, None);
        assert_eq!(released.lease_duration_seconds, Some(1));
        assert_eq!(released.lease_transitions, Some(3));
        let again = acquired_spec(Some(&released), "c", &timing, now);
        assert_eq!(again.lease_transitions, Some(4));
        // The same identity taking it again (not a change of hands) does not count.
        assert_eq!(
            acquired_spec(Some(&taken), "b", &timing, now).lease_transitions,
            Some(4)
        );
        assert_eq!(
            acquired_spec(None, "c", &timing, now).lease_transitions,
            Some(0)
        );
        let later = Timestamp::from_second(1_800_000_002).expect("timestamp");
        let renewed = renewed_spec(&taken, &timing, later);
        assert_eq!(renewed.holder_identity.as_deref(), Some("b"));
        assert_eq!(renewed.acquire_time, Some(MicroTime(now)));
        assert_eq!(renewed.renew_time, Some(MicroTime(later)));
    }

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

    #[test]
    fn identities_are_unique_per_call() {
        let a = unique_identity("pod");
        let b = unique_identity("pod");
        assert!(a.starts_with("pod-") && a.len() == "pod-".len() + 8, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        let period = Duration::from_millis(1000);
        for _ in 0..100 {
            let j = jittered(period);
            assert!(j >= period && j <= Duration::from_millis(1200), "{j:?}");
        }
    }

    #[tokio::test]
    async fn bad_arguments_fail_before_any_request() {
        // A client that would fail every request: the checks come first.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let error = elect(client.clone(), "ns", "lease", "", Duration::from_secs(5))
            .await
            .expect_err("empty identity");
        assert!(matches!(error, LeaderError::Empty("identity")));
        let error = elect(
            client.clone(),
            "ns",
            "lease",
            "me",
            Duration::from_millis(1500),
        )
        .await
        .expect_err("fractional duration");
        assert!(matches!(error, LeaderError::InvalidDuration(_)));
        // Port 9 (discard) refuses: the first look fails with an API error naming the Lease.
        let error = elect(client, "ns", "lease", "me", Duration::from_secs(2))
            .await
            .expect_err("unreachable");
        assert!(error.to_string().contains("Lease ns/lease"), "{error}");
    }
}
