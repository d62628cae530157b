//! Logging set-up (JSON through tracing), the operator's own Prometheus metrics (its heap
//! included), the start-up timing report, and the HTTP server for `/metrics`, `/livez` and
//! `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing::{info, warn};

/// The allocator's heap, in bytes: with RSS, it tells data from memory the allocator keeps
/// (docs/benchmarks.md: after a bulk change at 10,000 objects, a fifth of the heap was free
/// memory interleaved with live data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    /// Bytes handed out and not yet freed, small and large (mmapped) allocations together.
    pub in_use: u64,
    /// Bytes freed and kept by the allocator for reuse.
    pub free: u64,
}

/// The heap as glibc's allocator counts it over all its arenas (`mallinfo2`); `None` where the
/// allocator is not glibc's (musl, macOS). It walks the free lists under each arena's lock, so
/// it is read when metrics are scraped, not per request.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap_usage() -> Option<HeapUsage> {
    // SAFETY: `mallinfo2` takes no arguments, only reads the allocator's state under its locks,
    // and returns a plain struct by value.
    let info = unsafe { libc::mallinfo2() };
    let bytes = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Some(HeapUsage {
        in_use: bytes(info.uordblks).saturating_add(bytes(info.hblkhd)),
        free: bytes(info.fordblks),
    })
}

/// See the glibc version: no other allocator reports its heap here.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_usage() -> Option<HeapUsage> {
    None
}

/// Start-up budget: target, acceptable and critical, in milliseconds.
pub const STARTUP_TARGET_MS: u128 = 320;
/// See [`STARTUP_TARGET_MS`].
pub const STARTUP_ACCEPTABLE_MS: u128 = 500;
/// See [`STARTUP_TARGET_MS`].
pub const STARTUP_CRITICAL_MS: u128 = 1000;

/// Installs the JSON log subscriber (level from `RUST_LOG`, default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    // A second initialisation (tests) is harmless, so its error is ignored.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_env_filter(filter)
        .try_init();
}

/// Labels with a single `category`/`phase`/`verdict` value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The value.
    pub kind: String,
}

/// The operator's metrics, cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconciles deferred because the cache had not yet delivered this operator's own last
    /// status write of the object.
    pub reconciles_deferred: Counter,
    /// Reconcile errors by category.
    pub reconcile_errors: Family<KindLabel, Counter>,
    /// Reconcile duration in seconds.
    pub reconcile_duration: Histogram,
    /// SafeDeployments by phase, as last reconciled.
    pub rollouts_by_phase: Family<KindLabel, Gauge>,
    /// Automatic and manual reverts.
    pub reverts: Counter,
    /// Promotions.
    pub promotions: Counter,
    /// Analysis results by verdict.
    pub analysis_results: Family<KindLabel, Counter>,
    /// Attestation verdicts by reason.
    pub attestation_verdicts: Family<KindLabel, Counter>,
    /// Start-up phase durations in seconds, by phase.
    pub startup_seconds: Family<KindLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Notification deliveries by outcome (`delivered`, `retried`, `failed_round`, `dropped_<why>`).
    pub notifications: Family<KindLabel, Counter>,
    /// SafeDeployments no shard serves (only on the process given `--unsharded-selector`).
    pub unsharded: Gauge,
    /// The allocator's heap in bytes, by `kind`: `in_use` and `free` (kept for reuse), read
    /// when the metrics are rendered.
    heap_bytes: Family<KindLabel, Gauge>,
    /// Set by the first reconcile that reaches a decision (see [`Metrics::record_first_reconcile`]).
    first_reconcile_recorded: Arc<AtomicBool>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("safedeploy");
        let reconciles = Counter::default();
        let reconciles_deferred = Counter::default();
        let reconcile_errors = Family::<KindLabel, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let rollouts_by_phase = Family::<KindLabel, Gauge>::default();
        let reverts = Counter::default();
        let promotions = Counter::default();
        let analysis_results = Family::<KindLabel, Counter>::default();
        let attestation_verdicts = Family::<KindLabel, Counter>::default();
        let startup_seconds = Family::default();
        let notifications = Family::<KindLabel, Counter>::default();
        let unsharded = Gauge::default();
        let heap_bytes = Family::<KindLabel, Gauge>::default();
        registry.register(
            "heap_bytes",
            "The allocator's heap in bytes (label kind: in_use, free = kept for reuse)",
            heap_bytes.clone(),
        );
        registry.register(
            "unsharded_safedeployments",
            "SafeDeployments that --unsharded-selector matches: served by no shard",
            unsharded.clone(),
        );
        registry.register(
            "notifications",
            "Notification deliveries by outcome (label kind: delivered, retried, failed_round, dropped_*)",
            notifications.clone(),
        );
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconciles_deferred",
            "Reconciles deferred: the cache had not yet delivered the operator's own last status write",
            reconciles_deferred.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile errors by category",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            reconcile_duration.clone(),
        );
        registry.register(
            "rollouts",
            "SafeDeployments by phase (label kind)",
            rollouts_by_phase.clone(),
        );
        registry.register("reverts", "Canaries reverted", reverts.clone());
        registry.register(
            "promotions",
            "Revisions promoted to stable",
            promotions.clone(),
        );
        registry.register(
            "analysis_results",
            "Analysis outcomes by verdict",
            analysis_results.clone(),
        );
        registry.register(
            "attestation_verdicts",
            "Attestation checks by reason",
            attestation_verdicts.clone(),
        );
        registry.register(
            "startup_phase_seconds",
            "Time from process start to the end of each start-up phase",
            startup_seconds.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            reconciles,
            reconciles_deferred,
            reconcile_errors,
            reconcile_duration,
            rollouts_by_phase,
            reverts,
            promotions,
            analysis_results,
            attestation_verdicts,
            startup_seconds,
            notifications,
            unsharded,
            heap_bytes,
            first_reconcile_recorded: Arc::default(),
        }
    }
}

impl Metrics {
    /// Counts one occurrence in a labelled counter family.
    pub fn count(family: &Family<KindLabel, Counter>, kind: &str) {
        family
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        if let Some(heap) = heap_usage() {
            for (kind, bytes) in [("in_use", heap.in_use), ("free", heap.free)] {
                self.heap_bytes
                    .get_or_create(&KindLabel { kind: kind.into() })
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Records and logs the start-up phases against the budget.
    pub fn record_startup(&self, client: Duration, crd_check: Duration, cache_sync: Duration) {
        for (phase, at) in [
            ("client", client),
            ("crd_check", crd_check),
            ("cache_sync", cache_sync),
        ] {
            self.startup_seconds
                .get_or_create(&KindLabel { kind: phase.into() })
                .set(at.as_secs_f64());
        }
        let total = cache_sync.as_millis();
        let verdict = startup_verdict(total);
        let fields = (client.as_millis(), crd_check.as_millis(), total);
        // The level of a tracing event is fixed where it is written, so the one field list is
        // written once and stamped out at both levels.
        macro_rules! startup_timing {
            ($level:ident) => {
                $level!(
                    client_ms = fields.0,
                    crd_check_ms = fields.1,
                    cache_sync_ms = fields.2,
                    target_ms = STARTUP_TARGET_MS,
                    acceptable_ms = STARTUP_ACCEPTABLE_MS,
                    critical_ms = STARTUP_CRITICAL_MS,
                    verdict,
                    "start-up timing"
                )
            };
        }
        if verdict == "Critical" || verdict == "Marginal" {
            startup_timing!(warn);
        } else {
            startup_timing!(info);
        }
    }

    /// Records, once per process, the time from the controller's start to its first reconcile
    /// past the readiness gate (the first decision), as the `first_reconcile` start-up phase and
    /// a log line: with the caches synced, it is what a restart costs before rollouts move again.
    pub fn record_first_reconcile(&self, since_start: Duration) {
        if self.first_reconcile_recorded.swap(true, Ordering::SeqCst) {
            return;
        }
        self.startup_seconds
            .get_or_create(&KindLabel {
                kind: "first_reconcile".into(),
            })
            .set(since_start.as_secs_f64());
        info!(
            first_reconcile_ms = since_start.as_millis(),
            "first reconcile"
        );
    }
}

/// Judges a start-up time in milliseconds against the budget.
pub fn startup_verdict(total_ms: u128) -> &'static str {
    if total_ms <= STARTUP_TARGET_MS {
        "Target"
    } else if total_ms <= STARTUP_ACCEPTABLE_MS {
        "Acceptable"
    } else if total_ms < STARTUP_CRITICAL_MS {
        "Marginal"
    } else {
        "Critical"
    }
}

/// Whether the caches have synced (readiness).
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the process ready.
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether it is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct ServerState {
    metrics: Metrics,
    readiness: Readiness,
}

/// Serves `/metrics`, `/livez` and `/readyz` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    readiness: Readiness,
) -> Result<(), std::io::Error> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz_handler))
        .with_state(ServerState { metrics, readiness });
    axum::serve(listener, app).await
}

async fn metrics_handler(State(state): State<ServerState>) -> ([(String, String); 1], String) {
    (
        [(
            "content-type".to_string(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8".to_string(),
        )],
        state.metrics.render(),
    )
}

async fn readyz_handler(State(state): State<ServerState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_budget_levels() {
        assert_eq!(startup_verdict(200), "Target");
        assert_eq!(startup_verdict(450), "Acceptable");
        assert_eq!(startup_verdict(800), "Marginal");
        assert_eq!(startup_verdict(1000), "Critical");
    }

    #[test]
    fn metrics_render_counters() {
        let metrics = Metrics::default();
        metrics.reconciles.inc();
        metrics.reverts.inc();
        Metrics::count(&metrics.attestation_verdicts, "Missing");
        let text = metrics.render();
        assert!(text.contains("safedeploy_reconciles_total 1"), "{text}");
        assert!(text.contains("safedeploy_reverts_total 1"));
        assert!(text.contains("safedeploy_attestation_verdicts_total{kind=\"Missing\"} 1"));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn metrics_render_the_heap() {
        let text = Metrics::default().render();
        for kind in ["in_use", "free"] {
            let line = text
                .lines()
                .find(|line| line.starts_with(&format!("safedeploy_heap_bytes{{kind=\"{kind}\"}}")))
                .unwrap_or_else(|| panic!("no heap_bytes {kind} in\n{text}"));
            let bytes: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(kind == "free" || bytes > 0, "{line}");
        }
    }
}
