//! The web provider: an HTTP GET or POST answered with JSON, the value picked with a JSONPath
//! (RFC 9535, via `serde_json_path`). Extraction is pure and tested separately.
//!
//! No error message carries bytes of the answer (it ends up in status, which more people can
//! read than the endpoint): a selected string or object is described by its JSON type only, a
//! failed answer by its status, content type and length.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::api::analysis::HttpMethod;
use crate::canonical_json::kind_of;

use super::{ProviderError, content_type, describe_answer, not_json, read_body, send};

/// A web request with every variable already substituted and every header resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRequest {
    /// The URL.
    pub url: String,
    /// GET or POST.
    pub method: HttpMethod,
    /// The body (POST).
    pub body: Option<String>,
    /// Headers: the plain ones and those from the Secret.
    pub headers: BTreeMap<String, String>,
    /// Timeout of the request.
    pub timeout: Duration,
}

/// Parses a JSONPath (RFC 9535).
pub fn parse_json_path(path: &str) -> Result<JsonPath, ProviderError> {
    JsonPath::parse(path).map_err(|e| ProviderError::Config(format!("jsonPath {path:?}: {e}")))
}

fn number(value: &Value, path: &str) -> Result<Option<f64>, ProviderError> {
    let not_a_number =
        |what: &str| ProviderError::Parse(format!("the value at {path} is {what}, not a number"));
    match value {
        Value::Number(n) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| not_a_number("a number out of range")),
        Value::String(text) => match text.trim() {
            "NaN" => Ok(Some(f64::NAN)),
            "+Inf" | "Inf" => Ok(Some(f64::INFINITY)),
            "-Inf" => Ok(Some(f64::NEG_INFINITY)),
            // The string itself is never quoted: it may be anything the endpoint holds.
            trimmed => trimmed
                .parse::<f64>()
                .map(Some)
                .map_err(|_| not_a_number("a string")),
        },
        Value::Null => Ok(None),
        other => Err(not_a_number(kind_of(other))),
    }
}

/// The numbers selected by `path` in `json`: numbers and numeric strings (`"NaN"` too); arrays
/// are flattened one level; `null` is skipped. Nothing selected is no data.
pub fn extract_numbers(
    json: &Value,
    path: &JsonPath,
    text: &str,
) -> Result<Vec<f64>, ProviderError> {
    let mut values = Vec::new();
    for node in path.query(json).all() {
        match node {
            Value::Array(items) => {
                for item in items {
                    if let Some(v) = number(item, text)? {
                        values.push(v);
                    }
                }
            }
            other => {
                if let Some(v) = number(other, text)? {
                    values.push(v);
                }
            }
        }
    }
    if values.is_empty() {
        return Err(ProviderError::NoData(format!("{text} selected no value")));
    }
    Ok(values)
}

/// The single number a threshold needs; several are refused.
pub fn single_number(values: &[f64], text: &str) -> Result<f64, ProviderError> {
    match values {
        [value] => Ok(*value),
        [] => Err(ProviderError::NoData(format!("{text} selected no value"))),
        many => Err(ProviderError::Parse(format!(
            "{text} selected {} values; thresholds need exactly one",
            many.len()
        ))),
    }
}

fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, ProviderError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ProviderError::Config(format!("{name:?} is not a valid header name")))?;
        // The allow-list is checked on the URL's host; a Host header would address another
        // virtual host behind it.
        if header == reqwest::header::HOST {
            return Err(ProviderError::Config(
                "the Host header cannot be set; put the host in the URL".into(),
            ));
        }
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            ProviderError::Config(format!("the value of header {name:?} is not valid"))
        })?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

/// Sends the request and returns its JSON answer.
pub async fn fetch_json(
    http: &reqwest::Client,
    request: &WebRequest,
) -> Result<Value, ProviderError> {
    let headers = header_map(&request.headers)?;
    let mut builder = match request.method {
        HttpMethod::Get => http.get(&request.url),
        HttpMethod::Post => http.post(&request.url),
    }
    .headers(headers)
    .timeout(request.timeout);
    if let Some(body) = &request.body {
        if !request
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case(CONTENT_TYPE.as_str()))
        {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        builder = builder.body(body.clone());
    }
    let response = send(builder).await?;
    let status = response.status();
    let content_type = content_type(response.headers());
    if !status.is_success() {
        // The body is read (bounded) only to report its length; none of it is kept.
        let length = read_body(response).await.ok().map(|b| b.len());
        let mut message = describe_answer(content_type.as_deref(), length);
        if status.is_redirection() {
            message.push_str("; redirects are not followed, give the final URL");
        }
        return Err(ProviderError::BadStatus {
            status: status.as_u16(),
            message,
        });
    }
    let body = read_body(response).await?;
    parse_json(&body, content_type.as_deref())
}

/// Parses a JSON answer; the error gives the position of the syntax error, not the text there.
pub fn parse_json(body: &[u8], content_type: Option<&str>) -> Result<Value, ProviderError> {
    serde_json::from_slice(body).map_err(|e| not_json(&e, content_type, body.len()))
}
