//! The Kubernetes protobuf messages the owned pod and ReplicaSet watches read, declared with
//! only the fields the operator reads (tags from the `generated.proto` files of
//! k8s.io/apimachinery and k8s.io/api v0.36). Protobuf skips a field it does not declare
//! without decoding it, so a pod's spec or a ReplicaSet's pod template costs a length check.
//! Kubernetes' messages are proto2: `optional` keeps presence, and Go writes its non-pointer
//! fields even when they are empty, so [`super::convert`] reads an empty value as absent where
//! the JSON encoding would have omitted it.
//!
//! Text is declared as bytes: Go stores a string's bytes as they came, so an annotation or a
//! status message written through the protobuf API need not be UTF-8, and a protobuf `string`
//! that is not would fail the whole frame, and with it the watch of every rollout. Read as
//! bytes, it is made valid the way Go's JSON encoding does (invalid sequences become U+FFFD).
//! Label keys and values and annotation keys are validated as ASCII names by the API server and
//! stay strings.

use std::collections::BTreeMap;

use bytes::Bytes;

/// The envelope of every protobuf-encoded object (after the 4-byte `k8s\0` prefix):
/// `runtime.Unknown`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Unknown {
    /// The object's `apiVersion` and `kind`.
    #[prost(message, optional, tag = "1")]
    pub type_meta: Option<TypeMeta>,
    /// The object itself, encoded as its `kind`'s message.
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub raw: Option<Bytes>,
    /// An encoding applied to `raw` (never set by the API server's protobuf serializer).
    #[prost(bytes = "vec", optional, tag = "3")]
    pub content_encoding: Option<Vec<u8>>,
}

/// `runtime.TypeMeta`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeMeta {
    /// `apiVersion`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub api_version: Option<Vec<u8>>,
    /// `kind`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub kind: Option<Vec<u8>>,
}

/// One frame of a watch stream: `meta.v1.WatchEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    /// The object, as an [`Unknown`] behind the `k8s\0` prefix.
    #[prost(message, optional, tag = "2")]
    pub object: Option<RawExtension>,
}

/// `runtime.RawExtension`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawExtension {
    /// The encoded object.
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub raw: Option<Bytes>,
}

/// `meta.v1.Time`: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Time {
    /// Seconds.
    #[prost(int64, optional, tag = "1")]
    pub seconds: Option<i64>,
    /// Nanoseconds (always 0 for `Time`, which has second precision).
    #[prost(int32, optional, tag = "2")]
    pub nanos: Option<i32>,
}

/// `meta.v1.ObjectMeta`, without `managedFields` (tag 17), which the operator never reads.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ObjectMeta {
    /// `name`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub name: Option<Vec<u8>>,
    /// `generateName`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub generate_name: Option<Vec<u8>>,
    /// `namespace`.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub namespace: Option<Vec<u8>>,
    /// `selfLink`.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub self_link: Option<Vec<u8>>,
    /// `uid`.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub uid: Option<Vec<u8>>,
    /// `resourceVersion`.
    #[prost(bytes = "vec", optional, tag = "6")]
    pub resource_version: Option<Vec<u8>>,
    /// `generation`.
    #[prost(int64, optional, tag = "7")]
    pub generation: Option<i64>,
    /// `creationTimestamp`.
    #[prost(message, optional, tag = "8")]
    pub creation_timestamp: Option<Time>,
    /// `deletionTimestamp`.
    #[prost(message, optional, tag = "9")]
    pub deletion_timestamp: Option<Time>,
    /// `deletionGracePeriodSeconds`.
    #[prost(int64, optional, tag = "10")]
    pub deletion_grace_period_seconds: Option<i64>,
    /// `labels`.
    #[prost(btree_map = "string, string", tag = "11")]
    pub labels: BTreeMap<String, String>,
    /// `annotations`.
    #[prost(btree_map = "string, bytes", tag = "12")]
    pub annotations: BTreeMap<String, Vec<u8>>,
    /// `ownerReferences`.
    #[prost(message, repeated, tag = "13")]
    pub owner_references: Vec<OwnerReference>,
    /// `finalizers`.
    #[prost(bytes = "vec", repeated, tag = "14")]
    pub finalizers: Vec<Vec<u8>>,
}

/// `meta.v1.OwnerReference`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OwnerReference {
    /// `kind`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub kind: Option<Vec<u8>>,
    /// `name`.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub name: Option<Vec<u8>>,
    /// `uid`.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub uid: Option<Vec<u8>>,
    /// `apiVersion`.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub api_version: Option<Vec<u8>>,
    /// `controller`.
    #[prost(bool, optional, tag = "6")]
    pub controller: Option<bool>,
    /// `blockOwnerDeletion`.
    #[prost(bool, optional, tag = "7")]
    pub block_owner_deletion: Option<bool>,
}

/// `meta.v1.ListMeta`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListMeta {
    /// `resourceVersion`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub resource_version: Option<Vec<u8>>,
    /// `continue`.
    #[prost(string, optional, tag = "3")]
    pub r#continue: Option<String>,
    /// `remainingItemCount`.
    #[prost(int64, optional, tag = "4")]
    pub remaining_item_count: Option<i64>,
}

/// `meta.v1.Status`: an error (or a list's deletion result), in a response or an `ERROR` event.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// `Success` or `Failure`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub status: Option<Vec<u8>>,
    /// What happened, for a person.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub message: Option<Vec<u8>>,
    /// A machine-readable reason (`Expired`, `Forbidden`, ...).
    #[prost(bytes = "vec", optional, tag = "4")]
    pub reason: Option<Vec<u8>>,
    /// Details of the error.
    #[prost(message, optional, tag = "5")]
    pub details: Option<StatusDetails>,
    /// The HTTP status code.
    #[prost(int32, optional, tag = "6")]
    pub code: Option<i32>,
}

/// `meta.v1.StatusDetails`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusDetails {
    /// `name`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub name: Option<Vec<u8>>,
    /// `group`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub group: Option<Vec<u8>>,
    /// `kind`.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub kind: Option<Vec<u8>>,
    /// `causes`.
    #[prost(message, repeated, tag = "4")]
    pub causes: Vec<StatusCause>,
    /// `retryAfterSeconds`.
    #[prost(int32, optional, tag = "5")]
    pub retry_after_seconds: Option<i32>,
    /// `uid`.
    #[prost(bytes = "vec", optional, tag = "6")]
    pub uid: Option<Vec<u8>>,
}

/// `meta.v1.StatusCause`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusCause {
    /// `reason`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub reason: Option<Vec<u8>>,
    /// `message`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub message: Option<Vec<u8>>,
    /// `field`.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub field: Option<Vec<u8>>,
}

/// `core.v1.Pod`: its metadata and status (not its spec).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Pod {
    /// `metadata`.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    /// `status`.
    #[prost(message, optional, tag = "3")]
    pub status: Option<PodStatus>,
}

/// `core.v1.PodList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodList {
    /// `metadata`.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ListMeta>,
    /// `items`.
    #[prost(message, repeated, tag = "2")]
    pub items: Vec<Pod>,
}

/// `core.v1.PodStatus`: what the pod view reads (phase, conditions, container states, the
/// start time), not the addresses, resources or claims.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodStatus {
    /// `phase`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub phase: Option<Vec<u8>>,
    /// `conditions`.
    #[prost(message, repeated, tag = "2")]
    pub conditions: Vec<PodCondition>,
    /// `message`.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub message: Option<Vec<u8>>,
    /// `reason`.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub reason: Option<Vec<u8>>,
    /// `startTime`.
    #[prost(message, optional, tag = "7")]
    pub start_time: Option<Time>,
    /// `containerStatuses`.
    #[prost(message, repeated, tag = "8")]
    pub container_statuses: Vec<ContainerStatus>,
    /// `initContainerStatuses`.
    #[prost(message, repeated, tag = "10")]
    pub init_container_statuses: Vec<ContainerStatus>,
    /// `observedGeneration`.
    #[prost(int64, optional, tag = "17")]
    pub observed_generation: Option<i64>,
}

/// `core.v1.PodCondition`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodCondition {
    /// `type`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub r#type: Option<Vec<u8>>,
    /// `status`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub status: Option<Vec<u8>>,
    /// `lastProbeTime`.
    #[prost(message, optional, tag = "3")]
    pub last_probe_time: Option<Time>,
    /// `lastTransitionTime`.
    #[prost(message, optional, tag = "4")]
    pub last_transition_time: Option<Time>,
    /// `reason`.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub reason: Option<Vec<u8>>,
    /// `message`.
    #[prost(bytes = "vec", optional, tag = "6")]
    pub message: Option<Vec<u8>>,
    /// `observedGeneration`.
    #[prost(int64, optional, tag = "7")]
    pub observed_generation: Option<i64>,
}

/// `core.v1.ContainerStatus`: its identity, readiness, restarts and states.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStatus {
    /// `name`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub name: Option<Vec<u8>>,
    /// `state`.
    #[prost(message, optional, tag = "2")]
    pub state: Option<ContainerState>,
    /// `lastState`.
    #[prost(message, optional, tag = "3")]
    pub last_state: Option<ContainerState>,
    /// `ready`.
    #[prost(bool, optional, tag = "4")]
    pub ready: Option<bool>,
    /// `restartCount`.
    #[prost(int32, optional, tag = "5")]
    pub restart_count: Option<i32>,
    /// `image`.
    #[prost(bytes = "vec", optional, tag = "6")]
    pub image: Option<Vec<u8>>,
    /// `imageID`.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub image_id: Option<Vec<u8>>,
    /// `containerID`.
    #[prost(bytes = "vec", optional, tag = "8")]
    pub container_id: Option<Vec<u8>>,
    /// `started`.
    #[prost(bool, optional, tag = "9")]
    pub started: Option<bool>,
}

/// `core.v1.ContainerState`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerState {
    /// `waiting`.
    #[prost(message, optional, tag = "1")]
    pub waiting: Option<ContainerStateWaiting>,
    /// `running`.
    #[prost(message, optional, tag = "2")]
    pub running: Option<ContainerStateRunning>,
    /// `terminated`.
    #[prost(message, optional, tag = "3")]
    pub terminated: Option<ContainerStateTerminated>,
}

/// `core.v1.ContainerStateWaiting`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStateWaiting {
    /// `reason`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub reason: Option<Vec<u8>>,
    /// `message`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub message: Option<Vec<u8>>,
}

/// `core.v1.ContainerStateRunning`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStateRunning {
    /// `startedAt`.
    #[prost(message, optional, tag = "1")]
    pub started_at: Option<Time>,
}

/// `core.v1.ContainerStateTerminated`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerStateTerminated {
    /// `exitCode`.
    #[prost(int32, optional, tag = "1")]
    pub exit_code: Option<i32>,
    /// `signal`.
    #[prost(int32, optional, tag = "2")]
    pub signal: Option<i32>,
    /// `reason`.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub reason: Option<Vec<u8>>,
    /// `message`.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub message: Option<Vec<u8>>,
    /// `startedAt`.
    #[prost(message, optional, tag = "5")]
    pub started_at: Option<Time>,
    /// `finishedAt`.
    #[prost(message, optional, tag = "6")]
    pub finished_at: Option<Time>,
    /// `containerID`.
    #[prost(bytes = "vec", optional, tag = "7")]
    pub container_id: Option<Vec<u8>>,
}

/// `apps.v1.ReplicaSet`: its metadata, size and status (not its selector or pod template).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReplicaSet {
    /// `metadata`.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    /// `spec`.
    #[prost(message, optional, tag = "2")]
    pub spec: Option<ReplicaSetSpec>,
    /// `status`.
    #[prost(message, optional, tag = "3")]
    pub status: Option<ReplicaSetStatus>,
}

/// `apps.v1.ReplicaSetList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReplicaSetList {
    /// `metadata`.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ListMeta>,
    /// `items`.
    #[prost(message, repeated, tag = "2")]
    pub items: Vec<ReplicaSet>,
}

/// `apps.v1.ReplicaSetSpec`: its size only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReplicaSetSpec {
    /// `replicas`.
    #[prost(int32, optional, tag = "1")]
    pub replicas: Option<i32>,
}

/// `apps.v1.ReplicaSetStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReplicaSetStatus {
    /// `replicas`.
    #[prost(int32, optional, tag = "1")]
    pub replicas: Option<i32>,
    /// `fullyLabeledReplicas`.
    #[prost(int32, optional, tag = "2")]
    pub fully_labeled_replicas: Option<i32>,
    /// `observedGeneration`.
    #[prost(int64, optional, tag = "3")]
    pub observed_generation: Option<i64>,
    /// `readyReplicas`.
    #[prost(int32, optional, tag = "4")]
    pub ready_replicas: Option<i32>,
    /// `availableReplicas`.
    #[prost(int32, optional, tag = "5")]
    pub available_replicas: Option<i32>,
    /// `conditions`.
    #[prost(message, repeated, tag = "6")]
    pub conditions: Vec<ReplicaSetCondition>,
    /// `terminatingReplicas`.
    #[prost(int32, optional, tag = "7")]
    pub terminating_replicas: Option<i32>,
}

/// `apps.v1.ReplicaSetCondition`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReplicaSetCondition {
    /// `type`.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub r#type: Option<Vec<u8>>,
    /// `status`.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub status: Option<Vec<u8>>,
    /// `lastTransitionTime`.
    #[prost(message, optional, tag = "3")]
    pub last_transition_time: Option<Time>,
    /// `reason`.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub reason: Option<Vec<u8>>,
    /// `message`.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub message: Option<Vec<u8>>,
}
