//! Metric providers: the thin I/O layer that turns a metric's provider spec into a
//! [`MetricObservation`] for the judge (the `kubernetes` provider reads the pods it is handed,
//! see [`super::signals`]). Every request has a timeout; every failure is a typed
//! [`ProviderError`] inside the observation (measuring never fails as a whole).
//!
//! Secrets are not read here: the controller reads the Secrets named by
//! [`referenced_secrets`] and passes their data (header name → value) by Secret name, after
//! [`headers_from_secret`] has checked that the Secret opted in with [`HEADERS_SECRET_LABEL`].
//!
//! Security (see the README's threat model): whoever may edit a SafeDeployment chooses the URLs
//! and the Secret, but may not be able to read Secrets or reach internal addresses. So:
//! - a Secret is only sent if it carries [`HEADERS_SECRET_LABEL`]`: "true"`;
//! - a request goes only to an address inside the namespace policy's allow-list ([`Egress`]),
//!   checked on the final URL before anything is sent;
//! - redirects are never followed (the allow-list and the Secret's headers would not follow);
//! - error messages, which end up in status, never carry bytes of a response body: only the
//!   HTTP status, a sanitised content type and a length;
//! - bodies are read up to [`MAX_BODY_BYTES`], timeouts are clamped to [`MAX_TIMEOUT`].

pub mod prometheus;
pub mod job;
pub mod web;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use reqwest::Url;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};

use crate::api::analysis::{
    AnalysisTemplate, DEFAULT_PROVIDER_TIMEOUT, MetricSpec, PrometheusProvider, WebProvider,
};
use crate::api::duration::SpecDuration;

use super::signals::{self, SidePods};
use super::vars::{QueryVars, Side, render};
use super::{MetricObservation, ProviderError, SamplesReading, ValueReading};
use crate::api::health::PodView;

/// Largest answer body read from a provider. A Prometheus answer reduced to one value (or a
/// range of a few hundred points) and a JSON metric endpoint fit many times over; a larger body
/// is cut off while streaming, so the operator never buffers more than this per request.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest request timeout, whatever a metric's `timeout` says: a reconcile waits for its
/// measurements, so one hanging endpoint must not hold it (and its worker) for long.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of establishing a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The label a Secret must carry, with value `"true"`, before `headersFrom` may send its data.
/// Its owner thereby agrees that whoever may edit SafeDeployments in the namespace can send it
/// to any provider address the namespace's policy allows.
pub const HEADERS_SECRET_LABEL: &str = "safedeploy.dev/analysis-headers";

/// Secret data by Secret name: a map of header name to value, or why the Secret may not be used
/// (not opted in, unreadable). A Secret missing from the map does not exist.
pub type SecretHeaders = BTreeMap<String, Result<BTreeMap<String, String>, ProviderError>>;

/// Where provider requests may go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Egress {
    /// Anywhere (no policy restricts provider addresses).
    #[default]
    Any,
    /// Only below these URL prefixes, from the named SafeDeploymentPolicy's
    /// `analysis.allowedProviderUrls`. An empty list allows nothing.
    Only {
        /// Name of the policy, for messages.
        policy: String,
        /// The allowed URL prefixes.
        prefixes: Vec<String>,
    },
}

impl Egress {
    /// Whether a request to `url` may be sent; the error names the policy and its rule.
    ///
    /// Matching is on the parsed URL, never on the raw string (a string prefix
    /// `http://prometheus` would also match `http://prometheus.evil.example`): scheme, host and
    /// port must be equal, and the path must equal the prefix's path or lie below it at a `/`
    /// boundary. `..` and percent-encoded dots are resolved by the parser before comparing.
    pub fn check(&self, url: &str) -> Result<(), ProviderError> {
        let Egress::Only { policy, prefixes } = self else {
            return Ok(());
        };
        let refused = |why: &str| {
            ProviderError::Config(format!(
                "{why}: SafeDeploymentPolicy {policy:?} allows provider requests only below analysis.allowedProviderUrls; no request was sent"
            ))
        };
        let target = Url::parse(url).map_err(|_| refused("the provider URL does not parse"))?;
        if prefixes.iter().any(|prefix| url_below(prefix, &target)) {
            Ok(())
        } else {
            let shown = format!(
                "{}://{}{}",
                target.scheme(),
                target.host_str().unwrap_or(""),
                target.port().map(|p| format!(":{p}")).unwrap_or_default()
            );
            Err(refused(&format!(
                "{shown}{} is outside the allowed provider URLs",
                target.path()
            )))
        }
    }
}

/// Whether `target` lies below the allow-list entry `prefix` (see [`Egress::check`]). An entry
/// that does not parse, or has user info, a query or a fragment, matches nothing (fail closed;
/// the CRD's CEL rules refuse such entries anyway).
fn url_below(prefix: &str, target: &Url) -> bool {
    let Ok(prefix) = Url::parse(prefix) else {
        return false;
    };
    let plain = prefix.username().is_empty()
        && prefix.password().is_none()
        && prefix.query().is_none()
        && prefix.fragment().is_none();
    if !plain
        || prefix.scheme() != target.scheme()
        || prefix.host() != target.host()
        || prefix.port_or_known_default() != target.port_or_known_default()
    {
        return false;
    }
    let base = prefix.path().trim_end_matches('/');
    let path = target.path();
    base.is_empty() || path == base || path.starts_with(&format!("{base}/"))
}

/// The headers a Secret provides to `headersFrom`: its data, if it opted in with
/// [`HEADERS_SECRET_LABEL`]`: "true"`. Errors name the Secret and the label or the key, never a
/// value.
pub fn headers_from_secret(secret: &Secret) -> Result<BTreeMap<String, String>, ProviderError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    if !opted_in(secret.metadata.labels.as_ref()) {
        return Err(not_opted_in(&name));
    }
    let mut headers = BTreeMap::new();
    for (key, value) in secret.data.iter().flatten() {
        let value = String::from_utf8(value.0.clone()).map_err(|_| {
            ProviderError::Config(format!(
                "the headers Secret {name:?}: the value of key {key:?} is not UTF-8"
            ))
        })?;
        headers.insert(key.clone(), value);
    }
    Ok(headers)
}

/// Whether labels carry [`HEADERS_SECRET_LABEL`]`: "true"`.
pub fn opted_in(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels
        .and_then(|l| l.get(HEADERS_SECRET_LABEL))
        .is_some_and(|v| v == "true")
}

/// The error of a Secret that did not opt in to `headersFrom`.
pub fn not_opted_in(name: &str) -> ProviderError {
    ProviderError::Config(format!(
        "the headers Secret {name:?} lacks the label {HEADERS_SECRET_LABEL}: \"true\" that allows sending it to a provider; not sent"
    ))
}

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
            // Never follow redirects: a redirect could lead outside the policy's allow-list
            // (checked only on the URL we send to) and, to another host, would either carry the
            // Secret's headers along or strip them depending on the client's rules. A 3xx is
            // reported as a bad status instead; a provider address should be the final one.
            .redirect(reqwest::redirect::Policy::none())
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
    /// in the template's order, ready for [`crate::analysis::run::advance`]. The measurement
    /// window of the time variables is the template's interval up to `now`.
    pub async fn measure_template(
        &self,
        template: &AnalysisTemplate,
        vars: &QueryVars,
        secrets: &SecretHeaders,
        egress: &Egress,
        pods: &SidePods,
        now: Timestamp,
    ) -> Vec<MetricObservation> {
        let interval = crate::analysis::run::schedule(template)
            .map(|s| s.interval)
            .unwrap_or_default();
        let vars = &vars.measured_at(now, interval);
        join_all(
            template
                .metrics
                .iter()
                .map(|metric| self.measure(metric, vars, secrets, egress, pods, now)),
        )
        .await
    }

    /// Measures one metric: the readings its checks need (canary value for thresholds, canary
    /// and baseline values for the relative check, canary and baseline samples for the
    /// statistical check), canary and baseline concurrently. A `kubernetes` metric is read from
    /// `pods`, without a request. No request goes outside `egress`. The time variables' window
    /// is a Prometheus metric's `range.window` up to `now`, else the one `vars` carries (a
    /// zero-length one at `now` without).
    pub async fn measure(
        &self,
        metric: &MetricSpec,
        vars: &QueryVars,
        secrets: &SecretHeaders,
        egress: &Egress,
        pods: &SidePods,
        now: Timestamp,
    ) -> MetricObservation {
        let needs = Needs {
            value: metric.thresholds.is_some() || metric.relative.is_some(),
            baseline_value: metric.relative.is_some(),
            samples: metric.statistical.is_some(),
        };
        let provider = &metric.provider;
        if provider.job.is_some() {
            // A Job is created and read by the controller (`controller::jobs`), which has the
            // Kubernetes client; here (replay, or a caller that did not) it cannot be run.
            let error = ProviderError::Config(
                "a job metric is measured by the operator, which runs its Job; it cannot be measured here".into(),
            );
            return MetricObservation::failed(&metric.name, error);
        }
        let range_window = (provider.prometheus.as_ref())
            .and_then(|p| p.range.as_ref())
            .and_then(|r| r.window.parse().ok());
        let windowed = match (range_window, vars.window) {
            (Some(length), _) => vars.measured_at(now, length),
            (None, Some(_)) => vars.clone(),
            (None, None) => vars.measured_at(now, Duration::ZERO),
        };
        let vars = &windowed;
        let scope = Scope {
            vars,
            secrets,
            egress,
        };
        // A guard without the field its provider reads (admission refuses it) is an error.
        let guard = metric.minimum_traffic.as_ref();
        let unusable_guard = |field: &str| {
            guard.map(|_| {
                Err(ProviderError::Config(format!(
                    "minimumTraffic needs {field} for this provider"
                )))
            })
        };
        let mut traffic = unusable_guard("a prometheus or web metric");
        let (canary, baseline) = match (&provider.prometheus, &provider.web, &provider.kubernetes) {
            (Some(p), None, None) => {
                let query = guard.and_then(|g| g.query.as_deref());
                let (canary, baseline, canary_traffic) = futures::join!(
                    self.prometheus_side(p, &scope, Side::Canary, needs.value, needs.samples, now),
                    self.prometheus_side(
                        p,
                        &scope,
                        Side::Baseline,
                        needs.baseline_value,
                        needs.samples,
                        now
                    ),
                    self.prometheus_traffic(p, query, &scope, now),
                );
                traffic = canary_traffic.or_else(|| unusable_guard("query"));
                (canary, baseline)
            }
            (None, Some(w), None) => {
                let path = guard.and_then(|g| g.json_path.as_deref());
                let want = (needs.value, needs.samples);
                let (mut canary, baseline) = futures::join!(
                    self.web_side(w, &scope, Side::Canary, want, path),
                    self.web_side(
                        w,
                        &scope,
                        Side::Baseline,
                        (needs.baseline_value, needs.samples),
                        None
                    ),
                );
                traffic = canary.traffic.take().or_else(|| unusable_guard("jsonPath"));
                (canary, baseline)
            }
            (None, None, Some(k)) => {
                let side = |side_pods: &[PodView], name: &str, want_value: bool| {
                    let allowance = pods.startup_allowance_seconds;
                    let want = (want_value, needs.samples);
                    let (value, samples) =
                        signals::readings(k, side_pods, name, allowance, want, now);
                    SideReadings {
                        value,
                        samples,
                        traffic: None,
                    }
                };
                (
                    side(&pods.canary, "canary", needs.value),
                    side(&pods.baseline, "baseline", needs.baseline_value),
                )
            }
            _ => {
                let error = ProviderError::Config(
                    "a metric needs exactly one of prometheus, web, kubernetes or job".into(),
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
            traffic,
        }
    }

    /// The canary's traffic by the metric's `minimumTraffic.query` (`None` without one): an
    /// instant query to the metric's Prometheus, under the same placeholders, timeout and
    /// egress rules as its own query.
    async fn prometheus_traffic(
        &self,
        p: &PrometheusProvider,
        query: Option<&str>,
        scope: &Scope<'_>,
        now: Timestamp,
    ) -> Option<ValueReading> {
        let text = query?;
        let prepared = (|| {
            let query = render(text, scope.vars, Side::Canary)
                .map_err(|e| ProviderError::Config(format!("minimumTraffic.query: {e}")))?;
            scope
                .egress
                .check(&prometheus::endpoint(&p.address, prometheus::QUERY_PATH))?;
            Ok::<_, ProviderError>((query, timeout(p.timeout.as_ref())?))
        })();
        let (query, timeout) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return Some(Err(error)),
        };
        let result = prometheus::query(&self.http, &p.address, &query, now, timeout).await;
        Some(result.and_then(|r| r.single_value(&query)))
    }

    async fn prometheus_side(
        &self,
        p: &PrometheusProvider,
        scope: &Scope<'_>,
        side: Side,
        want_value: bool,
        want_samples: bool,
        now: Timestamp,
    ) -> SideReadings {
        if !want_value && !want_samples {
            return SideReadings::default();
        }
        let Scope { vars, egress, .. } = *scope;
        let prepared = (|| {
            let text = match side {
                Side::Canary => &p.query,
                Side::Baseline => p.baseline_query.as_ref().unwrap_or(&p.query),
            };
            let query =
                render(text, vars, side).map_err(|e| ProviderError::Config(e.to_string()))?;
            let timeout = timeout(p.timeout.as_ref())?;
            let range = match &p.range {
                Some(range) => Some((
                    (range.window.parse())
                        .map_err(|e| ProviderError::Config(format!("range.window: {e}")))?,
                    (range.step.parse())
                        .map_err(|e| ProviderError::Config(format!("range.step: {e}")))?,
                )),
                None => None,
            };
            // The URLs actually requested are checked, not just the address.
            egress.check(&prometheus::endpoint(&p.address, prometheus::QUERY_PATH))?;
            if range.is_some() {
                egress.check(&prometheus::endpoint(
                    &p.address,
                    prometheus::QUERY_RANGE_PATH,
                ))?;
            }
            Ok::<_, ProviderError>((query, timeout, range))
        })();
        let (query, timeout, range) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return SideReadings::failed(error, want_value, want_samples),
        };
        let instant_needed = want_value || (want_samples && range.is_none());
        let instant = if instant_needed {
            Some(prometheus::query(&self.http, &p.address, &query, now, timeout).await)
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
        SideReadings {
            value,
            samples,
            traffic: None,
        }
    }

    /// One side's readings of a web metric; with `traffic_path` (the canary's side of a metric
    /// with `minimumTraffic.jsonPath`) also the traffic, from the same answer.
    async fn web_side(
        &self,
        w: &WebProvider,
        scope: &Scope<'_>,
        side: Side,
        (want_value, want_samples): (bool, bool),
        traffic_path: Option<&str>,
    ) -> SideReadings {
        if !want_value && !want_samples && traffic_path.is_none() {
            return SideReadings::default();
        }
        let Scope {
            vars,
            secrets,
            egress,
        } = *scope;
        let prepared = (|| {
            let config = |e: super::vars::VarsError| ProviderError::Config(e.to_string());
            let url = render(&w.url, vars, side).map_err(config)?;
            // Before any Secret is resolved: a refused URL never sees a header.
            egress.check(&url)?;
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
                let data = secrets
                    .get(name)
                    .ok_or_else(|| {
                        ProviderError::Config(format!("the headers Secret {name:?} does not exist"))
                    })?
                    .as_ref()
                    .map_err(Clone::clone)?;
                headers.extend(data.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            let path = web::parse_json_path(&w.json_path)?;
            let request = web::WebRequest {
                url,
                method: w.method.unwrap_or_default(),
                body,
                headers,
                timeout: timeout(w.timeout.as_ref())?,
            };
            Ok::<_, ProviderError>((request, path))
        })();
        let (request, path) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                return SideReadings {
                    traffic: traffic_path.map(|_| Err(error.clone())),
                    ..SideReadings::failed(error, want_value, want_samples)
                };
            }
        };
        let json = web::fetch_json(&self.http, &request).await;
        let numbers = json
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|json| web::extract_numbers(json, &path, &w.json_path));
        let traffic = traffic_path.map(|text| {
            let json = json.as_ref().map_err(Clone::clone)?;
            let path = web::parse_json_path(text)
                .map_err(|e| ProviderError::Config(format!("minimumTraffic.jsonPath: {e}")))?;
            web::single_number(&web::extract_numbers(json, &path, text)?, text)
        });
        SideReadings {
            traffic,
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

/// What a measurement may use: the variables, the resolved Secrets and where it may send.
#[derive(Clone, Copy)]
struct Scope<'a> {
    vars: &'a QueryVars,
    secrets: &'a SecretHeaders,
    egress: &'a Egress,
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
    /// The canary's traffic, read from the same answer (web metrics with `minimumTraffic`).
    traffic: Option<ValueReading>,
}

impl SideReadings {
    fn failed(error: ProviderError, want_value: bool, want_samples: bool) -> Self {
        Self {
            value: want_value.then(|| Err(error.clone())),
            samples: want_samples.then_some(Err(error)),
            traffic: None,
        }
    }
}

/// The request timeout of a provider (default 10s, at most [`MAX_TIMEOUT`]). It bounds the
/// whole exchange: connecting, the answer's headers and reading its body.
fn timeout(field: Option<&SpecDuration>) -> Result<Duration, ProviderError> {
    let timeout = SpecDuration::parse_or(field, DEFAULT_PROVIDER_TIMEOUT)
        .map_err(|e| ProviderError::Config(format!("timeout: {e}")))?;
    if timeout.is_zero() {
        return Err(ProviderError::Config(
            "timeout must be longer than zero".into(),
        ));
    }
    Ok(timeout.min(MAX_TIMEOUT))
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
pub fn full_error(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A description of an answer for messages, without any of its body's bytes: the content type
/// (only if it looks like a media type; the header is the server's text) and the length.
fn describe_answer(content_type: Option<&str>, length: Option<usize>) -> String {
    let media = content_type
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| {
            let token = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
            };
            t.len() <= 100 && t.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
        });
    let media = match (content_type, media) {
        (None, _) => "no content type".to_string(),
        (Some(_), None) => "an unrecognised content type".to_string(),
        (Some(_), Some(media)) => format!("content type {media}"),
    };
    match length {
        Some(length) => format!("{media}, {length} bytes"),
        None => format!("{media}, body not read"),
    }
}

/// The error of an answer that is not JSON: where parsing stopped, not the text found there.
fn not_json(error: &serde_json::Error, content_type: Option<&str>, length: usize) -> ProviderError {
    let kind = match error.classify() {
        serde_json::error::Category::Io => "read",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "unexpected end",
    };
    ProviderError::Parse(format!(
        "the answer is not JSON ({}; {kind} error at line {} column {})",
        describe_answer(content_type, Some(length)),
        error.line(),
        error.column()
    ))
}

/// The `Content-Type` header of an answer, if it is text.
fn content_type(headers: &HeaderMap) -> Option<String> {
    headers.get(CONTENT_TYPE).map(|v| {
        v.to_str()
            .map(str::to_string)
            .unwrap_or_else(|_| "\u{fffd}".into())
    })
}

/// Reads a body of at most [`MAX_BODY_BYTES`], chunk by chunk: a declared or actual larger body
/// is refused as soon as that is known, without buffering it (the connection is dropped).
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
    let too_large = || {
        ProviderError::Parse(format!(
            "the answer is larger than {MAX_BODY_BYTES} bytes; not read further"
        ))
    };
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len().saturating_add(chunk.len()) > MAX_BODY_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => {
                return Err(ProviderError::Unreachable(format!(
                    "timed out reading the answer after {} bytes",
                    body.len()
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
