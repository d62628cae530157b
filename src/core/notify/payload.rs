//! The bodies and headers each sink receives for one [`Notification`], and the HMAC-SHA256
//! signature of the generic webhook. Pure: the delivery layer sends what this returns.

use ring::hmac;
use serde_json::{Value, json};

use super::Notification;
use crate::api::notifications::SinkKind;

/// The header that carries the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "x-safedeploy-signature";
/// The header that carries the idempotency key (also the body's `id`).
pub const IDEMPOTENCY_HEADER: &str = "x-safedeploy-idempotency-key";
/// The header that names the event.
pub const EVENT_HEADER: &str = "x-safedeploy-event";
/// The `apiVersion` of the generic webhook body.
pub const WEBHOOK_API_VERSION: &str = "notifications.safedeploy.dev/v1";

/// One request to send: the body and its content type.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// The JSON bytes.
    pub bytes: Vec<u8>,
    /// `application/json` or `application/cloudevents+json`.
    pub content_type: &'static str,
}

/// The body `kind` receives for `note`.
pub fn body(kind: SinkKind, note: &Notification) -> Body {
    let (value, content_type) = match kind {
        SinkKind::Webhook => (webhook(note), "application/json"),
        SinkKind::Slack => (slack(note), "application/json"),
        SinkKind::CloudEvents => (cloud_event(note), "application/cloudevents+json"),
    };
    Body {
        bytes: value.to_string().into_bytes(),
        content_type,
    }
}

/// The generic webhook's JSON: the notification with an `apiVersion` and its key as `id`.
pub fn webhook(note: &Notification) -> Value {
    let mut value = serde_json::to_value(note).unwrap_or_else(|_| json!({}));
    if let Some(object) = value.as_object_mut() {
        object.insert("apiVersion".into(), json!(WEBHOOK_API_VERSION));
        object.insert("id".into(), json!(note.key));
    }
    value
}

/// A CloudEvents 1.0 event in structured mode; `data` is the generic webhook's body.
pub fn cloud_event(note: &Notification) -> Value {
    json!({
        "specversion": "1.0",
        "id": note.key,
        "source": format!(
            "/apis/safedeploy.dev/v1alpha1/namespaces/{}/safedeployments/{}",
            note.subject.namespace, note.subject.name
        ),
        "type": format!("dev.safedeploy.rollout.{}", note.event.as_str().to_ascii_lowercase()),
        "subject": format!("{}/{}", note.subject.namespace, note.subject.name),
        "time": note.at,
        "datacontenttype": "application/json",
        "data": webhook(note),
    })
}

/// A Slack-compatible incoming webhook message: `text` (the fallback every client shows) and
/// Block Kit `blocks` (the summary, the evidence, the dashboard link).
pub fn slack(note: &Notification) -> Value {
    let icon = match note.event.as_str() {
        "Reverted" | "Blocked" => ":rotating_light:",
        "Promoted" => ":white_check_mark:",
        "Frozen" | "Paused" => ":double_vertical_bar:",
        _ => ":arrow_forward:",
    };
    let mut text = format!("{icon} {}", escape(&note.summary));
    if let Some(link) = &note.dashboard {
        text.push_str(&format!(" <{}|dashboard>", escape(link)));
    }
    let mut blocks = vec![json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": format!("{icon} *{}*", escape(&note.summary))},
    })];
    if !note.evidence.is_empty() {
        let lines: Vec<String> = note
            .evidence
            .iter()
            .map(|e| {
                let value = e.value.map_or_else(|| "no value".into(), |v| v.to_string());
                let baseline = e.baseline.map(|b| format!(", baseline {b}")).unwrap_or_default();
                format!(
                    "• `{}` ({}) = *{value}*{baseline}: {} — {}",
                    escape(&e.name),
                    e.source,
                    escape(&e.verdict),
                    escape(&e.threshold)
                )
            })
            .collect();
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": lines.join("\n")},
        }));
    }
    let mut context = vec![json!({
        "type": "mrkdwn",
        "text": format!("{} · {} · key `{}`", note.event, escape(&note.at), escape(&note.key)),
    })];
    if let Some(link) = &note.dashboard {
        context.push(json!({"type": "mrkdwn", "text": format!("<{}|Open in the dashboard>", escape(link))}));
    }
    blocks.push(json!({"type": "context", "elements": context}));
    json!({"text": text, "blocks": blocks})
}

/// Slack's three control characters in mrkdwn.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The signature header's value for `body` sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256(key, "<timestamp>." + body)>`. Signing the timestamp with
/// the body lets a receiver refuse a replay of an old delivery.
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(context.sign().as_ref())
    )
}

/// Whether `header` is a valid signature of `body` under `key` (constant-time comparison);
/// returns the signed timestamp. What a receiver runs (and the tests).
pub fn verify(key: &[u8], header: &str, body: &[u8]) -> Option<i64> {
    let mut timestamp = None;
    let mut mac = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => mac = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (timestamp, mac) = (timestamp?, mac?);
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut message = timestamp.to_string().into_bytes();
    message.push(b'.');
    message.extend_from_slice(body);
    hmac::verify(&key, &message, &mac).ok().map(|()| timestamp)
}
