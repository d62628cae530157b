//! The I/O layer of the operator: watches (only what it owns, by label), the reconcile loop that
//! carries out the core's decisions, status through server-side apply, and events.

mod analysis;
mod apply;
mod attestation;
mod backoff;
mod config;
mod error;
pub mod fault;
pub mod leader;
pub mod observe;
mod reconcile;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use crate::api::labels::LABEL_NAME;
use crate::api::{SafeDeployment, SafeDeploymentPolicy};
use crate::core::config::{ConfigKind, ConfigObjectRef, referenced_objects};

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "safedeploy";

/// Arguments of `safedeploy controller`.
#[derive(Debug, Clone, clap::Args)]
pub struct ControllerArgs {
    /// Address of the HTTP server for /metrics, /livez and /readyz.
    #[arg(long, env = "SAFEDEPLOY_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: std::net::SocketAddr,
    /// Watch and act in this namespace only (default: every namespace).
    #[arg(long, env = "SAFEDEPLOY_NAMESPACE")]
    pub namespace: Option<String>,
    /// Run leader election on a Lease, so that of several replicas exactly one acts.
    #[arg(long, env = "SAFEDEPLOY_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, default_value = "safedeploy-controller")]
    pub lease_name: String,
    /// Lease duration in seconds: a follower takes over at most this long after the leader
    /// stops renewing.
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Name reported as the source of events (and the lease holder identity).
    #[arg(long, env = "POD_NAME", default_value = "safedeploy-controller")]
    pub instance: String,
    /// How many SafeDeployments are reconciled at once. Bounded, so that a wave of events (a
    /// restart, a policy change, thousands of failing objects) cannot open an unbounded number
    /// of provider requests and API calls at the same time.
    #[arg(long, env = "SAFEDEPLOY_MAX_CONCURRENT_RECONCILES", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_reconciles: u16,
}

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Could not reach the API server or read the kubeconfig.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// The CRDs are not installed.
    #[error("the SafeDeployment CRD is not installed ({0}); apply crds/ first")]
    MissingCrd(kube::Error),
    /// The metric providers' HTTP client could not be built.
    #[error("metric providers: {0}")]
    Providers(String),
    /// Leader election failed or leadership was lost (the process exits and restarts).
    #[error("leader election: {0}")]
    Leader(#[from] leader::LeaderError),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Http(#[from] std::io::Error),
    /// The SIGTERM handler could not be installed.
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
}

/// Shared state of the reconcilers.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Owned ReplicaSets (trimmed).
    pub replica_sets: Store<ReplicaSet>,
    /// Pods of owned ReplicaSets (trimmed).
    pub pods: Store<Pod>,
    /// Attestation policies.
    pub policies: Store<SafeDeploymentPolicy>,
    /// Name and `resourceVersion` of every ConfigMap in scope (metadata only, no data).
    pub config_map_versions: Store<PartialObjectMeta<ConfigMap>>,
    /// Name and `resourceVersion` of every Secret in scope (metadata only, never data).
    pub secret_versions: Store<PartialObjectMeta<Secret>>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Operator metrics.
    pub metrics: crate::telemetry::Metrics,
    /// HTTP client of the metric providers.
    pub providers: crate::analysis::provider::Providers,
    /// Whether this replica may act (always true without leader election).
    pub leader: Option<leader::LeaderCheck>,
    /// Set once every cache has synced; no decision is taken before (a half-filled cache would
    /// look like missing policies or pods).
    pub readiness: crate::telemetry::Readiness,
    /// Failed reconciles in a row per object, which pace their retries.
    pub failures: backoff::Failures,
}

impl Context {
    /// `Ok` if this replica may write now: always without leader election, else while it holds
    /// the Lease within its renew deadline and is not shutting down. Call it right before each
    /// API write of a reconcile (`ctx.ensure_leader()?`): a reconcile can spend seconds in
    /// provider calls between its start and its writes.
    pub fn ensure_leader(&self) -> Result<(), leader::NotLeader> {
        self.leader
            .as_ref()
            .map_or(Ok(()), leader::LeaderCheck::ensure)
    }
}

/// How long a graceful shutdown waits for the running reconciles to end (each stops at its next
/// write once this replica stands down) before it gives up on releasing the Lease and lets it
/// expire instead (a reconcile still running might have a write in flight).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a graceful shutdown waits for the Lease release to be written.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// Counts SIGTERM and SIGINT (Ctrl+C): the first starts a graceful shutdown, the second forces it.
struct Signals {
    received: tokio::sync::watch::Receiver<u32>,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let (tx, rx) = tokio::sync::watch::channel(0u32);
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = terminate.recv() => "SIGTERM",
                    Some(()) = interrupt.recv() => "SIGINT",
                    else => return,
                };
                let count = *tx.borrow() + 1;
                info!(signal = name, count, "signal received");
                if tx.send(count).is_err() {
                    return;
                }
            }
        });
        Ok(Signals { received: rx })
    }

    /// Resolves once `count` signals have been received.
    fn reached(&self, count: u32) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut received = self.received.clone();
        async move {
            if received.wait_for(|n| *n >= count).await.is_err() {
                // The counting task ended (cannot happen while the handlers live): never.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Runs the controller until it is stopped.
pub async fn run(args: ControllerArgs) -> Result<(), ControllerError> {
    let started = Instant::now();
    crate::telemetry::init_logging();
    // `Client::try_default()`, plus the kill-point test hook when its env var is set.
    let client = fault::client().await?;
    let client_ready = started.elapsed();
    let scoped = |client: Client| match &args.namespace {
        Some(namespace) => (
            Api::<SafeDeployment>::namespaced(client.clone(), namespace),
            Api::<ReplicaSet>::namespaced(client.clone(), namespace),
            Api::<Pod>::namespaced(client, namespace),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    let (sds, replica_sets, pods) = scoped(client.clone());
    sds.list(&kube::api::ListParams::default().limit(1))
        .await
        .map_err(ControllerError::MissingCrd)?;
    let crd_checked = started.elapsed();

    let owned = watcher::Config::default().labels(LABEL_NAME).any_semantic();
    let (rs_store, rs_writer) = reflector::store();
    let rs_stream = watcher(replica_sets, owned.clone())
        .default_backoff()
        .modify(observe::trim_replica_set)
        .reflect(rs_writer)
        .touched_objects();
    let (pod_store, pod_writer) = reflector::store();
    let pod_stream = watcher(pods, owned)
        .default_backoff()
        .modify(observe::trim_pod)
        .reflect(pod_writer)
        .touched_objects();
    let (policy_store, policy_writer) = reflector::store();
    let policy_stream = watcher(
        Api::<SafeDeploymentPolicy>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|p| p.metadata.managed_fields = None)
    .reflect(policy_writer)
    .touched_objects();

    // Metadata-only caches of ConfigMaps and Secrets (name and resourceVersion; never data): an
    // edit of an object a revision references is a new revision, and an attestation envelope
    // written by the pipeline re-checks the rollouts that name it. Events of the initial list
    // are not mapped (every SafeDeployment is reconciled at start anyway).
    let (config_map_store, config_map_changes) =
        version_cache::<ConfigMap>(scoped_api(&client, &args.namespace));
    let (secret_store, secret_changes) =
        version_cache::<Secret>(scoped_api(&client, &args.namespace));

    let metrics = crate::telemetry::Metrics::default();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "safedeploy".into(),
            instance: Some(args.instance.clone()),
        },
    );
    let signals = Signals::install().map_err(ControllerError::Signal)?;
    let leadership = if args.leader_elect {
        let identity = leader::unique_identity(&args.instance);
        let leadership = leader::elect(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &identity,
            Duration::from_secs(args.lease_duration_seconds),
        )
        .await?;
        info!(identity, lease = %args.lease_name, "joined the leader election; acting only as leader");
        Some(leadership)
    } else {
        None
    };
    let readiness = crate::telemetry::Readiness::default();
    let context = Arc::new(Context {
        leader: leadership.as_ref().map(|l| l.check()),
        client: client.clone(),
        replica_sets: rs_store.clone(),
        pods: pod_store.clone(),
        policies: policy_store.clone(),
        config_map_versions: config_map_store.clone(),
        secret_versions: secret_store.clone(),
        recorder,
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        failures: backoff::Failures::default(),
        providers: crate::analysis::provider::Providers::new()
            .map_err(|e| ControllerError::Providers(e.to_string()))?,
    });

    let listener = tokio::net::TcpListener::bind(args.http_addr).await?;
    let http_addr = listener.local_addr()?;
    let server = tokio::spawn(crate::telemetry::serve(
        listener,
        metrics.clone(),
        readiness.clone(),
    ));

    // The policy reflector runs on its own task so its cache fills whatever the controller does.
    let (policy_tx, policy_rx) = futures::channel::mpsc::channel::<()>(1);
    tokio::spawn(async move {
        let mut policy_tx = policy_tx;
        let mut stream = policy_stream.boxed();
        while let Some(event) = stream.next().await {
            if event.is_ok() {
                // A full channel already holds a pending "look again": dropping this one is fine.
                let _ = policy_tx.try_send(());
            }
        }
    });
    let policy_changes = policy_rx;
    let controller = Controller::new(sds, watcher::Config::default().any_semantic()).with_config(
        kube::runtime::controller::Config::default().concurrency(args.max_concurrent_reconciles),
    );
    let sd_store = controller.store();
    let referrers = sd_store.clone();
    let controller = controller
        .owns_stream(rs_stream)
        .watches_stream(config_map_changes, {
            let referrers = referrers.clone();
            move |cm: PartialObjectMeta<ConfigMap>| {
                referring(&referrers, ConfigKind::ConfigMap, &cm.metadata)
            }
        })
        .watches_stream(secret_changes, move |secret: PartialObjectMeta<Secret>| {
            referring(&referrers, ConfigKind::Secret, &secret.metadata)
        })
        .watches_stream(pod_stream, |pod: Pod| {
            let name = pod.labels().get(LABEL_NAME)?.clone();
            Some(ObjectRef::<SafeDeployment>::new(&name).within(&pod.namespace()?))
        })
        // A policy change can unblock or block any rollout it selects: look at all of them again.
        .reconcile_all_on(futures::stream::select(
            policy_changes,
            // A new leader looks at everything: the previous one may have stopped mid-step.
            match &leadership {
                Some(l) => l.became_leader().boxed(),
                None => futures::stream::pending().boxed(),
            },
        ))
        // Our own signal handling (not `shutdown_on_signal`): at the first signal this replica
        // stands down before the controller stops taking work (see the end of this function).
        .graceful_shutdown_on(signals.reached(1));

    // Rollouts by phase are counted from the local cache (no API calls), so the gauge is right
    // after a restart too.
    let phase_store = sd_store.clone();
    let phase_metrics = metrics.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let mut counts = std::collections::BTreeMap::<String, i64>::new();
            for phase in crate::api::Phase::ALL {
                counts.insert(phase.as_str().to_string(), 0);
            }
            for sd in phase_store.state() {
                let phase = sd.status.as_ref().map(|s| s.phase).unwrap_or_default();
                *counts.entry(phase.as_str().to_string()).or_default() += 1;
            }
            for (kind, count) in counts {
                phase_metrics
                    .rollouts_by_phase
                    .get_or_create(&crate::telemetry::KindLabel { kind })
                    .set(count);
            }
        }
    });

    let sync_readiness = readiness.clone();
    let sync_metrics = metrics.clone();
    tokio::spawn(async move {
        // The controller holds every reconcile until its own SafeDeployment cache is ready
        // (waiting on a clone of that store here proved unreliable), so these complete the
        // picture.
        let synced = futures::join!(
            rs_store.wait_until_ready(),
            pod_store.wait_until_ready(),
            policy_store.wait_until_ready(),
            config_map_store.wait_until_ready(),
            secret_store.wait_until_ready()
        );
        if synced.0.is_ok()
            && synced.1.is_ok()
            && synced.2.is_ok()
            && synced.3.is_ok()
            && synced.4.is_ok()
        {
            let cache_synced = started.elapsed();
            sync_readiness.set_ready();
            sync_metrics.record_startup(client_ready, crd_checked, cache_synced);
        } else {
            warn!("a cache was dropped before it synced; the controller stays unready");
        }
    });

    info!(addr = %http_addr, namespace = ?args.namespace, "safedeploy controller starting");
    let running = controller
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|outcome| async move {
            if let Err(error) = outcome {
                warn!(%error, "reconcile failed");
            }
        });
    let outcome = match leadership {
        Some(leadership) => run_as_candidate(running, leadership, &signals).await,
        None => {
            tokio::select! {
                () = running => {}
                // A second signal forces the shutdown (the reconciles are dropped with the runtime).
                () = signals.reached(2) => warn!("second signal: not waiting for running reconciles"),
            }
            Ok(())
        }
    };
    server.abort();
    outcome
}

/// Drives the controller of a replica in a leader election until it ends:
/// * losing the Lease ends the process at once (fail-stop: the writes already stopped, and a
///   restart rejoins the election with fresh caches);
/// * at the first SIGTERM/SIGINT the replica stands down at once (every later write of a
///   running reconcile is refused) while it keeps the Lease, waits up to [`DRAIN_TIMEOUT`] for
///   the running reconciles to end (the controller takes no new work), and then releases the
///   Lease, so that a standby takes over within about one retry period instead of a whole lease
///   duration. If the reconciles do not end in time, or a second signal comes, it does not
///   release (a write might still be in flight): the Lease expires as after a crash.
async fn run_as_candidate(
    running: impl Future<Output = ()>,
    leadership: leader::Leadership,
    signals: &Signals,
) -> Result<(), ControllerError> {
    let mut running = std::pin::pin!(running);
    tokio::select! {
        () = &mut running => {
            // The controller ended by itself (its watches were closed): nothing is running.
            return release(leadership).await;
        }
        error = leadership.lost() => return Err(ControllerError::Leader(error)),
        () = signals.reached(1) => {}
    }
    // `signals.reached(1)` also triggered the controller's graceful shutdown.
    leadership.stand_down();
    let stood_down = Instant::now();
    info!(
        "shutting down: standing down, waiting for running reconciles before releasing the Lease"
    );
    tokio::select! {
        () = &mut running => {
            info!(waited = ?stood_down.elapsed(), "running reconciles ended");
            release(leadership).await
        }
        error = leadership.lost() => Err(ControllerError::Leader(error)),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            warn!(
                timeout = ?DRAIN_TIMEOUT,
                "reconciles still running at shutdown; not releasing the Lease, it will expire"
            );
            Ok(())
        }
        () = signals.reached(2) => {
            warn!("second signal: not releasing the Lease, it will expire");
            Ok(())
        }
    }
}

/// Releases the Lease, bounded by [`RELEASE_TIMEOUT`] (after that it simply expires).
async fn release(leadership: leader::Leadership) -> Result<(), ControllerError> {
    match tokio::time::timeout(RELEASE_TIMEOUT, leadership.release()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            warn!(%error, "could not release the Lease; it will expire");
            Ok(())
        }
        Err(_) => {
            warn!(timeout = ?RELEASE_TIMEOUT, "releasing the Lease timed out; it will expire");
            Ok(())
        }
    }
}

/// An API of `K` in the operator's scope (one namespace, or all).
fn scoped_api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// Keeps only what the version caches need: name, namespace and `resourceVersion`. (Labels and
/// annotations go too: `kubectl.kubernetes.io/last-applied-configuration` can hold a whole
/// Secret.)
fn trim_to_version<K>(object: &mut PartialObjectMeta<K>) {
    let metadata = &mut object.metadata;
    metadata.managed_fields = None;
    metadata.annotations = None;
    metadata.labels = None;
    metadata.owner_references = None;
    metadata.finalizers = None;
}

/// A metadata-only cache of `K` (an `Api<PartialObjectMeta<K>>` asks the API server for
/// `PartialObjectMetadata`, so ConfigMap and Secret data never crosses the wire), trimmed to
/// versions, and the stream of its changes.
fn version_cache<K>(
    api: Api<PartialObjectMeta<K>>,
) -> (
    Store<PartialObjectMeta<K>>,
    impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = changes(
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(trim_to_version)
            .reflect(writer),
    );
    (store, stream)
}

/// The objects a watch saw change after its initial list (applied or deleted). The initial list
/// itself is left out (every SafeDeployment is reconciled at start anyway), but a later relist
/// (after a watch error or an expired resourceVersion) is not: it reports what changed during
/// the gap only as listed objects, and without them a ConfigMap edit or a new attestation made
/// while the watch was down would wait for some unrelated event.
fn changes<K, S>(events: S) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Send + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    events
        .scan(false, |listed_once, event| {
            let item = match event {
                Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object)) => {
                    Some(Ok(object))
                }
                Ok(watcher::Event::InitApply(object)) if *listed_once => Some(Ok(object)),
                Ok(watcher::Event::InitDone) => {
                    *listed_once = true;
                    None
                }
                Ok(_) => None,
                Err(error) => Some(Err(error)),
            };
            futures::future::ready(Some(item))
        })
        .filter_map(futures::future::ready)
}

/// The SafeDeployments in the object's namespace that refer to this ConfigMap or Secret (see
/// [`refers_to`]).
fn referring(
    store: &Store<SafeDeployment>,
    kind: ConfigKind,
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Vec<ObjectRef<SafeDeployment>> {
    let (Some(name), Some(namespace)) = (metadata.name.as_deref(), metadata.namespace.as_deref())
    else {
        return Vec::new();
    };
    let object = ConfigObjectRef {
        kind,
        name: name.to_string(),
    };
    store
        .state()
        .iter()
        .filter(|sd| sd.namespace().as_deref() == Some(namespace))
        .filter(|sd| refers_to(&sd.spec, &object))
        .map(|sd| ObjectRef::from_obj(sd.as_ref()))
        .collect()
}

/// Whether `spec` names `object` as its attestation source, as configuration of a pod template
/// or as an image pull Secret.
fn refers_to(spec: &crate::api::SafeDeploymentSpec, object: &ConfigObjectRef) -> bool {
    let source = spec.attestation.as_ref();
    let by_attestation = match object.kind {
        ConfigKind::ConfigMap => source.and_then(|a| a.config_map_ref.as_ref()),
        ConfigKind::Secret => source.and_then(|a| a.secret_ref.as_ref()),
    }
    .is_some_and(|r| r.name == object.name);
    by_attestation
        || templates(spec).any(|template| {
            let pulls = template.spec.iter().flat_map(|pod| {
                pod.image_pull_secrets
                    .iter()
                    .flatten()
                    .map(|reference| &reference.name)
            });
            referenced_objects(template).contains(object)
                || (object.kind == ConfigKind::Secret
                    && pulls.into_iter().any(|n| *n == object.name))
        })
}

/// The pod templates of `spec` (the single template or every component's), without computing a
/// revision: this runs for every ConfigMap and Secret change in the namespace.
fn templates(
    spec: &crate::api::SafeDeploymentSpec,
) -> impl Iterator<Item = &k8s_openapi::api::core::v1::PodTemplateSpec> {
    spec.template.iter().chain(
        spec.components
            .iter()
            .flatten()
            .filter(|_| spec.template.is_none())
            .map(|component| &component.template),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SafeDeploymentSpec;

    fn spec(yaml: &str) -> SafeDeploymentSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_spec_refers_to_its_attestation_source_configuration_and_pull_secrets() {
        let sd = spec(
            r#"
replicas: 1
selector: {matchLabels: {app: web}}
template:
  metadata: {labels: {app: web}}
  spec:
    imagePullSecrets: [{name: regcred}]
    containers: [{name: app, image: i, envFrom: [{configMapRef: {name: app-config}}, {secretRef: {name: db}}]}]
strategy: {canary: {steps: [{setWeight: 100}]}}
attestation: {configMapRef: {name: att, key: attestation.json}}
"#,
        );
        let cm = ConfigObjectRef::config_map;
        let secret = ConfigObjectRef::secret;
        assert!(refers_to(&sd, &cm("att")));
        assert!(refers_to(&sd, &cm("app-config")));
        assert!(refers_to(&sd, &secret("db")));
        assert!(refers_to(&sd, &secret("regcred")));
        // Kind matters, and unrelated objects (the operator's own copies, say) map to nothing.
        assert!(!refers_to(&sd, &secret("app-config")));
        assert!(!refers_to(&sd, &cm("regcred")));
        assert!(!refers_to(&sd, &cm("app-config-0123456789")));
        assert!(!refers_to(&sd, &cm("kube-root-ca.crt")));

        let components = spec(
            r#"
selector: {matchLabels: {app: shop}}
components:
- {name: api, replicas: 1, template: {metadata: {labels: {app: shop}}, spec: {containers: [{name: a, image: i}]}}}
- name: worker
  replicas: 1
  template:
    metadata: {labels: {app: shop}}
    spec:
      imagePullSecrets: [{name: regcred}]
      containers: [{name: w, image: i, env: [{name: P, valueFrom: {secretKeyRef: {name: db, key: p}}}]}]
strategy: {canary: {steps: [{setWeight: 100}]}}
"#,
        );
        assert!(refers_to(&components, &secret("db")));
        assert!(refers_to(&components, &secret("regcred")));
        assert!(!refers_to(&components, &cm("db")));
    }

    #[tokio::test]
    async fn changes_after_the_initial_list_and_in_every_relist_are_mapped() {
        let events = futures::stream::iter(vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(1)),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(2)),
            Ok(watcher::Event::Delete(3)),
            // The watch broke and relisted: what changed meanwhile comes as listed objects.
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(4)),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(5)),
        ]);
        let seen: Vec<i32> = changes(events)
            .filter_map(|e| async move { e.ok() })
            .collect()
            .await;
        assert_eq!(seen, vec![2, 3, 4, 5]);
    }

    #[test]
    fn version_caches_keep_no_labels_annotations_or_data() {
        let mut cm: PartialObjectMeta<ConfigMap> = serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "a", "namespace": "n", "resourceVersion": "7",
                "labels": {"x": "y"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{}}"},
                "managedFields": [{"manager": "kubectl"}]}
        }))
        .unwrap();
        trim_to_version(&mut cm);
        assert_eq!(cm.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(cm.metadata.name.as_deref(), Some("a"));
        assert!(cm.metadata.annotations.is_none());
        assert!(cm.metadata.labels.is_none());
        assert!(cm.metadata.managed_fields.is_none());
    }
}
