//! The Prometheus HTTP API: instant queries (`GET /api/v1/query`) and range queries
//! (`GET /api/v1/query_range`), and the parsing of its JSON answers (scalar, vector, matrix and
//! string results; `"NaN"`/`"+Inf"` values; error answers; native-histogram samples, which are
//! refused). Parsing is pure and tested separately from the requests.
//!
//! No error message carries bytes of the answer: the `error` text of a Prometheus error answer
//! is dropped (only a known `errorType` is kept), and malformed answers are described by their
//! shape, status, content type and length. The address is the user's; what answers there need
//! not be Prometheus.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::{ProviderError, content_type, describe_answer, not_json, read_body, send};

/// Path of instant queries, below the address.
pub const QUERY_PATH: &str = "/api/v1/query";
/// Path of range queries, below the address.
pub const QUERY_RANGE_PATH: &str = "/api/v1/query_range";

/// The `errorType`s the Prometheus HTTP API documents; any other value is not repeated.
const KNOWN_ERROR_TYPES: [&str; 8] = [
    "bad_data",
    "timeout",
    "canceled",
    "execution",
    "internal",
    "unavailable",
    "not_found",
    "not_acceptable",
];

/// The `data` of a successful query, reduced to its numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// `resultType: scalar`.
    Scalar(f64),
    /// `resultType: vector`: one value per series.
    Vector(Vec<f64>),
    /// `resultType: matrix`: the values of each series.
    Matrix(Vec<Vec<f64>>),
}

impl QueryResult {
    /// The one value a threshold is judged by: a scalar, or a vector with one series. An empty
    /// vector is no data; several series or a matrix are refused with a hint.
    pub fn single_value(&self, query: &str) -> Result<f64, ProviderError> {
        match self {
            QueryResult::Scalar(value) => Ok(*value),
            QueryResult::Vector(values) => match values.as_slice() {
                [] => Err(ProviderError::NoData(format!(
                    "the query returned an empty vector: {query}"
                ))),
                [value] => Ok(*value),
                many => Err(ProviderError::Parse(format!(
                    "the query returned {} series; aggregate it to one (for example with sum or max): {query}",
                    many.len()
                ))),
            },
            QueryResult::Matrix(_) => Err(ProviderError::Parse(format!(
                "the query returned a range vector (matrix); thresholds need one value: {query}"
            ))),
        }
    }

    /// Every value as a sample (all series, all points). Empty results are no data.
    pub fn samples(&self, query: &str) -> Result<Vec<f64>, ProviderError> {
        let values: Vec<f64> = match self {
            QueryResult::Scalar(value) => vec![*value],
            QueryResult::Vector(values) => values.clone(),
            QueryResult::Matrix(series) => series.iter().flatten().copied().collect(),
        };
        if values.is_empty() {
            return Err(ProviderError::NoData(format!(
                "the query returned no samples: {query}"
            )));
        }
        Ok(values)
    }
}

/// Parses a sample value as Prometheus writes it: a decimal string, `"NaN"`, `"+Inf"`,
/// `"-Inf"` (numbers are accepted too).
pub fn parse_sample_value(value: &Value) -> Result<f64, ProviderError> {
    let text = match value {
        Value::String(text) => text.as_str(),
        Value::Number(number) => {
            return number.as_f64().ok_or_else(|| {
                ProviderError::Parse(format!("sample value {number} is not a number"))
            });
        }
        _ => {
            return Err(ProviderError::Parse(
                "a sample value is neither a string nor a number".into(),
            ));
        }
    };
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .trim()
            .parse::<f64>()
            .map_err(|_| ProviderError::Parse("a sample value is a string, not a number".into())),
    }
}

/// The value of a `[timestamp, "value"]` pair.
fn pair_value(pair: &Value) -> Result<f64, ProviderError> {
    match pair.as_array().map(Vec::as_slice) {
        Some([_, value]) => parse_sample_value(value),
        _ => Err(ProviderError::Parse(
            "a sample is not a [timestamp, value] pair".into(),
        )),
    }
}

/// Parses an answer of `/api/v1/query` or `/api/v1/query_range` given its HTTP status and
/// content type.
///
/// Error answers (`{"status":"error","errorType":…,"error":…}`, normally with 400, 422 or 503)
/// and any other non-2xx status become [`ProviderError::BadStatus`] with the `errorType` (if it
/// is one Prometheus documents), the content type and the length, never the `error` text.
pub fn parse_response(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<QueryResult, ProviderError> {
    let json: Result<Value, _> = serde_json::from_slice(body);
    let ok_status = (200..300).contains(&status);
    let described = || describe_answer(content_type, Some(body.len()));
    let json = match json {
        Ok(json) => json,
        Err(error) if ok_status => return Err(not_json(&error, content_type, body.len())),
        Err(_) => {
            return Err(ProviderError::BadStatus {
                status,
                message: described(),
            });
        }
    };
    if json.get("status").and_then(Value::as_str) != Some("success") || !ok_status {
        let error_type = json
            .get("errorType")
            .and_then(Value::as_str)
            .filter(|t| KNOWN_ERROR_TYPES.contains(t));
        let message = match error_type {
            Some(error_type) => format!(
                "errorType {error_type} (Prometheus's error text is not copied into status; run the query in Prometheus to see it); {}",
                described()
            ),
            None if ok_status => format!("not a successful Prometheus answer; {}", described()),
            None => described(),
        };
        return Err(ProviderError::BadStatus { status, message });
    }
    let data = json
        .get("data")
        .ok_or_else(|| ProviderError::Parse("the answer has no data".into()))?;
    let result_type = data
        .get("resultType")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::Parse("the answer has no data.resultType".into()))?;
    let result = data
        .get("result")
        .ok_or_else(|| ProviderError::Parse("the answer has no data.result".into()))?;
    match result_type {
        "scalar" | "string" => Ok(QueryResult::Scalar(pair_value(result)?)),
        "vector" => Ok(QueryResult::Vector(each_series(
            result,
            "vector",
            ("value", "histogram"),
            pair_value,
        )?)),
        "matrix" => Ok(QueryResult::Matrix(each_series(
            result,
            "matrix",
            ("values", "histograms"),
            |values| {
                values
                    .as_array()
                    .ok_or_else(|| ProviderError::Parse("a matrix series' values are not a list".into()))?
                    .iter()
                    .map(pair_value)
                    .collect()
            },
        )?)),
        _ => Err(ProviderError::Parse(
            "data.resultType is none of scalar, string, vector or matrix".into(),
        )),
    }
}

/// Reads each series of a vector or matrix result (`samples`: the key of its sample(s), and of
/// the native histogram(s) a series may hold instead). Histogram series are skipped, since they
/// are not numbers, but a result of nothing else is refused with what to do about it.
fn each_series<T>(
    result: &Value,
    kind: &str,
    (sample_key, histogram_key): (&str, &str),
    read: impl Fn(&Value) -> Result<T, ProviderError>,
) -> Result<Vec<T>, ProviderError> {
    let series = result
        .as_array()
        .ok_or_else(|| ProviderError::Parse(format!("data.result of a {kind} is not a list")))?;
    let mut read_series = Vec::with_capacity(series.len());
    let mut histograms = 0;
    for item in series {
        match item.get(sample_key) {
            Some(sample) => read_series.push(read(sample)?),
            None if item.get(histogram_key).is_some() => {
                histograms = usize::saturating_add(histograms, 1)
            }
            None => {
                return Err(ProviderError::Parse(format!(
                    "a {kind} series has no {sample_key}"
                )));
            }
        }
    }
    if read_series.is_empty() && histograms > 0 {
        return Err(ProviderError::Parse(format!(
            "the query returned {histograms} native histogram series; reduce them to numbers (for example with histogram_quantile)"
        )));
    }
    Ok(read_series)
}

/// `address` + `path`, tolerating a trailing slash on the address (which may carry a prefix
/// such as `/prometheus`).
pub fn endpoint(address: &str, path: &str) -> String {
    format!("{}{path}", address.trim_end_matches('/'))
}

/// Seconds since the Unix epoch, as Prometheus takes them.
fn unix_seconds(at: Timestamp) -> String {
    let seconds = at.as_millisecond() as f64 / 1000.0;
    format!("{seconds:.3}")
}

/// An instant query evaluated at `at`: the time the reconcile took its decision on, so that a
/// measurement, the verdict and a revert it causes all carry one time, and a replay of the same
/// instant (or a reader of the recorded measurement) sees the same value. Without `time`,
/// Prometheus would evaluate at the moment the request arrives, after `at`.
pub async fn query(
    http: &reqwest::Client,
    address: &str,
    query: &str,
    at: Timestamp,
    timeout: Duration,
) -> Result<QueryResult, ProviderError> {
    let request = http
        .get(endpoint(address, QUERY_PATH))
        .query(&[("query", query), ("time", unix_seconds(at).as_str())])
        .timeout(timeout);
    answer_of(request).await
}

/// Sends a query and reads its answer.
async fn answer_of(request: reqwest::RequestBuilder) -> Result<QueryResult, ProviderError> {
    let response = send(request).await?;
    let status = response.status().as_u16();
    let content_type = content_type(response.headers());
    let body = read_body(response).await?;
    parse_response(status, content_type.as_deref(), &body)
}

/// A range query over `[end − window, end]` with resolution `step`.
pub async fn query_range(
    http: &reqwest::Client,
    address: &str,
    query: &str,
    end: Timestamp,
    window: Duration,
    step: Duration,
    timeout: Duration,
) -> Result<QueryResult, ProviderError> {
    let start = end
        .checked_sub(window)
        .map_err(|e| ProviderError::Config(format!("range window: {e}")))?;
    let step_seconds = format!("{:.3}", step.as_secs_f64());
    let request = http
        .get(endpoint(address, QUERY_RANGE_PATH))
        .query(&[
            ("query", query),
            ("start", unix_seconds(start).as_str()),
            ("end", unix_seconds(end).as_str()),
            ("step", step_seconds.as_str()),
        ])
        .timeout(timeout);
    answer_of(request).await
}
