//! The I/O side of the leader election (see the protocol in [`super`]): the elector task that
//! reads and writes the Lease with optimistic concurrency, and the flag with its deadline that
//! every writer checks right before each write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tracing::{info, warn};

use super::check::{Flag, LeaderCheck};
use super::judge::{
    Judgement, Observed, Timing, acquired_spec, jittered, judge, released_spec, renewed_spec,
};
use super::{LeaderError, LeaderState};

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
/// [`unique_identity`](super::judge::unique_identity)), with client-go-style timing derived from `lease_duration` (whole seconds,
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
