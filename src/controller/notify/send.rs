//! The HTTP side of a delivery: the receiver's address and key from its Secret, and one
//! notification sent with a timeout per attempt, retried with exponential back-off and jitter
//! on a network error, a timeout, a 429 or a 5xx, up to [`MAX_ATTEMPTS`].

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use ring::rand::{SecureRandom, SystemRandom};

use super::Shared;
use crate::api::notifications::{NotificationSink, SinkKind};
use crate::core::notify::Notification;
use crate::core::notify::payload::{
    EVENT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, body, signature,
};
use crate::telemetry::Metrics;

/// Attempts per notification and sink, the first included.
pub const MAX_ATTEMPTS: u32 = 6;
/// The longest one attempt may take (connect, send, answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait before the first retry; it doubles each time, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(16);
/// The Secret key of the receiver's URL.
pub const URL_KEY: &str = "url";
/// The Secret key of the HMAC key (optional).
pub const HMAC_KEY: &str = "hmacKey";

/// A receiver, read from its Secret.
pub struct Target {
    kind: SinkKind,
    sink: String,
    url: String,
    hmac_key: Option<Vec<u8>>,
}

/// How one delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver refused it (a 4xx other than 429): retrying would not help.
    Refused(u16),
    /// Every attempt failed.
    GaveUp,
}

/// The HTTP client of the deliveries: no redirects (a redirect could carry the signed body
/// elsewhere), a connect timeout within the attempt timeout.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    // An Err means a provider is installed already, which is what is needed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("safedeploy/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The sink's receiver from its Secret; None when the Secret or its `url` is missing or not
/// an http(s) URL.
pub async fn target(secrets: &Api<Secret>, sink: &NotificationSink) -> Option<Target> {
    let secret = secrets.get_opt(&sink.secret_name).await.ok().flatten()?;
    let data = secret.data.unwrap_or_default();
    let url = String::from_utf8(data.get(URL_KEY)?.0.clone()).ok()?;
    let url = url.trim().to_string();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return None;
    }
    Some(Target {
        kind: sink.kind,
        sink: sink.name.clone(),
        url,
        hmac_key: data.get(HMAC_KEY).map(|k| k.0.clone()),
    })
}

/// Sends `note` to `target`, retrying as the module says; counts the outcome.
pub async fn deliver(shared: &Shared, target: &Target, note: &Notification) -> Outcome {
    let payload = body(target.kind, note);
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=MAX_ATTEMPTS {
        let mut request = shared
            .http
            .post(&target.url)
            .timeout(ATTEMPT_TIMEOUT)
            .header(http::header::CONTENT_TYPE, payload.content_type)
            .header(IDEMPOTENCY_HEADER, &note.key)
            .header(EVENT_HEADER, note.event.as_str());
        if let Some(key) = &target.hmac_key
            && target.kind != SinkKind::Slack
        {
            let now = jiff::Timestamp::now().as_second();
            request = request.header(SIGNATURE_HEADER, signature(key, now, &payload.bytes));
        }
        let answer = request.body(payload.bytes.clone()).send().await;
        match answer {
            Ok(response) if response.status().is_success() => {
                Metrics::count(&shared.metrics.notifications, "delivered");
                return Outcome::Delivered;
            }
            Ok(response)
                if response.status().is_client_error()
                    && response.status() != http::StatusCode::TOO_MANY_REQUESTS =>
            {
                tracing::warn!(sink = target.sink, status = %response.status(), key = note.key, "notification refused");
                Metrics::count(&shared.metrics.notifications, "dropped_refused");
                return Outcome::Refused(response.status().as_u16());
            }
            Ok(response) => {
                tracing::debug!(sink = target.sink, status = %response.status(), attempt, "notification not accepted");
            }
            Err(error) => {
                tracing::debug!(sink = target.sink, %error, attempt, "notification not sent");
            }
        }
        if attempt < MAX_ATTEMPTS {
            Metrics::count(&shared.metrics.notifications, "retried");
            tokio::time::sleep(jittered(backoff)).await;
            backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
        }
    }
    tracing::warn!(
        sink = target.sink,
        key = note.key,
        attempts = MAX_ATTEMPTS,
        "notification not delivered; tried again in a later round"
    );
    Metrics::count(&shared.metrics.notifications, "failed_round");
    Outcome::GaveUp
}

/// `wait` scaled by a random factor in [0.5, 1): receivers that came back are not hit by every
/// operator's retries at the same instant.
fn jittered(wait: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let random = SystemRandom::new().fill(&mut byte).map_or(0, |()| byte[0]);
    wait.mul_f64(0.5 + f64::from(random) / 512.0)
}
