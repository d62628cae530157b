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

mod send;
mod state;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

use crate::api::notifications::{NotificationPolicy, NotificationSink};
use crate::api::{SafeDeployment, SafeDeploymentPolicy, SafeDeploymentStatus};
use crate::attest::policy::{needs_namespace_labels, resolve_policy};
use crate::core::notify::{Notification, Subject, derive};
use crate::telemetry::Metrics;

/// Offers waiting for a worker; beyond this an offer is dropped (and counted).
const QUEUE_CAPACITY: usize = 256;
/// SafeDeployments whose notifications are sent at the same time.
const MAX_CONCURRENT: usize = 8;

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
        if let Ok(_permit) = shared.permits.acquire().await
            && let Err(error) = handle(&shared, &job.sd).await
        {
            warn!(%error, name = %job.sd.name_any(), "notifications not delivered this round");
        }
        let Ok(mut running) = shared.running.lock() else {
            return;
        };
        match running.get_mut(&uid).and_then(Option::take) {
            Some(next) => job = next,
            None => {
                running.remove(&uid);
                return;
            }
        }
    }
}

/// One sink's pending notifications, with its address and key.
struct Pending {
    sink: NotificationSink,
    notes: Vec<Notification>,
}

async fn handle(shared: &Shared, sd: &SafeDeployment) -> Result<(), NotifyError> {
    let (Some(namespace), Some(uid), Some(status)) = (sd.namespace(), sd.uid(), sd.status.as_ref())
    else {
        return Ok(());
    };
    let Some(policy) = notification_policy(shared, &namespace).await? else {
        return Ok(());
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
    if wanted.is_empty() {
        return Ok(());
    }
    let known = shared
        .delivered
        .lock()
        .ok()
        .and_then(|d| d.get(&uid).cloned());
    if known.as_ref().is_some_and(|k| wanted.is_subset(k)) {
        return Ok(());
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
            let Some(target) = send::target(&secrets, &pending.sink).await else {
                Metrics::count(&shared.metrics.notifications, "dropped_no_secret");
                return;
            };
            for note in &pending.notes {
                let key = state::delivery_key(&pending.sink.name, &note.key);
                let outcome = send::deliver(shared, &target, note).await;
                debug!(key, ?outcome, "notification");
                // Delivered, or given up on after its attempts (counted as dropped): either way
                // it is recorded, so it is not tried again by every later reconcile.
                let mut record = record.lock().await;
                record.insert(key);
                if let Err(error) = record.save(&shared.client, sd, wanted).await {
                    warn!(%error, "could not record a delivered notification");
                }
            }
        }
    });
    futures::future::join_all(sends).await;
    let record = record.lock().await;
    if let Ok(mut delivered) = shared.delivered.lock() {
        delivered.insert(uid, record.keys().clone());
    }
    Ok(())
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
