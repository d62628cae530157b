//! The emitter's state: the simulated versions and the Prometheus metrics they feed, advanced
//! by [`simulate`].

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;

use super::EmitterError;
use super::model::{Sample, Settings, SettingsUpdate, VersionSim, validate_version, version_seed};

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

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

    /// One real request to the first version (by name): its name, whether it fails and its
    /// latency; counted in the metrics like a simulated one. `None` without a version.
    pub fn serve_one(&self) -> Option<(String, bool, Duration)> {
        let mut sims = self.sims();
        let (name, sim) = sims.iter_mut().next()?;
        let sample = sim.draw();
        self.metrics.record(name, &[sample]);
        Some((
            name.clone(),
            sample.error,
            // A configured latency may be absurd (inf from a flag); serve at once then.
            Duration::try_from_secs_f64(sample.latency_seconds.max(0.0)).unwrap_or_default(),
        ))
    }

    /// The metrics in the Prometheus/OpenMetrics text format.
    pub fn encode_metrics(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.metrics.registry)?;
        Ok(out)
    }
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

/// The value of the sample line of a metrics text that starts with `prefix`, if any (for the
/// emitter's unit tests).
#[cfg(test)]
pub(crate) fn metric_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emitter::model::settings;

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
}
