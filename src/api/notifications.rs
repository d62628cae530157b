//! The `notifications` section of a `SafeDeploymentPolicy`: which receivers hear about the
//! rollouts of the selected namespaces (a signed JSON webhook, a Slack-compatible incoming
//! webhook, a CloudEvents 1.0 receiver), of which events, and where the dashboard lives.
//!
//! Addresses and keys never appear here: each sink names a Secret **in the rollout's own
//! namespace** (so each namespace brings its own receiver, and the operator reads no Secret
//! outside the namespaces it already reads). See `docs/notifications.md`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rules::DNS_LABEL_PATTERN;

/// The most sinks one policy may name.
pub const MAX_SINKS: usize = 8;

/// Where the rollouts of the selected namespaces are announced.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPolicy {
    /// The receivers, at most 8, each with a unique name.
    #[schemars(length(min = 1, max = 8))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(s, self.exists_one(t, t.name == s.name))", "message": "notification sink names must be unique"},
    ]))]
    pub sinks: Vec<NotificationSink>,

    /// The dashboard's base URL (`http://` or `https://`, at most 256 characters, no query or
    /// fragment); a message links to `<dashboardUrl>/<namespace>/<name>`. Unset: no link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 256))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^https?://[A-Za-z0-9-]+([.][A-Za-z0-9-]+)*(:[0-9]{1,5})?(/[^?#@ ]*)?$')",
         "message": "dashboardUrl must be an http:// or https:// URL with a host, an optional port and path, and no user info, query or fragment"},
    ]))]
    pub dashboard_url: Option<String>,
}

/// One receiver.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSink {
    /// The sink's name (a lowercase DNS label): part of each delivery's idempotency key, so a
    /// renamed sink hears every current event again.
    #[schemars(length(min = 1, max = 63))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": format!("self.matches('{DNS_LABEL_PATTERN}')"), "message": "a sink name must be a lowercase DNS label"},
    ]))]
    pub name: String,

    /// The payload: `Webhook` (JSON signed with HMAC-SHA256), `Slack` (an incoming webhook's
    /// `text` and `blocks`) or `CloudEvents` (CloudEvents 1.0, structured JSON mode).
    #[serde(rename = "type")]
    pub kind: SinkKind,

    /// The Secret, in the rollout's namespace, that holds the receiver's URL (key `url`) and,
    /// for `Webhook` and `CloudEvents`, an optional HMAC key (key `hmacKey`) that signs each
    /// body. A missing Secret or URL skips the sink for that namespace (counted as dropped).
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')", "message": "secretName must be a Secret name (lowercase DNS subdomain)"},
    ]))]
    pub secret_name: String,

    /// The events this sink hears, at most 7, each once. Unset: every event but `StepCompleted`
    /// (which is opt-in, as it is the noisiest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 7))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(e, self.exists_one(f, f == e))", "message": "each notification event may be listed once"},
    ]))]
    pub events: Option<Vec<NotificationEvent>>,
}

/// The payload a sink receives.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum SinkKind {
    /// Generic JSON, signed (`X-Safedeploy-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
    /// "<t>.<body>">`) when the Secret has an `hmacKey`.
    Webhook,
    /// A Slack-compatible incoming webhook: `text` and Block Kit `blocks`.
    Slack,
    /// A CloudEvents 1.0 event in structured mode (`application/cloudevents+json`).
    CloudEvents,
}

/// What a notification announces.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum NotificationEvent {
    /// A canary (or an initial revision) started.
    RolloutStarted,
    /// A canary step completed (opt-in: list it in `events`).
    StepCompleted,
    /// The rollout waits for a person (`kubectl safedeploy promote`/`resume`).
    Paused,
    /// A revision became stable.
    Promoted,
    /// The canary was reverted (by the gates, or stopped by a user's rollback or abort).
    Reverted,
    /// The desired revision may not start (attestation, preflight, requirements).
    Blocked,
    /// A freeze window holds the rollout.
    Frozen,
}

impl NotificationEvent {
    /// Every event, in the order above.
    pub const ALL: [NotificationEvent; 7] = [
        NotificationEvent::RolloutStarted,
        NotificationEvent::StepCompleted,
        NotificationEvent::Paused,
        NotificationEvent::Promoted,
        NotificationEvent::Reverted,
        NotificationEvent::Blocked,
        NotificationEvent::Frozen,
    ];

    /// The name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::RolloutStarted => "RolloutStarted",
            NotificationEvent::StepCompleted => "StepCompleted",
            NotificationEvent::Paused => "Paused",
            NotificationEvent::Promoted => "Promoted",
            NotificationEvent::Reverted => "Reverted",
            NotificationEvent::Blocked => "Blocked",
            NotificationEvent::Frozen => "Frozen",
        }
    }
}

impl std::fmt::Display for NotificationEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl NotificationSink {
    /// Whether this sink hears `event`.
    pub fn hears(&self, event: NotificationEvent) -> bool {
        match &self.events {
            Some(events) => events.contains(&event),
            None => event != NotificationEvent::StepCompleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_completed_is_opt_in() {
        let mut sink = NotificationSink {
            name: "ops".into(),
            kind: SinkKind::Webhook,
            secret_name: "hook".into(),
            events: None,
        };
        assert!(sink.hears(NotificationEvent::Reverted));
        assert!(!sink.hears(NotificationEvent::StepCompleted));
        sink.events = Some(vec![NotificationEvent::StepCompleted]);
        assert!(sink.hears(NotificationEvent::StepCompleted));
        assert!(!sink.hears(NotificationEvent::Reverted));
    }
}
