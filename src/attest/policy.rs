//! Pure policy helpers: which `SafeDeploymentPolicy` applies to a namespace, and the checked,
//! ready-to-use form of a policy spec (keys loaded, durations parsed, limits defaulted).

use std::borrow::Borrow;
use std::collections::BTreeMap;

use jiff::SignedDuration;

use super::keys::{KeyError, PublicKey};
use crate::api::duration::SpecDuration;
use crate::api::policy::{
    DEFAULT_CLOCK_SKEW, DEFAULT_MAX_AGE, DEFAULT_PREDICATE_TYPE, SafeDeploymentPolicy,
    SafeDeploymentPolicySpec,
};

/// Default `limits.maxEnvelopeBytes`.
pub const DEFAULT_MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// Default `limits.maxPayloadBytes`.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 48 * 1024;
/// Default `limits.maxSignatures`.
pub const DEFAULT_MAX_SIGNATURES: usize = 8;
/// Default `limits.maxSubjects`.
pub const DEFAULT_MAX_SUBJECTS: usize = 64;
/// Default `limits.maxChecks`.
pub const DEFAULT_MAX_CHECKS: usize = 256;

/// How specifically a policy selects a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Selection {
    /// By `namespaceSelector` labels (an empty selector selects every namespace).
    ByLabels,
    /// By name in `namespaces`.
    ByName,
}

/// How `spec` selects the namespace `name` with `labels`, if it does.
pub fn selects(
    spec: &SafeDeploymentPolicySpec,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Option<Selection> {
    if spec.namespaces.iter().any(|n| n == name) {
        return Some(Selection::ByName);
    }
    let selector = spec.namespace_selector.as_ref()?;
    selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        .then_some(Selection::ByLabels)
}

/// The policy that applies to namespace `name` with `labels`, or `None` if no policy selects it.
///
/// Rule (deterministic, admin-controlled): the most specific selection wins — a policy naming
/// the namespace in `namespaces` beats one selecting it by labels, so an admin can opt a single
/// namespace out of (or into stricter terms than) a cluster-wide `namespaceSelector: {}`
/// policy. Among equally specific policies, one with `requireAttestation: true` beats an opt-out
/// (failing closed), then the lexicographically smallest `metadata.name` wins. Policies being
/// deleted (`deletionTimestamp` set) are ignored.
///
/// Without a policy the caller should refuse (see `attest::verify::evaluate`).
pub fn resolve_policy<'a, P>(
    name: &str,
    labels: &BTreeMap<String, String>,
    policies: impl IntoIterator<Item = &'a P>,
) -> Option<&'a SafeDeploymentPolicy>
where
    P: Borrow<SafeDeploymentPolicy> + 'a,
{
    policies
        .into_iter()
        .map(Borrow::borrow)
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| selects(&p.spec, name, labels).map(|s| (s, p)))
        .min_by(|(sa, a), (sb, b)| {
            sb.cmp(sa)
                .then(b.spec.require_attestation.cmp(&a.spec.require_attestation))
                .then(a.metadata.name.cmp(&b.metadata.name))
        })
        .map(|(_, p)| p)
}

/// Whether the labels of namespace `name` can change which of `policies` applies to it: only
/// when no live policy names it (a selection by name beats any by labels) and some live policy
/// selects by labels. Otherwise the caller need not read the Namespace at all.
pub fn needs_namespace_labels<'a, P>(name: &str, policies: impl IntoIterator<Item = &'a P>) -> bool
where
    P: Borrow<SafeDeploymentPolicy> + 'a,
{
    let mut by_labels = false;
    for policy in policies.into_iter().map(Borrow::borrow) {
        if policy.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if policy.spec.namespaces.iter().any(|n| n == name) {
            return false;
        }
        by_labels |= policy.spec.namespace_selector.is_some();
    }
    by_labels
}

/// Why a policy spec cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// A trusted key does not load.
    #[error("trusted key {name:?} cannot be used: {source}")]
    Key {
        /// Key name.
        name: String,
        /// Why.
        source: KeyError,
    },
    /// A duration field does not parse.
    #[error("{field} {value:?} is not a duration such as 24h, 90m or 1h30m")]
    Duration {
        /// Field name.
        field: &'static str,
        /// Its value.
        value: String,
    },
}

/// A trusted key with its name.
#[derive(Debug, Clone)]
pub struct NamedKey {
    /// The policy's name for it.
    pub name: String,
    /// The key.
    pub key: PublicKey,
}

/// Limits with defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Envelope bytes.
    pub max_envelope_bytes: usize,
    /// Decoded payload bytes.
    pub max_payload_bytes: usize,
    /// Signatures.
    pub max_signatures: usize,
    /// Subjects.
    pub max_subjects: usize,
    /// Checks.
    pub max_checks: usize,
}

/// A policy spec checked and prepared for verification.
#[derive(Debug, Clone)]
pub struct CompiledPolicy<'a> {
    /// The spec.
    pub spec: &'a SafeDeploymentPolicySpec,
    /// Trusted keys, in policy order.
    pub keys: Vec<NamedKey>,
    /// The required predicate type.
    pub predicate_type: &'a str,
    /// Maximum age from `timeVerified`.
    pub max_age: SignedDuration,
    /// Allowed clock skew.
    pub clock_skew: SignedDuration,
    /// Size limits.
    pub limits: Limits,
}

impl<'a> CompiledPolicy<'a> {
    /// Loads every key and parses every duration; any error makes the whole policy unusable
    /// (failing closed rather than silently dropping a key).
    pub fn compile(spec: &'a SafeDeploymentPolicySpec) -> Result<Self, PolicyError> {
        let keys = spec
            .trusted_keys
            .iter()
            .map(|k| {
                PublicKey::from_pem(k.algorithm, &k.public_key_pem)
                    .map(|key| NamedKey {
                        name: k.name.clone(),
                        key,
                    })
                    .map_err(|source| PolicyError::Key {
                        name: k.name.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Signed, and refused beyond i64 milliseconds: the policy fails closed.
        let duration = |field: &'static str, value: Option<&SpecDuration>, default: &str| {
            let value = value.cloned().unwrap_or_else(|| default.into());
            value.parse_signed().map_err(|_| PolicyError::Duration {
                field,
                value: value.to_string(),
            })
        };
        let limits = spec.limits.clone().unwrap_or_default();
        // A negative limit (only possible by bypassing the CRD schema) becomes 0: nothing passes.
        let limit =
            |v: Option<i32>, default: usize| v.map_or(default, |v| usize::try_from(v).unwrap_or(0));
        Ok(Self {
            spec,
            keys,
            predicate_type: spec
                .predicate_type
                .as_deref()
                .unwrap_or(DEFAULT_PREDICATE_TYPE),
            max_age: duration("maxAge", spec.max_age.as_ref(), DEFAULT_MAX_AGE)?,
            clock_skew: duration(
                "allowedClockSkew",
                spec.allowed_clock_skew.as_ref(),
                DEFAULT_CLOCK_SKEW,
            )?,
            limits: Limits {
                max_envelope_bytes: limit(limits.max_envelope_bytes, DEFAULT_MAX_ENVELOPE_BYTES),
                max_payload_bytes: limit(limits.max_payload_bytes, DEFAULT_MAX_PAYLOAD_BYTES),
                max_signatures: limit(limits.max_signatures, DEFAULT_MAX_SIGNATURES),
                max_subjects: limit(limits.max_subjects, DEFAULT_MAX_SUBJECTS),
                max_checks: limit(limits.max_checks, DEFAULT_MAX_CHECKS),
            },
        })
    }
}

/// Checks a policy spec as the verifier would use it (keys, durations); for status reporting
/// on the policy object.
pub fn validate_policy(spec: &SafeDeploymentPolicySpec) -> Result<(), PolicyError> {
    CompiledPolicy::compile(spec).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policy::NamespaceSelector;
    use kube::api::ObjectMeta;

    fn policy(name: &str, spec: SafeDeploymentPolicySpec) -> SafeDeploymentPolicy {
        SafeDeploymentPolicy {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn namespace_labels_are_needed_only_when_a_label_selection_could_apply() {
        let by_name = policy(
            "named",
            SafeDeploymentPolicySpec {
                namespaces: vec!["pay".into()],
                ..Default::default()
            },
        );
        let by_labels = policy(
            "labelled",
            SafeDeploymentPolicySpec {
                namespace_selector: Some(NamespaceSelector::default()),
                ..Default::default()
            },
        );
        let mut deleted_by_labels = by_labels.clone();
        deleted_by_labels.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let none: Vec<SafeDeploymentPolicy> = vec![];
        assert!(!needs_namespace_labels("pay", &none));
        assert!(!needs_namespace_labels(
            "pay",
            std::slice::from_ref(&by_name)
        ));
        assert!(!needs_namespace_labels(
            "other",
            std::slice::from_ref(&by_name)
        ));
        assert!(needs_namespace_labels(
            "other",
            &[by_name.clone(), by_labels.clone()]
        ));
        // Named beats labelled, in either order.
        assert!(!needs_namespace_labels(
            "pay",
            &[by_labels.clone(), by_name.clone()]
        ));
        assert!(!needs_namespace_labels("other", &[deleted_by_labels]));
        // Whatever the labels, the answer of resolve_policy is the same when they are not
        // needed.
        let policies = vec![by_name, by_labels];
        for l in [labels(&[]), labels(&[("team", "pay")])] {
            assert_eq!(
                resolve_policy("pay", &l, &policies).and_then(|p| p.metadata.name.clone()),
                Some("named".into())
            );
        }
    }

    #[test]
    fn resolution_prefers_names_then_required_then_name_order() {
        let all = policy(
            "b-cluster-wide",
            SafeDeploymentPolicySpec {
                namespace_selector: Some(NamespaceSelector::default()),
                ..Default::default()
            },
        );
        let opt_out = policy(
            "z-opt-out",
            SafeDeploymentPolicySpec {
                namespaces: vec!["sandbox".into()],
                require_attestation: false,
                ..Default::default()
            },
        );
        let team = policy(
            "a-team",
            SafeDeploymentPolicySpec {
                namespace_selector: Some(NamespaceSelector {
                    match_labels: labels(&[("team", "pay")]),
                }),
                require_attestation: false,
                ..Default::default()
            },
        );
        let policies = vec![all.clone(), opt_out.clone(), team.clone()];
        let pick = |ns: &str, l: &[(&str, &str)]| {
            resolve_policy(ns, &labels(l), &policies).and_then(|p| p.metadata.name.clone())
        };
        assert_eq!(pick("sandbox", &[]), Some("z-opt-out".into()));
        assert_eq!(pick("prod", &[]), Some("b-cluster-wide".into()));
        // Equal specificity (labels): requireAttestation true beats the opt-out.
        assert_eq!(
            pick("prod", &[("team", "pay")]),
            Some("b-cluster-wide".into())
        );
        let only_labels = vec![team.clone()];
        assert_eq!(
            resolve_policy("prod", &labels(&[]), &only_labels).map(|p| &p.spec),
            None
        );
        // Name order breaks remaining ties; works over Arc too.
        let a = std::sync::Arc::new(policy("a", all.spec.clone()));
        let c = std::sync::Arc::new(policy("c", all.spec.clone()));
        let arcs = vec![c, a];
        assert_eq!(
            resolve_policy("x", &labels(&[]), &arcs).and_then(|p| p.metadata.name.clone()),
            Some("a".into())
        );
    }

    #[test]
    fn no_selection_selects_nothing() {
        let spec = SafeDeploymentPolicySpec::default();
        assert_eq!(selects(&spec, "default", &labels(&[])), None);
    }

    #[test]
    fn compile_fails_on_a_bad_key_or_duration() {
        let spec = SafeDeploymentPolicySpec {
            trusted_keys: vec![crate::api::policy::TrustedKey {
                name: "k".into(),
                algorithm: crate::api::policy::KeyAlgorithm::Ed25519,
                public_key_pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".into(),
            }],
            ..Default::default()
        };
        assert!(matches!(
            validate_policy(&spec),
            Err(PolicyError::Key { .. })
        ));
        let spec = SafeDeploymentPolicySpec {
            max_age: Some("7d".into()),
            ..Default::default()
        };
        assert!(matches!(
            validate_policy(&spec),
            Err(PolicyError::Duration { .. })
        ));
        // Beyond i64 milliseconds a duration is refused, not clamped: the policy fails closed.
        let spec = SafeDeploymentPolicySpec {
            allowed_clock_skew: Some("9223372036854775808ms".into()),
            ..Default::default()
        };
        assert_eq!(
            validate_policy(&spec).unwrap_err().to_string(),
            "allowedClockSkew \"9223372036854775808ms\" is not a duration such as 24h, 90m or 1h30m"
        );
        let defaults = SafeDeploymentPolicySpec::default();
        let compiled = CompiledPolicy::compile(&defaults).expect("defaults");
        assert_eq!(compiled.max_age, SignedDuration::from_hours(168));
        assert_eq!(compiled.clock_skew, SignedDuration::from_mins(5));
        assert_eq!(
            compiled.limits.max_envelope_bytes,
            DEFAULT_MAX_ENVELOPE_BYTES
        );
    }
}
