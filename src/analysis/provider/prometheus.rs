//! The Prometheus HTTP API: instant queries (`GET /api/v1/query`) and range queries
//! (`GET /api/v1/query_range`), and the parsing of its JSON answers (scalar, vector, matrix and
//! string results; `"NaN"`/`"+Inf"` values; error answers; native-histogram samples, which are
//! refused). Parsing is pure and tested separately from the requests.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::{ProviderError, read_body, send};

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
        other => {
            return Err(ProviderError::Parse(format!(
                "sample value {other} is not a number"
            )));
        }
    };
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .trim()
            .parse::<f64>()
            .map_err(|_| ProviderError::Parse(format!("sample value {text:?} is not a number"))),
    }
}

/// The value of a `[timestamp, "value"]` pair.
fn pair_value(pair: &Value) -> Result<f64, ProviderError> {
    match pair.as_array().map(Vec::as_slice) {
        Some([_, value]) => parse_sample_value(value),
        _ => Err(ProviderError::Parse(format!(
            "expected a [timestamp, value] pair, got {pair}"
        ))),
    }
}

/// First characters of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    let mut out: String = trimmed.chars().take(300).collect();
    if trimmed.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// Parses an answer of `/api/v1/query` or `/api/v1/query_range` given its HTTP status.
///
/// Error answers (`{"status":"error","errorType":…,"error":…}`, normally with 400, 422 or 503)
/// and any other non-2xx status become [`ProviderError::BadStatus`].
pub fn parse_response(status: u16, body: &[u8]) -> Result<QueryResult, ProviderError> {
    let json: Result<Value, _> = serde_json::from_slice(body);
    let ok_status = (200..300).contains(&status);
    let json = match json {
        Ok(json) => json,
        Err(error) if ok_status => {
            return Err(ProviderError::Parse(format!(
                "the answer is not JSON ({error}): {}",
                snippet(body)
            )));
        }
        Err(_) => {
            return Err(ProviderError::BadStatus {
                status,
                message: snippet(body),
            });
        }
    };
    if json.get("status").and_then(Value::as_str) != Some("success") || !ok_status {
        let error_type = json.get("errorType").and_then(Value::as_str).unwrap_or("");
        let error = json.get("error").and_then(Value::as_str);
        let message = match error {
            Some(error) if error_type.is_empty() => error.to_string(),
            Some(error) => format!("{error_type}: {error}"),
            None => snippet(body),
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
        "vector" => {
            let series = result.as_array().ok_or_else(|| {
                ProviderError::Parse("data.result of a vector is not a list".into())
            })?;
            let mut values = Vec::with_capacity(series.len());
            let mut histograms = 0;
            for item in series {
                match item.get("value") {
                    Some(pair) => values.push(pair_value(pair)?),
                    None if item.get("histogram").is_some() => {
                        histograms = usize::saturating_add(histograms, 1)
                    }
                    None => {
                        return Err(ProviderError::Parse(format!(
                            "a vector element has no value: {item}"
                        )));
                    }
                }
            }
            refuse_only_histograms(values.is_empty(), histograms)?;
            Ok(QueryResult::Vector(values))
        }
        "matrix" => {
            let series = result.as_array().ok_or_else(|| {
                ProviderError::Parse("data.result of a matrix is not a list".into())
            })?;
            let mut matrix = Vec::with_capacity(series.len());
            let mut histograms = 0;
            for item in series {
                let values = match item.get("values").and_then(Value::as_array) {
                    Some(values) => values
                        .iter()
                        .map(pair_value)
                        .collect::<Result<Vec<_>, _>>()?,
                    None if item.get("histograms").is_some() => {
                        histograms = usize::saturating_add(histograms, 1);
                        continue;
                    }
                    None => {
                        return Err(ProviderError::Parse(format!(
                            "a matrix series has no values: {item}"
                        )));
                    }
                };
                matrix.push(values);
            }
            refuse_only_histograms(matrix.is_empty(), histograms)?;
            Ok(QueryResult::Matrix(matrix))
        }
        other => Err(ProviderError::Parse(format!(
            "unknown resultType {other:?}"
        ))),
    }
}

fn refuse_only_histograms(empty: bool, histograms: usize) -> Result<(), ProviderError> {
    if empty && histograms > 0 {
        return Err(ProviderError::Parse(format!(
            "the query returned {histograms} native histogram series; reduce them to numbers (for example with histogram_quantile)"
        )));
    }
    Ok(())
}

/// `address` + `path`, tolerating a trailing slash on the address (which may carry a prefix
/// such as `/prometheus`).
fn endpoint(address: &str, path: &str) -> String {
    format!("{}{path}", address.trim_end_matches('/'))
}

/// Seconds since the Unix epoch, as Prometheus takes them.
fn unix_seconds(at: Timestamp) -> String {
    let seconds = at.as_millisecond() as f64 / 1000.0;
    format!("{seconds:.3}")
}

/// An instant query evaluated at the server's current time.
pub async fn query(
    http: &reqwest::Client,
    address: &str,
    query: &str,
    timeout: Duration,
) -> Result<QueryResult, ProviderError> {
    let request = http
        .get(endpoint(address, "/api/v1/query"))
        .query(&[("query", query)])
        .timeout(timeout);
    let response = send(request).await?;
    let status = response.status().as_u16();
    let body = read_body(response).await?;
    parse_response(status, &body)
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
        .get(endpoint(address, "/api/v1/query_range"))
        .query(&[
            ("query", query),
            ("start", unix_seconds(start).as_str()),
            ("end", unix_seconds(end).as_str()),
            ("step", step_seconds.as_str()),
        ])
        .timeout(timeout);
    let response = send(request).await?;
    let status = response.status().as_u16();
    let body = read_body(response).await?;
    parse_response(status, &body)
}
