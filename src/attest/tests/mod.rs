//! Verification tests: every rejection reason, the research note's worked vector, the threat
//! list, and the interoperability fixtures in `tests/fixtures/attestation/`, one file per
//! concern; this module holds the shared [`Fixture`] (a signed attestation and its policy).

mod accepting;
mod interop;
mod note_vector;
mod rejections;
mod struct_shapes;
mod times;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::config::tests::{DIGEST_A, first_container, single_spec};
use super::dsse::{Envelope, EnvelopeSignature, IN_TOTO_PAYLOAD_TYPE, pae};
use super::keys::{PublicKey, SigningKey};
use super::statement::{Check, DigestSha256, LocalValidation, Metric, Threshold, VerifierInfo};
use super::verify::{Expected, RejectReason, Verdict, evaluate, verify};
use super::{sign, statement::Statement};
use crate::api::policy::KeyAlgorithm;
use crate::api::policy::{
    AttestationLimits, MetricBound, RequiredCheck, SafeDeploymentPolicySpec, TrustedKey,
};

const NOW: &str = "2025-01-16T10:00:00Z";

fn now() -> Timestamp {
    NOW.parse().expect("now")
}

struct Fixture {
    key: SigningKey,
    policy: SafeDeploymentPolicySpec,
    expected: Expected,
    predicate: LocalValidation,
}

fn trusted(name: &str, key: &SigningKey) -> TrustedKey {
    TrustedKey {
        name: name.into(),
        algorithm: key.algorithm(),
        public_key_pem: key.public_key().to_pem(),
    }
}

impl Fixture {
    fn new(algorithm: KeyAlgorithm) -> Self {
        let (key, _) = SigningKey::generate(algorithm).expect("key");
        let spec = single_spec();
        let expected = Expected::for_spec(&spec).expect("expected");
        let policy = SafeDeploymentPolicySpec {
            namespaces: vec!["prod".into()],
            trusted_keys: vec![trusted("ci", &key)],
            required_checks: vec![
                RequiredCheck {
                    name: Some("unit".into()),
                    kind: None,
                },
                RequiredCheck {
                    name: None,
                    kind: Some("stress".into()),
                },
            ],
            metric_bounds: vec![MetricBound {
                check: Some("stress-10m".into()),
                metric: "errorRate".into(),
                min: None,
                max: Some(0.001),
            }],
            allowed_verifier_ids: vec!["https://ci.example.com/validate".into()],
            required_environment: [("profile".to_owned(), "production".to_owned())].into(),
            ..Default::default()
        };
        let predicate = LocalValidation {
            verifier: VerifierInfo {
                id: "https://ci.example.com/validate".into(),
                version: Some([("safedeploy".to_owned(), "0.1.0".to_owned())].into()),
            },
            time_verified: "2025-01-15T10:00:00Z".into(),
            expires_at: Some("2025-01-22T10:00:00Z".into()),
            verification_result: "PASSED".into(),
            environment: [("profile".to_owned(), json!("production"))].into(),
            config_digest: DigestSha256 {
                sha256: expected
                    .config_digest
                    .trim_start_matches("sha256:")
                    .to_owned(),
            },
            checks: vec![
                check("unit", "unit", "PASSED", vec![]),
                check("e2e", "e2e", "PASSED", vec![]),
                check(
                    "stress-10m",
                    "stress",
                    "PASSED",
                    vec![Metric {
                        name: "errorRate".into(),
                        value: 0.0004,
                        threshold: Some(Threshold {
                            op: "<=".into(),
                            value: 0.01,
                        }),
                    }],
                ),
            ],
        };
        Self {
            key,
            policy,
            expected,
            predicate,
        }
    }

    fn statement(&self) -> Statement {
        sign::statement(&self.expected.image_digests, &self.predicate).expect("statement")
    }

    fn envelope_for(&self, statement: &Statement) -> Vec<u8> {
        sign::sign_statement(statement, &[&self.key])
            .expect("sign")
            .to_json()
            .into_bytes()
    }

    fn envelope(&self) -> Vec<u8> {
        self.envelope_for(&self.statement())
    }

    /// Signs arbitrary payload bytes with the fixture key.
    fn sign_raw(&self, payload_type: &str, body: &[u8]) -> Vec<u8> {
        Envelope::sign(payload_type, body, &[&self.key])
            .expect("sign")
            .to_json()
            .into_bytes()
    }

    /// The statement JSON with `f` applied, signed properly.
    fn with_statement_json(&self, f: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut value = serde_json::to_value(self.statement()).expect("value");
        f(&mut value);
        self.sign_raw(
            IN_TOTO_PAYLOAD_TYPE,
            &serde_json::to_vec(&value).expect("bytes"),
        )
    }

    fn with_predicate(&self, f: impl FnOnce(&mut LocalValidation)) -> Vec<u8> {
        let mut predicate = self.predicate.clone();
        f(&mut predicate);
        let statement =
            sign::statement(&self.expected.image_digests, &predicate).expect("statement");
        self.envelope_for(&statement)
    }

    /// An envelope whose predicate was verified at `time_verified` and carries no expiresAt,
    /// so only the policy's maxAge bounds it.
    fn verified_at(&self, time_verified: &str) -> Vec<u8> {
        self.with_predicate(|p| {
            p.time_verified = time_verified.into();
            p.expires_at = None;
        })
    }
}

fn check(name: &str, kind: &str, result: &str, metrics: Vec<Metric>) -> Check {
    Check {
        name: name.into(),
        kind: kind.into(),
        result: result.into(),
        exit_code: Some(if result == "PASSED" { 0 } else { 1 }),
        duration_seconds: Some(1.5),
        metrics,
    }
}

fn fixture() -> Fixture {
    Fixture::new(KeyAlgorithm::EcdsaP256Sha256)
}

fn assert_reason(f: &Fixture, envelope: &[u8], reason: RejectReason) {
    assert_reason_under(f, envelope, &f.policy, reason);
}

/// Like `assert_reason`, under another policy than the fixture's.
fn assert_reason_under(
    f: &Fixture,
    envelope: &[u8],
    policy: &SafeDeploymentPolicySpec,
    reason: RejectReason,
) {
    let got = verify(envelope, &f.expected, policy, now());
    assert_eq!(
        got.as_ref().err().map(|r| r.reason),
        Some(reason),
        "{got:?}"
    );
}
