//! The in-toto Statement v1 and the local-validation predicate
//! (`https://safedeploy.dev/attestation/local-validation/v1`), modelled on the SLSA
//! Verification Summary Attestation: `verifier`, `timeVerified`, `verificationResult`, plus an
//! optional `expiresAt`, the `environment` validated in, the `configDigest` of the SafeDeployment
//! configuration, and one entry per check with its metrics.
//!
//! Reading ignores unknown fields (as in-toto requires) but the strict JSON layer rejects
//! duplicate keys anywhere and any struct written as an array of its field values (read these
//! types only through `attest::json::from_slice_strict` / `from_value_strict`, never plain
//! `serde_json`, whose derives accept that array form).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE_V1: &str = "https://in-toto.io/Statement/v1";

/// Our predicate type.
pub const LOCAL_VALIDATION_PREDICATE_TYPE: &str =
    "https://safedeploy.dev/attestation/local-validation/v1";

/// The result value that counts as passed (for `verificationResult` and each check).
pub const PASSED: &str = "PASSED";
/// The result value of a failed run.
pub const FAILED: &str = "FAILED";

/// An in-toto Statement with our predicate. The predicate is kept as raw JSON here so that
/// `_type` and `predicateType` are checked before the predicate is interpreted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Statement {
    /// Always [`STATEMENT_TYPE_V1`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// The artifacts this statement is about: one per image digest.
    pub subject: Vec<Subject>,
    /// Always [`LOCAL_VALIDATION_PREDICATE_TYPE`] for us.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate; unset means empty.
    #[serde(default)]
    pub predicate: Value,
}

/// A subject (in-toto ResourceDescriptor): image repository and digests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The image repository (informational; matching is by digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Algorithm → lowercase hex. Only `sha256` is used; others are ignored.
    pub digest: BTreeMap<String, String>,
}

/// The local-validation predicate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LocalValidation {
    /// Who ran the validation.
    pub verifier: VerifierInfo,
    /// When the validation finished (RFC 3339).
    pub time_verified: String,
    /// After this instant (RFC 3339) the attestation is no longer valid; the policy's `maxAge`
    /// applies regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// `PASSED` or `FAILED`.
    pub verification_result: String,
    /// Where the validation ran (for example `cluster: kind`, `profile: production`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Value>,
    /// The configuration digest (see `attest::config`).
    pub config_digest: DigestSha256,
    /// The checks that ran.
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// The validating tool (SLSA VSA `verifier`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct VerifierInfo {
    /// URI or name of the verifier.
    pub id: String,
    /// Component → version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<BTreeMap<String, String>>,
}

/// `{"sha256": "<hex>"}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DigestSha256 {
    /// Lowercase hex, 64 characters.
    pub sha256: String,
}

/// One check of the validation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Unique name of the check.
    pub name: String,
    /// `unit`, `integration`, `e2e`, `stress`, `staging`, or another kind.
    #[serde(default)]
    pub kind: String,
    /// `PASSED`, `FAILED`, or another value (which counts as not passed).
    pub result: String,
    /// Exit code of the check's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Wall-clock duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// Measurements taken by the check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

/// One measurement.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Metric {
    /// Metric name, such as `errorRate`.
    pub name: String,
    /// Measured value.
    pub value: f64,
    /// The bound the producer judged it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
}

/// `value <op> threshold` must hold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Threshold {
    /// One of `<`, `<=`, `>`, `>=`, `==`.
    pub op: String,
    /// The bound.
    pub value: f64,
}

impl Threshold {
    /// Whether `measured` satisfies this threshold; an unknown operator never does.
    pub fn holds(&self, measured: f64) -> bool {
        match self.op.as_str() {
            "<" => measured < self.value,
            "<=" => measured <= self.value,
            ">" => measured > self.value,
            ">=" => measured >= self.value,
            "==" => measured == self.value,
            _ => false,
        }
    }
}

impl Metric {
    /// Whether the metric has no threshold or satisfies its own threshold.
    pub fn within_own_threshold(&self) -> bool {
        self.threshold.as_ref().is_none_or(|t| t.holds(self.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let t = |op: &str, value| Threshold {
            op: op.to_owned(),
            value,
        };
        assert!(t("<=", 1.0).holds(1.0));
        assert!(!t("<", 1.0).holds(1.0));
        assert!(t(">=", 1.0).holds(1.0));
        assert!(t(">", 1.0).holds(2.0));
        assert!(t("==", 1.0).holds(1.0));
        assert!(!t("~", 1.0).holds(1.0));
    }
}
