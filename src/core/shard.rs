//! Sharding: which SafeDeployments one operator process serves (`--shard <label selector>`), and
//! how a SafeDeployment's shard follows it onto what it owns. The shard is the label
//! [`LABEL_SHARD`] on the SafeDeployment; the operator copies it onto the ReplicaSets it creates
//! and their pod template (never into their selector, which is immutable), so every watch of a
//! shard (SafeDeployments, ReplicaSets, pods) can use the same selector, and each process caches
//! only its share. Kubernetes is the coordinator: each shard has its own Lease, and a move
//! between shards is a label change (the new shard relabels what it finds of the SafeDeployment
//! under the old label, see [`needs_relabel`]).
//!
//! A shard selector selects on [`LABEL_SHARD`] only, as the other labels are not copied: one on
//! another key would select a SafeDeployment whose ReplicaSets the same process could not see.
//! Pure: parsing and matching, no I/O.

use std::collections::BTreeMap;

use kube::core::{Expression, Selector, SelectorExt};

use crate::api::labels::LABEL_SHARD;

/// A parsed `--shard` selector.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardSelector {
    selector: Selector,
    text: String,
}

/// Why a `--shard` selector is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardSelectorError {
    /// Empty, or an empty requirement between commas.
    #[error("an empty requirement in shard selector {0:?}")]
    Empty(String),
    /// A requirement on another key.
    #[error(
        "shard selector requirement {requirement:?} is not on {LABEL_SHARD}: a shard selects on that label only (the operator copies it, and no other, onto ReplicaSets and pods)"
    )]
    OtherKey {
        /// The requirement as written.
        requirement: String,
    },
    /// Not one of the label selector forms.
    #[error(
        "shard selector requirement {0:?} is not a label selector requirement (key=value, key!=value, key in (a,b), key notin (a,b), key, !key)"
    )]
    Syntax(String),
    /// A value that is not a label value.
    #[error("{0:?} is not a label value (at most 63 of A-Z a-z 0-9 - _ ., alphanumeric at both ends)")]
    Value(String),
}

/// Whether `value` is a valid label value.
fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    value.is_empty()
        || (bytes.len() <= 63
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
}

/// Splits at the commas that are not inside parentheses.
fn requirements(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0_i32;
    let mut start = 0;
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth = depth.saturating_add(1),
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(text.get(start..at).unwrap_or_default());
                start = at.saturating_add(1);
            }
            _ => {}
        }
    }
    parts.push(text.get(start..).unwrap_or_default());
    parts
}

fn value(raw: &str) -> Result<String, ShardSelectorError> {
    let value = raw.trim();
    if is_label_value(value) {
        Ok(value.to_string())
    } else {
        Err(ShardSelectorError::Value(value.to_string()))
    }
}

/// `(a, b)` → the values.
fn value_set(raw: &str) -> Result<std::collections::BTreeSet<String>, ShardSelectorError> {
    let inner = raw
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| ShardSelectorError::Syntax(raw.trim().to_string()))?;
    inner.split(',').map(value).collect()
}

fn expression(requirement: &str) -> Result<Expression, ShardSelectorError> {
    let text = requirement.trim();
    let other_key = || ShardSelectorError::OtherKey {
        requirement: text.to_string(),
    };
    if let Some(key) = text.strip_prefix('!') {
        return if key.trim() == LABEL_SHARD {
            Ok(Expression::DoesNotExist(LABEL_SHARD.into()))
        } else {
            Err(other_key())
        };
    }
    for (operator, equal) in [("!=", false), ("==", true), ("=", true)] {
        if let Some((key, raw)) = text.split_once(operator) {
            if key.trim() != LABEL_SHARD {
                return Err(other_key());
            }
            let value = value(raw)?;
            return Ok(if equal {
                Expression::Equal(LABEL_SHARD.into(), value)
            } else {
                Expression::NotEqual(LABEL_SHARD.into(), value)
            });
        }
    }
    let mut words = text.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    let rest = words.next().unwrap_or_default().trim_start();
    if key != LABEL_SHARD {
        return Err(other_key());
    }
    if rest.is_empty() {
        return Ok(Expression::Exists(LABEL_SHARD.into()));
    }
    if let Some(set) = rest.strip_prefix("notin") {
        return Ok(Expression::NotIn(LABEL_SHARD.into(), value_set(set)?));
    }
    if let Some(set) = rest.strip_prefix("in") {
        return Ok(Expression::In(LABEL_SHARD.into(), value_set(set)?));
    }
    Err(ShardSelectorError::Syntax(text.to_string()))
}

impl ShardSelector {
    /// Parses a label selector whose every requirement is on [`LABEL_SHARD`].
    pub fn parse(text: &str) -> Result<ShardSelector, ShardSelectorError> {
        if text.trim().is_empty() {
            return Err(ShardSelectorError::Empty(text.to_string()));
        }
        let expressions = requirements(text)
            .into_iter()
            .map(|r| {
                if r.trim().is_empty() {
                    Err(ShardSelectorError::Empty(text.to_string()))
                } else {
                    expression(r)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let selector: Selector = expressions.into_iter().collect();
        Ok(ShardSelector {
            text: selector.to_string(),
            selector,
        })
    }

    /// Whether an object with `labels` is in this shard.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.matches(labels)
    }

    /// The selector as the API server takes it (`labelSelector=`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// This shard's selector for objects the operator owns: `owned` (a label selector such as
    /// `safedeploy.dev/name`) and this shard.
    pub fn and(&self, owned: &str) -> String {
        format!("{owned},{}", self.text)
    }
}

/// The shard label value of an object (None: unlabelled).
pub fn shard_of(labels: &BTreeMap<String, String>) -> Option<&str> {
    labels.get(LABEL_SHARD).map(String::as_str)
}

/// Whether an object the SafeDeployment owns, labelled `owned_labels`, must be relabelled to
/// follow the SafeDeployment's shard (`sd_labels`): its shard label differs (also present on
/// one side only).
pub fn needs_relabel(
    sd_labels: &BTreeMap<String, String>,
    owned_labels: &BTreeMap<String, String>,
) -> bool {
    shard_of(sd_labels) != shard_of(owned_labels)
}

/// `labels` with the shard label set to the SafeDeployment's (or removed when it has none).
pub fn with_shard_of(
    sd_labels: &BTreeMap<String, String>,
    mut labels: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    match shard_of(sd_labels) {
        Some(shard) => {
            labels.insert(LABEL_SHARD.to_string(), shard.to_string());
        }
        None => {
            labels.remove(LABEL_SHARD);
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(shard: Option<&str>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        if let Some(shard) = shard {
            labels.insert(LABEL_SHARD.to_string(), shard.to_string());
        }
        labels
    }

    #[test]
    fn every_form_on_the_shard_label_parses_and_matches_as_the_api_server_would() {
        let cases: [(&str, [bool; 3]); 7] = [
            // (selector, matches [a, b, unlabelled])
            ("safedeploy.dev/shard=a", [true, false, false]),
            ("safedeploy.dev/shard==a", [true, false, false]),
            ("safedeploy.dev/shard!=a", [false, true, true]),
            ("safedeploy.dev/shard in (a, c)", [true, false, false]),
            ("safedeploy.dev/shard notin (a,b)", [false, false, true]),
            ("safedeploy.dev/shard", [true, true, false]),
            ("!safedeploy.dev/shard", [false, false, true]),
        ];
        for (text, expected) in cases {
            let selector = ShardSelector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let got = [Some("a"), Some("b"), None].map(|s| selector.matches(&labels(s)));
            assert_eq!(got, expected, "{text} as {}", selector.as_str());
            // What the watch sends parses to the same selector.
            assert_eq!(ShardSelector::parse(selector.as_str()), Ok(selector.clone()));
        }
        let both = ShardSelector::parse("safedeploy.dev/shard, safedeploy.dev/shard notin (b)")
            .expect("two requirements");
        assert_eq!(
            [Some("a"), Some("b"), None].map(|s| both.matches(&labels(s))),
            [true, false, false]
        );
        assert_eq!(
            both.and("safedeploy.dev/name"),
            format!("safedeploy.dev/name,{}", both.as_str())
        );
    }

    #[test]
    fn a_selector_on_another_label_or_malformed_is_refused_in_words() {
        for (text, fragment) in [
            ("team=payments", "not on safedeploy.dev/shard"),
            ("safedeploy.dev/shard=a,team=x", "not on safedeploy.dev/shard"),
            ("!team", "not on safedeploy.dev/shard"),
            ("", "empty"),
            ("safedeploy.dev/shard=a,", "empty"),
            ("safedeploy.dev/shard in a,b", "not a label selector requirement"),
            ("safedeploy.dev/shard maybe (a)", "not a label selector requirement"),
            ("safedeploy.dev/shard=-a", "not a label value"),
            ("safedeploy.dev/shard=a b", "not a label value"),
        ] {
            let error = ShardSelector::parse(text).expect_err(text).to_string();
            assert!(error.contains(fragment), "{text}: {error}");
        }
    }

    #[test]
    fn an_owned_object_follows_its_safedeployments_shard() {
        assert!(!needs_relabel(&labels(Some("a")), &labels(Some("a"))));
        assert!(needs_relabel(&labels(Some("b")), &labels(Some("a"))));
        assert!(needs_relabel(&labels(None), &labels(Some("a"))));
        assert!(needs_relabel(&labels(Some("a")), &labels(None)));
        assert!(!needs_relabel(&labels(None), &labels(None)));
        assert_eq!(
            with_shard_of(&labels(Some("b")), labels(Some("a"))),
            labels(Some("b"))
        );
        assert_eq!(with_shard_of(&labels(None), labels(Some("a"))), labels(None));
    }
}
