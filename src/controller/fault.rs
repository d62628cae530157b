//! The controller's API client (with the operator's `User-Agent`), and fault injection for the
//! kill-point tests (issue 12), a layer on that client. **The hook is off unless its env var is
//! set**; production never sets it.
//!
//! With `SAFEDEPLOY_FAULT_KILL_AFTER_WRITES=N` (N ≥ 1) the controller's API client counts the
//! mutating requests (POST, PUT, PATCH, DELETE) that the API server answered with success, and
//! right after the N-th response arrives — before the code that sent it sees the answer — the
//! process prints one line to stderr,
//!
//! ```text
//! fault: killing after write N: PATCH(apply) /apis/safedeploy.dev/v1alpha1/namespaces/x/safedeployments/web/status -> 200
//! ```
//!
//! and dies with [`std::process::abort`]. No destructor, `Drop`, flush or further request runs, so
//! for the API server this is the same as a SIGKILL at that instant (the exit status is SIGABRT,
//! which lets a test tell the planned kill from a crash). Every write the server accepted before
//! the kill stays; nothing after it is sent. Running a fresh process with N = 1 after each kill
//! therefore stops the operator once after every write of a rollout.
//!
//! What is counted, and why:
//! * Only successful writes: a rejected write changed nothing, so a kill after it is the same as
//!   a kill after the write before it, and counting it would only add restarts that test nothing.
//! * Events are counted: they are writes the rollout's story relies on ("each step once"), and a
//!   kill between a status write and its event is one of the audited points.
//! * Lease writes (`coordination.k8s.io`) are not: with leader election they come first and
//!   periodically, so every process would die before reconciling anything.
//!
//! With `SAFEDEPLOY_FAULT_PANIC_ON=NAME`, reconciling a SafeDeployment named NAME panics, as a
//! bug would: the tests of panic containment use it.
//!
//! With `SAFEDEPLOY_FAULT_CLOCK_AHEAD=<duration>` (such as `2h`), the record retention sweep
//! reads its clock that far ahead, so a test can see records of a minute ago expire under the
//! least retention (1h) without waiting an hour. Nothing else reads the shifted clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use kube::Client;
use kube::client::{Body, ClientBuilder};
use tower::{Layer, Service};
use tracing::warn;

/// Env var that arms the hook: the number of successful writes after which the process dies.
pub const KILL_AFTER_WRITES_ENV: &str = "SAFEDEPLOY_FAULT_KILL_AFTER_WRITES";

/// The prefix of the line printed to stderr right before the kill.
pub const KILL_LINE_PREFIX: &str = "fault: killing after write";

/// The env var's value is not a positive integer.
#[derive(Debug, thiserror::Error)]
#[error("{KILL_AFTER_WRITES_ENV} must be a positive integer, not {0:?}")]
pub struct InvalidFaultSetting(String);

/// The `User-Agent` of every request the controller makes: the API server's audit log and
/// its request metrics then name the operator (kube's client sends none by default).
pub const USER_AGENT: &str = concat!("safedeploy/", env!("CARGO_PKG_VERSION"));

/// The API clients of the controller, both from the inferred configuration with [`USER_AGENT`].
pub struct Clients {
    /// Every request but the owned pod and ReplicaSet watches; with the kill hook when
    /// [`KILL_AFTER_WRITES_ENV`] is set.
    pub main: Client,
    /// The owned pod and ReplicaSet watches, read as protobuf ([`super::protobuf`]).
    pub owned_reads: Client,
}

/// The controller's [`Clients`].
pub async fn clients() -> Result<Clients, kube::Error> {
    let limit = kill_after_writes(std::env::var(KILL_AFTER_WRITES_ENV).ok().as_deref())
        .map_err(|e| kube::Error::Service(Box::new(e)))?;
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    let owned_reads = ClientBuilder::try_from(config.clone())?
        .with_layer(&super::protobuf::ProtobufReads)
        .build();
    let Some(limit) = limit else {
        let main = Client::try_from(config)?;
        return Ok(Clients { main, owned_reads });
    };
    warn!(
        limit,
        "fault injection armed: the process kills itself after {limit} successful writes ({KILL_AFTER_WRITES_ENV})"
    );
    let main = ClientBuilder::try_from(config)?
        .with_layer(&KillAfterWrites::new(limit))
        .build();
    Ok(Clients { main, owned_reads })
}

/// Env var that shifts the retention sweep's clock forward (a duration such as `2h`).
pub const CLOCK_AHEAD_ENV: &str = "SAFEDEPLOY_FAULT_CLOCK_AHEAD";

/// How far ahead the retention sweep reads the clock: zero unless [`CLOCK_AHEAD_ENV`] is set to
/// a duration (an unreadable value is reported and ignored).
pub fn clock_ahead() -> std::time::Duration {
    let Some(text) = std::env::var(CLOCK_AHEAD_ENV)
        .ok()
        .filter(|t| !t.is_empty())
    else {
        return std::time::Duration::ZERO;
    };
    match crate::api::duration::SpecDuration::from(text.as_str()).parse() {
        Ok(ahead) => {
            warn!(
                ?ahead,
                "fault injection armed: the retention sweep's clock runs ahead ({CLOCK_AHEAD_ENV})"
            );
            ahead
        }
        Err(error) => {
            warn!(%error, "{CLOCK_AHEAD_ENV} is not a duration; ignored");
            std::time::Duration::ZERO
        }
    }
}

/// Parses the env var's value: `None` when unset or empty.
fn kill_after_writes(value: Option<&str>) -> Result<Option<u64>, InvalidFaultSetting> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(InvalidFaultSetting(text.to_string())),
        },
    }
}

/// How a request is named in the kill line, if it is a counted write: method (with the patch
/// kind) and path, e.g. `PATCH(merge) /apis/apps/v1/namespaces/x/replicasets/web-abc`.
fn counted_write<B>(request: &Request<B>) -> Option<String> {
    let method = request.method();
    if ![Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method) {
        return None;
    }
    let path = request.uri().path();
    if path.contains("/apis/coordination.k8s.io/") {
        return None;
    }
    // A dry run (preflight asks the API server about a ReplicaSet) changes nothing.
    if request
        .uri()
        .query()
        .is_some_and(|query| query.split('&').any(|p| p.starts_with("dryRun=")))
    {
        return None;
    }
    let kind = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| *method == Method::PATCH)
        .map(|content_type| match content_type {
            t if t.starts_with("application/apply-patch") => "(apply)",
            t if t.starts_with("application/merge-patch") => "(merge)",
            t if t.starts_with("application/strategic-merge-patch") => "(strategic)",
            t if t.starts_with("application/json-patch") => "(json)",
            _ => "",
        })
        .unwrap_or("");
    Some(format!("{method}{kind} {path}"))
}

/// A tower layer that kills the process after the `limit`-th successful write (see the module
/// documentation).
#[derive(Clone)]
struct KillAfterWrites {
    limit: u64,
    done: Arc<AtomicU64>,
}

impl KillAfterWrites {
    fn new(limit: u64) -> Self {
        Self {
            limit,
            done: Arc::default(),
        }
    }
}

impl<S> Layer<S> for KillAfterWrites {
    type Service = KillService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KillService {
            inner,
            limit: self.limit,
            done: self.done.clone(),
        }
    }
}

/// The service of [`KillAfterWrites`].
struct KillService<S> {
    inner: S,
    limit: u64,
    done: Arc<AtomicU64>,
}

impl<S, B> Service<Request<Body>> for KillService<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    B: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let write = counted_write(&request);
        let response = self.inner.call(request);
        let (limit, done) = (self.limit, self.done.clone());
        Box::pin(async move {
            let response = response.await?;
            if let Some(write) = write
                && response.status().is_success()
            {
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                if n == limit {
                    eprintln!(
                        "{KILL_LINE_PREFIX} {n}: {write} -> {}",
                        response.status().as_u16()
                    );
                    std::process::abort();
                }
            }
            Ok(response)
        })
    }
}

/// Fault injection for the tests of panic containment: with `SAFEDEPLOY_FAULT_PANIC_ON=NAME`
/// set, reconciling a SafeDeployment named NAME panics, as a bug would. Unset in production.
pub fn panic_if_asked(name: &str) {
    static TARGET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var("SAFEDEPLOY_FAULT_PANIC_ON").ok());
    if target.as_deref() == Some(name) {
        panic!("fault injection: SAFEDEPLOY_FAULT_PANIC_ON={name}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str, content_type: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(t) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, t);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn the_setting_is_off_unless_a_positive_integer() {
        assert_eq!(kill_after_writes(None).unwrap(), None);
        assert_eq!(kill_after_writes(Some("")).unwrap(), None);
        assert_eq!(kill_after_writes(Some(" 3 ")).unwrap(), Some(3));
        assert!(kill_after_writes(Some("0")).is_err());
        assert!(kill_after_writes(Some("-1")).is_err());
        assert!(kill_after_writes(Some("many")).is_err());
    }

    #[test]
    fn writes_are_counted_reads_and_leases_are_not() {
        let rs = "/apis/apps/v1/namespaces/n/replicasets/web-1";
        assert_eq!(
            counted_write(&request(
                Method::PATCH,
                rs,
                Some("application/merge-patch+json")
            )),
            Some(format!("PATCH(merge) {rs}"))
        );
        assert_eq!(
            counted_write(&request(
                Method::PATCH,
                "/apis/safedeploy.dev/v1alpha1/namespaces/n/safedeployments/web/status?fieldManager=safedeploy&force=true",
                Some("application/apply-patch+yaml")
            )),
            Some(
                "PATCH(apply) /apis/safedeploy.dev/v1alpha1/namespaces/n/safedeployments/web/status"
                    .to_string()
            )
        );
        assert_eq!(
            counted_write(&request(
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/n/events",
                Some("application/json")
            )),
            Some("POST /apis/events.k8s.io/v1/namespaces/n/events".to_string())
        );
        assert_eq!(
            counted_write(&request(Method::DELETE, rs, None)),
            Some(format!("DELETE {rs}"))
        );
        assert_eq!(counted_write(&request(Method::GET, rs, None)), None);
        assert_eq!(
            counted_write(&request(
                Method::POST,
                "/apis/apps/v1/namespaces/n/replicasets?dryRun=All&fieldManager=safedeploy",
                Some("application/json")
            )),
            None,
            "a dry run writes nothing"
        );
        assert_eq!(
            counted_write(&request(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/n/leases/safedeploy-controller",
                Some("application/json")
            )),
            None
        );
    }
}
