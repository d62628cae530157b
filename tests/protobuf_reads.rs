//! The owned pod and ReplicaSet watches read Kubernetes' protobuf (src/controller/protobuf.rs),
//! checked against the real API server: the server answers in protobuf (a layer under the
//! transcoding records each response's content type), crash-looping pods and their
//! ReplicaSet read as protobuf equal the same objects read as JSON, a streaming list syncs,
//! and the server's errors (an expired watch, a refused list) keep their code and reason. A pod
//! whose annotation is not UTF-8 (written through the protobuf API) is read, not a failed watch.

mod common;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Fault, TestNamespace};
use futures::{StreamExt, TryStreamExt};
use http::{Request, Response};
use kube::api::{Api, ListParams, WatchParams};
use kube::client::{Body, ClientBuilder};
use kube::core::WatchEvent;
use kube::runtime::watcher;
use kube::{Client, Config, ResourceExt};
use safedeploy::controller::cached::{CachedPod, CachedReplicaSet, OwnedReplicaSet, WatchedPod};
use safedeploy::controller::protobuf::{ProtobufReads, convert, wire};
use tower::{Layer, Service};

/// Records the content type of every response the API server sends, before the transcoding.
#[derive(Clone, Default)]
struct RecordContentTypes(Arc<Mutex<Vec<String>>>);

impl<S> Layer<S> for RecordContentTypes {
    type Service = Recorded<S>;
    fn layer(&self, inner: S) -> Recorded<S> {
        Recorded {
            inner,
            seen: self.0.clone(),
        }
    }
}

struct Recorded<S> {
    inner: S,
    seen: Arc<Mutex<Vec<String>>>,
}

impl<S, B> Service<Request<Body>> for Recorded<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let response = self.inner.call(request);
        let seen = self.seen.clone();
        Box::pin(async move {
            let response = response.await?;
            let content_type = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            seen.lock().unwrap().push(content_type);
            Ok(response)
        })
    }
}

/// A pod as a client writes it in protobuf: its metadata and the containers of its spec.
#[derive(Clone, PartialEq, prost::Message)]
struct PodToCreate {
    #[prost(message, optional, tag = "1")]
    metadata: Option<wire::ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<PodSpecToCreate>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PodSpecToCreate {
    #[prost(message, repeated, tag = "2")]
    containers: Vec<ContainerToCreate>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ContainerToCreate {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    image: Option<String>,
}

/// Creates a pod through the protobuf API whose annotation `note` is not UTF-8 (the API server
/// keeps the bytes as they came; JSON could not carry them).
async fn create_pod_with_bytes_that_are_not_utf8(client: &Client, namespace: &str) {
    let pod = PodToCreate {
        metadata: Some(wire::ObjectMeta {
            name: Some(b"not-utf8".to_vec()),
            annotations: [("note".to_string(), b"ok \xff\xfe end".to_vec())].into(),
            ..Default::default()
        }),
        spec: Some(PodSpecToCreate {
            containers: vec![ContainerToCreate {
                name: Some("app".into()),
                image: Some("registry.invalid/app:1".into()),
            }],
        }),
    };
    let envelope = wire::Unknown {
        type_meta: Some(wire::TypeMeta {
            api_version: Some(b"v1".to_vec()),
            kind: Some(b"Pod".to_vec()),
        }),
        raw: Some(prost::Message::encode_to_vec(&pod).into()),
        content_encoding: None,
    };
    let mut body = b"k8s\0".to_vec();
    prost::Message::encode(&envelope, &mut body).unwrap();
    let request = Request::post(format!("/api/v1/namespaces/{namespace}/pods"))
        .header(
            http::header::CONTENT_TYPE,
            "application/vnd.kubernetes.protobuf",
        )
        .body(body)
        .unwrap();
    client
        .request_text(request)
        .await
        .expect("the API server takes the pod");
}

async fn protobuf_client(seen: &RecordContentTypes) -> Client {
    common::init();
    let config = Config::infer().await.expect("a kubeconfig");
    ClientBuilder::try_from(config)
        .expect("a client")
        .with_layer(seen)
        .with_layer(&ProtobufReads)
        .build()
}

#[tokio::test]
#[ignore = "needs the local control plane (e2e/cluster.sh)"]
async fn pods_and_replica_sets_read_as_protobuf_equal_json_and_errors_keep_their_type() {
    let ns = TestNamespace::new("protobuf").await;
    ns.create_replica_set(&common::replica_set("crashy", 2, Fault::Crash))
        .await;
    let seen = RecordContentTypes::default();
    let proto = protobuf_client(&seen).await;
    let json = common::client().await;
    let (proto_pods, json_pods): (Api<WatchedPod>, Api<WatchedPod>) = (
        Api::namespaced(proto.clone(), &ns.name),
        Api::namespaced(json.clone(), &ns.name),
    );

    // The pods crash-loop, so the two reads may see different versions: compare the pods whose
    // resourceVersion is the same in both, once one of them has restarted after a crash.
    let compared = common::wait_until(
        Duration::from_secs(90),
        "a crashed pod read both ways",
        || {
            let (proto_pods, json_pods) = (proto_pods.clone(), json_pods.clone());
            async move {
                let from_proto = proto_pods.list(&ListParams::default()).await?.items;
                let from_json = json_pods.list(&ListParams::default()).await?.items;
                let pairs: Vec<(WatchedPod, WatchedPod)> = from_proto
                    .into_iter()
                    .filter_map(|p| {
                        let j = from_json.iter().find(|j| {
                            j.uid() == p.uid() && j.resource_version() == p.resource_version()
                        })?;
                        Some((p, j.clone()))
                    })
                    .collect();
                // kwok's crash: the container exits 1 (its last state, terminated) and restarts.
                let crashed = pairs.iter().any(|(p, _)| {
                    p.status
                        .iter()
                        .flat_map(|s| s.container_statuses.iter().flatten())
                        .any(|c| {
                            let last_exit =
                                c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                            c.restart_count >= 1 && last_exit.is_some_and(|t| t.exit_code == 1)
                        })
                });
                Ok(crashed.then_some(pairs))
            }
        },
    )
    .await;
    for (from_proto, from_json) in &compared {
        assert_eq!(
            serde_json::to_value(from_proto).unwrap(),
            serde_json::to_value(convert::declared_fields_only(from_json.clone())).unwrap(),
            "pod {} read both ways",
            from_proto.name_any()
        );
        assert_eq!(CachedPod::of(from_proto), CachedPod::of(from_json));
    }

    let (proto_sets, json_sets): (Api<CachedReplicaSet>, Api<CachedReplicaSet>) = (
        Api::namespaced(proto.clone(), &ns.name),
        Api::namespaced(json.clone(), &ns.name),
    );
    let (from_proto, from_json) = common::wait_until(
        Duration::from_secs(30),
        "the ReplicaSet at one version both ways",
        || {
            let (proto_sets, json_sets) = (proto_sets.clone(), json_sets.clone());
            async move {
                let p = proto_sets.get("crashy").await?;
                let j = json_sets.get("crashy").await?;
                Ok((p.resource_version() == j.resource_version()).then_some((p, j)))
            }
        },
    )
    .await;
    assert_eq!(
        serde_json::to_value(&from_proto).unwrap(),
        serde_json::to_value(&from_json).unwrap()
    );
    assert_eq!(OwnedReplicaSet::of(&from_proto).replicas, 2);

    // A tenant's pod whose annotation is not UTF-8: read, its bytes made valid, and the other
    // pods with it (as a protobuf string it would fail the frame, and the watch).
    create_pod_with_bytes_that_are_not_utf8(&json, &ns.name).await;
    let hostile = proto_pods
        .get("not-utf8")
        .await
        .expect("the pod, read as protobuf");
    let annotations = hostile.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations["note"], "ok \u{fffd}\u{fffd} end");

    // A streaming list through the transcoding syncs with every pod.
    let initial: Vec<WatchedPod> = watcher(
        proto_pods.clone(),
        watcher::Config::default().streaming_lists(),
    )
    .try_take_while(|event| std::future::ready(Ok(!matches!(event, watcher::Event::InitDone))))
    .try_filter_map(|event| async move {
        Ok(match event {
            watcher::Event::InitApply(pod) => Some(pod),
            _ => None,
        })
    })
    .try_collect()
    .await
    .expect("the streaming list");
    assert_eq!(initial.len(), 3);
    assert!(initial.iter().any(|p| p.name_any() == "not-utf8"));
    let crashy = initial
        .iter()
        .filter(|p| p.name_any().starts_with("crashy-"));
    assert!(crashy.clone().count() == 2);
    assert!(crashy.into_iter().all(|p| {
        p.status
            .as_ref()
            .is_some_and(|s| s.container_statuses.is_some())
    }));

    // An expired resourceVersion: the ERROR event kube reads, code 410.
    let mut expired = proto_pods
        .watch(&WatchParams::default(), "1")
        .await
        .expect("the watch request")
        .boxed();
    match expired.next().await {
        Some(Ok(WatchEvent::Error(error))) => {
            assert_eq!((error.code, error.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected an Expired error event, got {other:?}"),
    }

    // A refused list: kube's API error, code 400, the server's message.
    match proto_pods
        .list(&ListParams::default().labels("app===crashy"))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 400);
            assert!(status.message.contains("unable to parse"), "{status:?}");
        }
        other => panic!("expected a 400, got {other:?}"),
    }

    let seen = seen.0.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|t| t == "application/vnd.kubernetes.protobuf"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|t| t == "application/vnd.kubernetes.protobuf;stream=watch"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .all(|t| t.starts_with("application/vnd.kubernetes.protobuf")),
        "every answer in protobuf: {seen:?}"
    );
}
