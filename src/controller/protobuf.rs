//! The owned pods and ReplicaSets, read in Kubernetes' protobuf encoding: a layer of the kube
//! client those two watches use asks the API server for protobuf and turns each response back
//! into the JSON kube's watcher parses, holding only the fields the caches keep.
//!
//! Why: at a restart with 1,000 rollouts the API server encodes every owned pod and ReplicaSet
//! for the operator, on the cores the operator starts on. Measured on the local control plane
//! (docs/benchmarks.md), a streaming list of 1,000 pods cost it about 123 ms of CPU as JSON and
//! 49 ms as protobuf; of 2,000 ReplicaSets 205 ms and 53 ms; and protobuf is a third smaller on
//! the wire. SafeDeployments, a custom resource, have no protobuf encoding and stay JSON.
//!
//! Errors keep their type: a `Status` (an HTTP error, or an `ERROR` event in a watch) is
//! written as the JSON `Status` kube reads, so an expired resourceVersion or a refused
//! streaming list is handled as before. A response the server sends as JSON anyway passes
//! through untouched. A frame that cannot be read ends the stream with an error (the watcher
//! retries with backoff) instead of being skipped.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Full, StreamBody};
use kube::client::Body;
use tower::{Layer, Service};

pub mod convert;
pub mod wire;

pub use convert::TranscodeError;

/// The body of a response, after this layer.
pub type TranscodedBody = UnsyncBoxBody<Bytes, BoxError>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the layer asks for: protobuf, or JSON where the server has no protobuf encoding.
const ACCEPT_PROTOBUF: &str = "application/vnd.kubernetes.protobuf, application/json";
/// The content type of a protobuf response.
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// The content-type parameter of a protobuf watch stream.
const STREAM_WATCH: &str = "stream=watch";
/// The largest watch frame read: the API server stores objects of at most 1.5 MiB by default
/// (etcd's request limit), so 16 MiB is only reached by a broken or hostile stream.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// The tower layer that reads protobuf (see the module header).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProtobufReads;

impl<S> Layer<S> for ProtobufReads {
    type Service = ProtobufService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProtobufService { inner }
    }
}

/// The service of [`ProtobufReads`].
#[derive(Clone, Debug)]
pub struct ProtobufService<S> {
    inner: S,
}

impl<S, B> Service<Request<Body>> for ProtobufService<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<TranscodedBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        request
            .headers_mut()
            .insert(ACCEPT, HeaderValue::from_static(ACCEPT_PROTOBUF));
        let response = self.inner.call(request);
        Box::pin(async move { transcode(response.await.map_err(Into::into)?).await })
    }
}

/// How a response's body is encoded.
#[derive(Debug, PartialEq, Eq)]
enum Encoding {
    ProtobufStream,
    Protobuf,
    Other,
}

fn encoding<B>(response: &Response<B>) -> Encoding {
    let Some(content_type) = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Encoding::Other;
    };
    let mut parts = content_type.split(';').map(str::trim);
    if parts.next() != Some(PROTOBUF) {
        return Encoding::Other;
    }
    if parts.any(|p| p == STREAM_WATCH) {
        Encoding::ProtobufStream
    } else {
        Encoding::Protobuf
    }
}

/// The response with its body as JSON: a watch stream frame by frame as it arrives, anything
/// else read whole.
async fn transcode<B>(response: Response<B>) -> Result<Response<TranscodedBody>, BoxError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let encoding = encoding(&response);
    let (mut parts, body) = response.into_parts();
    let body = match encoding {
        Encoding::Other => body.map_err(Into::into).boxed_unsync(),
        Encoding::Protobuf => {
            let bytes = body.collect().await.map_err(Into::into)?.to_bytes();
            let json = convert::object_json(bytes)?;
            Full::new(Bytes::from(json))
                .map_err(|never| match never {})
                .boxed_unsync()
        }
        Encoding::ProtobufStream => watch_lines(body),
    };
    if encoding != Encoding::Other {
        parts.headers.remove(CONTENT_LENGTH);
        parts
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(Response::from_parts(parts, body))
}

/// A watch stream's frames (a 4-byte big-endian length, then a `WatchEvent`) as JSON lines.
pub fn watch_lines<B>(body: B) -> TranscodedBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let frames = StreamExt::boxed(BodyStream::new(body.map_err(Into::into)));
    let lines = futures::stream::unfold(Some((frames, BytesMut::new())), |state| async move {
        let (mut frames, mut buffer) = state?;
        loop {
            match next_frame(&mut buffer) {
                Ok(Some(frame)) => {
                    let line = convert::watch_event_line(frame)
                        .map(|line| http_body::Frame::data(Bytes::from(line)))
                        .map_err(BoxError::from);
                    let next = line.is_ok().then_some((frames, buffer));
                    return Some((line, next));
                }
                Ok(None) => {}
                Err(error) => return Some((Err(error.into()), None)),
            }
            match frames.next().await {
                Some(Ok(frame)) => {
                    // Trailers carry no frame data.
                    if let Ok(data) = frame.into_data() {
                        buffer.extend_from_slice(data.chunk());
                    }
                }
                Some(Err(error)) => return Some((Err(error), None)),
                None if buffer.is_empty() => return None,
                None => {
                    let error = TranscodeError::Truncated(buffer.len());
                    return Some((Err(error.into()), None));
                }
            }
        }
    });
    StreamBody::new(lines).boxed_unsync()
}

/// The next whole frame in `buffer` (taken out of it), if it holds one.
fn next_frame(buffer: &mut BytesMut) -> Result<Option<Bytes>, TranscodeError> {
    let Some(prefix) = buffer.get(..4) else {
        return Ok(None);
    };
    let length = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if length > MAX_FRAME {
        return Err(TranscodeError::FrameTooLarge(length));
    }
    if buffer.len() < 4 + length {
        buffer.reserve(4 + length - buffer.len());
        return Ok(None);
    }
    buffer.advance(4);
    Ok(Some(buffer.split_to(length).freeze()))
}

#[cfg(test)]
mod tests;
