//! The data plane of the tests (docs/data-plane.md): requests sent through a real Gateway API
//! implementation (Traefik v3, `e2e/lib/traefik.sh up`) and counted by the revision that answered.
//!
//! * [`DataPlane`]: the running proxy (env `SAFEDEPLOY_TRAEFIK_URL`) and its Gateway (env
//!   `SAFEDEPLOY_GATEWAY`), or a skip message when it is not up; [`http_route`] builds an
//!   HTTPRoute attached to that Gateway, [`route_parent_status`] reads what the Gateway says of it.
//! * [`PodBackends`]: one listener on `0.0.0.0:<port>` that answers as the pod whose IP was
//!   dialled. kwok's pods have fake IPs; `traefik.sh up` makes their CIDRs local (AnyIP), so the
//!   proxy's connection to a pod IP lands here, and the listener reads the connection's local
//!   (destination) address, finds the pod with that IP (a pod watch of the test's namespace) and
//!   answers with its `safedeploy.dev/revision` label, or 500 when the pod carries
//!   [`HTTP_FAULT_ANNOTATION`]` = error`. Services then select pods as usual: the proxy routes to
//!   the real EndpointSlices of real Services.
//! * [`send`] sends N requests with a Host header and returns a [`Tally`] (answers by revision,
//!   failures); [`Load`] keeps sending until stopped, for a change under continuous traffic;
//!   [`assert_share`] checks a measured share against a binomial tolerance and prints a
//!   `MEASURED` line.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::StatusCode;
use axum::serve::IncomingStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::Result;

/// Env var set to 1 (by e2e/test-all.sh, as root) when the data plane must be up: no skip then.
pub const REQUIRE_DATA_PLANE_ENV: &str = "SAFEDEPLOY_REQUIRE_DATA_PLANE";
/// Env var: base URL of the proxy's HTTP entry point (`e2e/lib/traefik.sh env`).
pub const TRAEFIK_URL_ENV: &str = "SAFEDEPLOY_TRAEFIK_URL";
/// Env var: base URL of Traefik's read-only API (`e2e/lib/traefik.sh env`), where the weights it
/// has loaded can be read.
pub const TRAEFIK_API_URL_ENV: &str = "SAFEDEPLOY_TRAEFIK_API_URL";
/// Env var: `<namespace>/<name>` of the Gateway the proxy programs (`e2e/lib/traefik.sh env`).
pub const GATEWAY_ENV: &str = "SAFEDEPLOY_GATEWAY";
/// The revision label the backends answer with (the operator's `safedeploy.dev/revision`).
pub const REVISION_LABEL: &str = "safedeploy.dev/revision";
/// Pod annotation: `error` makes the pod's answers HTTP 500 (an error canary).
pub const HTTP_FAULT_ANNOTATION: &str = "safedeploy.dev/http-fault";
/// Response header naming the pod that answered.
pub const POD_HEADER: &str = "x-safedeploy-pod";
/// The controller name Traefik writes into `status.parents[].controllerName`.
pub const TRAEFIK_CONTROLLER: &str = "traefik.io/gateway-controller";
/// The field manager of the routes the tests write.
pub const TEST_FIELD_MANAGER: &str = "safedeploy-dataplane-test";

/// The running proxy and the Gateway it programs.
#[derive(Debug, Clone)]
pub struct DataPlane {
    /// Base URL of the proxy's HTTP entry point, e.g. `http://127.0.0.1:19080`.
    pub url: String,
    /// Namespace of the Gateway routes attach to.
    pub gateway_namespace: String,
    /// Name of that Gateway.
    pub gateway_name: String,
    /// Base URL of Traefik's read-only API, if known.
    pub api_url: Option<String>,
}

impl DataPlane {
    /// The proxy from the environment, if it answers; otherwise `None` after printing why the
    /// calling test skips.
    pub async fn available() -> Option<Self> {
        // e2e/test-all.sh starts the data plane as root and sets this: a test that would skip
        // there fails instead, so the suite never passes without the proxy.
        let required = std::env::var(REQUIRE_DATA_PLANE_ENV).is_ok_and(|v| v == "1");
        let skip = |why: String| {
            assert!(!required, "{REQUIRE_DATA_PLANE_ENV}=1 but {why}");
            eprintln!("SKIPPED: {why}");
        };
        let (Ok(url), Ok(gateway)) = (std::env::var(TRAEFIK_URL_ENV), std::env::var(GATEWAY_ENV))
        else {
            skip(format!(
                "no data plane ({TRAEFIK_URL_ENV} / {GATEWAY_ENV} unset); start it with \
                 `e2e/lib/traefik.sh up` (root, for the AnyIP routes) and \
                 `eval \"$(e2e/lib/traefik.sh env)\"`"
            ));
            return None;
        };
        let Some((gateway_namespace, gateway_name)) = gateway.split_once('/') else {
            panic!("{GATEWAY_ENV} must be <namespace>/<name>, not {gateway:?}");
        };
        // Any HTTP answer (404 for an unknown host) means the proxy is up.
        if let Err(error) = super::http().get(&url).send().await {
            skip(format!(
                "the data plane at {url} does not answer ({error}); run `e2e/lib/traefik.sh up`"
            ));
            return None;
        }
        Some(Self {
            url,
            gateway_namespace: gateway_namespace.to_owned(),
            gateway_name: gateway_name.to_owned(),
            api_url: std::env::var(TRAEFIK_API_URL_ENV).ok(),
        })
    }

    /// The weights Traefik has loaded for route `name` in `namespace`: one map per weighted
    /// rule, from the backend Service's name to its weight. Traefik names the backends
    /// `<namespace>-<service>-<port name>-<port>`; the namespace prefix is removed here. A route
    /// change counts as live once this shows it (the route object alone does not say so).
    pub async fn loaded_weights(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<BTreeMap<String, u64>>> {
        let api_url = self
            .api_url
            .as_deref()
            .ok_or(format!("{TRAEFIK_API_URL_ENV} is unset"))?;
        let services: Vec<Value> = super::http()
            .get(format!("{api_url}/api/http/services"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let route_prefix = format!("httproute-{namespace}-{name}-gw-");
        let service_prefix = format!("{namespace}-");
        let mut rules = Vec::new();
        for service in services {
            let service_name = service["name"].as_str().unwrap_or_default();
            if !service_name.starts_with(&route_prefix) {
                continue;
            }
            let Some(backends) = service["weighted"]["services"].as_array() else {
                continue;
            };
            let weights = backends
                .iter()
                .map(|backend| {
                    let backend_name = backend["name"].as_str().unwrap_or_default();
                    let short = backend_name.strip_prefix(&service_prefix);
                    let weight = backend["weight"].as_u64().unwrap_or(1);
                    (short.unwrap_or(backend_name).to_owned(), weight)
                })
                .collect();
            rules.push(weights);
        }
        Ok(rules)
    }

    /// Waits until Traefik has loaded `weight` for the backend `service` (a name as in
    /// [`DataPlane::loaded_weights`], e.g. `web-canary-http-80`) of route `name`.
    pub async fn wait_loaded_weight(
        &self,
        namespace: &str,
        name: &str,
        service: &str,
        weight: u64,
    ) {
        super::wait_until(
            Duration::from_secs(30),
            &format!("Traefik to load weight {weight} for {service} in route {namespace}/{name}"),
            || async move {
                let rules = self.loaded_weights(namespace, name).await?;
                let loaded = rules.iter().any(|rule| rule.get(service) == Some(&weight));
                Ok(loaded.then_some(()))
            },
        )
        .await;
    }

    /// The `parentRefs` entry that attaches a route to this Gateway.
    pub fn parent_ref(&self) -> Value {
        json!({ "name": self.gateway_name, "namespace": self.gateway_namespace })
    }
}

/// The HTTPRoute kind (Gateway API v1), for a dynamic `Api`.
pub fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
    ))
}

/// An `Api` for HTTPRoutes in `namespace`.
pub fn http_routes(client: Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client, namespace, &http_route_resource())
}

/// A weighted backendRef: Service `service`, port `port`, `weight`.
pub fn backend_ref(service: &str, port: u16, weight: u32) -> Value {
    json!({ "name": service, "port": port, "weight": weight })
}

/// An HTTPRoute `name` for `hostname` on the data plane's Gateway, with the given rules (each a
/// Gateway API `HTTPRouteRule`, e.g. `{"backendRefs": [backend_ref(...)]}`).
pub fn http_route(data_plane: &DataPlane, name: &str, hostname: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": { "name": name },
        "spec": {
            "parentRefs": [data_plane.parent_ref()],
            "hostnames": [hostname],
            "rules": rules
        }
    })
}

/// Server-side applies `route` (an HTTPRoute manifest) in `namespace` as [`TEST_FIELD_MANAGER`].
pub async fn apply_route(client: Client, namespace: &str, route: &Value) -> Result {
    let name = route["metadata"]["name"]
        .as_str()
        .ok_or("the route has no metadata.name")?;
    http_routes(client, namespace)
        .patch(
            name,
            &PatchParams::apply(TEST_FIELD_MANAGER).force(),
            &Patch::Apply(route),
        )
        .await?;
    Ok(())
}

/// The conditions Traefik wrote for route `name` under `status.parents` (its own entry), as
/// `type -> (status, reason)`; empty until Traefik has seen the route.
pub async fn route_parent_status(
    client: Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, (String, String)>> {
    let route = http_routes(client, namespace).get(name).await?;
    let mut conditions = BTreeMap::new();
    let parents = route.data["status"]["parents"].as_array().cloned();
    for parent in parents.unwrap_or_default() {
        if parent["controllerName"] != TRAEFIK_CONTROLLER {
            continue;
        }
        for condition in parent["conditions"].as_array().cloned().unwrap_or_default() {
            let text = |key: &str| condition[key].as_str().unwrap_or_default().to_owned();
            conditions.insert(text("type"), (text("status"), text("reason")));
        }
    }
    Ok(conditions)
}

/// Waits until Traefik reports route `name` Accepted=True and ResolvedRefs=True.
pub async fn wait_route_accepted(client: Client, namespace: &str, name: &str) {
    super::wait_until(
        Duration::from_secs(30),
        &format!("Traefik to accept HTTPRoute {namespace}/{name}"),
        || {
            let client = client.clone();
            async move {
                let conditions = route_parent_status(client, namespace, name).await?;
                let is_true = |kind: &str| conditions.get(kind).is_some_and(|(s, _)| s == "True");
                Ok((is_true("Accepted") && is_true("ResolvedRefs")).then_some(()))
            }
        },
    )
    .await;
}

/// What the backend listener knows of a pod: its revision label and fault annotation.
#[derive(Debug, Clone)]
struct PodAnswer {
    name: String,
    revision: String,
    error: bool,
}

/// The connection's local (destination) address: the pod IP the proxy dialled.
#[derive(Debug, Clone, Copy)]
struct Dialled(SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Dialled {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let fallback = SocketAddr::from(([0, 0, 0, 0], 0));
        Dialled(stream.io().local_addr().unwrap_or(fallback))
    }
}

#[derive(Clone)]
struct BackendState {
    pods: Store<Pod>,
    unknown: Arc<AtomicU64>,
}

impl BackendState {
    fn pod_at(&self, ip: IpAddr) -> Option<PodAnswer> {
        let ip = ip.to_string();
        self.pods.state().into_iter().find_map(|pod| {
            let status = pod.status.as_ref()?;
            let has_ip = status.pod_ip.as_deref() == Some(ip.as_str())
                || status.pod_ips.iter().flatten().any(|entry| entry.ip == ip);
            has_ip.then(|| PodAnswer {
                name: pod.name_any(),
                revision: pod
                    .labels()
                    .get(REVISION_LABEL)
                    .cloned()
                    .unwrap_or_default(),
                error: pod
                    .annotations()
                    .get(HTTP_FAULT_ANNOTATION)
                    .map(String::as_str)
                    == Some("error"),
            })
        })
    }
}

async fn answer_as_pod(
    State(state): State<BackendState>,
    ConnectInfo(Dialled(dialled)): ConnectInfo<Dialled>,
) -> (StatusCode, [(&'static str, String); 1], String) {
    match state.pod_at(dialled.ip()) {
        Some(pod) if pod.error => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(POD_HEADER, pod.name)],
            pod.revision,
        ),
        Some(pod) => (StatusCode::OK, [(POD_HEADER, pod.name)], pod.revision),
        None => {
            state.unknown.fetch_add(1, Ordering::Relaxed);
            (
                StatusCode::BAD_GATEWAY,
                [(POD_HEADER, String::new())],
                format!("no pod of this namespace has IP {}", dialled.ip()),
            )
        }
    }
}

/// One listener on `0.0.0.0:<port>` answering as the pods of one namespace (see the module
/// docs); stopped when dropped. Services of the test use [`PodBackends::port`] as targetPort.
pub struct PodBackends {
    port: u16,
    pods: Store<Pod>,
    unknown: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PodBackends {
    /// Starts the pod watch of `namespace` and the listener (random port).
    pub async fn start(client: Client, namespace: &str) -> Result<Self> {
        Self::start_on(client, namespace, 0).await
    }

    /// As [`PodBackends::start`], on `port` (0: random), for Services whose targetPort is fixed
    /// (e.g. an operator-managed Service targeting the pod template's container port). One
    /// listener per port on the machine: tests in parallel need different ports.
    pub async fn start_on(client: Client, namespace: &str, port: u16) -> Result<Self> {
        let (pods, writer) = reflector::store();
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let watch = tokio::spawn(async move {
            let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
                .applied_objects()
                .default_backoff();
            futures::pin_mut!(stream);
            while stream.next().await.is_some() {}
        });
        let listener = TcpListener::bind(("0.0.0.0", port)).await?;
        let port = listener.local_addr()?.port();
        let unknown = Arc::new(AtomicU64::new(0));
        let state = BackendState {
            pods: pods.clone(),
            unknown: unknown.clone(),
        };
        let app = axum::Router::new()
            .fallback(answer_as_pod)
            .with_state(state);
        let serve = tokio::spawn(async move {
            let service = app.into_make_service_with_connect_info::<Dialled>();
            let _ = axum::serve(listener, service).await;
        });
        Ok(Self {
            port,
            pods,
            unknown,
            tasks: vec![watch, serve],
        })
    }

    /// The port every pod "listens" on: the targetPort of the test's Services.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections that reached the listener on an IP of no pod of the namespace.
    pub fn unknown_answers(&self) -> u64 {
        self.unknown.load(Ordering::Relaxed)
    }

    /// Waits until the pod watch knows `count` pods with an IP (so that no answer races it).
    pub async fn wait_known(&self, count: usize) {
        let pods = self.pods.clone();
        super::wait_until(
            Duration::from_secs(30),
            &format!("the backend listener to know {count} pods with IPs"),
            || {
                let pods = pods.clone();
                async move {
                    let known = pods
                        .state()
                        .iter()
                        .filter(|pod| {
                            pod.status
                                .as_ref()
                                .and_then(|s| s.pod_ip.as_ref())
                                .is_some()
                        })
                        .count();
                    Ok((known >= count).then_some(()))
                }
            },
        )
        .await;
    }

    /// GETs `http://<ip>:<port>/` directly, without the proxy: the revision the "pod" at `ip`
    /// answers with. Fails when the AnyIP route for the pod CIDR is missing.
    pub async fn ask_directly(&self, ip: &str) -> Result<(u16, String)> {
        let response = super::http()
            .get(format!("http://{ip}:{}/", self.port))
            .timeout(Duration::from_secs(3))
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }
}

impl Drop for PodBackends {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Answers counted by revision, and failures (transport errors and non-2xx answers).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Successful answers by the revision that gave them.
    pub by_revision: BTreeMap<String, u64>,
    /// Failed requests: transport errors or non-2xx statuses.
    pub failures: u64,
    /// Failed requests by the revision that answered (`""` for transport errors and proxy
    /// answers without a pod).
    pub failures_by_revision: BTreeMap<String, u64>,
    /// The first few failure descriptions, for messages.
    pub failure_samples: Vec<String>,
}

impl Tally {
    /// Every request counted, successful or not.
    pub fn total(&self) -> u64 {
        self.by_revision.values().sum::<u64>() + self.failures
    }

    /// Successful answers from `revision`.
    pub fn count(&self, revision: &str) -> u64 {
        self.by_revision.get(revision).copied().unwrap_or(0)
    }

    /// The share of all requests that `revision` answered successfully.
    pub fn share(&self, revision: &str) -> f64 {
        match self.total() {
            0 => 0.0,
            total => self.count(revision) as f64 / total as f64,
        }
    }

    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Answered(revision) => *self.by_revision.entry(revision).or_default() += 1,
            Outcome::Failed { revision, what } => {
                self.failures += 1;
                *self.failures_by_revision.entry(revision).or_default() += 1;
                if self.failure_samples.len() < 5 {
                    self.failure_samples.push(what);
                }
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        for (revision, count) in other.by_revision {
            *self.by_revision.entry(revision).or_default() += count;
        }
        for (revision, count) in other.failures_by_revision {
            *self.failures_by_revision.entry(revision).or_default() += count;
        }
        self.failures += other.failures;
        let room = 5usize.saturating_sub(self.failure_samples.len());
        self.failure_samples
            .extend(other.failure_samples.into_iter().take(room));
    }
}

enum Outcome {
    Answered(String),
    Failed { revision: String, what: String },
}

/// A client for the proxy: no proxy settings from the environment, short timeouts.
pub fn proxy_client() -> reqwest::Client {
    super::init();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .build()
        .expect("http client")
}

async fn one_request(
    client: &reqwest::Client,
    url: &str,
    host: &str,
    headers: &[(String, String)],
) -> Outcome {
    let mut request = client.get(url).header(reqwest::header::HOST, host);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            return Outcome::Failed {
                revision: String::new(),
                what: format!("transport: {error}"),
            };
        }
    };
    let status = response.status();
    let answered_by_pod = response.headers().contains_key(POD_HEADER);
    match response.text().await {
        Ok(body) if status.is_success() && answered_by_pod => Outcome::Answered(body),
        Ok(body) => Outcome::Failed {
            revision: if answered_by_pod {
                body.clone()
            } else {
                String::new()
            },
            what: format!(
                "HTTP {status}: {}",
                body.chars().take(120).collect::<String>()
            ),
        },
        Err(error) => Outcome::Failed {
            revision: String::new(),
            what: format!("body: {error}"),
        },
    }
}

/// Sends `count` GET requests to the proxy at `url` with Host `host` and `headers`, `concurrency`
/// at a time, and counts the answers.
pub async fn send(
    url: &str,
    host: &str,
    headers: &[(&str, &str)],
    count: u64,
    concurrency: u64,
) -> Tally {
    let client = proxy_client();
    let headers: Arc<Vec<(String, String)>> = Arc::new(
        headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, headers, next) = (client.clone(), headers.clone(), next.clone());
        let (url, host) = (url.to_owned(), host.to_owned());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                tally.record(one_request(&client, &url, &host, &headers).await);
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for worker in workers {
        tally.merge(worker.await.expect("a request worker panicked"));
    }
    tally
}

/// Every answer of a [`Load`] in order: when it came, and the revision (`None`: failed).
type AnswerLog = Vec<(Instant, Option<String>)>;

/// Requests sent without pause by background workers until [`Load::stop`]; every answer is kept
/// in order, so a test can look at the traffic after a change.
pub struct Load {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<AnswerLog>>,
    tally: Arc<Mutex<Tally>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `concurrency` workers sending to `url` with Host `host`.
    pub fn start(url: &str, host: &str, concurrency: u64) -> Self {
        let client = proxy_client();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let mut workers = Vec::new();
        for _ in 0..concurrency.max(1) {
            let (client, stop, log, tally) =
                (client.clone(), stop.clone(), log.clone(), tally.clone());
            let (url, host) = (url.to_owned(), host.to_owned());
            workers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let outcome = one_request(&client, &url, &host, &[]).await;
                    let answered = match &outcome {
                        Outcome::Answered(revision) => Some(revision.clone()),
                        Outcome::Failed { .. } => None,
                    };
                    log.lock()
                        .expect("load log")
                        .push((Instant::now(), answered));
                    tally.lock().expect("load tally").record(outcome);
                }
            }));
        }
        Self {
            stop,
            log,
            tally,
            workers,
        }
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().expect("load tally").clone()
    }

    /// The last answer from `revision` (`None` if it never answered), and how many requests
    /// were answered since.
    pub fn last_answer_from(&self, revision: &str) -> (Option<Instant>, usize) {
        let log = self.log.lock().expect("load log");
        match log
            .iter()
            .rposition(|(_, answered)| answered.as_deref() == Some(revision))
        {
            Some(index) => (Some(log[index].0), log.len() - index - 1),
            None => (None, log.len()),
        }
    }

    /// Stops the workers and returns the final counts.
    pub async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            let _ = worker.await;
        }
        self.tally.lock().expect("load tally").clone()
    }
}

/// The tolerance of a share test: `z` standard deviations of the count of a router that picks
/// the backend of each of `n` requests independently with probability `p` (binomial).
pub fn binomial_tolerance(n: u64, p: f64, z: f64) -> f64 {
    z * (n as f64 * p * (1.0 - p)).sqrt()
}

/// The number of standard deviations [`assert_share`] allows: a correct random router fails
/// with probability below 1e-4 (normal approximation), see docs/data-plane.md.
pub const SHARE_Z: f64 = 4.0;

/// Asserts that `revision` answered `expected` of the requests in `tally`, within
/// [`binomial_tolerance`] at [`SHARE_Z`], and that no request failed; prints a `MEASURED` line.
pub fn assert_share(what: &str, tally: &Tally, revision: &str, expected: f64) {
    let n = tally.total();
    let count = tally.count(revision);
    let tolerance = binomial_tolerance(n, expected, SHARE_Z);
    let expected_count = expected * n as f64;
    println!(
        "MEASURED {what}: {revision} answered {count}/{n} = {:.3}% (expected {:.3}% ± {:.3}%, \
         i.e. {expected_count:.0} ± {tolerance:.1} requests; {SHARE_Z}σ binomial), failures {}",
        100.0 * tally.share(revision),
        100.0 * expected,
        100.0 * tolerance / n.max(1) as f64,
        tally.failures
    );
    assert_eq!(
        tally.failures, 0,
        "{what}: requests failed: {:?}",
        tally.failure_samples
    );
    assert!(
        (count as f64 - expected_count).abs() <= tolerance,
        "{what}: {revision} answered {count} of {n} requests, expected {expected_count:.0} ± \
         {tolerance:.1} ({tally:?})"
    );
}
