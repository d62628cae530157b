//! Shared helpers of the integration tests, which run against the local control plane of
//! `e2e/cluster.sh` (or any cluster KUBECONFIG points at, e.g. `e2e/kind/`).
//!
//! * Cluster access: [`client`] builds a kube `Client` from `KUBECONFIG`; [`TestNamespace`] makes
//!   a fresh namespace per test (random suffix) and deletes it when dropped, so tests run in
//!   parallel without sharing objects.
//! * Workloads: [`deployment`] / [`replica_set`] build apps whose pod template carries a
//!   [`Fault`] (the kwok annotations documented in `e2e/README.md`); pod inspection helpers.
//! * Waiting: [`wait_until`] polls an async probe until it yields a value or a timeout expires.
//! * Metrics: [`prometheus_query`] (env `SAFEDEPLOY_PROMETHEUS_URL`), the emitter's control
//!   endpoint (env `SAFEDEPLOY_EMITTER_URL`), extra scrape targets through Prometheus file_sd
//!   (env `SAFEDEPLOY_PROMETHEUS_TARGETS_DIR`) and an in-process emitter for a test's own use.
//!
//! Each test binary uses a subset of this module, hence the `dead_code` allowance.
#![allow(dead_code)]

/// Ready capacity sampled through a move between workloads.
pub mod capacity;
/// What a pod's status says: conditions, phase, crashes and restarts, start-up latency.
mod pods;
/// A replica freeze by admission policy, to make the operator's scale writes fail.
pub mod replica_freeze;
/// Requests through the real data plane (Traefik), counted by the revision that answered.
pub mod traffic;
pub use pods::*;

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The error type of the helpers: any error, with its message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// The result type of the helpers.
pub type Result<T = ()> = std::result::Result<T, Error>;

/// Pod annotation selecting a failure mode: `crash` or `never-ready` (see [`Fault`]).
pub const FAULT_ANNOTATION: &str = "safedeploy.dev/fault";
/// Pod annotation delaying readiness until creation + N seconds.
pub const READY_AFTER_ANNOTATION: &str = "safedeploy.dev/ready-after-seconds";
/// Label put on every namespace the tests create.
pub const TEST_LABEL: &str = "safedeploy.dev/test";
/// Env var: base URL of the Prometheus the tests query.
pub const PROMETHEUS_URL_ENV: &str = "SAFEDEPLOY_PROMETHEUS_URL";
/// Env var: base URL of the metrics emitter Prometheus scrapes.
pub const EMITTER_URL_ENV: &str = "SAFEDEPLOY_EMITTER_URL";
/// Env var: Prometheus file_sd directory for extra scrape targets.
pub const TARGETS_DIR_ENV: &str = "SAFEDEPLOY_PROMETHEUS_TARGETS_DIR";

/// How the fake kubelet (kwok) treats the pods of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Running and Ready about 0.5 s after start.
    None,
    /// Ready, then about 1 s later the container exits; the first exit is restarted at once
    /// (restartCount + 1), later ones after 2 s in CrashLoopBackOff, as a real kubelet does.
    Crash,
    /// Ready, then about 1 s later the container exits, and is never restarted (terminated with
    /// restartCount 0: the kubelet's restart, which a loaded node delays, has not come).
    CrashUnrestarted,
    /// Running, never Ready.
    NeverReady,
    /// Ready at creationTimestamp + the given seconds.
    ReadyAfterSeconds(u32),
}

impl Fault {
    /// The pod annotations that select this behaviour.
    pub fn annotations(self) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::new();
        match self {
            Fault::None => {}
            Fault::Crash => {
                annotations.insert(FAULT_ANNOTATION.to_owned(), "crash".to_owned());
            }
            Fault::CrashUnrestarted => {
                annotations.insert(FAULT_ANNOTATION.to_owned(), "crash-unrestarted".to_owned());
            }
            Fault::NeverReady => {
                annotations.insert(FAULT_ANNOTATION.to_owned(), "never-ready".to_owned());
            }
            Fault::ReadyAfterSeconds(seconds) => {
                annotations.insert(READY_AFTER_ANNOTATION.to_owned(), seconds.to_string());
            }
        }
        annotations
    }
}

/// Installs the process-wide rustls crypto provider (ring) once; harmless if already done.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A kube client for the cluster `KUBECONFIG` points at.
pub async fn client() -> Client {
    init();
    match Client::try_default().await {
        Ok(client) => client,
        Err(error) => panic!(
            "cannot build a Kubernetes client ({error}); start the local control plane with \
             `e2e/cluster.sh up` and `eval \"$(e2e/cluster.sh env)\"`"
        ),
    }
}

/// A random lowercase hex string of `len` characters (no extra crate: std's random hasher keys,
/// the clock and a counter).
pub fn random_suffix(len: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::new();
    while out.len() < len {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(len);
    out
}

/// Polls `probe` every 250 ms until it yields `Some`, and returns that value. Probe errors are
/// retried (the last one is reported). Panics after `timeout`, naming `what`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_error = None;
    loop {
        match probe().await {
            Ok(Some(value)) => return value,
            Ok(None) => {}
            Err(error) => last_error = Some(error.to_string()),
        }
        if start.elapsed() >= timeout {
            match last_error {
                Some(error) => {
                    panic!("timed out after {timeout:?} waiting for {what} (last error: {error})")
                }
                None => panic!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A namespace of one test, with a random suffix; deleted (best effort) when dropped.
pub struct TestNamespace {
    /// A client for the cluster.
    pub client: Client,
    /// The namespace's name.
    pub name: String,
}

impl TestNamespace {
    /// Creates `sd-<prefix>-<random>` and waits for its default ServiceAccount (pods need it).
    pub async fn new(prefix: &str) -> Self {
        let client = client().await;
        let name = format!("sd-{prefix}-{}", random_suffix(6));
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace: Namespace = serde_json::from_value(json!({
            "metadata": { "name": name, "labels": { TEST_LABEL: "true" } }
        }))
        .expect("namespace manifest");
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|error| panic!("cannot create namespace {name}: {error}"));
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        wait_until(
            Duration::from_secs(30),
            "the default ServiceAccount",
            || {
                let accounts = accounts.clone();
                async move { Ok(accounts.get_opt("default").await?.map(|_| ())) }
            },
        )
        .await;
        Self { client, name }
    }

    /// An API for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Creates a Deployment in this namespace.
    pub async fn create_deployment(&self, deployment: &Deployment) -> Deployment {
        self.api::<Deployment>()
            .create(&PostParams::default(), deployment)
            .await
            .unwrap_or_else(|error| panic!("cannot create the Deployment: {error}"))
    }

    /// Creates a ReplicaSet in this namespace.
    pub async fn create_replica_set(&self, replica_set: &ReplicaSet) -> ReplicaSet {
        self.api::<ReplicaSet>()
            .create(&PostParams::default(), replica_set)
            .await
            .unwrap_or_else(|error| panic!("cannot create the ReplicaSet: {error}"))
    }

    /// Every ReplicaSet of the namespace.
    pub async fn replica_sets(&self) -> Vec<ReplicaSet> {
        self.api::<ReplicaSet>()
            .list(&ListParams::default())
            .await
            .expect("list the ReplicaSets")
            .items
    }

    /// The pods labelled `app=<app>`.
    pub async fn pods(&self, app: &str) -> Result<Vec<Pod>> {
        let list = self
            .api::<Pod>()
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await?;
        Ok(list.items)
    }

    /// Waits until `count` pods labelled `app=<app>` are Ready, and returns them.
    pub async fn wait_ready_pods(&self, app: &str, count: usize, timeout: Duration) -> Vec<Pod> {
        wait_until(
            timeout,
            &format!("{count} Ready pods of {app}"),
            || async move {
                let pods = self.pods(app).await?;
                let ready: Vec<Pod> = pods.into_iter().filter(is_ready).collect();
                Ok((ready.len() >= count).then_some(ready))
            },
        )
        .await
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // The test's runtime is blocked in this drop: delete from a thread with its own runtime
        // and its own client (a client is tied to the runtime that made it).
        let name = self.name.clone();
        let deleted = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                init();
                if let Ok(client) = Client::try_default().await {
                    strip_finalizers(&client, &name).await;
                    let namespaces: Api<Namespace> = Api::all(client);
                    let _ = namespaces.delete(&name, &DeleteParams::background()).await;
                }
            });
        });
        let _ = deleted.join();
    }
}

/// Removes the operator's finalizers (`safedeploy.dev/routes`) from the SafeDeployments of
/// `namespace`: a test that ends mid-rollout has already stopped its operator, and the
/// namespace would otherwise stay `Terminating` on the shared cluster.
async fn strip_finalizers(client: &Client, namespace: &str) {
    use kube::ResourceExt;
    let api: Api<safedeploy::api::SafeDeployment> = Api::namespaced(client.clone(), namespace);
    let Ok(list) = api.list(&Default::default()).await else {
        return;
    };
    let patch = json!({"metadata": {"finalizers": null}});
    for sd in list.items.iter().filter(|sd| !sd.finalizers().is_empty()) {
        let _ = api
            .patch(
                &sd.name_any(),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await;
    }
}

fn pod_template(app: &str, fault: Fault) -> serde_json::Value {
    json!({
        "metadata": { "labels": { "app": app }, "annotations": fault.annotations() },
        "spec": {
            "containers": [{ "name": "app", "image": "registry.invalid/safedeploy/demo:1" }],
            "terminationGracePeriodSeconds": 0
        }
    })
}

/// A Deployment `name` (pods labelled `app=<name>`) whose pod template carries `fault`.
pub fn deployment(name: &str, replicas: i32, fault: Fault) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": pod_template(name, fault)
        }
    }))
    .expect("deployment manifest")
}

/// A ReplicaSet `name` (pods labelled `app=<name>`) whose pod template carries `fault`.
pub fn replica_set(name: &str, replicas: i32, fault: Fault) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": pod_template(name, fault)
        }
    }))
    .expect("replicaset manifest")
}

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value.trim_end_matches('/').to_owned(),
        _ => panic!(
            "{name} is not set: start Prometheus and the emitter with \
             `e2e/cluster.sh up --with-prometheus` and `eval \"$(e2e/cluster.sh env)\"`"
        ),
    }
}

/// Base URL of Prometheus (env `SAFEDEPLOY_PROMETHEUS_URL`, e.g. `http://127.0.0.1:19090`).
pub fn prometheus_url() -> String {
    required_env(PROMETHEUS_URL_ENV)
}

/// Base URL of the shared emitter (env `SAFEDEPLOY_EMITTER_URL`, e.g. `http://127.0.0.1:19464`).
pub fn emitter_url() -> String {
    required_env(EMITTER_URL_ENV)
}

/// An HTTP client for loopback services.
pub fn http() -> reqwest::Client {
    init();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// One sample of an instant-vector query: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct PromSample {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// A successful answer of the Prometheus HTTP API `endpoint` (`query`, `query_range`).
async fn prometheus_api(endpoint: &str, params: &[(&str, &str)]) -> Result<serde_json::Value> {
    let body: serde_json::Value = http()
        .get(format!("{}/api/v1/{endpoint}", prometheus_url()))
        .query(params)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    if body["status"] != "success" {
        return Err(format!("{endpoint} {params:?} failed: {body}").into());
    }
    Ok(body)
}

/// Runs an instant PromQL query and returns its samples (an empty vector if no series match).
pub async fn prometheus_query(query: &str) -> Result<Vec<PromSample>> {
    let body = prometheus_api("query", &[("query", query)]).await?;
    let result = body["data"]["result"]
        .as_array()
        .ok_or_else(|| format!("query {query:?}: not an instant vector: {body}"))?;
    result
        .iter()
        .map(|series| {
            let labels = series["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let value = series["value"][1]
                .as_str()
                .ok_or_else(|| format!("query {query:?}: sample without value: {series}"))?
                .parse::<f64>()?;
            Ok(PromSample { labels, value })
        })
        .collect()
}

/// The first time in `[start, end]` (evaluated every 100 ms) at which `query`, a query of one
/// series, is above `threshold`: when Prometheus first showed it, judged afterwards from the
/// stored samples (a sample is evaluable from its scrape timestamp on).
pub async fn first_above(
    query: &str,
    threshold: f64,
    start: jiff::Timestamp,
    end: jiff::Timestamp,
) -> Result<Option<jiff::Timestamp>> {
    let seconds = |t: jiff::Timestamp| format!("{:.3}", t.as_millisecond() as f64 / 1000.0);
    let (start, end) = (seconds(start), seconds(end));
    let params = [
        ("query", query),
        ("start", &start),
        ("end", &end),
        ("step", "0.1"),
    ];
    let body = prometheus_api("query_range", &params).await?;
    let values = body["data"]["result"][0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for point in values {
        let at = point[0].as_f64().unwrap_or_default();
        let value: f64 = point[1].as_str().unwrap_or("NaN").parse()?;
        if value > threshold {
            return Ok(Some(jiff::Timestamp::from_millisecond(
                (at * 1000.0).round() as i64,
            )?));
        }
    }
    Ok(None)
}

/// The single value of a query, or None if it returned no series (an error if several).
pub async fn prometheus_scalar(query: &str) -> Result<Option<f64>> {
    let samples = prometheus_query(query).await?;
    match samples.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.value)),
        _ => Err(format!("query {query:?} returned {} series", samples.len()).into()),
    }
}

/// Error ratio of `version` over the last `window` (e.g. `"10s"`), as the tests and the demo
/// query it.
pub fn error_ratio_query(version: &str, window: &str) -> String {
    format!(
        "sum(rate(safedeploy_demo_errors_total{{version=\"{version}\"}}[{window}])) / \
         sum(rate(safedeploy_demo_requests_total{{version=\"{version}\"}}[{window}]))"
    )
}

/// A version name unique to this test run (emitter versions are shared by all tests).
pub fn unique_version(prefix: &str) -> String {
    format!("{prefix}-{}", random_suffix(8))
}

/// Creates or changes a version on an emitter (`POST {base}/control/{version}`); `None` keeps a
/// setting. Returns the emitter's answer (`version`, `errorRatio`, `latencyMs`, `rps`, ...).
pub async fn emitter_configure(
    base: &str,
    version: &str,
    error_ratio: Option<f64>,
    latency_ms: Option<f64>,
    rps: Option<f64>,
) -> Result<serde_json::Value> {
    let mut query = Vec::new();
    if let Some(v) = error_ratio {
        query.push(("errorRatio", v.to_string()));
    }
    if let Some(v) = latency_ms {
        query.push(("latencyMs", v.to_string()));
    }
    if let Some(v) = rps {
        query.push(("rps", v.to_string()));
    }
    Ok(http()
        .post(format!("{base}/control/{version}"))
        .query(&query)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Stops simulating a version on an emitter (best effort).
pub async fn emitter_remove(base: &str, version: &str) {
    let _ = http()
        .delete(format!("{base}/control/{version}"))
        .send()
        .await;
}

/// An extra Prometheus scrape target, registered through file_sd; removed when dropped.
pub struct ScrapeTarget {
    path: PathBuf,
}

impl ScrapeTarget {
    /// Makes Prometheus scrape `address` (`host:port`) in job `safedeploy-emitter`, with the
    /// label `emitter=<name>`. Needs env `SAFEDEPLOY_PROMETHEUS_TARGETS_DIR`.
    pub fn register(name: &str, address: &str) -> Result<Self> {
        let dir = PathBuf::from(required_env(TARGETS_DIR_ENV));
        let path = dir.join(format!("{name}.json"));
        let tmp = dir.join(format!(".{name}.json.tmp"));
        let content = json!([{ "targets": [address], "labels": { "emitter": name } }]);
        std::fs::write(&tmp, content.to_string())?;
        // Prometheus must never read a half-written file.
        std::fs::rename(&tmp, &path)?;
        Ok(Self { path })
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves `app` on 127.0.0.1 (random port) in the background, for as long as the test runs;
/// returns its address.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// An emitter served by the test process itself on 127.0.0.1 (random port); stopped when dropped.
pub struct LocalEmitter {
    /// Its state, to configure versions directly.
    pub emitter: Arc<safedeploy::emitter::Emitter>,
    /// `127.0.0.1:<port>`.
    pub address: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl LocalEmitter {
    /// Starts an emitter with default settings (no error, 50 ms, 20 rps) and the given versions.
    pub async fn start(versions: &[&str]) -> Result<Self> {
        use safedeploy::emitter::{Emitter, Settings, SettingsUpdate};
        let defaults = Settings {
            error_ratio: 0.0,
            latency_ms: 50.0,
            rps: 20.0,
        };
        let emitter = Arc::new(Emitter::new(defaults, 1)?);
        for version in versions {
            emitter.configure(version, &SettingsUpdate::default())?;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let router = safedeploy::emitter::router(Arc::clone(&emitter));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let simulation = tokio::spawn(safedeploy::emitter::simulate(
            Arc::clone(&emitter),
            Duration::from_millis(100),
        ));
        Ok(Self {
            emitter,
            address,
            tasks: vec![server, simulation],
        })
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for LocalEmitter {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Watches a namespace's ReplicaSets and records the lowest total of Ready pods across the
/// revisions' ReplicaSets (a fresh baseline's excluded: it is not capacity) in any state the
/// watch shows, from the first complete listing on.
pub struct ReadyCapacityWatch {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<(i32, usize)>,
}

impl ReadyCapacityWatch {
    /// Starts watching `namespace`.
    pub async fn start(client: Client, namespace: &str) -> Self {
        use futures::StreamExt;
        use kube::runtime::watcher;
        let api: Api<ReplicaSet> = Api::namespaced(client, namespace);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default()).boxed();
            let mut ready: BTreeMap<String, i32> = BTreeMap::new();
            let mut listed = false;
            let mut minimum = i32::MAX;
            let mut states = 0;
            loop {
                let event = tokio::select! {
                    _ = &mut stopped => break,
                    event = events.next() => event,
                };
                let Some(Ok(event)) = event else { continue };
                match event {
                    watcher::Event::Apply(rs) | watcher::Event::InitApply(rs) => {
                        let baseline = rs
                            .metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("safedeploy.dev/role"))
                            .is_some_and(|r| r == "baseline");
                        let name = rs.metadata.name.clone().unwrap_or_default();
                        if !baseline {
                            let count = rs.status.and_then(|s| s.ready_replicas).unwrap_or(0);
                            ready.insert(name, count);
                        }
                    }
                    watcher::Event::Delete(rs) => {
                        ready.remove(&rs.metadata.name.unwrap_or_default());
                    }
                    watcher::Event::InitDone => listed = true,
                    watcher::Event::Init => {}
                }
                if listed {
                    states += 1;
                    minimum = minimum.min(ready.values().sum());
                }
            }
            (minimum, states)
        });
        // Let the watch list what exists before the change under test.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Self {
            stop: Some(stop),
            task,
        }
    }

    /// Stops watching: the lowest Ready total seen, and how many states were seen.
    pub async fn finish(mut self) -> (i32, usize) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap_or((i32::MIN, 0))
    }
}

/// What one kubectl run printed, and whether it succeeded (a successful `kubectl apply` may
/// still print the API server's warnings on stderr).
pub struct KubectlRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs kubectl (the admin kubeconfig of `e2e/cluster.sh env`) with `stdin`. Blocks: async
/// code uses [`kubectl_run`]; this is for `Drop`.
pub fn kubectl_blocking(args: &[&str], stdin: Option<&str>) -> KubectlRun {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH (eval \"$(e2e/cluster.sh env)\")");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("write kubectl's stdin");
    }
    let output = child.wait_with_output().expect("kubectl");
    KubectlRun {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// [`kubectl_blocking`] on a blocking thread, so the test's other tasks go on meanwhile.
pub async fn kubectl_run(args: &[&str], stdin: Option<&str>) -> KubectlRun {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kubectl_blocking(&args, stdin.as_deref())
    })
    .await
    .expect("the kubectl task")
}

/// Now plus `seconds` (negative: in the past), as RFC 3339 to the second.
pub fn in_seconds(seconds: i64) -> String {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .expect("time")
        .round(jiff::Unit::Second)
        .expect("round")
        .to_string()
}
