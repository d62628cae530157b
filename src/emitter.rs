//! A small HTTP service for tests and the demo: simulates a steady stream of requests for one or
//! more application versions and exports, per `version` label, a request counter, an error
//! counter and a latency histogram on `/metrics` (Prometheus text format). Each version's error
//! ratio, mean latency and request rate can be read and changed at run time:
//!
//! * `GET /metrics`: `safedeploy_demo_requests_total`, `safedeploy_demo_errors_total`,
//!   `safedeploy_demo_request_duration_seconds` (histogram), and the configured values as gauges
//!   (`safedeploy_demo_configured_error_ratio`, `safedeploy_demo_configured_latency_seconds`,
//!   `safedeploy_demo_configured_requests_per_second`).
//! * `GET /control`: every version's settings and totals, as JSON.
//! * `GET /control/{version}`: one version (404 if unknown).
//! * `POST /control/{version}?errorRatio=0.05&latencyMs=120&rps=20`: creates the version if
//!   needed (with the command-line defaults) and changes the given settings; answers the version.
//! * `DELETE /control/{version}`: stops simulating a version (its series stay exported).
//! * `GET /healthz`: `ok`.
//!
//! Randomness is a seeded xorshift generator per version, so a run is reproducible up to timing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

/// Largest request rate one version may simulate, to keep the emitter cheap.
pub const MAX_RPS: f64 = 10_000.0;
/// Largest configurable mean latency (one minute).
pub const MAX_LATENCY_MS: f64 = 60_000.0;
/// Upper bounds (seconds) of the latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// Arguments of `safedeploy emitter`.
#[derive(Debug, clap::Args)]
pub struct EmitterArgs {
    /// Address to serve `/metrics` and `/control` on.
    #[arg(
        long,
        default_value = "127.0.0.1:19464",
        env = "SAFEDEPLOY_EMITTER_LISTEN"
    )]
    pub listen: SocketAddr,
    /// A version to simulate from the start (repeatable); more are created by `POST /control/{v}`.
    #[arg(long = "version", value_name = "VERSION")]
    pub versions: Vec<String>,
    /// Default simulated requests per second, per version.
    #[arg(long, default_value_t = 20.0)]
    pub rps: f64,
    /// Default ratio of failed requests, in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    pub error_ratio: f64,
    /// Default mean request latency in milliseconds (samples are uniform in [0.5, 1.5] × mean).
    #[arg(long, default_value_t = 50.0)]
    pub latency_ms: f64,
    /// Seed of the pseudo-random generators (one per version, derived from this and its name).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulation step in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub tick_ms: u64,
}

/// Errors of the emitter.
#[derive(Debug, thiserror::Error)]
pub enum EmitterError {
    /// Could not bind or serve.
    #[error("emitter: {0}")]
    Io(#[from] std::io::Error),
    /// A setting is out of its range.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// A version name is empty, too long or has characters other than `[A-Za-z0-9._-]`.
    #[error("invalid version name {0:?}: use 1 to 63 characters of [A-Za-z0-9._-]")]
    InvalidVersion(String),
    /// The version is not simulated.
    #[error("unknown version {0:?}")]
    UnknownVersion(String),
}

/// The behaviour of one simulated version.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Ratio of requests that fail, in [0, 1].
    pub error_ratio: f64,
    /// Mean latency in milliseconds.
    pub latency_ms: f64,
    /// Requests per second.
    pub rps: f64,
}

impl Settings {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), EmitterError> {
        if !(0.0..=1.0).contains(&self.error_ratio) {
            return Err(EmitterError::InvalidSetting(format!(
                "errorRatio must be in [0, 1], got {}",
                self.error_ratio
            )));
        }
        if !(0.0..=MAX_LATENCY_MS).contains(&self.latency_ms) {
            return Err(EmitterError::InvalidSetting(format!(
                "latencyMs must be in [0, {MAX_LATENCY_MS}], got {}",
                self.latency_ms
            )));
        }
        if !(0.0..=MAX_RPS).contains(&self.rps) {
            return Err(EmitterError::InvalidSetting(format!(
                "rps must be in [0, {MAX_RPS}], got {}",
                self.rps
            )));
        }
        Ok(())
    }

    /// These settings with the given changes applied (not validated).
    pub fn with(self, update: &SettingsUpdate) -> Self {
        Self {
            error_ratio: update.error_ratio.unwrap_or(self.error_ratio),
            latency_ms: update.latency_ms.unwrap_or(self.latency_ms),
            rps: update.rps.unwrap_or(self.rps),
        }
    }
}

/// A partial change of [`Settings`], as taken from the query string of `POST /control/{version}`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct SettingsUpdate {
    /// New error ratio.
    #[serde(rename = "errorRatio", alias = "error_ratio")]
    pub error_ratio: Option<f64>,
    /// New mean latency in milliseconds.
    #[serde(rename = "latencyMs", alias = "latency_ms")]
    pub latency_ms: Option<f64>,
    /// New request rate.
    #[serde(rename = "rps")]
    pub rps: Option<f64>,
}

/// Checks that a version name is usable as a label value and a path segment.
pub fn validate_version(name: &str) -> Result<(), EmitterError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EmitterError::InvalidVersion(name.to_owned()))
    }
}

/// A xorshift64* pseudo-random generator: small, fast, deterministic for a seed.
#[derive(Debug, Clone)]
pub struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// A generator for a seed (a zero seed is replaced, since zero is a fixed point).
    pub fn new(seed: u64) -> Self {
        Self {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform sample in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        // The top 53 bits make an exactly representable fraction.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The seed of one version's generator: the global seed mixed with an FNV-1a hash of the name.
pub fn version_seed(seed: u64, version: &str) -> u64 {
    let hash = version.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    seed ^ hash
}

/// One simulated request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Whether the request failed.
    pub error: bool,
    /// Its latency in seconds.
    pub latency_seconds: f64,
}

/// The simulation state of one version.
#[derive(Debug, Clone)]
pub struct VersionSim {
    settings: Settings,
    rng: XorShift64,
    /// Fractional requests carried over between steps, so the long-run rate is exact.
    owed: f64,
    requests: u64,
    errors: u64,
}

impl VersionSim {
    /// A version with validated settings and its own generator.
    pub fn new(settings: Settings, seed: u64) -> Self {
        Self {
            settings,
            rng: XorShift64::new(seed),
            owed: 0.0,
            requests: 0,
            errors: 0,
        }
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Simulates the requests due in `elapsed` at the configured rate.
    pub fn step(&mut self, elapsed: Duration) -> Vec<Sample> {
        // At most one second's worth per step at the maximum rate: a stalled timer cannot
        // produce an unbounded burst.
        self.owed = (self.owed + self.settings.rps * elapsed.as_secs_f64()).min(MAX_RPS);
        let due = self.owed.floor();
        self.owed -= due;
        // `due` is a whole number in [0, MAX_RPS], so the conversion is exact.
        let due = due as usize;
        let mut samples = Vec::with_capacity(due);
        for _ in 0..due {
            let error = self.rng.next_f64() < self.settings.error_ratio;
            let factor = 0.5 + self.rng.next_f64();
            let latency_seconds = self.settings.latency_ms * factor / 1000.0;
            if error {
                self.errors += 1;
            }
            self.requests += 1;
            samples.push(Sample {
                error,
                latency_seconds,
            });
        }
        samples
    }
}

/// What the control endpoint answers about one version.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    /// The version label.
    pub version: String,
    /// Its settings.
    #[serde(flatten)]
    pub settings: Settings,
    /// Requests simulated so far.
    pub requests: u64,
    /// Failed requests simulated so far.
    pub errors: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The exported metrics and their registry.
#[derive(Debug)]
struct Metrics {
    registry: Registry,
    requests: Family<VersionLabels, Counter>,
    errors: Family<VersionLabels, Counter>,
    duration: Family<VersionLabels, Histogram, fn() -> Histogram>,
    error_ratio: Family<VersionLabels, Gauge<f64, AtomicU64>>,
    latency: Family<VersionLabels, Gauge<f64, AtomicU64>>,
    rps: Family<VersionLabels, Gauge<f64, AtomicU64>>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("safedeploy_demo");
        let requests = Family::<VersionLabels, Counter>::default();
        let errors = Family::<VersionLabels, Counter>::default();
        let duration = Family::<VersionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let error_ratio = Family::<VersionLabels, Gauge<f64, AtomicU64>>::default();
        let latency = Family::<VersionLabels, Gauge<f64, AtomicU64>>::default();
        let rps = Family::<VersionLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "requests",
            "Simulated requests served, per version",
            requests.clone(),
        );
        registry.register(
            "errors",
            "Simulated requests that failed, per version",
            errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Latency of simulated requests, per version",
            duration.clone(),
        );
        registry.register(
            "configured_error_ratio",
            "Error ratio the emitter is set to, per version",
            error_ratio.clone(),
        );
        registry.register(
            "configured_latency_seconds",
            "Mean latency the emitter is set to, per version",
            latency.clone(),
        );
        registry.register(
            "configured_requests_per_second",
            "Request rate the emitter is set to, per version",
            rps.clone(),
        );
        Self {
            registry,
            requests,
            errors,
            duration,
            error_ratio,
            latency,
            rps,
        }
    }

    /// Makes every series of a version exist (at zero) and exports its settings.
    fn declare(&self, version: &str, settings: Settings) {
        let labels = VersionLabels {
            version: version.to_owned(),
        };
        drop(self.requests.get_or_create(&labels));
        drop(self.errors.get_or_create(&labels));
        drop(self.duration.get_or_create(&labels));
        self.error_ratio
            .get_or_create(&labels)
            .set(settings.error_ratio);
        self.latency
            .get_or_create(&labels)
            .set(settings.latency_ms / 1000.0);
        self.rps.get_or_create(&labels).set(settings.rps);
    }

    fn record(&self, version: &str, samples: &[Sample]) {
        if samples.is_empty() {
            return;
        }
        let labels = VersionLabels {
            version: version.to_owned(),
        };
        let errors = samples.iter().filter(|s| s.error).count() as u64;
        self.requests
            .get_or_create(&labels)
            .inc_by(samples.len() as u64);
        if errors > 0 {
            self.errors.get_or_create(&labels).inc_by(errors);
        }
        let histogram = self.duration.get_or_create(&labels);
        for sample in samples {
            histogram.observe(sample.latency_seconds);
        }
    }
}

/// The emitter's whole state: the simulated versions and the metrics they feed.
#[derive(Debug)]
pub struct Emitter {
    sims: Mutex<BTreeMap<String, VersionSim>>,
    metrics: Metrics,
    defaults: Settings,
    seed: u64,
}

impl Emitter {
    /// An emitter with no version yet; new versions start with `defaults`.
    pub fn new(defaults: Settings, seed: u64) -> Result<Self, EmitterError> {
        defaults.validate()?;
        Ok(Self {
            sims: Mutex::new(BTreeMap::new()),
            metrics: Metrics::new(),
            defaults,
            seed,
        })
    }

    fn sims(&self) -> MutexGuard<'_, BTreeMap<String, VersionSim>> {
        // A panic while holding the lock cannot leave the map inconsistent: keep going.
        self.sims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn view(name: &str, sim: &VersionSim) -> VersionView {
        VersionView {
            version: name.to_owned(),
            settings: sim.settings,
            requests: sim.requests,
            errors: sim.errors,
        }
    }

    /// Creates the version if needed (with the defaults) and applies `update`. Nothing changes
    /// if the result would be invalid.
    pub fn configure(
        &self,
        version: &str,
        update: &SettingsUpdate,
    ) -> Result<VersionView, EmitterError> {
        validate_version(version)?;
        let mut sims = self.sims();
        let current = sims.get(version).map_or(self.defaults, |sim| sim.settings);
        let settings = current.with(update);
        settings.validate()?;
        let sim = sims
            .entry(version.to_owned())
            .or_insert_with(|| VersionSim::new(settings, version_seed(self.seed, version)));
        sim.settings = settings;
        self.metrics.declare(version, settings);
        Ok(Self::view(version, sim))
    }

    /// One version's settings and totals.
    pub fn get(&self, version: &str) -> Result<VersionView, EmitterError> {
        self.sims()
            .get(version)
            .map(|sim| Self::view(version, sim))
            .ok_or_else(|| EmitterError::UnknownVersion(version.to_owned()))
    }

    /// Every version's settings and totals, by name.
    pub fn list(&self) -> Vec<VersionView> {
        self.sims()
            .iter()
            .map(|(name, sim)| Self::view(name, sim))
            .collect()
    }

    /// Stops simulating a version; its series stay exported with their last values.
    pub fn remove(&self, version: &str) -> Result<(), EmitterError> {
        self.sims()
            .remove(version)
            .map(|_| ())
            .ok_or_else(|| EmitterError::UnknownVersion(version.to_owned()))
    }

    /// Advances every version by `elapsed` and records the simulated requests.
    pub fn tick(&self, elapsed: Duration) {
        let mut sims = self.sims();
        for (name, sim) in sims.iter_mut() {
            let samples = sim.step(elapsed);
            self.metrics.record(name, &samples);
        }
    }

    /// The metrics in the Prometheus/OpenMetrics text format.
    pub fn encode_metrics(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.metrics.registry)?;
        Ok(out)
    }
}

impl IntoResponse for EmitterError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::UnknownVersion(_) => StatusCode::NOT_FOUND,
            Self::InvalidSetting(_) | Self::InvalidVersion(_) => StatusCode::BAD_REQUEST,
            Self::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut body = String::new();
        // Writing to a String cannot fail.
        let _ = write!(body, "{}", serde_json::json!({ "error": self.to_string() }));
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// The HTTP routes over a shared emitter.
pub fn router(emitter: Arc<Emitter>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/control", get(list))
        .route(
            "/control/{version}",
            get(get_version).post(configure).delete(remove),
        )
        .with_state(emitter)
}

async fn metrics(State(emitter): State<Arc<Emitter>>) -> Response {
    match emitter.encode_metrics() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn list(State(emitter): State<Arc<Emitter>>) -> axum::Json<Vec<VersionView>> {
    axum::Json(emitter.list())
}

async fn get_version(
    State(emitter): State<Arc<Emitter>>,
    Path(version): Path<String>,
) -> Result<axum::Json<VersionView>, EmitterError> {
    emitter.get(&version).map(axum::Json)
}

async fn configure(
    State(emitter): State<Arc<Emitter>>,
    Path(version): Path<String>,
    Query(update): Query<SettingsUpdate>,
) -> Result<axum::Json<VersionView>, EmitterError> {
    emitter.configure(&version, &update).map(axum::Json)
}

async fn remove(
    State(emitter): State<Arc<Emitter>>,
    Path(version): Path<String>,
) -> Result<StatusCode, EmitterError> {
    emitter.remove(&version).map(|()| StatusCode::NO_CONTENT)
}

/// Advances the simulation every `tick`, forever: spawn it and abort the task to stop.
pub async fn simulate(emitter: Arc<Emitter>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        interval.tick().await;
        let now = Instant::now();
        emitter.tick(now.duration_since(last));
        last = now;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Runs the emitter until it is stopped (SIGINT or SIGTERM).
pub async fn run(args: EmitterArgs) -> Result<(), EmitterError> {
    let defaults = Settings {
        error_ratio: args.error_ratio,
        latency_ms: args.latency_ms,
        rps: args.rps,
    };
    let emitter = Arc::new(Emitter::new(defaults, args.seed)?);
    for version in &args.versions {
        emitter.configure(version, &SettingsUpdate::default())?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!(
        "safedeploy emitter: serving http://{} (versions: {})",
        listener.local_addr()?,
        args.versions.join(", ")
    );
    let tick = Duration::from_millis(args.tick_ms.max(1));
    let simulation = tokio::spawn(simulate(Arc::clone(&emitter), tick));
    let served = axum::serve(listener, router(emitter))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    simulation.abort();
    served?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(error_ratio: f64, latency_ms: f64, rps: f64) -> Settings {
        Settings {
            error_ratio,
            latency_ms,
            rps,
        }
    }

    #[test]
    fn settings_out_of_range_are_rejected() {
        assert!(settings(0.0, 0.0, 0.0).validate().is_ok());
        assert!(settings(1.0, MAX_LATENCY_MS, MAX_RPS).validate().is_ok());
        for bad in [
            settings(-0.01, 50.0, 10.0),
            settings(1.01, 50.0, 10.0),
            settings(f64::NAN, 50.0, 10.0),
            settings(0.1, -1.0, 10.0),
            settings(0.1, f64::INFINITY, 10.0),
            settings(0.1, 50.0, -1.0),
            settings(0.1, 50.0, MAX_RPS + 1.0),
        ] {
            assert!(
                matches!(bad.validate(), Err(EmitterError::InvalidSetting(_))),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn version_names_are_checked() {
        for good in [
            "stable",
            "canary",
            "v1.2.3",
            "my_app-canary",
            &"a".repeat(63),
        ] {
            assert!(validate_version(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "with space", "ünï", "x\"y", &"a".repeat(64)] {
            assert!(validate_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn xorshift_is_deterministic_and_roughly_uniform() {
        let mut a = XorShift64::new(42);
        let mut b = XorShift64::new(42);
        let xs: Vec<f64> = (0..10_000).map(|_| a.next_f64()).collect();
        let ys: Vec<f64> = (0..10_000).map(|_| b.next_f64()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        let mut zero = XorShift64::new(0);
        assert_ne!(zero.next_u64(), 0);
        assert_ne!(version_seed(1, "stable"), version_seed(1, "canary"));
    }

    #[test]
    fn step_follows_the_rate_and_carries_fractions() {
        let mut sim = VersionSim::new(settings(0.0, 100.0, 25.0), 7);
        // 40 steps of 100 ms at 25 rps: 2.5 requests per step, 100 in all.
        let total: usize = (0..40)
            .map(|_| sim.step(Duration::from_millis(100)).len())
            .sum();
        assert_eq!(total, 100);
        let mut idle = VersionSim::new(settings(0.5, 100.0, 0.0), 7);
        assert!(idle.step(Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn step_bounds_a_burst_after_a_stall() {
        let mut sim = VersionSim::new(settings(0.0, 1.0, MAX_RPS), 7);
        let samples = sim.step(Duration::from_secs(3600));
        assert!(samples.len() <= MAX_RPS as usize);
    }

    #[test]
    fn errors_and_latency_follow_the_settings() {
        let mut sim = VersionSim::new(settings(0.2, 120.0, 1000.0), 3);
        let samples = sim.step(Duration::from_secs(10));
        assert_eq!(samples.len(), 10_000);
        let errors = samples.iter().filter(|s| s.error).count() as f64;
        let ratio = errors / samples.len() as f64;
        assert!((ratio - 0.2).abs() < 0.02, "error ratio {ratio}");
        let mean = samples.iter().map(|s| s.latency_seconds).sum::<f64>() / samples.len() as f64;
        assert!((mean - 0.120).abs() < 0.005, "mean latency {mean}");
        assert!(
            samples
                .iter()
                .all(|s| (0.060..=0.180).contains(&s.latency_seconds))
        );
        assert_eq!(sim.requests, 10_000);
        assert_eq!(sim.errors as f64, errors);
    }

    #[test]
    fn configure_creates_updates_and_validates() {
        let emitter = Emitter::new(settings(0.0, 50.0, 20.0), 1).unwrap();
        assert!(matches!(
            emitter.get("canary"),
            Err(EmitterError::UnknownVersion(_))
        ));
        let created = emitter
            .configure("canary", &SettingsUpdate::default())
            .unwrap();
        assert_eq!(created.settings, settings(0.0, 50.0, 20.0));
        let update = SettingsUpdate {
            error_ratio: Some(0.05),
            latency_ms: Some(120.0),
            rps: None,
        };
        let changed = emitter.configure("canary", &update).unwrap();
        assert_eq!(changed.settings, settings(0.05, 120.0, 20.0));
        let invalid = SettingsUpdate {
            error_ratio: Some(2.0),
            latency_ms: Some(10.0),
            rps: None,
        };
        assert!(emitter.configure("canary", &invalid).is_err());
        // A rejected update changes nothing.
        assert_eq!(
            emitter.get("canary").unwrap().settings,
            settings(0.05, 120.0, 20.0)
        );
        assert!(emitter.configure("bad name", &update).is_err());
        assert_eq!(emitter.list().len(), 1);
        emitter.remove("canary").unwrap();
        assert!(emitter.remove("canary").is_err());
        assert!(emitter.list().is_empty());
    }

    /// The value of the sample line that starts with `prefix`, if any.
    fn metric_value(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn metrics_are_exported_per_version() {
        let emitter = Emitter::new(settings(0.0, 50.0, 100.0), 1).unwrap();
        emitter
            .configure("stable", &SettingsUpdate::default())
            .unwrap();
        let faulty = SettingsUpdate {
            error_ratio: Some(0.5),
            ..SettingsUpdate::default()
        };
        emitter.configure("canary", &faulty).unwrap();
        let before = emitter.encode_metrics().unwrap();
        // Every series exists before any traffic, so ratios are defined from the start.
        assert_eq!(
            metric_value(&before, "safedeploy_demo_errors_total{version=\"stable\"}"),
            Some(0.0)
        );
        emitter.tick(Duration::from_secs(2));
        let text = emitter.encode_metrics().unwrap();
        let stable_requests =
            metric_value(&text, "safedeploy_demo_requests_total{version=\"stable\"}");
        let canary_requests =
            metric_value(&text, "safedeploy_demo_requests_total{version=\"canary\"}");
        assert_eq!(stable_requests, Some(200.0));
        assert_eq!(canary_requests, Some(200.0));
        assert_eq!(
            metric_value(&text, "safedeploy_demo_errors_total{version=\"stable\"}"),
            Some(0.0)
        );
        let canary_errors =
            metric_value(&text, "safedeploy_demo_errors_total{version=\"canary\"}").unwrap();
        assert_eq!(canary_errors, emitter.get("canary").unwrap().errors as f64);
        assert!(
            canary_errors > 50.0 && canary_errors < 150.0,
            "{canary_errors}"
        );
        assert_eq!(
            metric_value(
                &text,
                "safedeploy_demo_request_duration_seconds_count{version=\"canary\"}"
            ),
            Some(200.0)
        );
        assert_eq!(
            metric_value(
                &text,
                "safedeploy_demo_configured_error_ratio{version=\"canary\"}"
            ),
            Some(0.5)
        );
        assert!(text.contains("# TYPE safedeploy_demo_request_duration_seconds histogram"));
    }

    #[tokio::test]
    async fn http_control_round_trip() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let emitter = Arc::new(Emitter::new(settings(0.0, 50.0, 10.0), 1).unwrap());
        emitter
            .configure("stable", &SettingsUpdate::default())
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router(emitter)).await;
        });
        let client = reqwest::Client::new();

        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.text().await.unwrap(), "ok");

        let changed: serde_json::Value = client
            .post(format!(
                "{base}/control/canary?errorRatio=0.25&latencyMs=120"
            ))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(changed["version"], "canary");
        assert_eq!(changed["errorRatio"], 0.25);
        assert_eq!(changed["latencyMs"], 120.0);
        assert_eq!(changed["rps"], 10.0);

        let read: serde_json::Value = client
            .get(format!("{base}/control/canary"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(read["errorRatio"], 0.25);

        let all: Vec<serde_json::Value> = client
            .get(format!("{base}/control"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = all.iter().filter_map(|v| v["version"].as_str()).collect();
        assert_eq!(names, ["canary", "stable"]);

        let invalid = client
            .post(format!("{base}/control/canary?errorRatio=7"))
            .send()
            .await
            .unwrap();
        assert_eq!(invalid.status(), reqwest::StatusCode::BAD_REQUEST);
        let not_a_number = client
            .post(format!("{base}/control/canary?latencyMs=fast"))
            .send()
            .await
            .unwrap();
        assert_eq!(not_a_number.status(), reqwest::StatusCode::BAD_REQUEST);
        let unknown = client
            .get(format!("{base}/control/nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);

        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            metric_value(
                &metrics,
                "safedeploy_demo_configured_error_ratio{version=\"canary\"}"
            ),
            Some(0.25)
        );

        let deleted = client
            .delete(format!("{base}/control/canary"))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), reqwest::StatusCode::NO_CONTENT);
        server.abort();
    }
}
