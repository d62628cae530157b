//! Building blocks of the admission rules (CEL `x-kubernetes-validations`) shared by several
//! fields: label keys and values, and the bounds of the health thresholds (the rules of duration
//! fields live with their type, in [`super::duration`]). Each rule carries a `message` that says in words what is wrong, because
//! that message is all a user sees when the API server rejects an object.

use serde_json::{Value, json};

/// The longest name a SafeDeployment may have: it is the value of the `safedeploy.dev/name` label
/// on every ReplicaSet and pod, and label values hold at most 63 characters. The derived object
/// names are shorter than the 253 of a DNS subdomain: `<name>-<component ≤ 20>-<hash 10>-baseline`
/// is at most 63 + 1 + 20 + 1 + 10 + 9 = 104 characters.
pub const MAX_NAME_LENGTH: usize = 63;

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters
/// (alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric).
pub const LABEL_KEY_PATTERN: &str = "^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";

/// A label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`, starting and ending
/// alphanumeric (the length is bounded by the schema's `maxLength`).
pub const LABEL_VALUE_PATTERN: &str = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/// A DNS label (RFC 1123), as namespace names are; the length is bounded by the schema.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// The rules of a label map (`selector.matchLabels`, template labels): keys and values must be
/// what the API server accepts on a ReplicaSet, which is where they end up.
pub fn label_rules(what: &str) -> Value {
    json!([
        {"rule": format!("self.all(k, k.size() <= 317 && k.matches('{LABEL_KEY_PATTERN}') && (!k.contains('/') || k.indexOf('/') <= 253))"),
         "message": format!("{what} keys must be label keys: an optional DNS prefix of at most 253 characters and '/', then at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric")},
        {"rule": format!("self.all(k, self[k].matches('{LABEL_VALUE_PATTERN}'))"),
         "message": format!("{what} values must be label values: at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric")},
    ])
}

/// The bounds of the four health gates (`spec.health`): every threshold at least 0, counts at
/// most 10^9, the start-up latency at most 86400 s (a day). Larger values are never meant, and
/// an unbounded latency once crashed the operator (a wake-up time beyond what a `Duration`
/// holds).
pub fn health_rules() -> Value {
    let gates = [
        ("restarts", "1000000000"),
        ("failingContainers", "1000000000"),
        ("notReadyPods", "1000000000"),
        ("startupLatencySeconds", "86400"),
    ];
    let mut rules = Vec::new();
    for (gate, max) in gates {
        for level in ["target", "acceptable", "critical"] {
            rules.push(json!({
                "rule": format!("!has(self.{gate}) || (self.{gate}.{level} >= 0.0 && self.{gate}.{level} <= {max}.0)"),
                "message": format!("health.{gate}.{level} must be at least 0 and at most {max}"),
            }));
        }
    }
    Value::Array(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_rules_name_every_gate_and_level() {
        let text = health_rules().to_string();
        assert!(text.contains(
            "health.startupLatencySeconds.critical must be at least 0 and at most 86400"
        ));
        assert!(text.contains("health.restarts.target must be at least 0 and at most 1000000000"));
        assert_eq!(health_rules().as_array().map(Vec::len), Some(12));
    }
}
