//! Analysis templates (metrics, providers, thresholds, judgement) as they appear in a
//! SafeDeployment spec, and the bounded record of analysis runs kept in its status.
//!
//! This file owns the data shapes and their CEL rules only; the judgement lives in
//! `crate::analysis::judge`, the run state machine in `crate::analysis::run` and the metric
//! queries in `crate::analysis::provider`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{SpecDuration, bad_duration, duration_rules};
pub use super::traffic::MinimumTraffic;

/// Default time between two measurements of a run.
pub const DEFAULT_INTERVAL: &str = "1m";
/// Default number of measurements when neither `count` nor `duration` is set.
pub const DEFAULT_COUNT: i32 = 5;
/// Default score (0–100) at or above which a run passes.
pub const DEFAULT_PASS_THRESHOLD: f64 = 95.0;
/// Default score (0–100) below which a run fails.
pub const DEFAULT_MARGINAL_THRESHOLD: f64 = 75.0;
/// Default number of consecutive provider errors tolerated before `onError` applies.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;
/// Default timeout of one provider request.
pub const DEFAULT_PROVIDER_TIMEOUT: &str = "10s";
/// Default confidence of the Mann–Whitney test (as Kayenta's judge uses).
pub const DEFAULT_CONFIDENCE: f64 = 0.98;
/// Default smallest shift, in percent of the baseline median, that counts as a regression.
pub const DEFAULT_MIN_EFFECT_PERCENT: f64 = 5.0;
/// Default smallest number of samples on each side for the Mann–Whitney test.
pub const DEFAULT_MIN_SAMPLES: i32 = 20;
/// Default interquartile-range factor of outlier removal (Kayenta's).
pub const DEFAULT_OUTLIER_FACTOR: f64 = 3.0;
/// Measurements kept in status for each metric of a run (older ones are dropped).
pub const MEASUREMENTS_KEPT_PER_METRIC: usize = 10;

/// A named set of metrics measured at an interval and judged together.
///
/// Every `interval` each metric is measured and judged; the judged metrics give a weighted score
/// from 0 to 100. A run fails at once when a metric reaches a critical level, when a metric
/// marked `critical` fails, or when a score falls below `scoring.marginalThreshold`. After
/// `count` measurements (or once `duration` has passed) it passes if the last score reaches
/// `scoring.passThreshold`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!(has(self.count) && has(self.duration))",
     "message": "set either count (number of measurements) or duration (how long to measure), not both"},
    {"rule": "self.metrics.all(m, self.metrics.exists_one(n, n.name == m.name))",
     "message": "metric names must be unique within an analysis template"},
]))]
pub struct AnalysisTemplate {
    /// Name that steps and `backgroundAnalysis` refer to.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,

    /// Time between two measurements, such as `30s` or `1m`, from 1s to 1h. Default `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("interval", "30s, 1m or 1m30s", "1s", "1h")))]
    pub interval: Option<SpecDuration>,

    /// Wait this long after the run starts before the first measurement (warm-up), such as
    /// `2m`, at most 1h. Default: measure at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("initialDelay", "30s or 2m", "0s", "1h")))]
    pub initial_delay: Option<SpecDuration>,

    /// Number of measurements; the run ends after the last one. Default 5 when `duration` is
    /// not set either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub count: Option<i32>,

    /// Measure for this long instead of a fixed count, such as `10m`; the run ends with the
    /// first measurement at or after `initialDelay + duration` from its start. From 1s to 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("duration", "10m or 1h", "1s", "24h")))]
    pub duration: Option<SpecDuration>,

    /// The metrics measured and judged each interval.
    #[schemars(length(min = 1, max = 16))]
    pub metrics: Vec<MetricSpec>,

    /// Score thresholds. Default pass 95, marginal 75.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoring: Option<Scoring>,
}

/// Score thresholds of a run, each from 0 to 100; `passThreshold` above 0.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.marginalThreshold <= self.passThreshold",
     "message": "scoring.marginalThreshold must not be above scoring.passThreshold"},
    {"rule": "self.passThreshold > 0.0",
     "message": "scoring.passThreshold must be above 0: with 0 a run in which every metric fails (score 0) would pass"},
]))]
pub struct Scoring {
    /// The last score of a run must reach this for the run to pass. Default 95.
    #[serde(default = "default_pass_threshold")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub pass_threshold: f64,
    /// Any score below this fails the run at once; a last score between this and
    /// `passThreshold` leaves the run inconclusive. Default 75.
    #[serde(default = "default_marginal_threshold")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub marginal_threshold: f64,
}

impl Default for Scoring {
    fn default() -> Self {
        Self {
            pass_threshold: DEFAULT_PASS_THRESHOLD,
            marginal_threshold: DEFAULT_MARGINAL_THRESHOLD,
        }
    }
}

fn default_pass_threshold() -> f64 {
    DEFAULT_PASS_THRESHOLD
}

fn default_marginal_threshold() -> f64 {
    DEFAULT_MARGINAL_THRESHOLD
}

/// One metric: where its values come from and how they are judged. At least one of
/// `thresholds`, `relative` or `statistical` is needed; when several are set the worst verdict
/// counts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.provider.job) || has(self.thresholds) || has(self.relative) || has(self.statistical)",
     "message": "a metric needs at least one check: thresholds, relative or statistical"},
    {"rule": "!has(self.provider.job) || !(has(self.thresholds) || has(self.relative) || has(self.statistical) || has(self.outliers) || has(self.minimumTraffic) || has(self.direction))",
     "message": "a job metric is judged by the Job's exit (complete passes, failed is critical): set no thresholds, relative, statistical, outliers, minimumTraffic or direction"},
    {"rule": "!has(self.thresholds) || ((has(self.direction) && self.direction == 'higherIsBetter') ? (self.thresholds.target >= self.thresholds.acceptable && self.thresholds.acceptable > self.thresholds.critical) : (self.thresholds.target <= self.thresholds.acceptable && self.thresholds.acceptable < self.thresholds.critical))",
     "message": "thresholds must satisfy target <= acceptable < critical (lowerIsBetter) or target >= acceptable > critical (higherIsBetter)"},
    {"rule": "!(has(self.relative) || has(self.statistical)) || has(self.provider.kubernetes) || (has(self.provider.prometheus) && (has(self.provider.prometheus.baselineQuery) || self.provider.prometheus.query.contains('{{revision}}'))) || (has(self.provider.web) && (self.provider.web.url.contains('{{revision}}') || (has(self.provider.web.body) && self.provider.web.body.contains('{{revision}}'))))",
     "message": "relative and statistical checks compare the canary with the baseline: put {{revision}} in the query (or the web url or body), or set prometheus.baselineQuery"},
    {"rule": "!has(self.minimumTraffic) || (has(self.minimumTraffic.query) ? has(self.provider.prometheus) : (has(self.provider.web) && (self.provider.web.url.contains('{{canary}}') || self.provider.web.url.contains('{{revision}}') || (has(self.provider.web.body) && (self.provider.web.body.contains('{{canary}}') || self.provider.web.body.contains('{{revision}}'))))))",
     "message": "minimumTraffic.query needs a prometheus provider, minimumTraffic.jsonPath a web provider whose url or body selects the canary ({{canary}} or {{revision}})"},
]))]
pub struct MetricSpec {
    /// Name of the metric, unique in the template; measurements in status carry it.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,

    /// Where the values come from.
    pub provider: Provider,

    /// Whether lower values (latency, errors) or higher values (success rate) are better.
    /// Applies to every check of the metric. Default `lowerIsBetter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,

    /// Absolute levels of the canary's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<MetricThresholds>,

    /// Comparison of the canary's value with the baseline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative: Option<RelativeCheck>,

    /// Statistical comparison of canary samples with baseline samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistical: Option<StatisticalCheck>,

    /// Outlier removal from the canary's and the baseline's samples, each side separately,
    /// before they are compared. Default: keep every sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outliers: Option<OutlierSpec>,

    /// The least traffic the canary must have had for a measurement to pass (not for
    /// `kubernetes` metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_traffic: Option<MinimumTraffic>,

    /// A failing verdict of this metric fails the whole run at once, whatever the score.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,

    /// Measured, judged and recorded (its measurements say `dry run`), but never part of the
    /// run's outcome: no score, no critical level, no error policy. For trying a new metric on
    /// real rollouts before it gates them. A run whose metrics are all dry runs passes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,

    /// Weight of the metric in the score. 0 reports the metric without scoring it (a critical
    /// level still fails the run). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub weight: Option<i32>,

    /// What a measurement without data (empty result, too few samples) means. Default
    /// `Inconclusive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_no_data: Option<FailurePolicy>,

    /// What a NaN value means. Default `Inconclusive`.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "onNaN")]
    pub on_nan: Option<FailurePolicy>,

    /// What a provider error means once more than `consecutiveErrorLimit` errors came in a row.
    /// Default `Inconclusive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<FailurePolicy>,

    /// Provider errors in a row that are tolerated (the metric is skipped) before `onError`
    /// applies. Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub consecutive_error_limit: Option<i32>,
}

/// Where the values of a metric come from. Exactly one provider.
///
/// Queries, URLs and bodies may use `{{revision}}` (the revision being measured: the canary,
/// or the baseline for the baseline side), `{{canary}}`, `{{stable}}` (revision hashes),
/// `{{baseline}}` (the stable hash, or `<stable hash>-baseline` with
/// `strategy.canary.baseline: Fresh`: the `safedeploy.dev/revision` label of the fresh
/// baseline's pods), `{{namespace}}` and `{{name}}` (of the SafeDeployment).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.prometheus) ? 1 : 0) + (has(self.web) ? 1 : 0) + (has(self.kubernetes) ? 1 : 0) + (has(self.job) ? 1 : 0) == 1",
     "message": "a metric provider needs exactly one of prometheus, web, kubernetes or job"},
]))]
pub struct Provider {
    /// A Prometheus-compatible query API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
    /// An HTTP endpoint answering JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebProvider>,
    /// The operator's own Kubernetes signals of the canary's and the baseline's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesProvider>,
    /// A Kubernetes Job run per measurement, judged by its exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<super::job::KubernetesJobProvider>,
}

/// A Kubernetes signal of the pods, read from the operator's pod cache: no metrics system and
/// no request are involved. The canary side is the canary revision's pods; the baseline side is
/// what `{{baseline}}` selects (the stable revision's pods, or the fresh baseline's pods with
/// `strategy.canary.baseline: Fresh`). Pods being deleted are not counted.
///
/// Values per side: `restarts`, `failingContainers` and `notReadyPods` are sums over the pods;
/// `startupLatencySeconds` is the median pod's creation-to-Ready time (a pod not Ready yet
/// counts with its age). As for the built-in gate, a pod counts as not Ready only once it is
/// older than the baseline's start-up latency plus `spec.health.startupLatencySeconds.critical`
/// (until then its slow start is what `startupLatencySeconds` measures). Samples (for the
/// statistical check) are the per-pod values. A side without pods has no data.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesProvider {
    /// The signal measured.
    pub signal: KubernetesSignal,
    /// Only the pods of this component (default: the pods of every component).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub component: Option<String>,
}

/// A Kubernetes signal of a set of pods.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum KubernetesSignal {
    /// Container restarts (init containers included).
    #[default]
    Restarts,
    /// Containers in a failing state (CrashLoopBackOff, OOMKilled, image pull errors, …).
    FailingContainers,
    /// Pods that are not Ready.
    NotReadyPods,
    /// Creation-to-Ready time of the pods, in seconds.
    StartupLatencySeconds,
}

/// A PromQL query against a Prometheus-compatible HTTP API.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusProvider {
    /// Base address of the server, such as `http://prometheus.monitoring:9090`; the API path
    /// `/api/v1/query` is appended.
    #[schemars(length(min = 1, max = 2048))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.startsWith('http://') || self.startsWith('https://')", "message": "prometheus.address must start with http:// or https://"},
    ]))]
    pub address: String,
    /// The query for the canary. For thresholds and relative checks it must give one value
    /// (a scalar or a one-element vector); for the statistical check every value is a sample.
    #[schemars(length(min = 1, max = 8192))]
    pub query: String,
    /// The query for the baseline. Default: `query` with `{{revision}}` bound to the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 8192))]
    pub baseline_query: Option<String>,
    /// For the statistical check: take samples with a range query over the last `window`
    /// instead of one instant query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeSpec>,
    /// Timeout of one request, from 1s to 60s. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("timeout", "5s or 10s", "1s", "60s")))]
    pub timeout: Option<SpecDuration>,
}

/// The window and resolution of a range query: `step` at most `window`, and at most 11000
/// samples per series (`window / step`, Prometheus' own limit).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = range_rules()))]
pub struct RangeSpec {
    /// How far back from the measurement time, such as `10m`, from 1s to 24h.
    #[schemars(extend("x-kubernetes-validations" = duration_rules("range.window", "5m or 1h", "1s", "24h")))]
    pub window: SpecDuration,
    /// Resolution (the distance between two samples), such as `15s`, from 1s to 1h.
    #[schemars(extend("x-kubernetes-validations" = duration_rules("range.step", "15s or 1m", "1s", "1h")))]
    pub step: SpecDuration,
}

/// Samples per series Prometheus answers at most in a range query.
pub const MAX_RANGE_POINTS: i64 = 11_000;

fn range_rules() -> serde_json::Value {
    let bad = format!(
        "{} || {}",
        bad_duration("self", "window"),
        bad_duration("self", "step")
    );
    serde_json::json!([
        {"rule": format!("{bad} || duration(self.step) <= duration(self.window)"),
         "message": "range.step must not be longer than range.window"},
        {"rule": format!("{bad} || duration(self.window).getMilliseconds() <= duration(self.step).getMilliseconds() * {MAX_RANGE_POINTS}"),
         "message": format!("range.window / range.step must be at most {MAX_RANGE_POINTS} samples (Prometheus' limit per series)")},
    ])
}

/// An HTTP request answered with JSON; the value is picked with a JSONPath (RFC 9535).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.body) || (has(self.method) && self.method == 'POST')",
     "message": "web.body needs method POST"},
]))]
pub struct WebProvider {
    /// The URL, such as `http://metrics.example/api/latency?rev={{revision}}`.
    #[schemars(length(min = 1, max = 2048))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.startsWith('http://') || self.startsWith('https://')", "message": "web.url must start with http:// or https://"},
    ]))]
    pub url: String,
    /// `GET` or `POST`. Default `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// Request body for `POST` (sent as JSON unless a `Content-Type` header says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub body: Option<String>,
    /// JSONPath (RFC 9535) selecting the value, such as `$.data.p99`. Numbers and numeric
    /// strings count; arrays of numbers are flattened into samples.
    #[schemars(length(min = 1, max = 1024))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.startsWith('$')", "message": "web.jsonPath must start with $ (RFC 9535), such as $.data.value"},
    ]))]
    pub json_path: String,
    /// Plain request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HttpHeader>,
    /// Request headers from a Secret in the SafeDeployment's namespace: each key is a header
    /// name, its value the header value (for tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_from: Option<HeadersFrom>,
    /// Timeout of one request, from 1s to 60s. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("timeout", "5s or 10s", "1s", "60s")))]
    pub timeout: Option<SpecDuration>,
}

/// HTTP method of a web metric: `GET` (the default) or `POST`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum HttpMethod {
    /// GET (no body).
    #[default]
    #[serde(rename = "GET")]
    Get,
    /// POST with `body`.
    #[serde(rename = "POST")]
    Post,
}

/// One plain HTTP header.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    /// Header name (an HTTP token: alphanumerics and ``!#$%&'*+-.^_|~``).
    #[schemars(length(min = 1, max = 256))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": r#"self.matches("^[-A-Za-z0-9!#$%&'*+.^_|~]+$")"#, "message": "a header name must be an HTTP token (alphanumerics and !#$%&'*+-.^_|~)"},
    ]))]
    pub name: String,
    /// Header value.
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// Headers taken from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeadersFrom {
    /// The Secret, in the SafeDeployment's namespace.
    pub secret_ref: SecretRef,
}

/// A Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Which way a metric is better, for every check of the metric: `lowerIsBetter` (the default)
/// or `higherIsBetter`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Lower values are better (latency, error rate).
    #[default]
    LowerIsBetter,
    /// Higher values are better (success rate, throughput).
    HigherIsBetter,
}

/// Absolute levels of a metric, read in the metric's direction. For `lowerIsBetter`: at or
/// below `target` is on target, at or below `acceptable` may advance, above `acceptable` is
/// marginal (scored half), at or above `critical` fails the run at once. For `higherIsBetter`
/// the comparisons are mirrored.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricThresholds {
    /// The value aimed for (between -10^15 and 10^15, as every level).
    #[schemars(range(min = -1.0e15, max = 1.0e15))]
    pub target: f64,
    /// The worst value with which the metric still passes.
    #[schemars(range(min = -1.0e15, max = 1.0e15))]
    pub acceptable: f64,
    /// The value at which (or beyond which) the run fails at once.
    #[schemars(range(min = -1.0e15, max = 1.0e15))]
    pub critical: f64,
}

/// Canary against baseline: the canary may be worse by at most this much.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.criticalRegressionPercent) || self.criticalRegressionPercent > self.maxRegressionPercent",
     "message": "relative.criticalRegressionPercent must be above relative.maxRegressionPercent"},
]))]
pub struct RelativeCheck {
    /// How much worse than the baseline the canary may be, in percent of the baseline's value
    /// (0 to 100000).
    #[schemars(range(min = 0.0, max = 100000.0))]
    pub max_regression_percent: f64,
    /// A regression of at least this many percent fails the run at once (at most 100000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100000.0))]
    pub critical_regression_percent: Option<f64>,
    /// Differences smaller than this absolute amount are never a regression (useful when the
    /// baseline is at or near zero, such as an error rate). Default 0, at most 10^15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0e15))]
    pub min_absolute_change: Option<f64>,
}

/// Statistical comparison of canary and baseline samples.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatisticalCheck {
    /// Two-sided Mann–Whitney U test with a minimum effect size, as Kayenta's judge.
    pub mann_whitney: MannWhitneySpec,
}

/// The canary fails when its samples differ from the baseline's with the given confidence, in
/// the bad direction, by at least `minEffectPercent` of the baseline median (measured with the
/// Hodges–Lehmann shift).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MannWhitneySpec {
    /// Confidence of the test (1 minus the significance level). Default 0.98.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.5, max = 0.9999))]
    pub confidence: Option<f64>,
    /// Smallest shift that counts, in percent of the baseline median (at most 100000). Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100000.0))]
    pub min_effect_percent: Option<f64>,
    /// Fewer samples than this on either side count as no data. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3, max = 100000))]
    pub min_samples: Option<i32>,
}

/// Outlier removal, as Kayenta's judge does it: Tukey's fences on each sample set (canary and
/// baseline separately). A sample is removed when it lies below `Q1 − factor·IQR` or above
/// `Q3 + factor·IQR`, with the quartiles interpolated linearly as numpy's default percentile.
/// Sample sets with fewer than 4 finite samples are left whole, so a relative check (one value
/// per side) is never affected. How many samples were removed is in each measurement.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutlierSpec {
    /// `Remove` (as Kayenta, which always removes) or `Keep` (the default without `outliers`).
    pub strategy: OutlierStrategy,
    /// The IQR multiple of the fences. Default 3.0 (Kayenta's, Tukey's "far out"); 1.5 is
    /// Tukey's "outside" and removes more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.1, max = 100.0))]
    pub factor: Option<f64>,
}

/// What is done with outlying samples: `Keep` or `Remove`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum OutlierStrategy {
    /// Every sample is compared.
    #[default]
    Keep,
    /// Samples outside the fences are dropped before the comparison.
    Remove,
}

/// What a measurement without a usable value (no data, NaN, or a provider error beyond the
/// consecutive error limit) means: `Fail`, `Inconclusive` (the default) or `Ignore`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FailurePolicy {
    /// The metric fails (a critical metric fails the run at once).
    Fail,
    /// The metric is not judged; if it is still without a value at the run's last measurement
    /// (or its errors exceed the limit), the run is inconclusive and the rollout waits.
    #[default]
    Inconclusive,
    /// The metric is left out of the score. A provider error still keeps the run from passing
    /// on that measurement.
    Ignore,
}

/// Phase of an analysis run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AnalysisPhase {
    /// Measuring.
    #[default]
    Running,
    /// Passed: the last score reached the pass threshold.
    Successful,
    /// Failed: a critical level, a failing critical metric or a score below marginal.
    Failed,
    /// Could not decide (no data, marginal last score, provider down); the rollout waits.
    Inconclusive,
    /// Failed because a provider kept erroring (`onError: Fail`) or the template is invalid.
    Error,
}

impl AnalysisPhase {
    /// Whether the run is over.
    pub fn is_terminal(self) -> bool {
        !matches!(self, AnalysisPhase::Running)
    }
}

/// The state of one analysis run, kept in status. Bounded: at most 10 measurements per metric
/// (`MEASUREMENTS_KEPT_PER_METRIC`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    /// Template name.
    pub template: String,
    /// Where the run stands.
    #[serde(default)]
    pub phase: AnalysisPhase,
    /// The canary revision (hash) the run measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// The canary step this run gates; none for background analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_index: Option<i32>,
    /// When the run started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the run ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// When the next measurement is due (RFC 3339), while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_measurement_at: Option<String>,
    /// Measurements (intervals) judged so far.
    #[serde(default)]
    pub measurement_count: i32,
    /// The latest measurements, oldest first, at most 10 per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    /// Provider errors in a row, by metric name (metrics without errors are absent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub consecutive_errors: BTreeMap<String, i32>,
    /// Score (0–100) of the latest measurement, when any metric was judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Why the run is where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One judged measurement of one metric.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// Metric name.
    pub metric: String,
    /// The canary's value (the median of its samples for a statistical-only metric); absent
    /// when there was none or it was not finite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The baseline's value, when compared with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// What the value was judged against, in words.
    pub threshold: String,
    /// The verdict.
    pub verdict: MetricVerdict,
    /// When it was measured (RFC 3339).
    pub at: String,
    /// Details: statistics, the error, or the policy applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The canary's traffic, with `minimumTraffic` (when finite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<f64>,
    /// Samples removed as outliers before the comparison (with `outliers.strategy: Remove`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outliers_removed: Option<OutliersRemoved>,
}

/// How many samples outlier removal took from each side of one measurement.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutliersRemoved {
    /// Removed from the canary's samples.
    pub canary: i32,
    /// Samples the canary had before removal.
    pub canary_samples: i32,
    /// Removed from the baseline's samples.
    pub baseline: i32,
    /// Samples the baseline had before removal.
    pub baseline_samples: i32,
}

/// Verdict of one measurement of one metric.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MetricVerdict {
    /// Within the acceptable level / not worse than allowed.
    #[default]
    Pass,
    /// Above acceptable but below critical (scored half).
    Marginal,
    /// Worse than allowed (scored zero; fails the run at once for a critical metric).
    Fail,
    /// At a critical level: fails the run at once.
    Critical,
    /// No data (empty result, too few samples).
    NoData,
    /// The value was NaN.
    NaN,
    /// The provider could not be asked or answered badly.
    Error,
    /// The canary had less traffic than `minimumTraffic` (or no believable amount): not judged.
    InsufficientTraffic,
}

#[cfg(test)]
#[path = "tests/analysis.rs"]
mod tests;
