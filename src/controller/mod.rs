//! The I/O layer of the operator: watches (only what it owns, by label), the reconcile loop that
//! carries out the core's decisions, status through server-side apply, and events.
//!
//! Layout, in the order of a reconcile:
//! - `watch`: the caches and streams, and the controller built on them;
//! - `reconcile`: the pipeline **dereference → decide → apply** of one SafeDeployment, with its
//!   failure containment and back-off (`backoff`);
//! - `analysis`, `attestation`, `config`: the reads and provider calls of the dereference step;
//! - `apply`: every write, with one field manager, in the crash-safe order; [`routes`]: the
//!   Gateway API routes and the stable and canary Services of the traffic routing;
//! - `error`: the errors of a reconcile; [`observe`]: views of cached objects for the core;
//! - [`leader`]: the leader election; [`fault`]: the kill-point test hook;
//! - [`notify`]: the delivery of notifications, after the status is applied;
//! - `retention`: the periodic sweep of records past their policy's retention;
//! - `shard`: a SafeDeployment's owned objects following it into its shard, and the report of
//!   the SafeDeployments no shard serves.

mod adoption;
mod analysis;
mod apply;
mod attestation;
mod backoff;
pub mod cached;
mod config;
mod error;
mod events;
pub mod fault;
mod finalizers;
pub mod initial_list;
mod jobs;
pub mod leader;
pub mod notify;
pub mod observe;
mod own_writes;
mod owned_cache;
mod policy_gates;
pub mod protobuf;
mod reconcile;
mod retention;
pub mod routes;
mod shard;
mod watch;

pub use initial_list::InitialList;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;
use tracing::{info, warn};

use crate::api::{SafeDeployment, SafeDeploymentPolicy};

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
    /// Serve only the SafeDeployments this label selector matches, on the label
    /// `safedeploy.dev/shard` only (`safedeploy.dev/shard=a`, `safedeploy.dev/shard notin (a,b)`,
    /// `!safedeploy.dev/shard`, ...). Every watch (SafeDeployments, their ReplicaSets and pods)
    /// takes it, so each shard caches only its share; run each shard with its own
    /// `--lease-name`. Default: every SafeDeployment in scope.
    #[arg(long, env = "SAFEDEPLOY_SHARD", value_parser = parse_shard)]
    pub shard: Option<crate::core::shard::ShardSelector>,
    /// Report the SafeDeployments this selector (on `safedeploy.dev/shard`) matches as served by
    /// no shard: the gauge `safedeploy_unsharded_safedeployments` and a Warning Event on each.
    /// Give it to one shard, as the selector of what no shard selects (the chart passes
    /// `safedeploy.dev/shard notin (<every shard>)`).
    #[arg(long, env = "SAFEDEPLOY_UNSHARDED_SELECTOR", value_parser = parse_shard)]
    pub unsharded_selector: Option<crate::core::shard::ShardSelector>,
    /// Seconds between two sweeps of the SafeDeploymentRecords past the retention their
    /// namespace's policy sets (`audit.recordRetention`).
    #[arg(long, env = "SAFEDEPLOY_RECORD_SWEEP_INTERVAL_SECONDS", default_value_t = retention::DEFAULT_SWEEP_INTERVAL_SECONDS, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub record_sweep_interval_seconds: u64,
    /// How each watch reads the objects that exist when it starts: `streaming` (a watch that
    /// begins with them, parsed one by one: the least memory at a start; a server without
    /// the WatchList feature gets `paged` instead) or `paged` (pages of a list, each read whole,
    /// then a watch; every Kubernetes version).
    #[arg(long, env = "SAFEDEPLOY_INITIAL_LIST", value_enum, default_value_t = InitialList::Streaming)]
    pub initial_list: InitialList,
}

fn parse_shard(text: &str) -> Result<crate::core::shard::ShardSelector, String> {
    crate::core::shard::ShardSelector::parse(text).map_err(|e| e.to_string())
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
    /// Owned ReplicaSets (without their pod template), by their SafeDeployment's UID.
    pub replica_sets: owned_cache::OwnedCache<cached::CachedReplicaSet>,
    /// Pods of owned ReplicaSets (as the views the decision reads), by their ReplicaSet's UID.
    pub pods: owned_cache::OwnedCache<cached::WatchedPod>,
    /// Attestation policies.
    pub policies: Store<SafeDeploymentPolicy>,
    /// Name and `resourceVersion` of every ConfigMap in scope (metadata only, no data).
    pub config_map_versions: Store<PartialObjectMeta<ConfigMap>>,
    /// Name and `resourceVersion` of every Secret in scope (metadata only, never data).
    pub secret_versions: Store<PartialObjectMeta<Secret>>,
    /// Publishes the operator's Events.
    pub recorder: events::EventPublisher,
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
    /// Status writes the SafeDeployment cache has not delivered yet (a reconcile on the older
    /// object is deferred).
    pub own_writes: own_writes::OwnWrites,
    /// The notification queue: a reconcile offers its applied status and never waits.
    pub notifier: notify::Notifier,
    /// The shard this process serves (None: every SafeDeployment in scope).
    pub shard: Option<crate::core::shard::ShardSelector>,
    /// When the controller started (the start-up timings count from it).
    pub started: Instant,
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

impl Context {
    /// The context of the reconciles: the caches of `caches`, the leader check of `leadership`
    /// (None without an election), and fresh metrics, readiness and failure counts.
    fn new(
        client: Client,
        caches: &watch::Caches,
        leadership: &Option<leader::Leadership>,
        args: &ControllerArgs,
        started: Instant,
    ) -> Result<Context, ControllerError> {
        let metrics = crate::telemetry::Metrics::default();
        let notifier = notify::Notifier::start(
            client.clone(),
            caches.policies.clone(),
            metrics.clone(),
            events::EventPublisher::new(client.clone(), reporter(args)),
        )
        .map_err(|e| ControllerError::Providers(e.to_string()))?;
        Ok(Context {
            leader: leadership.as_ref().map(|l| l.check()),
            recorder: events::EventPublisher::new(client.clone(), reporter(args)),
            client,
            replica_sets: caches.replica_sets.clone(),
            pods: caches.pods.clone(),
            policies: caches.policies.clone(),
            config_map_versions: caches.config_map_versions.clone(),
            secret_versions: caches.secret_versions.clone(),
            notifier,
            metrics,
            readiness: crate::telemetry::Readiness::default(),
            failures: backoff::Failures::default(),
            own_writes: own_writes::OwnWrites::default(),
            providers: crate::analysis::provider::Providers::new()
                .map_err(|e| ControllerError::Providers(e.to_string()))?,
            shard: args.shard.clone(),
            started,
        })
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

/// Runs the controller until it is stopped: checks the CRD, starts the watches and the HTTP
/// server, joins the leader election (with `--leader-elect`), and reconciles until a signal (or
/// the loss of the Lease) ends it.
pub async fn run(args: ControllerArgs) -> Result<(), ControllerError> {
    let started = Instant::now();
    crate::telemetry::init_logging();
    // `Client::try_default()`, plus the kill-point test hook when its env var is set.
    let fault::Clients {
        main: client,
        owned_reads,
    } = fault::clients().await?;
    let client_ready = started.elapsed();
    let sds: Api<SafeDeployment> = watch::scoped_api(&client, &args.namespace);
    sds.list(&kube::api::ListParams::default().limit(1))
        .await
        .map_err(ControllerError::MissingCrd)?;
    let crd_checked = started.elapsed();
    let watches = watch::Watches::start(
        &client,
        &owned_reads,
        &args.namespace,
        args.shard.as_ref(),
        args.initial_list,
    );
    let signals = Signals::install().map_err(ControllerError::Signal)?;
    let leadership = join_election(&client, &args).await?;
    let context = Arc::new(Context::new(
        client.clone(),
        &watches.caches,
        &leadership,
        &args,
        started,
    )?);
    let listener = tokio::net::TcpListener::bind(args.http_addr).await?;
    let http_addr = listener.local_addr()?;
    let server = tokio::spawn(crate::telemetry::serve(
        listener,
        context.metrics.clone(),
        context.readiness.clone(),
    ));
    let (controller, caches) = watches.controller(sds, &args, leadership.as_ref(), &signals);
    watch::spawn_phase_gauge(controller.store(), context.metrics.clone());
    if let Some(unsharded) = &args.unsharded_selector {
        shard::spawn_unsharded_report(&context, &args.namespace, unsharded.clone());
    }
    watch::spawn_readiness(caches, &context, (client_ready, crd_checked, started));
    retention::spawn(
        context.clone(),
        args.namespace.clone(),
        Duration::from_secs(args.record_sweep_interval_seconds),
    );
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
        None => run_alone(running, &signals).await,
    };
    server.abort();
    outcome
}

/// The source of the operator's events.
fn reporter(args: &ControllerArgs) -> Reporter {
    Reporter {
        controller: "safedeploy".into(),
        instance: Some(args.instance.clone()),
    }
}

/// Joins the leader election with `--leader-elect` (fails fast when RBAC forbids the Lease).
async fn join_election(
    client: &Client,
    args: &ControllerArgs,
) -> Result<Option<leader::Leadership>, ControllerError> {
    if !args.leader_elect {
        return Ok(None);
    }
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
    Ok(Some(leadership))
}

/// Drives the controller of the only replica until it ends (its graceful shutdown starts at the
/// first signal); a second signal forces the shutdown (the reconciles are dropped with the
/// runtime).
async fn run_alone(
    running: impl Future<Output = ()>,
    signals: &Signals,
) -> Result<(), ControllerError> {
    tokio::select! {
        () = running => {}
        () = signals.reached(2) => warn!("second signal: not waiting for running reconciles"),
    }
    Ok(())
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
