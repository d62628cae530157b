//! Canary analysis: the pure judge (thresholds, relative comparison, Mann–Whitney U, scoring)
//! and the metric providers (Prometheus, web, Kubernetes signals) that feed it.
//!
//! Layout:
//! - [`judge`]: judges one metric's observation (no I/O) and scores a set of verdicts;
//! - [`stats`]: Mann–Whitney U, Hodges–Lehmann, normal distribution (no I/O);
//! - [`outliers`]: interquartile-range outlier removal of sample sets (no I/O);
//! - [`run`]: the state step function of an analysis run (no I/O);
//! - [`plan`]: which analyses gate the canary, which runs are due, and their gates (no I/O);
//! - [`traffic`]: the minimum-traffic guard, judged from the traffic reading (no I/O);
//! - [`vars`]: `{{canary}}`-style substitution in queries, URLs and bodies (no I/O);
//! - [`signals`]: the `kubernetes` provider's signals of the canary's and baseline's pods (no
//!   I/O: the controller hands in the pods from its cache);
//! - [`provider`]: the thin I/O layer (Prometheus HTTP API, web JSON endpoints).
//!
//! The controller, each time [`run::due`] says a measurement is due, calls
//! [`provider::Providers::measure_template`] (or measures each metric itself), hands the
//! observations to [`run::advance`], and persists the updated
//! [`AnalysisRunStatus`](crate::api::analysis::AnalysisRunStatus).
//!
//! Everything here runs inside every reconcile on tenants' templates and providers' answers, so
//! a panic here would be one template (or one odd answer) stopping the operator: it is
//! declared [`panic_free`], as [`crate::core`] is.

pub mod judge;
pub mod outliers;
pub mod plan;
pub mod provider;
pub mod run;
pub mod signals;
pub mod stats;
pub mod traffic;
pub mod vars;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod traffic_tests;

/// Why a provider gave no value. Plain data (no I/O types), so the judge can take it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or did not answer in time.
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    /// The provider answered with an error status.
    #[error("provider answered HTTP {status}: {message}")]
    BadStatus {
        /// The HTTP status code.
        status: u16,
        /// The error the provider gave, or the start of its body.
        message: String,
    },
    /// The answer could not be read, or did not have the expected shape.
    #[error("cannot read the provider's answer: {0}")]
    Parse(String),
    /// The answer held no value (empty result, no matching JSONPath node).
    #[error("no data: {0}")]
    NoData(String),
    /// The metric's configuration cannot be used (unknown variable, bad JSONPath, bad header).
    #[error("invalid metric configuration: {0}")]
    Config(String),
}

impl ProviderError {
    /// Whether this is "no data" rather than a failure to measure.
    pub fn is_no_data(&self) -> bool {
        matches!(self, ProviderError::NoData(_))
    }
}

/// A single value read from a provider.
pub type ValueReading = Result<f64, ProviderError>;
/// Samples read from a provider.
pub type SamplesReading = Result<Vec<f64>, ProviderError>;

/// What the providers returned for one metric at one measurement: what the judge needs.
///
/// Each reading is `None` when it was not asked for. The judge needs `canary` for thresholds,
/// `canary` and `baseline` for the relative check, and both sample sets for the statistical
/// check; a needed reading that is `None` counts as a provider error.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricObservation {
    /// Metric name (as in the template).
    pub metric: String,
    /// The canary's value.
    pub canary: Option<ValueReading>,
    /// The baseline's value.
    pub baseline: Option<ValueReading>,
    /// The canary's samples.
    pub canary_samples: Option<SamplesReading>,
    /// The baseline's samples.
    pub baseline_samples: Option<SamplesReading>,
    /// The canary's traffic, read by the metric's `minimumTraffic.query`.
    pub traffic: Option<ValueReading>,
}

impl MetricObservation {
    /// An observation with just the canary's value.
    pub fn value(metric: &str, value: f64) -> Self {
        Self {
            metric: metric.to_string(),
            canary: Some(Ok(value)),
            ..Self::default()
        }
    }

    /// An observation with the canary's and the baseline's values.
    pub fn compared(metric: &str, canary: f64, baseline: f64) -> Self {
        Self {
            metric: metric.to_string(),
            canary: Some(Ok(canary)),
            baseline: Some(Ok(baseline)),
            ..Self::default()
        }
    }

    /// An observation with canary and baseline samples.
    pub fn samples(metric: &str, canary: Vec<f64>, baseline: Vec<f64>) -> Self {
        Self {
            metric: metric.to_string(),
            canary_samples: Some(Ok(canary)),
            baseline_samples: Some(Ok(baseline)),
            ..Self::default()
        }
    }

    /// The same observation with the canary's traffic reading.
    pub fn with_traffic(self, traffic: ValueReading) -> Self {
        Self {
            traffic: Some(traffic),
            ..self
        }
    }

    /// An observation where every reading failed with `error`.
    pub fn failed(metric: &str, error: ProviderError) -> Self {
        Self {
            metric: metric.to_string(),
            canary: Some(Err(error.clone())),
            baseline: Some(Err(error.clone())),
            canary_samples: Some(Err(error.clone())),
            baseline_samples: Some(Err(error.clone())),
            traffic: Some(Err(error)),
        }
    }
}

/// A seeded, deterministic generator for tests (xorshift64* and Box–Muller), so statistical
/// tests need no random-number crate and never flake.
#[cfg(test)]
pub(crate) mod testgen {
    /// xorshift64* generator.
    pub struct Rng(u64);

    impl Rng {
        /// A generator from a seed (any value; zero is remapped).
        pub fn new(seed: u64) -> Self {
            Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        /// Next 64 random bits.
        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform in (0, 1).
        pub fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        /// Standard normal (Box–Muller).
        pub fn normal(&mut self) -> f64 {
            let u1 = self.uniform();
            let u2 = self.uniform();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }

        /// `n` log-normal latencies with median `median` and log-scale spread `sigma`.
        pub fn latencies(&mut self, n: usize, median: f64, sigma: f64) -> Vec<f64> {
            (0..n)
                .map(|_| median * (sigma * self.normal()).exp())
                .collect()
        }
    }

    /// A metric `name` read by `query` from the in-cluster Prometheus, with no checks: the
    /// fixture the judge and run tests add their checks to.
    pub fn prometheus_metric(name: &str, query: String) -> crate::api::analysis::MetricSpec {
        use crate::api::analysis::{MetricSpec, PrometheusProvider, Provider};
        MetricSpec {
            name: name.into(),
            provider: Provider {
                job: None,
                prometheus: Some(PrometheusProvider {
                    address: "http://prometheus:9090".into(),
                    query,
                    ..PrometheusProvider::default()
                }),
                web: None,
                kubernetes: None,
            },
            ..MetricSpec::default()
        }
    }
}
