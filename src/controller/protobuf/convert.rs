//! From the protobuf messages of [`super::wire`] to the JSON that kube's watcher parses into the
//! watched types ([`WatchedPod`], [`CachedReplicaSet`]) or into its error type: each object is
//! built as those types (and the Kubernetes types inside them) and written by their own serde
//! code, so the JSON is what they read back. Empty values Go writes in protobuf but omits from
//! JSON (`omitempty`) are read as absent.

use bytes::{Buf, Bytes};
use k8s_openapi::api::apps::v1::{ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta, OwnerReference, Time};
use prost::Message;
use serde::Serialize;

use super::wire;
use crate::controller::cached::{CachedReplicaSet, CachedReplicaSetSpec, WatchedPod};

/// The 4 bytes before every protobuf-encoded Kubernetes object.
const MAGIC: &[u8; 4] = b"k8s\0";

/// Go's zero `time.Time` (year 1), which its JSON encoding writes as `null`.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// Why a protobuf response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// The bytes do not start with `k8s\0`.
    #[error("a protobuf object without the k8s\\0 prefix")]
    NoPrefix,
    /// The envelope or the object is not the message it claims to be.
    #[error("an undecodable protobuf message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// An encoding (`contentEncoding`) the operator does not read.
    #[error("a protobuf object with content encoding {0:?}")]
    ContentEncoding(String),
    /// A kind these watches do not read.
    #[error("an unexpected kind in a protobuf response: {0:?}")]
    UnexpectedKind(String),
    /// A watch frame's length beyond the limit.
    #[error("a watch frame of {0} bytes, beyond the {limit} bytes allowed", limit = super::MAX_FRAME)]
    FrameTooLarge(usize),
    /// The stream ended inside a frame.
    #[error("the watch stream ended inside a frame ({0} bytes left)")]
    Truncated(usize),
    /// The JSON could not be written.
    #[error("the object could not be written as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// An object with its `apiVersion` and `kind`, as kube's types expect them.
#[derive(Serialize)]
struct Typed<'a, T> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'a str,
    #[serde(flatten)]
    object: T,
}

/// A list as kube reads it.
#[derive(Serialize)]
struct List<'a, T> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'a str,
    metadata: &'a ListMeta,
    items: &'a [T],
}

/// A watch event as kube reads it.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    object: Object,
}

/// An object, decoded as the kind its envelope names.
enum Decoded {
    Pod(Box<WatchedPod>),
    ReplicaSet(Box<CachedReplicaSet>),
    PodList(ListMeta, Vec<WatchedPod>),
    ReplicaSetList(ListMeta, Vec<CachedReplicaSet>),
    Status(Box<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>),
}

/// A decoded object with the type its envelope gave, written as JSON by [`Serialize`].
struct Object {
    api_version: String,
    kind: String,
    decoded: Decoded,
}

impl Object {
    fn typed<T>(&self, object: T) -> Typed<'_, T> {
        Typed {
            api_version: &self.api_version,
            kind: &self.kind,
            object,
        }
    }

    fn list<'a, T>(&'a self, metadata: &'a ListMeta, items: &'a [T]) -> List<'a, T> {
        List {
            api_version: &self.api_version,
            kind: &self.kind,
            metadata,
            items,
        }
    }
}

impl Serialize for Object {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.decoded {
            Decoded::Pod(pod) => self.typed(pod).serialize(serializer),
            Decoded::ReplicaSet(rs) => self.typed(rs).serialize(serializer),
            Decoded::Status(status) => self.typed(status).serialize(serializer),
            Decoded::PodList(metadata, items) => self.list(metadata, items).serialize(serializer),
            Decoded::ReplicaSetList(metadata, items) => {
                self.list(metadata, items).serialize(serializer)
            }
        }
    }
}

/// The object behind `bytes` (`k8s\0` + `runtime.Unknown`), decoded as the kind it names.
fn object(mut bytes: Bytes) -> Result<Object, TranscodeError> {
    if !bytes.starts_with(MAGIC) {
        return Err(TranscodeError::NoPrefix);
    }
    bytes.advance(MAGIC.len());
    let unknown = wire::Unknown::decode(bytes)?;
    if let Some(encoding) = present(unknown.content_encoding) {
        return Err(TranscodeError::ContentEncoding(encoding));
    }
    let types = unknown.type_meta.unwrap_or_default();
    let kind = text_or_empty(types.kind);
    let decoded = decode(&kind, unknown.raw.unwrap_or_default())?;
    Ok(Object {
        api_version: text_or_empty(types.api_version),
        kind,
        decoded,
    })
}

fn decode(kind: &str, raw: Bytes) -> Result<Decoded, TranscodeError> {
    Ok(match kind {
        "Pod" => Decoded::Pod(Box::new(pod(wire::Pod::decode(raw)?))),
        "ReplicaSet" => Decoded::ReplicaSet(Box::new(replica_set(wire::ReplicaSet::decode(raw)?))),
        "PodList" => {
            let list = wire::PodList::decode(raw)?;
            Decoded::PodList(
                list_meta(list.metadata),
                list.items.into_iter().map(pod).collect(),
            )
        }
        "ReplicaSetList" => {
            let list = wire::ReplicaSetList::decode(raw)?;
            Decoded::ReplicaSetList(
                list_meta(list.metadata),
                list.items.into_iter().map(replica_set).collect(),
            )
        }
        "Status" => Decoded::Status(Box::new(status(wire::Status::decode(raw)?))),
        other => return Err(TranscodeError::UnexpectedKind(other.to_string())),
    })
}

/// The JSON of a whole protobuf response body (an object, a list or a `Status`).
pub fn object_json(body: Bytes) -> Result<Vec<u8>, TranscodeError> {
    Ok(serde_json::to_vec(&object(body)?)?)
}

/// The JSON line (newline included) of one watch frame (`meta.v1.WatchEvent`, without its
/// length prefix).
pub fn watch_event_line(frame: Bytes) -> Result<Vec<u8>, TranscodeError> {
    let event = wire::WatchEvent::decode(frame)?;
    let event_type = event.r#type.unwrap_or_default();
    let object = object(event.object.and_then(|o| o.raw).unwrap_or_default())?;
    let mut line = serde_json::to_vec(&Event {
        event_type: &event_type,
        object,
    })?;
    line.push(b'\n');
    Ok(line)
}

/// Text as Go's JSON encoding writes it: invalid UTF-8 made valid (each invalid sequence a
/// U+FFFD), and absent when empty.
fn present(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.filter(|b| !b.is_empty()).map(lossy)
}

/// Text that is always written, empty when absent.
fn text_or_empty(bytes: Option<Vec<u8>>) -> String {
    bytes.map(lossy).unwrap_or_default()
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
}

fn nonzero<T: Default + PartialEq>(value: Option<T>) -> Option<T> {
    value.filter(|v| *v != T::default())
}

fn time(time: Option<wire::Time>) -> Option<Time> {
    let time = time?;
    let seconds = time.seconds.unwrap_or(0);
    let nanos = time.nanos.unwrap_or(0);
    // apimachinery writes the zero time as an empty message and reads 0 s + 0 ns back as the
    // zero time (`null` in JSON), as it does Go's own zero.
    if nanos == 0 && (seconds == 0 || seconds == GO_ZERO_TIME_SECONDS) {
        return None;
    }
    k8s_openapi::jiff::Timestamp::new(seconds, nanos)
        .ok()
        .map(Time)
}

fn some_unless_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

fn object_meta(meta: Option<wire::ObjectMeta>) -> ObjectMeta {
    let meta = meta.unwrap_or_default();
    ObjectMeta {
        annotations: (!meta.annotations.is_empty()).then(|| {
            meta.annotations
                .into_iter()
                .map(|(key, value)| (key, lossy(value)))
                .collect()
        }),
        creation_timestamp: time(meta.creation_timestamp),
        deletion_grace_period_seconds: meta.deletion_grace_period_seconds,
        deletion_timestamp: time(meta.deletion_timestamp),
        finalizers: some_unless_empty(meta.finalizers.into_iter().map(lossy).collect()),
        generate_name: present(meta.generate_name),
        generation: nonzero(meta.generation),
        labels: (!meta.labels.is_empty()).then_some(meta.labels),
        managed_fields: None,
        name: present(meta.name),
        namespace: present(meta.namespace),
        owner_references: some_unless_empty(
            meta.owner_references
                .into_iter()
                .map(|r| OwnerReference {
                    api_version: text_or_empty(r.api_version),
                    block_owner_deletion: r.block_owner_deletion,
                    controller: r.controller,
                    kind: text_or_empty(r.kind),
                    name: text_or_empty(r.name),
                    uid: text_or_empty(r.uid),
                })
                .collect(),
        ),
        resource_version: present(meta.resource_version),
        self_link: present(meta.self_link),
        uid: present(meta.uid),
    }
}

fn list_meta(meta: Option<wire::ListMeta>) -> ListMeta {
    let meta = meta.unwrap_or_default();
    ListMeta {
        continue_: meta.r#continue.filter(|c| !c.is_empty()),
        remaining_item_count: meta.remaining_item_count,
        resource_version: present(meta.resource_version),
        ..ListMeta::default()
    }
}

fn container_state(state: Option<wire::ContainerState>) -> Option<ContainerState> {
    let state = state?;
    Some(ContainerState {
        running: state.running.map(|r| ContainerStateRunning {
            started_at: time(r.started_at),
        }),
        terminated: state.terminated.map(|t| ContainerStateTerminated {
            container_id: present(t.container_id),
            exit_code: t.exit_code.unwrap_or(0),
            finished_at: time(t.finished_at),
            message: present(t.message),
            reason: present(t.reason),
            signal: nonzero(t.signal),
            started_at: time(t.started_at),
        }),
        waiting: state.waiting.map(|w| ContainerStateWaiting {
            message: present(w.message),
            reason: present(w.reason),
        }),
    })
}

fn container_status(status: wire::ContainerStatus) -> ContainerStatus {
    ContainerStatus {
        container_id: present(status.container_id),
        image: text_or_empty(status.image),
        image_id: text_or_empty(status.image_id),
        last_state: container_state(status.last_state),
        name: text_or_empty(status.name),
        ready: status.ready.unwrap_or(false),
        restart_count: status.restart_count.unwrap_or(0),
        started: status.started,
        state: container_state(status.state),
        ..ContainerStatus::default()
    }
}

/// A pod as the pod watch reads it: its metadata and the status the pod view reads.
pub fn pod(pod: wire::Pod) -> WatchedPod {
    WatchedPod {
        metadata: object_meta(pod.metadata),
        status: pod.status.map(|s| PodStatus {
            conditions: some_unless_empty(
                s.conditions
                    .into_iter()
                    .map(|c| PodCondition {
                        last_probe_time: time(c.last_probe_time),
                        last_transition_time: time(c.last_transition_time),
                        message: present(c.message),
                        observed_generation: nonzero(c.observed_generation),
                        reason: present(c.reason),
                        status: text_or_empty(c.status),
                        type_: text_or_empty(c.r#type),
                    })
                    .collect(),
            ),
            container_statuses: some_unless_empty(
                s.container_statuses
                    .into_iter()
                    .map(container_status)
                    .collect(),
            ),
            init_container_statuses: some_unless_empty(
                s.init_container_statuses
                    .into_iter()
                    .map(container_status)
                    .collect(),
            ),
            message: present(s.message),
            observed_generation: nonzero(s.observed_generation),
            phase: present(s.phase),
            reason: present(s.reason),
            start_time: time(s.start_time),
            ..PodStatus::default()
        }),
    }
}

/// A pod read as JSON, less the status fields the protobuf messages do not declare (addresses,
/// QoS class, resources, claims, ephemeral containers): what [`pod`] gives for the same object,
/// and what the tests compare the two readings on.
pub fn declared_fields_only(mut pod: WatchedPod) -> WatchedPod {
    if let Some(status) = pod.status.as_mut() {
        *status = PodStatus {
            conditions: status.conditions.take(),
            container_statuses: status.container_statuses.take(),
            init_container_statuses: status.init_container_statuses.take(),
            message: status.message.take(),
            observed_generation: status.observed_generation.take(),
            phase: status.phase.take(),
            reason: status.reason.take(),
            start_time: status.start_time.take(),
            ..PodStatus::default()
        };
        for container in status
            .container_statuses
            .iter_mut()
            .chain(status.init_container_statuses.iter_mut())
            .flatten()
        {
            *container = ContainerStatus {
                container_id: container.container_id.take(),
                image: std::mem::take(&mut container.image),
                image_id: std::mem::take(&mut container.image_id),
                last_state: container.last_state.take(),
                name: std::mem::take(&mut container.name),
                ready: container.ready,
                restart_count: container.restart_count,
                started: container.started,
                state: container.state.take(),
                ..ContainerStatus::default()
            };
        }
    }
    pod
}

/// A ReplicaSet as the ReplicaSet watch reads it: its metadata, size and status.
pub fn replica_set(rs: wire::ReplicaSet) -> CachedReplicaSet {
    CachedReplicaSet {
        metadata: object_meta(rs.metadata),
        spec: rs.spec.map(|s| CachedReplicaSetSpec {
            replicas: s.replicas,
        }),
        status: rs.status.map(|s| ReplicaSetStatus {
            available_replicas: nonzero(s.available_replicas),
            conditions: some_unless_empty(
                s.conditions
                    .into_iter()
                    .map(|c| ReplicaSetCondition {
                        last_transition_time: time(c.last_transition_time),
                        message: present(c.message),
                        reason: present(c.reason),
                        status: text_or_empty(c.status),
                        type_: text_or_empty(c.r#type),
                    })
                    .collect(),
            ),
            fully_labeled_replicas: nonzero(s.fully_labeled_replicas),
            observed_generation: nonzero(s.observed_generation),
            ready_replicas: nonzero(s.ready_replicas),
            replicas: s.replicas.unwrap_or(0),
            terminating_replicas: s.terminating_replicas,
        }),
    }
}

fn status(status: wire::Status) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Status {
        code: status.code,
        details: status.details.map(|d| StatusDetails {
            causes: some_unless_empty(
                d.causes
                    .into_iter()
                    .map(|c| StatusCause {
                        field: present(c.field),
                        message: present(c.message),
                        reason: present(c.reason),
                    })
                    .collect(),
            ),
            group: present(d.group),
            kind: present(d.kind),
            name: present(d.name),
            retry_after_seconds: nonzero(d.retry_after_seconds),
            uid: present(d.uid),
        }),
        message: present(status.message),
        metadata: ListMeta::default(),
        reason: present(status.reason),
        status: present(status.status),
    }
}
