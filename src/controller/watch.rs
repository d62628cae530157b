//! What the controller watches, and how a change maps to the SafeDeployments to look at again:
//! the caches the reconciles read (SafeDeployments, owned ReplicaSets and their pods, read as
//! protobuf, trimmed and kept by owner; policies; the metadata-only versions of ConfigMaps and Secrets), the metadata-only stream
//! of analysis Jobs and of adopted Deployments (not cached), the controller built on their
//! streams, and the background tasks around it (the phase gauge, readiness once every cache
//! synced). Every cache is trimmed to what the operator reads before it is stored, and
//! every list that can be large is paged, so memory follows the number of objects, not the
//! size of what users put in them.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::warn;

use super::cached::{CachedReplicaSet, CachedSafeDeployment, WatchedPod};
use super::initial_list::{self, InitialList};
use super::owned_cache::{Owned, OwnedCache, owned_cache};
use super::{ControllerArgs, Signals, leader, observe};
use crate::analysis::provider::job::JOB_LABEL;
use crate::api::adoption::LABEL_ADOPTED_BY;
use crate::api::labels::LABEL_NAME;
use crate::api::{SafeDeployment, SafeDeploymentPolicy};
use crate::core::config::{ConfigKind, ConfigObjectRef};
use crate::core::shard::ShardSelector;

/// The caches the reconciles read.
#[derive(Clone)]
pub struct Caches {
    /// Owned ReplicaSets (without their pod template), by their SafeDeployment's UID.
    pub replica_sets: OwnedCache<CachedReplicaSet>,
    /// Pods of owned ReplicaSets (as the views the decision reads), by their ReplicaSet's UID.
    pub pods: OwnedCache<WatchedPod>,
    /// Attestation policies.
    pub policies: Store<SafeDeploymentPolicy>,
    /// Name and `resourceVersion` of every ConfigMap in scope.
    pub config_map_versions: Store<PartialObjectMeta<ConfigMap>>,
    /// Name and `resourceVersion` of every Secret in scope.
    pub secret_versions: Store<PartialObjectMeta<Secret>>,
}

type Changes<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// The caches, and the streams of their changes the controller maps to SafeDeployments.
pub struct Watches {
    /// The caches (filled as the streams are polled).
    pub caches: Caches,
    replica_sets: Changes<CachedReplicaSet>,
    pods: Changes<WatchedPod>,
    config_maps: Changes<PartialObjectMeta<ConfigMap>>,
    secrets: Changes<PartialObjectMeta<Secret>>,
    jobs: Changes<PartialObjectMeta<Job>>,
    deployments: Changes<PartialObjectMeta<Deployment>>,
    /// One item per policy change (coalesced).
    policy_changes: futures::channel::mpsc::Receiver<()>,
    /// How these watches, and the controller's, read their initial objects.
    initial_list: InitialList,
}

impl Watches {
    /// Starts the watches in the operator's scope (`namespace`, or all). Only what the operator
    /// owns is watched (by label), trimmed to what the decision reads.
    /// With a `shard`, the owned ReplicaSets and pods are those of the shard only (the
    /// operator copies the shard label onto them). Those two watches go through `owned_reads`
    /// (the client that reads protobuf, [`super::protobuf`]), the others through `client`.
    pub fn start(
        client: &Client,
        owned_reads: &Client,
        namespace: &Option<String>,
        shard: Option<&ShardSelector>,
        initial_list: InitialList,
    ) -> Watches {
        let base = initial_list.watch_config();
        let owned_selector = shard.map_or_else(|| LABEL_NAME.to_string(), |s| s.and(LABEL_NAME));
        let owned = base.clone().labels(&owned_selector);
        let (rs_cache, replica_sets) = owned_watch(
            scoped_api::<CachedReplicaSet>(owned_reads, namespace),
            owned.clone(),
            observe::trim_replica_set,
        );
        let (pod_cache, pods) = owned_watch(
            scoped_api::<WatchedPod>(owned_reads, namespace),
            owned,
            |_: &mut WatchedPod| {},
        );
        let (policy_store, policy_writer) = reflector::store();
        let policy_stream = initial_list::watch(
            Api::<SafeDeploymentPolicy>::all(client.clone()),
            base.clone(),
        )
        .default_backoff()
        .modify(|p| p.metadata.managed_fields = None)
        .reflect(policy_writer)
        .touched_objects();
        // The policy reflector runs on its own task so its cache fills whatever the controller
        // does.
        let (policy_tx, policy_changes) = futures::channel::mpsc::channel::<()>(1);
        tokio::spawn(async move {
            let mut policy_tx = policy_tx;
            let mut stream = policy_stream.boxed();
            while let Some(event) = stream.next().await {
                if event.is_ok() {
                    // A full channel already holds a pending "look again": dropping this one is
                    // fine.
                    let _ = policy_tx.try_send(());
                }
            }
        });
        // Metadata-only caches of ConfigMaps and Secrets (name and resourceVersion; never data):
        // an edit of an object a revision references is a new revision, and an attestation
        // envelope written by the pipeline re-checks the rollouts that name it. Events of the
        // initial list are not mapped (every SafeDeployment is reconciled at start anyway).
        let (config_map_store, config_maps) =
            version_cache::<ConfigMap>(scoped_api(client, namespace), base.clone());
        let (secret_store, secrets) =
            version_cache::<Secret>(scoped_api(client, namespace), base.clone());
        // The Jobs of `job` analysis metrics, metadata only and not cached: a Job's end (any
        // change moves its resourceVersion) wakes the SafeDeployment that owns it, instead of
        // a poll while the measurement waits. Jobs that ended while the operator was down are
        // read by the reconcile every SafeDeployment gets at start.
        let jobs = changes(
            initial_list::watch(
                scoped_api::<PartialObjectMeta<Job>>(client, namespace),
                base.clone().labels(&format!("{JOB_LABEL}=true")),
            )
            .default_backoff(),
        );
        // Adopted Deployments (`spec.workloadRef`), by the label adoption puts on them, metadata
        // only and not cached: any change (a new template, its pods becoming available) wakes
        // the SafeDeployment that adopted it, which reads the Deployment itself.
        let deployments = changes(
            initial_list::watch(
                scoped_api::<PartialObjectMeta<Deployment>>(client, namespace),
                base.labels(LABEL_ADOPTED_BY),
            )
            .default_backoff(),
        );
        Watches {
            caches: Caches {
                replica_sets: rs_cache,
                pods: pod_cache,
                policies: policy_store,
                config_map_versions: config_map_store,
                secret_versions: secret_store,
            },
            replica_sets,
            pods,
            config_maps: config_maps.boxed(),
            secrets: secrets.boxed(),
            jobs: jobs.boxed(),
            deployments: deployments.boxed(),
            policy_changes,
            initial_list,
        }
    }

    /// The controller of SafeDeployments `sds`, fed by these watches: a change of an owned
    /// ReplicaSet or pod, or of a referenced ConfigMap or Secret, looks at its SafeDeployment
    /// again; a policy change, and a new leader, look at all of them. It stops taking work at
    /// the first signal.
    pub fn controller(
        self,
        sds: Api<SafeDeployment>,
        args: &ControllerArgs,
        leadership: Option<&leader::Leadership>,
        signals: &Signals,
    ) -> (Controller<CachedSafeDeployment>, Caches) {
        // The controller's own SafeDeployment cache, in the compact form it reads (what
        // `Controller::new` would build, with the whole objects parsed).
        let (sd_store, sd_writer) = reflector::store();
        let sds_client = sds.into_client();
        let mut config = self.initial_list.watch_config();
        if let Some(shard) = &args.shard {
            config = config.labels(shard.as_str());
        }
        let sd_changes = initial_list::watch(
            scoped_api::<CachedSafeDeployment>(&sds_client, &args.namespace),
            config,
        )
        .default_backoff()
        .reflect(sd_writer)
        .applied_objects();
        let controller = Controller::for_stream(sd_changes, sd_store).with_config(
            kube::runtime::controller::Config::default()
                .concurrency(args.max_concurrent_reconciles),
        );
        let referrers = controller.store();
        let route_changes =
            super::routes::route_triggers(&sds_client, &args.namespace, referrers.clone());
        let config_referrers = referrers.clone();
        let controller = controller
            .owns_stream(self.replica_sets)
            // A steered route changed (a user's re-apply, a Gateway's verdict): look again.
            .reconcile_on(route_changes)
            .watches_stream(self.config_maps, move |cm: PartialObjectMeta<ConfigMap>| {
                referring(&config_referrers, ConfigKind::ConfigMap, &cm.metadata)
            })
            .watches_stream(self.secrets, move |secret: PartialObjectMeta<Secret>| {
                referring(&referrers, ConfigKind::Secret, &secret.metadata)
            })
            .watches_stream(self.jobs, |job: PartialObjectMeta<Job>| {
                owning_safe_deployment(&job.metadata)
            })
            .watches_stream(self.deployments, |d: PartialObjectMeta<Deployment>| {
                adopting_safe_deployment(&d.metadata)
            })
            .watches_stream(self.pods, |pod: WatchedPod| {
                let name = pod.labels().get(LABEL_NAME)?.clone();
                Some(ObjectRef::<CachedSafeDeployment>::new(&name).within(&pod.namespace()?))
            })
            // A policy change can unblock or block any rollout it selects: look at all of them.
            .reconcile_all_on(futures::stream::select(
                self.policy_changes,
                // A new leader looks at everything: the previous one may have stopped mid-step.
                match leadership {
                    Some(l) => l.became_leader().boxed(),
                    None => futures::stream::pending().boxed(),
                },
            ))
            // Our own signal handling (not `shutdown_on_signal`): at the first signal this
            // replica stands down before the controller stops taking work (see `super::run`).
            .graceful_shutdown_on(signals.reached(1));
        (controller, self.caches)
    }
}

/// Counts the rollouts by phase every 5 s from the local cache (no API calls), so the gauge is
/// right after a restart too.
pub fn spawn_phase_gauge(store: Store<CachedSafeDeployment>, metrics: crate::telemetry::Metrics) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let mut counts = std::collections::BTreeMap::<String, i64>::new();
            for phase in crate::api::Phase::ALL {
                counts.insert(phase.as_str().to_string(), 0);
            }
            for sd in store.state() {
                *counts.entry(sd.phase().as_str().to_string()).or_default() += 1;
            }
            for (kind, count) in counts {
                metrics
                    .rollouts_by_phase
                    .get_or_create(&crate::telemetry::KindLabel { kind })
                    .set(count);
            }
        }
    });
}

/// Marks the controller ready once every cache has synced, and records the start-up timings
/// (`client_ready` and `crd_checked` since `started`).
pub fn spawn_readiness(
    caches: Caches,
    context: &super::Context,
    (client_ready, crd_checked, started): (Duration, Duration, Instant),
) {
    let (readiness, metrics) = (context.readiness.clone(), context.metrics.clone());
    tokio::spawn(async move {
        // The controller holds every reconcile until its own SafeDeployment cache is ready
        // (waiting on a clone of that store here proved unreliable), so these complete the
        // picture.
        let synced = futures::join!(
            caches.replica_sets.wait_until_ready(),
            caches.pods.wait_until_ready(),
            caches.policies.wait_until_ready(),
            caches.config_map_versions.wait_until_ready(),
            caches.secret_versions.wait_until_ready()
        );
        if synced.0.is_ok()
            && synced.1.is_ok()
            && synced.2.is_ok()
            && synced.3.is_ok()
            && synced.4.is_ok()
        {
            let cache_synced = started.elapsed();
            readiness.set_ready();
            metrics.record_startup(client_ready, crd_checked, cache_synced);
        } else {
            warn!("a cache was dropped before it synced; the controller stays unready");
        }
    });
}

/// The owned cache a watch of `K` fills (each object trimmed by `trim` first), and the stream
/// of the objects it touched.
fn owned_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    trim: impl FnMut(&mut K) + Send + 'static,
) -> (OwnedCache<K>, Changes<K>)
where
    K: Owned<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let (cache, mut writer) = owned_cache::<K>();
    let changes = initial_list::watch(api, config)
        .default_backoff()
        .modify(trim)
        .map(move |event| {
            if let Ok(event) = &event {
                writer.apply(event);
            }
            event
        })
        .touched_objects()
        .boxed();
    (cache, changes)
}

/// An API of `K` in the operator's scope (one namespace, or all).
pub fn scoped_api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// The SafeDeployment that adopted a Deployment (its [`LABEL_ADOPTED_BY`] label), if any.
fn adopting_safe_deployment(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<ObjectRef<CachedSafeDeployment>> {
    let name = metadata.labels.as_ref()?.get(LABEL_ADOPTED_BY)?;
    Some(ObjectRef::<CachedSafeDeployment>::new(name).within(metadata.namespace.as_deref()?))
}

/// The SafeDeployment that controls the object (its controller owner reference), if any.
fn owning_safe_deployment(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<ObjectRef<CachedSafeDeployment>> {
    let owner = metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "SafeDeployment")?;
    Some(ObjectRef::<CachedSafeDeployment>::new(&owner.name).within(metadata.namespace.as_deref()?))
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
    config: watcher::Config,
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
        initial_list::watch(api, config)
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
/// [`super::cached::config_references`]).
fn referring(
    store: &Store<CachedSafeDeployment>,
    kind: ConfigKind,
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Vec<ObjectRef<CachedSafeDeployment>> {
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
        .filter(|sd| sd.refers_to(&object))
        .map(|sd| ObjectRef::from_obj(sd.as_ref()))
        .collect()
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
        let refers_to = |spec: &SafeDeploymentSpec, object: &ConfigObjectRef| {
            super::super::cached::config_references(spec).contains(object)
        };
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
    fn a_job_wakes_only_the_safe_deployment_that_controls_it() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
        let owned_by = |kind: &str, controller: Option<bool>| ObjectMeta {
            name: Some("web-smoke-1".into()),
            namespace: Some("shop".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "safedeploy.dev/v1alpha1".into(),
                kind: kind.into(),
                name: "web".into(),
                uid: "u".into(),
                controller,
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(
            owning_safe_deployment(&owned_by("SafeDeployment", Some(true))),
            Some(ObjectRef::<CachedSafeDeployment>::new("web").within("shop"))
        );
        // A tenant's Job that merely lists the SafeDeployment as a non-controller owner, or
        // one controlled by something else, wakes nothing.
        assert_eq!(
            owning_safe_deployment(&owned_by("SafeDeployment", None)),
            None
        );
        assert_eq!(
            owning_safe_deployment(&owned_by("CronJob", Some(true))),
            None
        );
        assert_eq!(owning_safe_deployment(&ObjectMeta::default()), None);
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
