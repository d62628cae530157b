//! The measurement sources of `safedeploy replay`: the providers themselves (the operator's own
//! `Providers::measure_template`, asked at the simulated instant), and a recording of their
//! answers, which `--record` writes and `--recorded` reads.
//!
//! The recording is JSON (`kind: ReplayRecording`): one entry per measurement (template, time,
//! and each metric's readings). A reading is `{"value": 0.0123}`, `{"value": "NaN"}` (or
//! `"+Inf"`, `"-Inf"`, which JSON numbers cannot hold), `{"samples": [...]}`, or
//! `{"error": {"kind": "unreachable" | "badStatus" | "parse" | "noData" | "config",
//! "message": "..."}}`.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::engine::Source;
use crate::analysis::provider::{Egress, Providers, SecretHeaders};
use crate::analysis::run::schedule;
use crate::analysis::signals::SidePods;
use crate::analysis::vars::QueryVars;
use crate::analysis::{MetricObservation, ProviderError, SamplesReading, ValueReading};
use crate::api::analysis::AnalysisTemplate;

/// The `kind` of a recording.
pub const RECORDING_KIND: &str = "ReplayRecording";
/// The largest recording read (bytes).
pub const MAX_RECORDING_BYTES: u64 = 64 * 1024 * 1024;

/// A recording of measurements.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    /// Always [`RECORDING_KIND`].
    pub kind: String,
    /// The revision label the canary queries selected.
    pub canary_revision: String,
    /// The revision label the stable queries selected.
    pub stable_revision: String,
    /// Start of the recorded range.
    pub from: String,
    /// End of the recorded range.
    pub to: String,
    /// The measurements, in time order.
    pub measurements: Vec<RecordedMeasurement>,
}

/// One measurement of one template.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedMeasurement {
    /// The template.
    pub template: String,
    /// When (RFC 3339).
    pub at: String,
    /// Each metric's readings.
    pub metrics: Vec<RecordedMetric>,
}

/// The readings of one metric.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedMetric {
    /// The metric.
    pub metric: String,
    /// The canary's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Reading>,
    /// The baseline's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Reading>,
    /// The canary's samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_samples: Option<Reading>,
    /// The baseline's samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_samples: Option<Reading>,
    /// The canary's traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Reading>,
}

/// One reading: a value, samples, or the provider's error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum Reading {
    /// A value.
    Value(Number),
    /// Samples.
    Samples(Vec<Number>),
    /// Why there is no value.
    Error(RecordedError),
}

/// A number, or the text of one JSON cannot hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Number {
    /// A finite number.
    Finite(f64),
    /// `NaN`, `+Inf` or `-Inf`.
    Text(String),
}

impl Number {
    fn of(value: f64) -> Self {
        if value.is_finite() {
            Number::Finite(value)
        } else if value.is_nan() {
            Number::Text("NaN".into())
        } else if value > 0.0 {
            Number::Text("+Inf".into())
        } else {
            Number::Text("-Inf".into())
        }
    }

    fn value(&self) -> Result<f64, ProviderError> {
        match self {
            Number::Finite(v) => Ok(*v),
            Number::Text(t) if t == "NaN" => Ok(f64::NAN),
            Number::Text(t) if t == "+Inf" || t == "Inf" => Ok(f64::INFINITY),
            Number::Text(t) if t == "-Inf" => Ok(f64::NEG_INFINITY),
            Number::Text(t) => Err(ProviderError::Parse(format!(
                "the recording holds {t:?} where a number belongs"
            ))),
        }
    }
}

/// A provider error, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedError {
    /// `unreachable`, `badStatus`, `parse`, `noData` or `config`.
    pub kind: String,
    /// The message.
    pub message: String,
}

impl RecordedError {
    fn of(error: &ProviderError) -> Self {
        let (kind, message) = match error {
            ProviderError::Unreachable(m) => ("unreachable", m.clone()),
            ProviderError::BadStatus { status, message } => {
                ("badStatus", format!("HTTP {status}: {message}"))
            }
            ProviderError::Parse(m) => ("parse", m.clone()),
            ProviderError::NoData(m) => ("noData", m.clone()),
            ProviderError::Config(m) => ("config", m.clone()),
        };
        Self {
            kind: kind.into(),
            message,
        }
    }

    fn error(&self) -> ProviderError {
        let message = self.message.clone();
        match self.kind.as_str() {
            "unreachable" => ProviderError::Unreachable(message),
            "badStatus" => ProviderError::BadStatus { status: 0, message },
            "noData" => ProviderError::NoData(message),
            "config" => ProviderError::Config(message),
            _ => ProviderError::Parse(message),
        }
    }
}

fn value_reading(reading: &Option<ValueReading>) -> Option<Reading> {
    reading.as_ref().map(|r| match r {
        Ok(v) => Reading::Value(Number::of(*v)),
        Err(e) => Reading::Error(RecordedError::of(e)),
    })
}

fn samples_reading(reading: &Option<SamplesReading>) -> Option<Reading> {
    reading.as_ref().map(|r| match r {
        Ok(v) => Reading::Samples(v.iter().copied().map(Number::of).collect()),
        Err(e) => Reading::Error(RecordedError::of(e)),
    })
}

fn as_value(reading: &Option<Reading>) -> Option<ValueReading> {
    reading.as_ref().map(|r| match r {
        Reading::Value(n) => n.value(),
        Reading::Samples(_) => Err(ProviderError::Parse(
            "the recording holds samples where a value belongs".into(),
        )),
        Reading::Error(e) => Err(e.error()),
    })
}

fn as_samples(reading: &Option<Reading>) -> Option<SamplesReading> {
    reading.as_ref().map(|r| match r {
        Reading::Samples(values) => values.iter().map(Number::value).collect(),
        Reading::Value(_) => Err(ProviderError::Parse(
            "the recording holds a value where samples belong".into(),
        )),
        Reading::Error(e) => Err(e.error()),
    })
}

impl RecordedMetric {
    /// The recording of one observation.
    pub fn of(observation: &MetricObservation) -> Self {
        Self {
            metric: observation.metric.clone(),
            canary: value_reading(&observation.canary),
            baseline: value_reading(&observation.baseline),
            canary_samples: samples_reading(&observation.canary_samples),
            baseline_samples: samples_reading(&observation.baseline_samples),
            traffic: value_reading(&observation.traffic),
        }
    }

    /// The observation it records.
    pub fn observation(&self) -> MetricObservation {
        MetricObservation {
            metric: self.metric.clone(),
            canary: as_value(&self.canary),
            baseline: as_value(&self.baseline),
            canary_samples: as_samples(&self.canary_samples),
            baseline_samples: as_samples(&self.baseline_samples),
            traffic: as_value(&self.traffic),
        }
    }
}

/// The providers, asked at the simulated instant; optionally every Prometheus metric sent to
/// one address (`--prometheus`) instead of its own.
pub struct ProviderSource {
    providers: Providers,
    prometheus: Option<String>,
}

impl ProviderSource {
    /// A source on the operator's own provider client.
    pub fn new(prometheus: Option<String>) -> Result<Self, ProviderError> {
        Ok(Self {
            providers: Providers::new()?,
            prometheus,
        })
    }
}

impl Source for ProviderSource {
    fn measure<'a>(
        &'a mut self,
        template: &'a AnalysisTemplate,
        vars: &'a QueryVars,
        pods: &'a SidePods,
        at: Timestamp,
    ) -> BoxFuture<'a, Vec<MetricObservation>> {
        Box::pin(async move {
            let mut template = template.clone();
            if let Some(address) = &self.prometheus {
                for metric in &mut template.metrics {
                    if let Some(p) = metric.provider.prometheus.as_mut() {
                        p.address = address.clone();
                    }
                }
            }
            // Secrets are not read: a web metric with `headersFrom` reports a missing Secret.
            let secrets = SecretHeaders::new();
            self.providers
                .measure_template(&template, vars, &secrets, &Egress::Any, pods, at)
                .await
        })
    }
}

/// Wraps a source and keeps what it answered.
pub struct Recorder<S> {
    inner: S,
    /// What was measured, in order.
    pub measurements: Vec<RecordedMeasurement>,
}

impl<S> Recorder<S> {
    /// Records what `inner` answers.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            measurements: Vec::new(),
        }
    }
}

impl<S: Source> Source for Recorder<S> {
    fn measure<'a>(
        &'a mut self,
        template: &'a AnalysisTemplate,
        vars: &'a QueryVars,
        pods: &'a SidePods,
        at: Timestamp,
    ) -> BoxFuture<'a, Vec<MetricObservation>> {
        Box::pin(async move {
            let observations = self.inner.measure(template, vars, pods, at).await;
            self.measurements.push(RecordedMeasurement {
                template: template.name.clone(),
                at: at.to_string(),
                metrics: observations.iter().map(RecordedMetric::of).collect(),
            });
            observations
        })
    }
}

/// Measurements read from a recording: the one recorded at the instant asked for, else the
/// latest one recorded less than one interval before it (a replay with another interval, or
/// a run restarted at another time, reads the data as it stood then); else no data.
pub struct RecordedSource {
    by_template: BTreeMap<String, Vec<(Timestamp, Vec<RecordedMetric>)>>,
}

impl RecordedSource {
    /// A source over `recording`; a measurement whose time does not read is refused.
    pub fn new(recording: &Recording) -> Result<Self, String> {
        let mut by_template: BTreeMap<String, Vec<(Timestamp, Vec<RecordedMetric>)>> =
            BTreeMap::new();
        for m in &recording.measurements {
            let at: Timestamp =
                m.at.parse()
                    .map_err(|e| format!("measurement time {:?}: {e}", m.at))?;
            by_template
                .entry(m.template.clone())
                .or_default()
                .push((at, m.metrics.clone()));
        }
        for list in by_template.values_mut() {
            list.sort_by_key(|(at, _)| *at);
        }
        Ok(Self { by_template })
    }
}

impl Source for RecordedSource {
    fn measure<'a>(
        &'a mut self,
        template: &'a AnalysisTemplate,
        _vars: &'a QueryVars,
        _pods: &'a SidePods,
        at: Timestamp,
    ) -> BoxFuture<'a, Vec<MetricObservation>> {
        let interval = schedule(template).map(|s| s.interval).unwrap_or_default();
        let found = self.by_template.get(&template.name).and_then(|list| {
            list.iter()
                .rev()
                .find(|(recorded, _)| *recorded <= at)
                .filter(|(recorded, _)| at.duration_since(*recorded).unsigned_abs() < interval)
        });
        let observations = template
            .metrics
            .iter()
            .map(|metric| {
                found
                    .and_then(|(_, metrics)| metrics.iter().find(|m| m.metric == metric.name))
                    .map(RecordedMetric::observation)
                    .unwrap_or_else(|| {
                        MetricObservation::failed(
                            &metric.name,
                            ProviderError::NoData(format!(
                                "the recording holds no measurement of {} within one interval before {at}",
                                metric.name
                            )),
                        )
                    })
            })
            .collect();
        Box::pin(async move { observations })
    }
}

/// Goes on measuring each template the replay measured, one interval after another from its
/// last measurement until `to` (at most [`super::engine::MAX_MEASUREMENTS`] in all), so that a
/// replay of the recording with other settings (`--set`) has the data past the point where this
/// one ended (a revert, say).
pub async fn extend_to<S: Source>(
    recorder: &mut Recorder<S>,
    templates: &[AnalysisTemplate],
    vars: &QueryVars,
    to: Timestamp,
) {
    let pods = SidePods::default();
    for template in templates {
        let Ok(interval) = schedule(template).map(|s| s.interval) else {
            continue;
        };
        let Ok(step) = jiff::SignedDuration::try_from(interval) else {
            continue;
        };
        let last = recorder
            .measurements
            .iter()
            .filter(|m| m.template == template.name)
            .filter_map(|m| m.at.parse::<Timestamp>().ok())
            .max();
        let Some(mut next) = last.and_then(|at| at.checked_add(step).ok()) else {
            continue;
        };
        while next <= to && (recorder.measurements.len() as u64) < super::engine::MAX_MEASUREMENTS {
            recorder.measure(template, vars, &pods, next).await;
            let Ok(after) = next.checked_add(step) else {
                break;
            };
            next = after;
        }
    }
}
