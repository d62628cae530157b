//! The transcoding against frames a real API server (v1.36.3, the local control plane) sent:
//! the same pod and ReplicaSet captured as protobuf and as JSON (`fixtures/`), an expired
//! watch, a refused list and a page of a list; and hostile or broken streams.

use std::convert::Infallible;

use bytes::Bytes;
use futures::stream;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use kube::core::{ObjectList, WatchEvent};

use super::*;
use crate::controller::cached::{CachedPod, CachedReplicaSet, OwnedReplicaSet, WatchedPod};

const POD_WATCH: &[u8] = include_bytes!("fixtures/pod-watch.bin");
const POD_WATCH_JSON: &str = include_str!("fixtures/pod-watch.json");
const RS_WATCH: &[u8] = include_bytes!("fixtures/rs-watch.bin");
const RS_WATCH_JSON: &str = include_str!("fixtures/rs-watch.json");
const RS_EXPIRED: &[u8] = include_bytes!("fixtures/rs-expired.bin");
const PODS_BAD_SELECTOR: &[u8] = include_bytes!("fixtures/pods-badselector.bin");
const PODS_LIST: &[u8] = include_bytes!("fixtures/pods-list.bin");

/// The watch stream `bytes`, cut into chunks of `chunk` bytes, through [`watch_lines`].
async fn transcoded_stream(bytes: &'static [u8], chunk: usize) -> Result<String, BoxError> {
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Frame::data(Bytes::from_static(c))))
        .collect();
    let body = watch_lines(StreamBody::new(stream::iter(chunks)));
    let bytes = body.collect().await?.to_bytes();
    Ok(String::from_utf8(bytes.to_vec())?)
}

fn events<K: serde::de::DeserializeOwned>(lines: &str) -> Vec<WatchEvent<K>> {
    lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn added<K>(event: &WatchEvent<K>) -> &K {
    match event {
        WatchEvent::Added(object) => object,
        _ => panic!("not ADDED"),
    }
}

fn bookmark_version<K>(event: &WatchEvent<K>) -> (String, bool) {
    match event {
        WatchEvent::Bookmark(bookmark) => (
            bookmark.metadata.resource_version.clone(),
            bookmark
                .metadata
                .annotations
                .contains_key("k8s.io/initial-events-end"),
        ),
        _ => panic!("not BOOKMARK"),
    }
}

#[tokio::test]
async fn a_pod_read_as_protobuf_is_the_pod_read_as_json() {
    let from_protobuf = events::<WatchedPod>(&transcoded_stream(POD_WATCH, 4096).await.unwrap());
    let from_json = events::<WatchedPod>(POD_WATCH_JSON);
    assert_eq!(from_protobuf.len(), 2);
    let (proto, json) = (added(&from_protobuf[0]), added(&from_json[0]));
    assert_eq!(
        serde_json::to_value(proto).unwrap(),
        serde_json::to_value(convert::declared_fields_only(json.clone())).unwrap()
    );
    // Against the whole JSON pod: a field the pod view starts to read without its protobuf
    // declaration fails here.
    assert_eq!(CachedPod::of(proto), CachedPod::of(json));
    assert!(CachedPod::of(proto).view.is_some_and(|v| v.ready));
    assert_eq!(
        bookmark_version(&from_protobuf[1]),
        bookmark_version(&from_json[1])
    );
    assert!(bookmark_version(&from_protobuf[1]).1);
}

#[tokio::test]
async fn a_replica_set_read_as_protobuf_is_the_replica_set_read_as_json() {
    let from_protobuf =
        events::<CachedReplicaSet>(&transcoded_stream(RS_WATCH, 4096).await.unwrap());
    let from_json = events::<CachedReplicaSet>(RS_WATCH_JSON);
    let (proto, json) = (added(&from_protobuf[0]), added(&from_json[0]));
    assert_eq!(
        serde_json::to_value(proto).unwrap(),
        serde_json::to_value(json).unwrap()
    );
    let owned = OwnedReplicaSet::of(proto);
    assert_eq!(owned, OwnedReplicaSet::of(json));
    assert!(owned.revision.is_some() && owned.uid.is_some());
    assert_eq!(
        bookmark_version(&from_protobuf[1]),
        bookmark_version(&from_json[1])
    );
}

#[tokio::test]
async fn frames_split_anywhere_give_the_same_lines() {
    let whole = transcoded_stream(POD_WATCH, POD_WATCH.len()).await.unwrap();
    for chunk in [1, 2, 3, 4, 5, 7, 64, 1000] {
        assert_eq!(transcoded_stream(POD_WATCH, chunk).await.unwrap(), whole);
    }
}

#[tokio::test]
async fn an_expired_watch_is_the_error_event_kube_reads() {
    let lines = transcoded_stream(RS_EXPIRED, 4096).await.unwrap();
    match &events::<CachedReplicaSet>(&lines)[..] {
        [WatchEvent::Error(error)] => {
            assert_eq!(error.code, 410);
            assert_eq!(error.reason, "Expired");
            assert!(error.message.contains("too old resource version"));
        }
        _ => panic!("not one ERROR event: {lines}"),
    }
}

#[test]
fn a_refused_request_is_the_status_kube_reads() {
    let json = convert::object_json(Bytes::from_static(PODS_BAD_SELECTOR)).unwrap();
    let status: kube::core::Status = serde_json::from_slice(&json).unwrap();
    assert_eq!(status.code, 400);
    assert!(status.message.contains("unable to parse requirement"));
    assert!(status.is_failure());
}

#[test]
fn a_page_of_a_list_keeps_its_continue_token() {
    let json = convert::object_json(Bytes::from_static(PODS_LIST)).unwrap();
    let list: ObjectList<WatchedPod> = serde_json::from_slice(&json).unwrap();
    assert_eq!(list.items.len(), 2);
    assert!(list.metadata.continue_.is_some_and(|c| !c.is_empty()));
    assert!(list.metadata.resource_version.is_some());
    assert!(list.items.iter().all(|p| CachedPod::of(p).view.is_some()));
}

#[tokio::test]
async fn a_frame_longer_than_the_limit_ends_the_stream_with_an_error() {
    let huge: &'static [u8] = &[0xff, 0xff, 0xff, 0xff, 0, 0];
    let error = transcoded_stream(huge, 4096).await.unwrap_err();
    assert!(error.to_string().contains("beyond the"), "{error}");
}

#[tokio::test]
async fn a_stream_cut_inside_a_frame_ends_with_an_error() {
    let cut = &POD_WATCH[..POD_WATCH.len() - 10];
    let error = transcoded_stream(cut, 100).await.unwrap_err();
    assert!(
        error.to_string().contains("ended inside a frame"),
        "{error}"
    );
}

#[test]
fn objects_without_the_prefix_or_of_another_kind_are_refused() {
    assert!(matches!(
        convert::object_json(Bytes::from_static(b"{\"kind\":\"Pod\"}")),
        Err(TranscodeError::NoPrefix)
    ));
    let secret = wire::Unknown {
        type_meta: Some(wire::TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
        }),
        raw: Some(Bytes::new()),
        content_encoding: None,
    };
    let mut bytes = b"k8s\0".to_vec();
    prost::Message::encode(&secret, &mut bytes).unwrap();
    assert!(matches!(
        convert::object_json(Bytes::from(bytes)),
        Err(TranscodeError::UnexpectedKind(kind)) if kind == "Secret"
    ));
}

/// A pod whose containers crashed, encoded with the declared messages: every state the pod
/// view reads comes through (the captured pod above is Running, with no failure to read).
#[test]
fn crashed_and_restarted_containers_come_through() {
    let time = |seconds| wire::Time {
        seconds: Some(seconds),
        nanos: Some(0),
    };
    let terminated = wire::ContainerState {
        terminated: Some(wire::ContainerStateTerminated {
            exit_code: Some(137),
            reason: Some("OOMKilled".into()),
            signal: Some(0),
            started_at: Some(time(1_800_000_000)),
            finished_at: Some(time(1_800_000_060)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = wire::Pod {
        metadata: Some(wire::ObjectMeta {
            name: Some("web-1".into()),
            namespace: Some("ns".into()),
            uid: Some(Vec::new()),
            creation_timestamp: Some(time(1_799_999_000)),
            labels: [
                ("safedeploy.dev/name", "web"),
                ("safedeploy.dev/revision", "abc"),
                ("safedeploy.dev/component", "main"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..Default::default()
        }),
        status: Some(wire::PodStatus {
            phase: Some("Running".into()),
            container_statuses: vec![wire::ContainerStatus {
                name: Some("app".into()),
                state: Some(wire::ContainerState {
                    waiting: Some(wire::ContainerStateWaiting {
                        reason: Some("CrashLoopBackOff".into()),
                        message: Some(Vec::new()),
                    }),
                    ..Default::default()
                }),
                last_state: Some(terminated),
                ready: Some(false),
                restart_count: Some(3),
                image: Some("web:2".into()),
                image_id: Some(Vec::new()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    let watched = convert::pod(pod);
    assert_eq!(watched.metadata.uid, None, "an empty string is absent");
    let status = watched.status.as_ref().unwrap();
    let container = &status.container_statuses.as_ref().unwrap()[0];
    assert_eq!(container.restart_count, 3);
    let waiting = container.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(waiting.message, None);
    let last = container.last_state.as_ref().unwrap().terminated.as_ref();
    assert_eq!(last.map(|t| (t.exit_code, t.signal)), Some((137, None)));
    let view = CachedPod::of(&watched).view.unwrap();
    assert_eq!((view.restarts, view.failing_containers), (3, 1));
    assert!(!view.ready);
}

/// A tenant can write bytes that are not UTF-8 into an annotation through the protobuf API (Go
/// keeps a string's bytes as they came). Read as a protobuf `string`, one such pod would fail
/// its frame, and the watch of every rollout with it; read as bytes it comes through, with
/// U+FFFD where the bytes were invalid, and the frames after it too.
#[tokio::test]
async fn text_that_is_not_utf8_does_not_stop_the_watch() {
    let hostile = wire::Pod {
        metadata: Some(wire::ObjectMeta {
            name: Some(b"web-1".to_vec()),
            annotations: [("note".to_string(), b"ok \xff\xfe end".to_vec())].into(),
            labels: [("safedeploy.dev/name".to_string(), "web".to_string())].into(),
            ..Default::default()
        }),
        status: Some(wire::PodStatus {
            message: Some(b"\xc3(".to_vec()),
            ..Default::default()
        }),
    };
    let mut raw = Vec::new();
    prost::Message::encode(&hostile, &mut raw).unwrap();
    let envelope = wire::Unknown {
        type_meta: Some(wire::TypeMeta {
            api_version: Some(b"v1".to_vec()),
            kind: Some(b"Pod".to_vec()),
        }),
        raw: Some(raw.into()),
        content_encoding: None,
    };
    let mut object = b"k8s\0".to_vec();
    prost::Message::encode(&envelope, &mut object).unwrap();
    let event = wire::WatchEvent {
        r#type: Some("ADDED".into()),
        object: Some(wire::RawExtension {
            raw: Some(object.into()),
        }),
    };
    let mut frame = Vec::new();
    prost::Message::encode(&event, &mut frame).unwrap();
    let mut stream = (frame.len() as u32).to_be_bytes().to_vec();
    stream.extend_from_slice(&frame);
    // The captured pod follows the hostile one in the same stream.
    stream.extend_from_slice(POD_WATCH);
    let stream: &'static [u8] = stream.leak();

    let lines = transcoded_stream(stream, 4096).await.unwrap();
    let events = events::<WatchedPod>(&lines);
    assert_eq!(events.len(), 3);
    let pod = added(&events[0]);
    let annotations = pod.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations["note"], "ok \u{fffd}\u{fffd} end");
    let message = pod.status.as_ref().and_then(|s| s.message.as_deref());
    assert_eq!(message, Some("\u{fffd}("));
    assert_eq!(
        added(&events[1]).metadata.namespace.as_deref(),
        Some("bench")
    );
}

/// A server (or a proxy) that answers JSON despite the request for protobuf: the answer passes
/// through as it came. A protobuf answer is JSON after the layer, and says so.
#[tokio::test]
async fn a_json_answer_passes_through_and_a_protobuf_one_becomes_json() {
    let json_answer = http::Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(Bytes::from_static(
            b"{\"kind\":\"PodList\"}",
        )))
        .unwrap();
    let passed = transcode(json_answer).await.unwrap();
    assert_eq!(passed.headers()[CONTENT_TYPE], "application/json");
    let body = passed.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"{\"kind\":\"PodList\"}");

    let protobuf_answer = http::Response::builder()
        .header(CONTENT_TYPE, PROTOBUF)
        .body(http_body_util::Full::new(Bytes::from_static(PODS_LIST)))
        .unwrap();
    let transcoded = transcode(protobuf_answer).await.unwrap();
    assert_eq!(transcoded.headers()[CONTENT_TYPE], "application/json");
    let body = transcoded.into_body().collect().await.unwrap().to_bytes();
    let list: ObjectList<WatchedPod> = serde_json::from_slice(&body).unwrap();
    assert_eq!(list.items.len(), 2);
}
