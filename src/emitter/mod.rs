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
//! * `GET /readyz` and `GET /` for a per-pod demo application, with faults chosen by flags or
//!   environment variables (crash after N s, slow start, error ratio, latency): see [`pod`].
//!
//! Randomness is a seeded xorshift generator per version, so a run is reproducible up to timing.
//!
//! Layout: `model` (the settings and the seeded simulation), `state` (the versions and their
//! metrics), `http` (the routes), [`pod`] (the per-pod faults); this file has the command's
//! arguments, errors and [`run`].

mod http;
mod model;
pub mod pod;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use http::router;
pub use model::{
    MAX_LATENCY_MS, MAX_RPS, Sample, Settings, SettingsUpdate, VersionSim, XorShift64,
    validate_version, version_seed,
};
pub use state::{Emitter, LATENCY_BUCKETS, VersionView, simulate};

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
    /// A version to simulate from the start (repeatable, or comma-separated in the environment);
    /// more are created by `POST /control/{v}`. `GET /` answers as the first one.
    #[arg(
        long = "version",
        value_name = "VERSION",
        env = "SAFEDEPLOY_EMITTER_VERSIONS",
        value_delimiter = ','
    )]
    pub versions: Vec<String>,
    /// Default simulated requests per second, per version.
    #[arg(long, default_value_t = 20.0, env = "SAFEDEPLOY_EMITTER_RPS")]
    pub rps: f64,
    /// Default ratio of failed requests, in [0, 1].
    #[arg(long, default_value_t = 0.0, env = "SAFEDEPLOY_EMITTER_ERROR_RATIO")]
    pub error_ratio: f64,
    /// Default mean request latency in milliseconds (samples are uniform in [0.5, 1.5] × mean).
    #[arg(long, default_value_t = 50.0, env = "SAFEDEPLOY_EMITTER_LATENCY_MS")]
    pub latency_ms: f64,
    /// `/readyz` answers 503 until this many seconds after the start (a slow-starting revision).
    #[arg(
        long,
        default_value_t = 0,
        env = "SAFEDEPLOY_EMITTER_START_DELAY_SECONDS"
    )]
    pub start_delay_seconds: u64,
    /// Exit with status 1 this many seconds after the start (a crashing revision; 0: never).
    #[arg(
        long,
        default_value_t = 0,
        env = "SAFEDEPLOY_EMITTER_CRASH_AFTER_SECONDS"
    )]
    pub crash_after_seconds: u64,
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
    /// `--crash-after-seconds` elapsed: the process exits with status 1, on purpose.
    #[error("crashing on purpose, {0} s after the start (--crash-after-seconds)")]
    InjectedCrash(u64),
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
    let started = std::time::Instant::now();
    let faults = pod::PodFaults {
        start_delay: Duration::from_secs(args.start_delay_seconds),
        crash_after: (args.crash_after_seconds > 0)
            .then(|| Duration::from_secs(args.crash_after_seconds)),
    };
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
    let app = router(Arc::clone(&emitter)).merge(pod::pod_routes(emitter, faults, started));
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal());
    let outcome = tokio::select! {
        served = served => served.map_err(EmitterError::from),
        after = pod::crash_timer(faults) => Err(EmitterError::InjectedCrash(after)),
    };
    simulation.abort();
    outcome
}
