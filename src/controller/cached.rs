//! The owned objects as the operator watches and caches them: a ReplicaSet without its pod
//! template, a pod as its metadata and status only (and, in the cache, as the plain view the
//! decision reads). Fields the operator never reads are not deserialized at all, so they cost
//! neither memory nor parsing. The Kubernetes types hold every field inline: a `Pod` is 2.4 KB
//! and a `ReplicaSet` 2.3 KB before any of their contents, most of it the never-read `PodSpec`,
//! which at 10,000 rollouts made the two caches about 100 MiB (heaptrack, docs/benchmarks.md).

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::PodStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::api::health::PodView;
use crate::api::labels::LABEL_NAME;

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
    /// Standard object metadata.
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
    /// Standard object metadata.
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
