//! The owned objects as the operator watches and caches them: a ReplicaSet without its pod
//! template, a pod as its metadata and status only (and, in the cache, as the plain view the
//! decision reads). Fields the operator never reads are not deserialized at all, so they cost
//! neither memory nor parsing. The Kubernetes types hold every field inline: a `Pod` is 2.4 KB
//! and a `ReplicaSet` 2.3 KB before any of their contents, most of it the never-read `PodSpec`,
//! which at 10,000 rollouts made the two caches about 100 MiB (heaptrack, docs/benchmarks.md).
//! Every watched object's metadata is read without its `managedFields` (a tree of JSON maps as
//! large as the object, parsed and dropped for every object of every list), and the controller
//! watches SafeDeployments as [`WatchedSafeDeployment`] for the same reason.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::PodStatus;
use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer, Serialize};

use crate::api::health::PodView;
use crate::api::labels::LABEL_NAME;
use crate::api::{SafeDeployment, SafeDeploymentSpec, SafeDeploymentStatus};

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

/// A SafeDeployment as the controller's watch reads it: the whole object but `managedFields`
/// (see [`lean_object_meta`]). The controller caches it as a [`SafeDeployment`].
#[derive(Clone, Debug, Deserialize)]
pub struct WatchedSafeDeployment {
    #[serde(deserialize_with = "lean_object_meta")]
    metadata: ObjectMeta,
    spec: SafeDeploymentSpec,
    #[serde(default)]
    status: Option<SafeDeploymentStatus>,
}

impl From<WatchedSafeDeployment> for SafeDeployment {
    fn from(sd: WatchedSafeDeployment) -> Self {
        SafeDeployment {
            metadata: sd.metadata,
            spec: sd.spec,
            status: sd.status,
        }
    }
}

impl kube::Resource for WatchedSafeDeployment {
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

    #[test]
    fn a_watched_safe_deployment_is_the_safe_deployment_without_managed_fields() {
        let object = serde_json::json!({
            "apiVersion": "safedeploy.dev/v1alpha1", "kind": "SafeDeployment",
            "metadata": full_metadata(),
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "app", "image": "i:1"}]}},
                     "strategy": {"canary": {"steps": [{"setWeight": 50}]}}},
            "status": {"phase": "Healthy", "stableRevision": "abc"}
        });
        let mut full: SafeDeployment = serde_json::from_value(object.clone()).unwrap();
        let watched: WatchedSafeDeployment = serde_json::from_value(object).unwrap();
        let converted = SafeDeployment::from(watched);
        assert_eq!(converted.metadata.managed_fields, None);
        full.metadata.managed_fields = None;
        assert_eq!(
            serde_json::to_value(&converted).unwrap(),
            serde_json::to_value(&full).unwrap()
        );
        assert_eq!(converted.spec, full.spec);
        assert_eq!(
            WatchedSafeDeployment::url_path(&(), Some("ns")),
            SafeDeployment::url_path(&(), Some("ns"))
        );
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
