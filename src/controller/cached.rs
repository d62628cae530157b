//! The objects as the operator watches and caches them: a SafeDeployment as its metadata and
//! its spec and status in compact JSON, compressed ([`CachedSafeDeployment`]), a ReplicaSet
//! watched without its pod template and cached as the few fields the reconcile reads
//! ([`OwnedReplicaSet`]), a pod as its metadata and status only (and, in the cache, as the
//! plain view the decision reads). Fields the operator never reads are not deserialized at
//! all, so they cost neither memory nor parsing. The Kubernetes types hold every field inline:
//! a `Pod` is 2.4 KB and a `ReplicaSet` 2.3 KB before any of their contents, most of it the
//! never-read `PodSpec`, which at 10,000 rollouts made the two caches about 100 MiB (heaptrack,
//! docs/benchmarks.md).
//! Every watched object's metadata is read without its `managedFields` (a tree of JSON maps as
//! large as the object, parsed and dropped for every object of every list).

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::PodStatus;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer, Serialize};

use crate::api::health::PodView;
use crate::api::labels::{
    ANNOTATION_CONFIG_OBJECTS, ANNOTATION_CONFIG_VERSIONS, ANNOTATION_REJECTED, LABEL_BASELINE_OF,
    LABEL_COMPONENT, LABEL_NAME, LABEL_REVISION, LABEL_ROLE, ROLE_BASELINE,
};
use crate::api::routing::RouteKind;
use crate::api::{Phase, SafeDeployment, SafeDeploymentSpec, SafeDeploymentStatus};
use crate::core::config::{ConfigObjectRef, referenced_objects};

mod body;

pub use body::{CacheReadError, body_dictionary};

/// `ObjectMeta` as the watches read it: every field but `managedFields`, which serde skips
/// without building it (the operator never reads it, and each cache dropped it anyway).
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct LeanObjectMeta {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

/// Reads an object's metadata without its `managedFields` (`deserialize_with` of the watched
/// types' `metadata`).
pub fn lean_object_meta<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<ObjectMeta, D::Error> {
    let m = LeanObjectMeta::deserialize(deserializer)?;
    Ok(ObjectMeta {
        annotations: m.annotations,
        creation_timestamp: m.creation_timestamp,
        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
        deletion_timestamp: m.deletion_timestamp,
        finalizers: m.finalizers,
        generate_name: m.generate_name,
        generation: m.generation,
        labels: m.labels,
        managed_fields: None,
        name: m.name,
        namespace: m.namespace,
        owner_references: m.owner_references,
        resource_version: m.resource_version,
        self_link: m.self_link,
        uid: m.uid,
    })
}

/// A SafeDeployment as the watch reads it: the whole object but `managedFields` (see
/// [`lean_object_meta`]); [`CachedSafeDeployment`] is made from it.
#[derive(Clone, Debug, Deserialize)]
struct WatchedSafeDeployment {
    #[serde(deserialize_with = "lean_object_meta")]
    metadata: ObjectMeta,
    spec: SafeDeploymentSpec,
    #[serde(default)]
    status: Option<SafeDeploymentStatus>,
}

/// The annotation `kubectl apply` keeps a whole copy of the last applied object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no reconcile reads of a SafeDeployment's metadata: `managedFields` and the
/// `kubectl apply` copy of the object (each about as large as the spec; the writes that need
/// the live object read it first).
fn trim_metadata(metadata: &mut ObjectMeta) {
    metadata.managed_fields = None;
    if let Some(annotations) = metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        // An emptied BTreeMap keeps its node (about 540 bytes per object).
        if annotations.is_empty() {
            metadata.annotations = None;
        }
    }
}

/// A SafeDeployment as the controller caches it: its metadata, its spec and status as compact
/// JSON compressed with LZ4 against [`body_dictionary`], and the few facts the watches'
/// mappings scan every cached object for (its phase, the ConfigMaps and Secrets it refers to,
/// the routes it steers). Parsed, a SafeDeployment takes about 12.6 KB of heap in 93
/// allocations, most of it the inline Kubernetes types of its pod template and the strings of
/// its status; cached, about 1 KB in 6 (`cargo bench --bench cache_memory`). A reconcile reads
/// the whole object with [`CachedSafeDeployment::expand`] (about 14 µs: 3 to decompress, 11 to
/// parse).
#[derive(Clone, Debug)]
pub struct CachedSafeDeployment {
    metadata: ObjectMeta,
    /// `{"spec": ..., "status": ...}`, as serde writes [`SafeDeploymentSpec`] and
    /// [`SafeDeploymentStatus`], LZ4-compressed against [`body_dictionary`] with its length
    /// in front.
    body: Box<[u8]>,
    phase: Phase,
    config_references: Box<[ConfigObjectRef]>,
    routes: Box<[(RouteKind, Box<str>)]>,
}

impl CachedSafeDeployment {
    /// The cached form of `sd` (its metadata without `managedFields` and the `kubectl apply` copy).
    pub fn new(sd: SafeDeployment) -> Result<Self, serde_json::Error> {
        let SafeDeployment {
            mut metadata,
            spec,
            status,
        } = sd;
        trim_metadata(&mut metadata);
        let body = body::encode(&spec, &status)?;
        let routes = spec
            .strategy
            .canary
            .traffic_routing
            .iter()
            .flat_map(|routing| routing.routes())
            .map(|(kind, reference)| (kind, reference.name.as_str().into()))
            .collect();
        Ok(CachedSafeDeployment {
            metadata,
            body,
            phase: status.as_ref().map(|s| s.phase).unwrap_or_default(),
            config_references: config_references(&spec).into_iter().collect(),
            routes,
        })
    }

    /// The whole SafeDeployment (metadata, spec and status), parsed from the cache.
    pub fn expand(&self) -> Result<SafeDeployment, CacheReadError> {
        let (spec, status) = body::decode(&self.body)?;
        Ok(SafeDeployment {
            metadata: self.metadata.clone(),
            spec,
            status,
        })
    }

    /// Its phase (`Pending` before it has a status).
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether its spec refers to `object` (see [`config_references`]).
    pub fn refers_to(&self, object: &ConfigObjectRef) -> bool {
        self.config_references.contains(object)
    }

    /// Whether its traffic routing steers the route of this kind and name.
    pub fn steers(&self, kind: RouteKind, name: &str) -> bool {
        self.routes.iter().any(|(k, n)| *k == kind && **n == *name)
    }
}

impl<'de> Deserialize<'de> for CachedSafeDeployment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let WatchedSafeDeployment {
            metadata,
            spec,
            status,
        } = WatchedSafeDeployment::deserialize(deserializer)?;
        CachedSafeDeployment::new(SafeDeployment {
            metadata,
            spec,
            status,
        })
        .map_err(serde::de::Error::custom)
    }
}

impl kube::Resource for CachedSafeDeployment {
    type DynamicType = ();
    type Scope = <SafeDeployment as kube::Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        SafeDeployment::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        SafeDeployment::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        SafeDeployment::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        SafeDeployment::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The ConfigMaps and Secrets `spec` names: its attestation source, the configuration its pod
/// templates use, and their image pull Secrets. A change of one of them wakes the
/// SafeDeployment.
pub fn config_references(spec: &SafeDeploymentSpec) -> BTreeSet<ConfigObjectRef> {
    let attestation = spec.attestation.as_ref();
    let attestation_sources = [
        attestation
            .and_then(|a| a.config_map_ref.as_ref())
            .map(|r| ConfigObjectRef::config_map(&r.name)),
        attestation
            .and_then(|a| a.secret_ref.as_ref())
            .map(|r| ConfigObjectRef::secret(&r.name)),
    ];
    let templates = spec.template.iter().chain(
        spec.components
            .iter()
            .flatten()
            .filter(|_| spec.template.is_none())
            .map(|component| &component.template),
    );
    let mut references: BTreeSet<ConfigObjectRef> =
        attestation_sources.into_iter().flatten().collect();
    for template in templates {
        references.extend(referenced_objects(template));
        let pull_secrets = template
            .spec
            .iter()
            .flat_map(|pod| pod.image_pull_secrets.iter().flatten());
        references.extend(pull_secrets.map(|s| ConfigObjectRef::secret(&s.name)));
    }
    references
}

/// Makes `$slim` the same Kubernetes resource as `$full` (the same API path, kind and scope),
/// so an `Api<$slim>` watches `$full` objects and parses them into `$slim`.
macro_rules! slim_resource {
    ($slim:ty, $full:ty) => {
        impl k8s_openapi::Resource for $slim {
            const API_VERSION: &'static str = <$full as k8s_openapi::Resource>::API_VERSION;
            const GROUP: &'static str = <$full as k8s_openapi::Resource>::GROUP;
            const KIND: &'static str = <$full as k8s_openapi::Resource>::KIND;
            const VERSION: &'static str = <$full as k8s_openapi::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str =
                <$full as k8s_openapi::Resource>::URL_PATH_SEGMENT;
            type Scope = <$full as k8s_openapi::Resource>::Scope;
        }

        impl k8s_openapi::Metadata for $slim {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// A ReplicaSet as watched and cached: its metadata, size and status (not its pod template).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct CachedReplicaSet {
    /// Standard object metadata (without `managedFields`).
    #[serde(deserialize_with = "lean_object_meta")]
    pub metadata: ObjectMeta,
    /// The desired size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<CachedReplicaSetSpec>,
    /// The observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReplicaSetStatus>,
}

/// What the operator reads of a ReplicaSet's spec.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct CachedReplicaSetSpec {
    /// Desired pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

slim_resource!(CachedReplicaSet, ReplicaSet);

impl From<&ReplicaSet> for CachedReplicaSet {
    fn from(rs: &ReplicaSet) -> Self {
        CachedReplicaSet {
            metadata: rs.metadata.clone(),
            spec: rs.spec.as_ref().map(|s| CachedReplicaSetSpec {
                replicas: s.replicas,
            }),
            status: rs.status.clone(),
        }
    }
}

/// What the ReplicaSet cache keeps of an owned ReplicaSet: its identity, the operator's labels
/// and annotations the reconcile reads, and its size. The watched [`CachedReplicaSet`] holds
/// its labels and annotations as `BTreeMap`s (a 540-byte node each, whatever they hold) and its
/// owner references (read once, when the cache files it under its controller): about 2.9 KB
/// an object, where this takes a few hundred bytes, and a SafeDeployment has two ReplicaSets
/// after each change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnedReplicaSet {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Its UID (the key of its pods in the pod cache).
    pub uid: Option<String>,
    /// The revision it runs ([`LABEL_REVISION`]).
    pub revision: Option<String>,
    /// The component it runs ([`LABEL_COMPONENT`]).
    pub component: Option<String>,
    /// Whether it is a fresh baseline ([`LABEL_ROLE`] `baseline`), not a revision.
    pub baseline: bool,
    /// The stable revision a fresh baseline runs ([`LABEL_BASELINE_OF`]).
    pub baseline_of: Option<String>,
    /// Whether its revision was rejected ([`ANNOTATION_REJECTED`]).
    pub rejected: bool,
    /// The configuration digests it records ([`ANNOTATION_CONFIG_OBJECTS`]), as written.
    pub config_objects: Option<String>,
    /// The configuration versions it records ([`ANNOTATION_CONFIG_VERSIONS`]), as written.
    pub config_versions: Option<String>,
    /// Desired pods (`spec.replicas`; 0 when unset).
    pub replicas: i32,
    /// Available pods (`status.availableReplicas`; 0 when unset).
    pub available_replicas: i32,
}

impl OwnedReplicaSet {
    /// What the cache keeps of `rs`.
    pub fn of(rs: &CachedReplicaSet) -> OwnedReplicaSet {
        let label = |key: &str| rs.metadata.labels.as_ref()?.get(key).cloned();
        let annotation = |key: &str| rs.metadata.annotations.as_ref()?.get(key).cloned();
        OwnedReplicaSet {
            name: rs.metadata.name.clone().unwrap_or_default(),
            namespace: rs.metadata.namespace.clone(),
            uid: rs.metadata.uid.clone(),
            revision: label(LABEL_REVISION),
            component: label(LABEL_COMPONENT),
            baseline: label(LABEL_ROLE).as_deref() == Some(ROLE_BASELINE),
            baseline_of: label(LABEL_BASELINE_OF),
            rejected: annotation(ANNOTATION_REJECTED).is_some(),
            config_objects: annotation(ANNOTATION_CONFIG_OBJECTS),
            config_versions: annotation(ANNOTATION_CONFIG_VERSIONS),
            replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            available_replicas: rs
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0),
        }
    }
}

/// A pod as watched: its metadata and status (not its spec).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct WatchedPod {
    /// Standard object metadata (without `managedFields`).
    #[serde(deserialize_with = "lean_object_meta")]
    pub metadata: ObjectMeta,
    /// The observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodStatus>,
}

slim_resource!(WatchedPod, k8s_openapi::api::core::v1::Pod);

/// What the pod cache keeps of a pod: whose it is and the view the decision reads.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedPod {
    /// The pod's namespace.
    pub namespace: Option<String>,
    /// The SafeDeployment its [`LABEL_NAME`] label names.
    pub rollout: Option<String>,
    /// Whether it is a fresh baseline's pod.
    pub baseline: bool,
    /// The view of the pod; None when it lacks the operator's labels or a creation time.
    pub view: Option<PodView>,
}

impl CachedPod {
    /// What the cache keeps of `pod`.
    pub fn of(pod: &WatchedPod) -> CachedPod {
        let labels = pod.metadata.labels.as_ref();
        CachedPod {
            namespace: pod.metadata.namespace.clone(),
            rollout: labels.and_then(|l| l.get(LABEL_NAME)).cloned(),
            baseline: labels.is_some_and(super::observe::is_baseline),
            view: super::observe::pod_view(pod),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::labels::{LABEL_COMPONENT, LABEL_REVISION, LABEL_ROLE, ROLE_BASELINE};
    use kube::Resource;

    #[test]
    fn the_slim_types_address_the_kubernetes_resources() {
        assert_eq!(
            CachedReplicaSet::url_path(&(), Some("ns")),
            ReplicaSet::url_path(&(), Some("ns"))
        );
        assert_eq!(
            WatchedPod::url_path(&(), Some("ns")),
            k8s_openapi::api::core::v1::Pod::url_path(&(), Some("ns"))
        );
    }

    /// Metadata as the API server sends it: every field set, and the `managedFields` of two
    /// managers.
    fn full_metadata() -> serde_json::Value {
        serde_json::json!({
            "name": "web", "generateName": "we", "namespace": "ns", "uid": "u1",
            "resourceVersion": "42", "generation": 3, "selfLink": "/x",
            "creationTimestamp": "2026-12-05T20:05:33Z",
            "deletionTimestamp": "2026-12-05T21:00:00Z", "deletionGracePeriodSeconds": 30,
            "labels": {"app": "web"}, "annotations": {"a": "b"}, "finalizers": ["f"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o", "uid": "u0",
                                 "controller": true}],
            "managedFields": [
                {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                 "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}}},
                {"manager": "safedeploy", "operation": "Apply", "subresource": "status",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:phase": {}}}}
            ]
        })
    }

    #[test]
    fn lean_metadata_is_the_full_metadata_without_managed_fields() {
        let mut full: ObjectMeta = serde_json::from_value(full_metadata()).unwrap();
        assert_eq!(full.managed_fields.as_ref().map(Vec::len), Some(2));
        let lean = lean_object_meta(full_metadata()).unwrap();
        assert_eq!(lean.managed_fields, None);
        full.managed_fields = None;
        assert_eq!(lean, full, "a field other than managedFields was lost");
        // And the smallest metadata still reads.
        let bare = lean_object_meta(serde_json::json!({})).unwrap();
        assert_eq!(bare, ObjectMeta::default());
    }

    /// A SafeDeployment as the API server sends it, with most optional fields of its spec and
    /// a status after a promotion and a revert.
    fn rich_safe_deployment() -> serde_json::Value {
        let mut metadata = full_metadata();
        metadata["annotations"] = serde_json::json!({
            LAST_APPLIED: "{\"spec\":{}}", "safedeploy.dev/paused": "true"
        });
        serde_json::json!({
            "apiVersion": "safedeploy.dev/v1alpha1", "kind": "SafeDeployment",
            "metadata": metadata,
            "spec": {
                "replicas": 3, "minReadySeconds": 5, "revisionHistoryLimit": 4,
                "progressDeadline": "10m",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"x": "y"}},
                    "spec": {"imagePullSecrets": [{"name": "regcred"}],
                        "containers": [{"name": "app", "image": "i:1",
                            "envFrom": [{"configMapRef": {"name": "app-config"}}],
                            "env": [{"name": "P", "valueFrom":
                                {"secretKeyRef": {"name": "db", "key": "p"}}}],
                            "resources": {"limits": {"cpu": "500m"}},
                            "ports": [{"containerPort": 8080}]}]}},
                "strategy": {"canary": {
                    "steps": [{"setWeight": 20}, {"pause": {"duration": "30s"}},
                              {"analysis": {"template": "errors"}}, {"pause": {}},
                              {"setWeight": 100}],
                    "maxUnavailable": 1, "backgroundAnalysis": "errors", "baseline": "Fresh",
                    "trafficRouting": {"gatewayAPI": {
                        "httpRoutes": [{"name": "web-route", "rule": {"index": 0}}],
                        "grpcRoutes": [{"name": "web-grpc"}]},
                        "port": 80}}},
                "health": {"restarts": {"target": 0, "acceptable": 1, "critical": 3},
                           "startupLatencySeconds": {"target": 10.5, "acceptable": 30,
                                                     "critical": 60}},
                "analyses": [{"name": "errors", "interval": "10s", "count": 3,
                    "metrics": [{"name": "error-ratio",
                        "provider": {"prometheus": {"address": "http://prom:9090",
                            "query": "sum(rate(x{version=\"{{canary}}\"}[1m]))",
                            "timeout": "1s"}},
                        "direction": "lowerIsBetter",
                        "thresholds": {"target": 0.005, "acceptable": 0.01, "critical": 0.02},
                        "onError": "Inconclusive", "consecutiveErrorLimit": 1}]}],
                "attestation": {"secretRef": {"name": "att", "key": "a.json"}}
            },
            "status": {
                "observedGeneration": 3, "phase": "Healthy", "message": "revision b is stable",
                "conditions": [{"type": "Ready", "status": "True", "reason": "RolloutComplete",
                    "message": "revision b is stable", "observedGeneration": 3,
                    "lastTransitionTime": "2026-12-05T23:10:51Z"}],
                "replicas": 3, "selector": "app=web", "stableRevision": "b",
                "canaryWeight": 0,
                "revisions": [{"number": 1, "hash": "a", "images": {"main/app": "i:0"}},
                              {"number": 2, "hash": "b", "images": {"main/app": "i:1"},
                               "config": {"ConfigMap/app-config": "d1"}}],
                "rejectedRevisions": ["c"],
                "health": [{"signal": "restarts", "value": 0, "baseline": 0.5,
                    "thresholds": {"target": 0, "acceptable": 1, "critical": 3},
                    "verdict": "Target", "measuredAt": "2026-12-05T23:10:41.081446473Z"}],
                "attestation": {"revision": "b", "verified": true, "reason": "Verified",
                                "message": "ok"},
                "history": [{"revision": 2, "hash": "b", "images": {"main/app": "i:1"},
                    "outcome": "Promoted", "reason": "every step passed",
                    "startedAt": "2026-12-05T23:10:41Z", "finishedAt": "2026-12-05T23:10:51Z",
                    "actor": "alice",
                    "steps": [{"step": 0, "weight": 20, "at": "2026-12-05T23:10:42Z"}]}],
                "handledRequests": {"safedeploy.dev/promote": "1"},
                "stepsDigest": "s1", "recordedThrough": "2"
            }
        })
    }

    #[test]
    fn the_cached_safe_deployment_expands_to_the_object_without_what_no_reconcile_reads() {
        let object = rich_safe_deployment();
        let mut full: SafeDeployment = serde_json::from_value(object.clone()).unwrap();
        assert!(full.spec.strategy.canary.traffic_routing.is_some());
        assert_eq!(full.status.as_ref().unwrap().history.len(), 1);
        let cached: CachedSafeDeployment = serde_json::from_value(object).unwrap();
        let expanded = cached.expand().unwrap();
        // managedFields and the applied copy are gone; every other field reads the same.
        assert_eq!(expanded.metadata.managed_fields, None);
        let annotations = expanded.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["safedeploy.dev/paused"],
            "requests and pauses are annotations the reconcile reads: they stay"
        );
        full.metadata.managed_fields = None;
        full.metadata.annotations = Some(annotations);
        assert_eq!(expanded.spec, full.spec);
        assert_eq!(
            serde_json::to_value(&expanded).unwrap(),
            serde_json::to_value(&full).unwrap()
        );
        assert_eq!(cached.phase(), Phase::Healthy);
        assert_eq!(
            CachedSafeDeployment::url_path(&(), Some("ns")),
            SafeDeployment::url_path(&(), Some("ns"))
        );
        // A new object, before its first status, reads as Pending and without a status.
        let mut fresh = rich_safe_deployment();
        fresh.as_object_mut().unwrap().remove("status");
        let cached: CachedSafeDeployment = serde_json::from_value(fresh).unwrap();
        assert_eq!(cached.phase(), Phase::Pending);
        assert_eq!(cached.expand().unwrap().status, None);
    }

    #[test]
    fn the_cached_safe_deployment_keeps_what_the_mappings_scan_for() {
        let cached: CachedSafeDeployment = serde_json::from_value(rich_safe_deployment()).unwrap();
        let (cm, secret) = (ConfigObjectRef::config_map, ConfigObjectRef::secret);
        for object in [
            cm("app-config"),
            secret("db"),
            secret("regcred"),
            secret("att"),
        ] {
            assert!(cached.refers_to(&object), "{object:?}");
        }
        for object in [cm("att"), cm("db"), secret("app-config"), cm("web")] {
            assert!(!cached.refers_to(&object), "{object:?}");
        }
        assert!(cached.steers(RouteKind::Http, "web-route"));
        assert!(cached.steers(RouteKind::Grpc, "web-grpc"));
        assert!(!cached.steers(RouteKind::Grpc, "web-route"));
        assert!(!cached.steers(RouteKind::Http, "other"));
    }

    #[test]
    fn the_cached_safe_deployment_is_a_fraction_of_the_parsed_one() {
        // The cached body is the object's JSON without its metadata, compressed: a few hundred
        // bytes in one allocation, where the parsed spec alone holds a 2 KB Container and a
        // 1.8 KB template inline.
        let cached: CachedSafeDeployment = serde_json::from_value(rich_safe_deployment()).unwrap();
        let parsed_inline = std::mem::size_of::<SafeDeployment>()
            + std::mem::size_of::<k8s_openapi::api::core::v1::Container>();
        let json = body::decompress(&cached.body).unwrap();
        assert!(
            cached.body.len() < parsed_inline / 2,
            "{} compressed bytes against {parsed_inline} bytes of inline fields",
            cached.body.len()
        );
        // The object's metadata is kept parsed, once: not in the body.
        let text = String::from_utf8(json).unwrap();
        assert!(!text.contains("managedFields") && !text.contains("resourceVersion"));
    }

    #[test]
    fn a_corrupt_body_is_a_typed_error_not_a_panic() {
        let mut cached: CachedSafeDeployment =
            serde_json::from_value(rich_safe_deployment()).unwrap();
        let mut body = cached.body.to_vec();
        // Cut in half: the compressed sequences end before the length in front.
        body.truncate(body.len() / 2);
        cached.body = body.into_boxed_slice();
        assert!(matches!(
            cached.expand(),
            Err(CacheReadError::Decompress(_))
        ));
        cached.body = body::compress(b"{\"spec\":");
        assert!(matches!(cached.expand(), Err(CacheReadError::Parse(_))));
    }

    #[test]
    fn the_owned_caches_read_metadata_without_managed_fields() {
        let rs: CachedReplicaSet =
            serde_json::from_value(serde_json::json!({"metadata": full_metadata()})).unwrap();
        let pod: WatchedPod =
            serde_json::from_value(serde_json::json!({"metadata": full_metadata()})).unwrap();
        assert_eq!(rs.metadata.managed_fields, None);
        assert_eq!(pod.metadata.managed_fields, None);
        assert_eq!(rs.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(
            pod.metadata.owner_references.as_ref().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn a_replica_set_is_read_without_its_pod_template() {
        let rs: CachedReplicaSet = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "uid": "u1", "annotations": {"a": "b"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}}},
            "status": {"replicas": 3, "availableReplicas": 2}
        }))
        .unwrap();
        assert_eq!(rs.spec.as_ref().and_then(|s| s.replicas), Some(3));
        assert_eq!(
            rs.status.as_ref().and_then(|s| s.available_replicas),
            Some(2)
        );
        assert_eq!(rs.metadata.annotations.as_ref().unwrap()["a"], "b");
        // Nothing of the template is kept: the serialized form has no trace of it.
        let back = serde_json::to_string(&rs).unwrap();
        assert!(
            !back.contains("template") && !back.contains("containers"),
            "{back}"
        );
    }

    #[test]
    fn the_replica_set_cache_keeps_what_the_reconcile_reads() {
        let watched: CachedReplicaSet = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "ns", "uid": "u1",
                "labels": {"app": "web", LABEL_NAME: "web", LABEL_REVISION: "abc",
                           LABEL_COMPONENT: "main"},
                "annotations": {ANNOTATION_REJECTED: "t", ANNOTATION_CONFIG_OBJECTS: "{}",
                                ANNOTATION_CONFIG_VERSIONS: "{\"configmap/c\":\"4\"}",
                                "safedeploy.dev/revision-number": "2"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "web",
                                     "uid": "u0", "controller": true}]},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 3, "availableReplicas": 2}
        }))
        .unwrap();
        let owned = OwnedReplicaSet::of(&watched);
        assert_eq!(
            owned,
            OwnedReplicaSet {
                name: "web-abc".into(),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                revision: Some("abc".into()),
                component: Some("main".into()),
                baseline: false,
                baseline_of: None,
                rejected: true,
                config_objects: Some("{}".into()),
                config_versions: Some("{\"configmap/c\":\"4\"}".into()),
                replicas: 3,
                available_replicas: 2,
            }
        );
        // A fresh baseline, and a bare ReplicaSet (no spec, no status, no labels).
        let mut baseline = watched.clone();
        let labels = baseline.metadata.labels.get_or_insert_default();
        labels.insert(LABEL_ROLE.into(), ROLE_BASELINE.into());
        labels.insert(LABEL_BASELINE_OF.into(), "s1".into());
        let baseline = OwnedReplicaSet::of(&baseline);
        assert!(baseline.baseline);
        assert_eq!(baseline.baseline_of.as_deref(), Some("s1"));
        let bare = OwnedReplicaSet::of(&CachedReplicaSet::default());
        assert_eq!(bare, OwnedReplicaSet::default());
    }

    #[test]
    fn the_pod_cache_keeps_the_view_of_a_full_pod() {
        let pod = |role: Option<&str>| -> WatchedPod {
            let mut labels = serde_json::json!({
                LABEL_NAME: "web", LABEL_REVISION: "abc", LABEL_COMPONENT: "main"
            });
            if let Some(role) = role {
                labels[LABEL_ROLE] = serde_json::json!(role);
            }
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-abc-x", "namespace": "ns", "labels": labels,
                              "creationTimestamp": "2026-01-01T00:00:00Z",
                              "annotations": {"big": "x".repeat(1000)}},
                "spec": {"containers": [{"name": "c", "image": "i",
                                          "env": [{"name": "A", "value": "1"}]}]},
                "status": {"phase": "Running",
                           "conditions": [{"type": "Ready", "status": "True",
                                           "lastTransitionTime": "2026-01-01T00:00:07Z"}],
                           "containerStatuses": [{"name": "c", "image": "i", "imageID": "",
                                                  "ready": true, "restartCount": 4,
                                                  "state": {"running": {}}}]}
            }))
            .unwrap()
        };
        let cached = CachedPod::of(&pod(None));
        assert_eq!(cached.namespace.as_deref(), Some("ns"));
        assert_eq!(cached.rollout.as_deref(), Some("web"));
        assert!(!cached.baseline);
        let view = cached.view.unwrap();
        assert_eq!(
            (view.name.as_str(), view.revision.as_str()),
            ("web-abc-x", "abc")
        );
        assert!(view.ready);
        assert_eq!(view.restarts, 4);
        assert_eq!(view.ready_at.map(|t| t.as_second()), Some(1767225607));
        assert!(CachedPod::of(&pod(Some(ROLE_BASELINE))).baseline);
    }
}
