//! The invalid SafeDeploymentPolicies of the notifications section (`spec.notifications`), part
//! of [`super::policy_cases`].

use serde_json::{Value, json};

use super::{Case, case, repeat};

fn sink(name: &str) -> Value {
    json!({"name": name, "type": "Webhook", "secretName": "hook"})
}

/// Rejected notification sections, each with its message.
pub(crate) fn notification_policy_cases() -> Vec<Case> {
    vec![
        case(
            "notifications without a sink",
            "spec.notifications.sinks: Invalid value",
            |p| p["spec"]["notifications"] = json!({"sinks": []}),
        ),
        case(
            "nine notification sinks",
            "spec.notifications.sinks: Too many",
            |p| {
                let sinks: Vec<Value> = (0..9).map(|i| sink(&format!("s{i}"))).collect();
                p["spec"]["notifications"] = json!({ "sinks": sinks });
            },
        ),
        case(
            "two sinks of one name",
            "notification sink names must be unique",
            |p| p["spec"]["notifications"] = json!({"sinks": [sink("ops"), sink("ops")]}),
        ),
        case(
            "a sink name that is not a DNS label",
            "a sink name must be a lowercase DNS label",
            |p| p["spec"]["notifications"] = json!({"sinks": [sink("Ops_Team")]}),
        ),
        case(
            "a sink of an unknown type",
            "spec.notifications.sinks[0].type: Unsupported value",
            |p| {
                p["spec"]["notifications"] = json!({"sinks": [
                    {"name": "ops", "type": "Email", "secretName": "hook"}]})
            },
        ),
        case(
            "a secret name with a slash",
            "secretName must be a Secret name",
            |p| {
                p["spec"]["notifications"] = json!({"sinks": [
                    {"name": "ops", "type": "Slack", "secretName": "other-ns/hook"}]})
            },
        ),
        case(
            "an unknown notification event",
            "spec.notifications.sinks[0].events[0]: Unsupported value",
            |p| {
                p["spec"]["notifications"] = json!({"sinks": [
                    {"name": "ops", "type": "Webhook", "secretName": "hook", "events": ["Deleted"]}]})
            },
        ),
        case(
            "an event listed twice",
            "each notification event may be listed once",
            |p| {
                p["spec"]["notifications"] = json!({"sinks": [
                    {"name": "ops", "type": "Webhook", "secretName": "hook", "events": ["Reverted", "Reverted"]}]})
            },
        ),
        case(
            "a dashboard URL with user info",
            "dashboardUrl must be an http:// or https:// URL",
            |p| {
                p["spec"]["notifications"] = json!({"sinks": [sink("ops")],
                    "dashboardUrl": "https://user:pw@dash.example.com"})
            },
        ),
        case(
            "a javascript: dashboard URL",
            "dashboardUrl must be an http:// or https:// URL",
            |p| {
                p["spec"]["notifications"] = json!({"sinks": [sink("ops")],
                    "dashboardUrl": "javascript:alert(1)//x"})
            },
        ),
        case(
            "a dashboard URL of 257 characters",
            "spec.notifications.dashboardUrl: Too long",
            |p| {
                p["spec"]["notifications"] = json!({"sinks": [sink("ops")],
                    "dashboardUrl": format!("https://d.example.com/{}", repeat('a', 235))})
            },
        ),
    ]
}
