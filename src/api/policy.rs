//! The cluster-scoped `SafeDeploymentPolicy`: what an admin requires of attestations in the
//! namespaces it selects (trusted keys, predicate, age, checks, metric bounds, size limits).
//!
//! Only cluster admins should be able to write this object: it is the trust root. Nothing in an
//! envelope or in a SafeDeployment can add a key, pick an algorithm or relax a requirement.
//! Which policy applies to a namespace is decided by `attest::policy::resolve_policy`.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{SpecDuration, duration_rules};
use super::freeze::FreezePolicy;
use super::notifications::NotificationPolicy;
use super::requirements::RolloutRequirements;
use super::rules::label_rules;

/// A signature algorithm, fixed per trusted key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum KeyAlgorithm {
    /// ECDSA over NIST P-256 with SHA-256. Signatures are ASN.1 DER (as cosign writes them);
    /// the fixed 64-byte `r || s` form is accepted as well.
    #[serde(rename = "ecdsa-p256-sha256")]
    EcdsaP256Sha256,
    /// Ed25519 (RFC 8032), 64-byte signatures.
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl KeyAlgorithm {
    /// The policy spelling (`ecdsa-p256-sha256` or `ed25519`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }

    /// Reads `ecdsa-p256`, `ecdsa-p256-sha256`, `p256` or `ed25519`.
    pub fn parse(text: &str) -> Result<Self, UnknownAlgorithm> {
        match text.to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "ecdsa-p256-sha256" | "p256" | "p-256" | "ecdsa" => {
                Ok(KeyAlgorithm::EcdsaP256Sha256)
            }
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            other => Err(UnknownAlgorithm(other.to_owned())),
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name that is not one of ours (the text as given, lowercased).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown algorithm {0:?} (use ecdsa-p256 or ed25519)")]
pub struct UnknownAlgorithm(pub String);

/// The default required predicate type (ours).
pub const DEFAULT_PREDICATE_TYPE: &str = "https://safedeploy.dev/attestation/local-validation/v1";
/// Default `maxAge`.
pub const DEFAULT_MAX_AGE: &str = "168h";
/// Default `allowedClockSkew`.
pub const DEFAULT_CLOCK_SKEW: &str = "5m";

/// Trust policy for local-validation attestations.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "safedeploy.dev",
    version = "v1alpha1",
    kind = "SafeDeploymentPolicy",
    shortname = "sdp",
    printcolumn = r#"{"name":"Required","type":"boolean","jsonPath":".spec.requireAttestation"}"#,
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".spec.namespaces"}"#,
    printcolumn = r#"{"name":"MaxAge","type":"string","jsonPath":".spec.maxAge"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.namespaces) && size(self.namespaces) > 0) || has(self.namespaceSelector)",
     "message": "select namespaces with namespaces and/or namespaceSelector (an empty namespaceSelector {} selects every namespace)"},
    {"rule": "(has(self.requireAttestation) && !self.requireAttestation) || (has(self.trustedKeys) && size(self.trustedKeys) > 0)",
     "message": "trustedKeys needs at least one key while requireAttestation is true"},
    {"rule": "!(has(self.requirePinnedImages) && !self.requirePinnedImages) || (has(self.requireAttestation) && !self.requireAttestation)",
     "message": "requirePinnedImages: false needs requireAttestation: false (an attestation binds image digests, so attested images are always pinned)"},
]))]
pub struct SafeDeploymentPolicySpec {
    /// Namespaces this policy applies to, by name. A namespace listed here is matched more
    /// specifically than one selected by labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(n, n.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))", "message": "every namespaces entry must be a namespace name (a lowercase DNS label)"},
    ]))]
    pub namespaces: Vec<String>,

    /// Namespaces this policy applies to, by label. `{}` selects every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<NamespaceSelector>,

    /// Whether SafeDeployments in the selected namespaces need a verified attestation. `false`
    /// is an explicit admin opt-out, reported as `NotRequired`. Default true.
    #[serde(default = "default_true")]
    pub require_attestation: bool,

    /// Whether every image of the selected namespaces' SafeDeployments must be pinned by digest
    /// (`repository@sha256:<64 hex>`); preflight blocks a revision with any other image. A tag
    /// can move between two pod starts, so the pods of one revision could run different code.
    /// Always in force while `requireAttestation` is true; `false` is an explicit opt-out.
    /// Default true.
    #[serde(default = "default_true")]
    pub require_pinned_images: bool,

    /// Keys whose signature is accepted; any one valid signature suffices. List old and new
    /// keys during a rotation, then remove the old one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(k, self.exists_one(j, j.name == k.name))", "message": "trusted key names must be unique"},
    ]))]
    pub trusted_keys: Vec<TrustedKey>,

    /// The predicate type an attestation must carry, exactly. Default
    /// `https://safedeploy.dev/attestation/local-validation/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub predicate_type: Option<String>,

    /// Maximum age of an attestation, counted from its signed `timeVerified`. A duration such
    /// as `168h` or `30m`, from 1m to 8760h (a year). Default `168h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("maxAge", "24h, 90m or 1h30m", "1m", "8760h")))]
    pub max_age: Option<SpecDuration>,

    /// How far `timeVerified` may lie in the future of the operator's clock, at most 1h.
    /// Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("allowedClockSkew", "30s or 5m", "0s", "1h")))]
    pub allowed_clock_skew: Option<SpecDuration>,

    /// Checks that must be present with result `PASSED`, by name or by kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub required_checks: Vec<RequiredCheck>,

    /// Bounds on metrics reported by the checks. A bounded metric that is missing is a
    /// violation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub metric_bounds: Vec<MetricBound>,

    /// `predicate.verifier.id` values accepted; empty accepts any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 512)))]
    pub allowed_verifier_ids: Vec<String>,

    /// Entries that `predicate.environment` must contain with exactly these string values
    /// (for example `profile: production`), against cross-environment confusion.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 256}))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(k, k.size() >= 1 && k.size() <= 128)", "message": "requiredEnvironment keys must be 1 to 128 characters"},
    ]))]
    pub required_environment: BTreeMap<String, String>,

    /// Size limits, checked before and while parsing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<AttestationLimits>,

    /// What canary analyses in the selected namespaces may do (where their providers may send
    /// requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisPolicy>,

    /// Freeze windows: when rollouts in the selected namespaces may not move forward (see
    /// `docs/freeze-windows.md`). Reverts and aborts are never frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<FreezePolicy>,

    /// What every SafeDeployment in the selected namespaces must ask of its canary (steps, weight
    /// jumps, analyses, bake time, a fresh baseline). A revision that falls short does not roll
    /// out; the chart's admission policy warns (or denies) at `kubectl apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<RolloutRequirements>,

    /// The audit trail of the selected namespaces: how long their `SafeDeploymentRecord`s are
    /// kept. Unset keeps them forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditPolicy>,

    /// Who hears about the rollouts of the selected namespaces (webhooks, Slack, CloudEvents),
    /// with each receiver's address and key from a Secret in the rollout's namespace (see
    /// `docs/notifications.md`). Unset: nobody is notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationPolicy>,
}

fn default_true() -> bool {
    true
}

impl Default for SafeDeploymentPolicySpec {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            namespace_selector: None,
            require_attestation: true,
            require_pinned_images: true,
            trusted_keys: Vec::new(),
            predicate_type: None,
            max_age: None,
            allowed_clock_skew: None,
            required_checks: Vec::new(),
            metric_bounds: Vec::new(),
            allowed_verifier_ids: Vec::new(),
            required_environment: BTreeMap::new(),
            limits: None,
            analysis: None,
            freeze: None,
            requirements: None,
            audit: None,
            notifications: None,
        }
    }
}

/// The least `audit.recordRetention`: a shorter one would let the operator delete a record
/// before anyone could read it.
pub const MIN_RECORD_RETENTION: &str = "1h";
/// The greatest `audit.recordRetention` (ten years); unset keeps records forever.
pub const MAX_RECORD_RETENTION: &str = "87600h";

/// What the audit trail of the selected namespaces keeps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPolicy {
    /// How long a `SafeDeploymentRecord` is kept, counted from its creation (the API server's
    /// clock, within seconds of the end of what it records), from 1h to 87600h (ten years).
    /// The operator deletes older records in the selected namespaces, also those of a
    /// SafeDeployment that was deleted. Unset keeps every record forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = duration_rules("recordRetention", "720h or 2160h", MIN_RECORD_RETENTION, MAX_RECORD_RETENTION)))]
    pub record_retention: Option<SpecDuration>,
}

/// Restrictions on the canary analyses of the selected namespaces.
///
/// Whoever may edit a SafeDeployment picks its metrics' provider addresses; the operator sends
/// the requests from inside the cluster, with the Secrets `headersFrom` names. This bounds where.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisPolicy {
    /// URL prefixes that Prometheus addresses and web URLs must lie below, such as
    /// `http://prometheus.monitoring:9090` or `https://slo.example.com/api/`. Scheme, host and
    /// port must be equal; the path must equal the prefix's path or continue it after a `/`. A
    /// measurement against any other address is an error and no request is sent. Unset allows
    /// any address; an empty list allows none (only `kubernetes` metrics can then measure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 8, max = 512)))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(u, u.matches('^https?://[A-Za-z0-9-]+([.][A-Za-z0-9-]+)*(:[0-9]{1,5})?(/[^?#@ ]*)?$'))",
         "message": "allowedProviderUrls entries must be http:// or https:// URLs with a host name or IPv4 address, an optional port and path, and no user info, query or fragment"},
    ]))]
    pub allowed_provider_urls: Option<Vec<String>>,
}

/// Selects namespaces by their labels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    /// Every pair must be among the namespace's labels; empty matches every namespace.
    #[serde(default)]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 63}))]
    #[schemars(extend("x-kubernetes-validations" = label_rules("namespaceSelector.matchLabels")))]
    pub match_labels: BTreeMap<String, String>,
}

/// A trusted public key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustedKey {
    /// Name reported in status when this key verified an attestation.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Signature algorithm of this key; never taken from the envelope.
    pub algorithm: KeyAlgorithm,
    /// The public key as PEM `PUBLIC KEY` (SPKI), such as `cosign.pub` or `safedeploy keygen`'s
    /// output.
    #[serde(rename = "publicKeyPem")]
    #[schemars(length(min = 1, max = 4096))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.contains('-----BEGIN PUBLIC KEY-----')", "message": "publicKeyPem must be a PEM PUBLIC KEY (SubjectPublicKeyInfo) block"},
    ]))]
    pub public_key_pem: String,
}

/// A check that must have passed, by name or by kind (exactly one).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.name) != has(self.kind)", "message": "a required check sets exactly one of name or kind"},
]))]
pub struct RequiredCheck {
    /// The check with this name must be present and `PASSED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub name: Option<String>,
    /// At least one check of this kind must be present, and every check of it `PASSED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub kind: Option<String>,
}

/// A bound on a metric.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.min) || has(self.max)", "message": "a metric bound sets min, max or both"},
    {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max", "message": "min must not exceed max"},
]))]
pub struct MetricBound {
    /// Only metrics of the check with this name; without it, the metric in every check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub check: Option<String>,
    /// Metric name, such as `errorRate`.
    #[schemars(length(min = 1, max = 128))]
    pub metric: String,
    /// Smallest accepted value (inclusive), between -10^15 and 10^15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1.0e15, max = 1.0e15))]
    pub min: Option<f64>,
    /// Largest accepted value (inclusive), between -10^15 and 10^15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1.0e15, max = 1.0e15))]
    pub max: Option<f64>,
}

/// Size limits on attestations. Defaults in parentheses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttestationLimits {
    /// Envelope size in bytes, checked before parsing (65536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 256, max = 1048576))]
    pub max_envelope_bytes: Option<i32>,
    /// Decoded payload size in bytes (49152).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 128, max = 1048576))]
    pub max_payload_bytes: Option<i32>,
    /// Signatures in the envelope (8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub max_signatures: Option<i32>,
    /// Subjects in the statement (64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub max_subjects: Option<i32>,
    /// Checks in the predicate (256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4096))]
    pub max_checks: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names() {
        assert_eq!(
            KeyAlgorithm::parse("ecdsa-p256"),
            Ok(KeyAlgorithm::EcdsaP256Sha256)
        );
        assert_eq!(KeyAlgorithm::parse("ED25519"), Ok(KeyAlgorithm::Ed25519));
        assert!(KeyAlgorithm::parse("rsa").is_err());
        assert_eq!(
            serde_json::to_string(&KeyAlgorithm::EcdsaP256Sha256).unwrap_or_default(),
            "\"ecdsa-p256-sha256\""
        );
    }
}
