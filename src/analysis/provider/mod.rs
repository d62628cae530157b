//! Metric providers: the thin I/O layer that turns a metric's provider spec into a
//! [`MetricObservation`] for the judge (the `kubernetes` provider reads the pods it is handed,
//! see [`super::signals`]). Every request has a timeout; every failure is a typed
//! [`ProviderError`] inside the observation (measuring never fails as a whole).
//!
//! Secrets are not read here: the controller reads the Secrets named by
//! [`referenced_secrets`] and passes their data (header name → value) by Secret name.

pub mod prometheus;
pub mod web;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use jiff::Timestamp;

use crate::api::analysis::{
    AnalysisTemplate, DEFAULT_PROVIDER_TIMEOUT, MetricSpec, PrometheusProvider, WebProvider,
};

use super::duration::parse_duration;
use super::signals::{self, SidePods};
use super::vars::{QueryVars, Side, render};
use super::{MetricObservation, ProviderError, SamplesReading, ValueReading};
use crate::core::health::PodView;

/// Largest answer body read from a provider.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Timeout of establishing a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Secret data by Secret name, each a map of header name to value.
pub type SecretHeaders = BTreeMap<String, BTreeMap<String, String>>;

/// The HTTP client the providers share.
#[derive(Debug, Clone)]
pub struct Providers {
    http: reqwest::Client,
}

impl Providers {
    /// A client with a connect timeout; installs the `ring` crypto provider for HTTPS if no
    /// process-wide provider is installed yet.
    pub fn new() -> Result<Self, ProviderError> {
        // An Err means a provider is installed already, which is what is needed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("safedeploy/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http })
    }

    /// The underlying HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Measures every metric of `template` at once (concurrently); one observation per metric,
    /// in the template's order, ready for [`crate::analysis::run::advance`].
    pub async fn measure_template(
        &self,
        template: &AnalysisTemplate,
        vars: &QueryVars,
        secrets: &SecretHeaders,
        pods: &SidePods,
        now: Timestamp,
    ) -> Vec<MetricObservation> {
        join_all(
            template
                .metrics
                .iter()
                .map(|metric| self.measure(metric, vars, secrets, pods, now)),
        )
        .await
    }

    /// Measures one metric: the readings its checks need (canary value for thresholds, canary
    /// and baseline values for the relative check, canary and baseline samples for the
    /// statistical check), canary and baseline concurrently. A `kubernetes` metric is read from
    /// `pods`, without a request.
    pub async fn measure(
        &self,
        metric: &MetricSpec,
        vars: &QueryVars,
        secrets: &SecretHeaders,
        pods: &SidePods,
        now: Timestamp,
    ) -> MetricObservation {
        let needs = Needs {
            value: metric.thresholds.is_some() || metric.relative.is_some(),
            baseline_value: metric.relative.is_some(),
            samples: metric.statistical.is_some(),
        };
        let provider = &metric.provider;
        let (canary, baseline) = match (&provider.prometheus, &provider.web, &provider.kubernetes) {
            (Some(p), None, None) => {
                futures::join!(
                    self.prometheus_side(p, vars, Side::Canary, needs.value, needs.samples, now),
                    self.prometheus_side(
                        p,
                        vars,
                        Side::Baseline,
                        needs.baseline_value,
                        needs.samples,
                        now
                    ),
                )
            }
            (None, Some(w), None) => {
                futures::join!(
                    self.web_side(w, vars, secrets, Side::Canary, needs.value, needs.samples),
                    self.web_side(
                        w,
                        vars,
                        secrets,
                        Side::Baseline,
                        needs.baseline_value,
                        needs.samples
                    ),
                )
            }
            (None, None, Some(k)) => {
                let side = |side_pods: &[PodView], name: &str, want_value: bool| {
                    let allowance = pods.startup_allowance_seconds;
                    let want = (want_value, needs.samples);
                    let (value, samples) =
                        signals::readings(k, side_pods, name, allowance, want, now);
                    SideReadings { value, samples }
                };
                (
                    side(&pods.canary, "canary", needs.value),
                    side(&pods.baseline, "baseline", needs.baseline_value),
                )
            }
            _ => {
                let error = ProviderError::Config(
                    "a metric needs exactly one of prometheus, web or kubernetes".into(),
                );
                return MetricObservation::failed(&metric.name, error);
            }
        };
        MetricObservation {
            metric: metric.name.clone(),
            canary: canary.value,
            baseline: baseline.value,
            canary_samples: canary.samples,
            baseline_samples: baseline.samples,
        }
    }

    async fn prometheus_side(
        &self,
        p: &PrometheusProvider,
        vars: &QueryVars,
        side: Side,
        want_value: bool,
        want_samples: bool,
        now: Timestamp,
    ) -> SideReadings {
        if !want_value && !want_samples {
            return SideReadings::default();
        }
        let prepared = (|| {
            let text = match side {
                Side::Canary => &p.query,
                Side::Baseline => p.baseline_query.as_ref().unwrap_or(&p.query),
            };
            let query =
                render(text, vars, side).map_err(|e| ProviderError::Config(e.to_string()))?;
            let timeout = timeout(p.timeout.as_deref())?;
            let range = match &p.range {
                Some(range) => Some((
                    parse_duration(&range.window)
                        .map_err(|e| ProviderError::Config(format!("range.window: {e}")))?,
                    parse_duration(&range.step)
                        .map_err(|e| ProviderError::Config(format!("range.step: {e}")))?,
                )),
                None => None,
            };
            Ok::<_, ProviderError>((query, timeout, range))
        })();
        let (query, timeout, range) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return SideReadings::failed(error, want_value, want_samples),
        };
        let instant_needed = want_value || (want_samples && range.is_none());
        let instant = if instant_needed {
            Some(prometheus::query(&self.http, &p.address, &query, timeout).await)
        } else {
            None
        };
        let value = match (&instant, want_value) {
            (Some(result), true) => Some(
                result
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|r| r.single_value(&query)),
            ),
            _ => None,
        };
        let samples = if !want_samples {
            None
        } else if let Some((window, step)) = range {
            Some(
                prometheus::query_range(&self.http, &p.address, &query, now, window, step, timeout)
                    .await
                    .and_then(|r| r.samples(&query)),
            )
        } else {
            instant.map(|result| result.and_then(|r| r.samples(&query)))
        };
        SideReadings { value, samples }
    }

    async fn web_side(
        &self,
        w: &WebProvider,
        vars: &QueryVars,
        secrets: &SecretHeaders,
        side: Side,
        want_value: bool,
        want_samples: bool,
    ) -> SideReadings {
        if !want_value && !want_samples {
            return SideReadings::default();
        }
        let prepared = (|| {
            let config = |e: super::vars::VarsError| ProviderError::Config(e.to_string());
            let url = render(&w.url, vars, side).map_err(config)?;
            let body = w
                .body
                .as_deref()
                .map(|body| render(body, vars, side))
                .transpose()
                .map_err(config)?;
            let mut headers: BTreeMap<String, String> = w
                .headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            if let Some(from) = &w.headers_from {
                let name = &from.secret_ref.name;
                let data = secrets.get(name).ok_or_else(|| {
                    ProviderError::Config(format!("the headers Secret {name:?} was not resolved"))
                })?;
                headers.extend(data.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            let path = web::parse_json_path(&w.json_path)?;
            let request = web::WebRequest {
                url,
                method: w.method.unwrap_or_default(),
                body,
                headers,
                timeout: timeout(w.timeout.as_deref())?,
            };
            Ok::<_, ProviderError>((request, path))
        })();
        let (request, path) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return SideReadings::failed(error, want_value, want_samples),
        };
        let numbers = web::fetch_json(&self.http, &request)
            .await
            .and_then(|json| web::extract_numbers(&json, &path, &w.json_path));
        SideReadings {
            value: want_value.then(|| {
                numbers
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|values| web::single_number(values, &w.json_path))
            }),
            samples: want_samples.then(|| numbers.clone()),
        }
    }
}

/// Which readings a metric's checks need.
#[derive(Debug, Clone, Copy)]
struct Needs {
    value: bool,
    baseline_value: bool,
    samples: bool,
}

/// The readings of one side (canary or baseline).
#[derive(Debug, Default)]
struct SideReadings {
    value: Option<ValueReading>,
    samples: Option<SamplesReading>,
}

impl SideReadings {
    fn failed(error: ProviderError, want_value: bool, want_samples: bool) -> Self {
        Self {
            value: want_value.then(|| Err(error.clone())),
            samples: want_samples.then_some(Err(error)),
        }
    }
}

/// The request timeout of a provider (default 10s).
fn timeout(text: Option<&str>) -> Result<Duration, ProviderError> {
    let text = text.unwrap_or(DEFAULT_PROVIDER_TIMEOUT);
    let timeout =
        parse_duration(text).map_err(|e| ProviderError::Config(format!("timeout: {e}")))?;
    if timeout.is_zero() {
        return Err(ProviderError::Config(
            "timeout must be longer than zero".into(),
        ));
    }
    Ok(timeout)
}

/// Names of the Secrets the web metrics of `template` take headers from; the controller reads
/// them and passes their data to [`Providers::measure_template`].
pub fn referenced_secrets(template: &AnalysisTemplate) -> BTreeSet<String> {
    template
        .metrics
        .iter()
        .filter_map(|m| m.provider.web.as_ref())
        .filter_map(|w| w.headers_from.as_ref())
        .map(|from| from.secret_ref.name.clone())
        .collect()
}

/// Sends a request, mapping transport failures to [`ProviderError::Unreachable`].
async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, ProviderError> {
    request.send().await.map_err(|e| {
        if e.is_timeout() {
            ProviderError::Unreachable(format!("timed out: {e}"))
        } else if e.is_builder() {
            ProviderError::Config(format!("invalid request: {e}"))
        } else {
            ProviderError::Unreachable(full_error(&e))
        }
    })
}

/// An error with its chain of causes, for messages.
fn full_error(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads a body of at most [`MAX_BODY_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len().saturating_add(chunk.len()) > MAX_BODY_BYTES {
                    return Err(ProviderError::Parse(format!(
                        "the answer is larger than {MAX_BODY_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => {
                return Err(ProviderError::Unreachable(format!(
                    "timed out reading the answer: {e}"
                )));
            }
            Err(e) => {
                return Err(ProviderError::Unreachable(format!(
                    "cannot read the answer: {}",
                    full_error(&e)
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests;
