//! Delivery of notifications: a bounded queue the reconciles offer their applied status to, and
//! worker tasks that derive what to announce (`core::notify`), skip what was delivered already,
//! send the rest with timeouts, retries and back-off (`send`), and record each delivery in the
//! cluster (`state`).
//!
//! A reconcile never waits here: [`Notifier::offer`] is a `try_send` on a bounded queue (a full
//! queue drops the offer and counts it; the next reconcile offers the state again, and the
//! undelivered notifications are derived again from it). Each SafeDeployment is handled by one
//! task at a time (a newer offer while it runs replaces any waiting one), at most
//! `MAX_CONCURRENT` at once, so a hanging receiver occupies its own rollout's task and nothing
//! else.
//!
//! A notification whose attempts all failed (a receiver down, hanging or answering 5xx) is not
//! recorded: the SafeDeployment is offered again, read fresh, after a growing pause (rounds of
//! [`FIRST_ROUND_PAUSE`] doubling to [`MAX_ROUND_PAUSE`]), for as long as its status still
//! implies the notification (`core::notify::HORIZON`, one hour). A restarted operator derives
//! the undelivered ones again at its first reconcile. One the receiver refuses (a 4xx), or that
//! stops being derived before any round delivered it, gets a `NotificationDropped` Warning
//! Event on the SafeDeployment and is counted; it is never dropped silently.

mod send;
mod state;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;
use kube::runtime::events::{Event, EventType};

use super::events::EventPublisher;
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, info, warn};

use crate::api::conditions::EventReason;
use crate::api::notifications::{NotificationPolicy, NotificationSink};
use crate::api::{SafeDeployment, SafeDeploymentPolicy, SafeDeploymentStatus};
use crate::attest::policy::{needs_namespace_labels, resolve_policy};
use crate::core::notify::{Notification, Subject, derive};
use crate::telemetry::Metrics;

/// Offers waiting for a worker; beyond this an offer is dropped (and counted).
const QUEUE_CAPACITY: usize = 256;
/// SafeDeployments whose notifications are sent at the same time.
const MAX_CONCURRENT: usize = 8;
/// The pause before a SafeDeployment whose deliveries failed is offered again; it doubles each
/// round, up to [`MAX_ROUND_PAUSE`].
pub const FIRST_ROUND_PAUSE: Duration = Duration::from_secs(10);
/// The longest pause between two rounds.
pub const MAX_ROUND_PAUSE: Duration = Duration::from_secs(300);

/// The handle the reconciles hold.
pub struct Notifier {
    queue: mpsc::Sender<Job>,
    metrics: Metrics,
    policies: Store<SafeDeploymentPolicy>,
}

/// One SafeDeployment with the status the reconcile just applied.
struct Job {
    sd: SafeDeployment,
}

/// What the workers share.
struct Shared {
    client: Client,
    policies: Store<SafeDeploymentPolicy>,
    metrics: Metrics,
    http: reqwest::Client,
    permits: Semaphore,
    /// By uid: present while a task handles that SafeDeployment, with the newest offer that
    /// came meanwhile.
    running: Mutex<HashMap<String, Option<Job>>>,
    /// By uid: the delivery keys known delivered (read from the cluster once, then kept).
    delivered: Mutex<HashMap<String, BTreeSet<String>>>,
    /// By uid: the SafeDeployments with deliveries that failed in their last round.
    retrying: Mutex<HashMap<String, Retrying>>,
    /// The queue's sender, for the rounds after a failed delivery.
    requeue: mpsc::Sender<Job>,
    /// Records `NotificationDropped` Events.
    recorder: EventPublisher,
}

/// A SafeDeployment with deliveries to try again.
#[derive(Default)]
struct Retrying {
    /// Rounds that failed in a row.
    rounds: u32,
    /// The delivery keys whose attempts all failed in the last round.
    failing: BTreeSet<String>,
}

/// Errors of one delivery round (logged; the next offer tries again).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// An API request failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The state ConfigMap's name is taken by an object the SafeDeployment does not own.
    #[error("ConfigMap {0} exists and is not owned by the SafeDeployment; not recording there")]
    StateTaken(String),
}

impl Notifier {
    /// Starts the dispatcher. `policies` is the policy cache of the reconciles.
    pub fn start(
        client: Client,
        policies: Store<SafeDeploymentPolicy>,
        metrics: Metrics,
        recorder: EventPublisher,
    ) -> Result<Notifier, reqwest::Error> {
        let (queue, received) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared {
            client,
            policies: policies.clone(),
            metrics: metrics.clone(),
            http: send::client()?,
            permits: Semaphore::new(MAX_CONCURRENT),
            running: Mutex::new(HashMap::new()),
            delivered: Mutex::new(HashMap::new()),
            retrying: Mutex::new(HashMap::new()),
            requeue: queue.clone(),
            recorder,
        });
        tokio::spawn(dispatch(shared, received));
        Ok(Notifier {
            queue,
            metrics,
            policies,
        })
    }

    /// Offers `sd` with the `status` just applied. Returns at once: nothing is sent from the
    /// reconcile. Costs nothing while no policy configures notifications.
    pub fn offer(&self, sd: &SafeDeployment, status: &SafeDeploymentStatus) {
        if !self
            .policies
            .state()
            .iter()
            .any(|p| p.spec.notifications.is_some())
        {
            return;
        }
        let mut sd = sd.clone();
        sd.status = Some(status.clone());
        sd.metadata.managed_fields = None;
        if self.queue.try_send(Job { sd }).is_err() {
            Metrics::count(&self.metrics.notifications, "dropped_queue_full");
        }
    }
}

async fn dispatch(shared: Arc<Shared>, mut received: mpsc::Receiver<Job>) {
    while let Some(job) = received.recv().await {
        let uid = job.sd.uid().unwrap_or_default();
        {
            let Ok(mut running) = shared.running.lock() else {
                return;
            };
            if let Some(waiting) = running.get_mut(&uid) {
                *waiting = Some(job);
                continue;
            }
            running.insert(uid.clone(), None);
        }
        tokio::spawn(run(shared.clone(), uid, job));
    }
}

/// Handles `job`, then each newer offer for the same SafeDeployment that came meanwhile.
async fn run(shared: Arc<Shared>, uid: String, mut job: Job) {
    loop {
        let mut failed = BTreeSet::new();
        if let Ok(_permit) = shared.permits.acquire().await {
            match handle(&shared, &job.sd).await {
                Ok(keys) => failed = keys,
                Err(error) => {
                    warn!(%error, name = %job.sd.name_any(), "notifications not delivered this round");
                }
            }
        }
        let pause = shared.retrying.lock().ok().and_then(|mut retrying| {
            if failed.is_empty() {
                retrying.remove(&uid);
                return None;
            }
            let entry = retrying.entry(uid.clone()).or_default();
            entry.rounds = entry.rounds.saturating_add(1);
            entry.failing = failed;
            Some(round_pause(entry.rounds))
        });
        let Ok(mut running) = shared.running.lock() else {
            return;
        };
        match running.get_mut(&uid).and_then(Option::take) {
            Some(next) => job = next,
            None => {
                running.remove(&uid);
                if let Some(pause) = pause {
                    tokio::spawn(offer_again(shared.clone(), job.sd, pause));
                }
                return;
            }
        }
    }
}

/// The pause after `rounds` failed rounds in a row: [`FIRST_ROUND_PAUSE`] doubling, at most
/// [`MAX_ROUND_PAUSE`].
fn round_pause(rounds: u32) -> Duration {
    let doublings = rounds.saturating_sub(1).min(16);
    FIRST_ROUND_PAUSE
        .saturating_mul(1 << doublings)
        .min(MAX_ROUND_PAUSE)
}

/// After `pause`, offers the SafeDeployment again as it is then (read fresh: its status may have
/// moved on, and a deleted one is not announced any more).
async fn offer_again(shared: Arc<Shared>, sd: SafeDeployment, pause: Duration) {
    let (Some(namespace), Some(uid)) = (sd.namespace(), sd.uid()) else {
        return;
    };
    let api: Api<SafeDeployment> = Api::namespaced(shared.client.clone(), &namespace);
    let mut pause = pause;
    loop {
        tokio::time::sleep(pause).await;
        match api.get_opt(&sd.name_any()).await {
            Ok(Some(mut fresh)) if fresh.uid().as_ref() == Some(&uid) => {
                fresh.metadata.managed_fields = None;
                info!(name = %sd.name_any(), namespace, ?pause, "notifications offered again after a failed round");
                // Waits for room in the queue: this task may, a reconcile may not.
                let _ = shared.requeue.send(Job { sd: fresh }).await;
                return;
            }
            Ok(_) => {
                if let Ok(mut retrying) = shared.retrying.lock() {
                    retrying.remove(&uid);
                }
                return;
            }
            Err(error) => {
                warn!(%error, name = %sd.name_any(), "cannot read the SafeDeployment to retry its notifications");
                pause = MAX_ROUND_PAUSE;
            }
        }
    }
}

/// Records a `NotificationDropped` Warning Event on `sd` (best effort: a failed Event write is
/// logged).
async fn announce_dropped(shared: &Shared, sd: &SafeDeployment, why: String) {
    let event = Event {
        type_: EventType::Warning,
        reason: EventReason::NotificationDropped.to_string(),
        note: Some(why),
        action: "Notify".into(),
        secondary: None,
    };
    if let Err(error) = shared.recorder.publish(&event, &sd.object_ref(&())).await {
        warn!(%error, name = %sd.name_any(), "could not record a NotificationDropped event");
    }
}

/// One sink's pending notifications, with its address and key.
struct Pending {
    sink: NotificationSink,
    notes: Vec<Notification>,
}

/// One round for `sd`: sends what its status implies and was not delivered yet. Returns the
/// delivery keys whose attempts all failed (to try again in a later round).
async fn handle(shared: &Shared, sd: &SafeDeployment) -> Result<BTreeSet<String>, NotifyError> {
    let (Some(namespace), Some(uid), Some(status)) = (sd.namespace(), sd.uid(), sd.status.as_ref())
    else {
        return Ok(BTreeSet::new());
    };
    let Some(policy) = notification_policy(shared, &namespace).await? else {
        return Ok(BTreeSet::new());
    };
    let subject = Subject {
        namespace: namespace.clone(),
        name: sd.name_any(),
        uid: uid.clone(),
    };
    let notes = derive(
        &subject,
        &sd.spec,
        status,
        policy.dashboard_url.as_deref(),
        jiff::Timestamp::now(),
    );
    let wanted: BTreeSet<String> = policy
        .sinks
        .iter()
        .flat_map(|sink| {
            notes
                .iter()
                .filter(|n| sink.hears(n.event))
                .map(|n| state::delivery_key(&sink.name, &n.key))
        })
        .collect();
    // What failed before and is no longer implied by the status (older than the horizon, or
    // the sink was removed) will never be sent: say so.
    let expired: Vec<String> = shared
        .retrying
        .lock()
        .ok()
        .and_then(|r| {
            r.get(&uid)
                .map(|r| r.failing.difference(&wanted).cloned().collect())
        })
        .unwrap_or_default();
    for key in expired {
        Metrics::count(&shared.metrics.notifications, "dropped_expired");
        announce_dropped(
            shared,
            sd,
            format!("notification {key} not delivered: its receiver did not answer before the notification expired"),
        )
        .await;
    }
    if wanted.is_empty() {
        return Ok(BTreeSet::new());
    }
    let known = shared
        .delivered
        .lock()
        .ok()
        .and_then(|d| d.get(&uid).cloned());
    if known.as_ref().is_some_and(|k| wanted.is_subset(k)) {
        return Ok(BTreeSet::new());
    }
    let record = state::Record::load(&shared.client, sd, &namespace, known).await?;
    let pending: Vec<Pending> = policy
        .sinks
        .iter()
        .map(|sink| Pending {
            sink: sink.clone(),
            notes: notes
                .iter()
                .filter(|n| sink.hears(n.event))
                .filter(|n| !record.contains(&state::delivery_key(&sink.name, &n.key)))
                .cloned()
                .collect(),
        })
        .filter(|p| !p.notes.is_empty())
        .collect();
    let record = Arc::new(tokio::sync::Mutex::new(record));
    let secrets: Api<Secret> = Api::namespaced(shared.client.clone(), &namespace);
    let sends = pending.into_iter().map(|pending| {
        let record = record.clone();
        let secrets = secrets.clone();
        let wanted = &wanted;
        async move {
            let mut failed = Vec::new();
            let Some(target) = send::target(&secrets, &pending.sink).await else {
                Metrics::count(&shared.metrics.notifications, "dropped_no_secret");
                return failed;
            };
            for (index, note) in pending.notes.iter().enumerate() {
                let key = state::delivery_key(&pending.sink.name, &note.key);
                let outcome = send::deliver(shared, &target, note).await;
                debug!(key, ?outcome, "notification");
                match outcome {
                    send::Outcome::Delivered => {}
                    send::Outcome::Refused(code) => {
                        announce_dropped(
                            shared,
                            sd,
                            format!(
                                "notification {} refused by sink {} (HTTP {code}); not retried",
                                note.key, pending.sink.name
                            ),
                        )
                        .await;
                    }
                    send::Outcome::GaveUp => {
                        // Not recorded: a later round sends it again, and the rest of this
                        // sink's notifications with it (its receiver is not answering; each
                        // would take a round's attempts, and they would arrive out of order).
                        failed.extend(
                            pending.notes[index..]
                                .iter()
                                .map(|n| state::delivery_key(&pending.sink.name, &n.key)),
                        );
                        break;
                    }
                }
                let mut record = record.lock().await;
                record.insert(key);
                if let Err(error) = record.save(&shared.client, sd, wanted).await {
                    warn!(%error, "could not record a delivered notification");
                }
            }
            failed
        }
    });
    let failed: BTreeSet<String> = futures::future::join_all(sends)
        .await
        .into_iter()
        .flatten()
        .collect();
    let record = record.lock().await;
    if let Ok(mut delivered) = shared.delivered.lock() {
        delivered.insert(uid, record.keys().clone());
    }
    Ok(failed)
}

/// The notifications section of the policy that applies to `namespace`, if any.
async fn notification_policy(
    shared: &Shared,
    namespace: &str,
) -> Result<Option<NotificationPolicy>, NotifyError> {
    let policies = shared.policies.state();
    let labels = if needs_namespace_labels(namespace, policies.iter().map(|p| p.as_ref())) {
        let namespaces: Api<Namespace> = Api::all(shared.client.clone());
        namespaces
            .get_metadata_opt(namespace)
            .await?
            .map(|ns| ns.labels().clone())
            .unwrap_or_default()
    } else {
        Default::default()
    };
    Ok(
        resolve_policy(namespace, &labels, policies.iter().map(|p| p.as_ref()))
            .and_then(|p| p.spec.notifications.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_after_failed_deliveries_pause_longer_each_time_up_to_five_minutes() {
        let pauses: Vec<u64> = (1..=7).map(|r| round_pause(r).as_secs()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(round_pause(0), FIRST_ROUND_PAUSE);
        assert_eq!(round_pause(u32::MAX), MAX_ROUND_PAUSE);
    }
}
