//! Verification tests: every rejection reason, the research note's worked vector, the threat
//! list, and the interoperability fixtures in `tests/fixtures/attestation/`.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::config::tests::{DIGEST_A, single_spec};
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
    let got = verify(envelope, &f.expected, &f.policy, now());
    assert_eq!(
        got.as_ref().err().map(|r| r.reason),
        Some(reason),
        "{got:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Accepting.

#[test]
fn a_valid_attestation_verifies_with_either_algorithm() {
    for algorithm in [KeyAlgorithm::EcdsaP256Sha256, KeyAlgorithm::Ed25519] {
        let f = Fixture::new(algorithm);
        let verified = verify(&f.envelope(), &f.expected, &f.policy, now()).expect("verifies");
        assert_eq!(verified.key_name, "ci");
        assert_eq!(verified.key_id, f.key.public_key().key_id());
        assert_eq!(verified.verifier_id, "https://ci.example.com/validate");
        assert_eq!(
            verified.valid_until,
            "2025-01-22T10:00:00Z".parse::<Timestamp>().expect("t")
        );
        assert_eq!(verified.checks, vec!["unit", "e2e", "stress-10m"]);
        assert!(verified.message().contains("\"ci\""));
    }
}

#[test]
fn evaluate_combines_policy_resolution_outcomes() {
    let f = fixture();
    let envelope = f.envelope();
    let verdict = evaluate(Some(&envelope), &f.expected, Some(&f.policy), now());
    assert!(matches!(verdict, Verdict::Verified(_)) && verdict.allows_rollout());
    assert_eq!(verdict.reason(), "Verified");

    let opt_out = SafeDeploymentPolicySpec {
        require_attestation: false,
        ..f.policy.clone()
    };
    let verdict = evaluate(None, &f.expected, Some(&opt_out), now());
    assert_eq!(verdict, Verdict::NotRequired);
    assert!(verdict.allows_rollout());
    assert_eq!(verdict.reason(), "NotRequired");

    let verdict = evaluate(None, &f.expected, Some(&f.policy), now());
    assert_eq!(verdict.reason(), "Missing");
    assert!(!verdict.allows_rollout());

    let verdict = evaluate(Some(&envelope), &f.expected, None, now());
    assert_eq!(verdict.reason(), "PolicyViolation");
}

#[test]
fn key_rotation_and_extra_untrusted_signatures() {
    let f = fixture();
    let (old, _) = SigningKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let (stranger, _) = SigningKey::generate(KeyAlgorithm::EcdsaP256Sha256).expect("key");
    let mut policy = f.policy.clone();
    policy.trusted_keys.insert(0, trusted("old", &old));
    // Signed by a stranger and by the new key: the new key counts.
    let env = sign::sign_statement(&f.statement(), &[&stranger, &f.key]).expect("sign");
    let verified = verify(env.to_json().as_bytes(), &f.expected, &policy, now()).expect("verifies");
    assert_eq!(verified.key_name, "ci");
    // Signed by the old key only: still accepted while it is listed.
    let env = sign::sign_statement(&f.statement(), &[&old]).expect("sign");
    let verified = verify(env.to_json().as_bytes(), &f.expected, &policy, now()).expect("verifies");
    assert_eq!(verified.key_name, "old");
    // After rotation the old key is removed: UntrustedKey.
    assert_reason(&f, env.to_json().as_bytes(), RejectReason::UntrustedKey);
}

#[test]
fn base64_variants_and_fixed_ecdsa_signatures_are_accepted() {
    let f = fixture();
    let mut env = Envelope::parse(&f.envelope()).expect("parse");
    let body = env.payload_bytes().expect("payload");
    env.payload = URL_SAFE_NO_PAD.encode(&body);
    let sig = STANDARD.decode(&env.signatures[0].sig).expect("sig");
    env.signatures[0].sig = URL_SAFE_NO_PAD.encode(&sig);
    assert!(verify(env.to_json().as_bytes(), &f.expected, &f.policy, now()).is_ok());
    // Fixed r||s instead of DER.
    let fixed = der_to_fixed(&sig);
    env.signatures[0].sig = STANDARD.encode(fixed);
    assert!(verify(env.to_json().as_bytes(), &f.expected, &f.policy, now()).is_ok());
}

fn der_to_fixed(der: &[u8]) -> Vec<u8> {
    let r_len = der[3] as usize;
    let r = &der[4..4 + r_len];
    let s_len = der[5 + r_len] as usize;
    let s = &der[6 + r_len..6 + r_len + s_len];
    let (r, s) = (
        &r[r.len().saturating_sub(32)..],
        &s[s.len().saturating_sub(32)..],
    );
    let mut out = vec![0u8; 64];
    out[32 - r.len()..32].copy_from_slice(r);
    out[64 - s.len()..].copy_from_slice(s);
    out
}

#[test]
fn a_timestamp_within_the_clock_skew_is_accepted() {
    let f = fixture();
    let env = f.with_predicate(|p| {
        p.time_verified = "2025-01-16T10:04:00Z".into();
        p.expires_at = None;
    });
    assert!(verify(&env, &f.expected, &f.policy, now()).is_ok());
}

#[test]
fn unknown_fields_are_ignored_and_extra_subjects_are_allowed() {
    let f = fixture();
    let env = f.with_statement_json(|v| {
        v["futureField"] = json!({"x": 1});
        v["predicate"]["resourceUri"] = json!("pkg:oci/app");
        v["subject"]
            .as_array_mut()
            .expect("subjects")
            .push(json!({"name": "other", "digest": {"sha256": "2".repeat(64), "sha512": "zz"}}));
    });
    assert!(verify(&env, &f.expected, &f.policy, now()).is_ok());
}

// ---------------------------------------------------------------------------------------------
// One test (at least) per rejection reason.

#[test]
fn missing() {
    let f = fixture();
    assert_reason(&f, b"", RejectReason::Missing);
    assert_reason(&f, b"  \n", RejectReason::Missing);
}

#[test]
fn malformed_envelopes() {
    let f = fixture();
    let good = f.envelope();
    let text = String::from_utf8(good.clone()).expect("utf8");
    assert_reason(&f, b"not json", RejectReason::Malformed);
    assert_reason(&f, b"{}", RejectReason::Malformed);
    assert_reason(&f, b"[]", RejectReason::Malformed);
    // Duplicate key at envelope level (a second payloadType).
    let dup = text.replacen("{", "{\"payloadType\":\"x\",", 1);
    assert_reason(&f, dup.as_bytes(), RejectReason::Malformed);
    // Trailing garbage.
    assert_reason(&f, format!("{text}x").as_bytes(), RejectReason::Malformed);
    // Payload not base64.
    let mut env = Envelope::parse(&good).expect("parse");
    env.payload = "***".into();
    assert_reason(&f, env.to_json().as_bytes(), RejectReason::Malformed);
    // No signatures; signature not base64.
    let mut env = Envelope::parse(&good).expect("parse");
    env.signatures.clear();
    assert_reason(&f, env.to_json().as_bytes(), RejectReason::Malformed);
    let mut env = Envelope::parse(&good).expect("parse");
    env.signatures[0].sig = "%%".into();
    assert_reason(&f, env.to_json().as_bytes(), RejectReason::Malformed);
}

#[test]
fn duplicate_keys_in_the_signed_statement_are_malformed() {
    let f = fixture();
    let body = serde_json::to_string(&f.statement()).expect("json");
    // Two sha256 values for one subject: a parser-differential attempt.
    let needle = format!("\"sha256\":\"{DIGEST_A}\"");
    assert!(body.contains(&needle));
    let dup = body.replace(
        &needle,
        &format!("{needle},\"sha256\":\"{}\"", "f".repeat(64)),
    );
    assert_reason(
        &f,
        &f.sign_raw(IN_TOTO_PAYLOAD_TYPE, dup.as_bytes()),
        RejectReason::Malformed,
    );
    // Duplicate top-level predicateType.
    let dup = body.replacen(
        "{",
        "{\"predicateType\":\"https://safedeploy.dev/attestation/local-validation/v1\",",
        1,
    );
    assert_reason(
        &f,
        &f.sign_raw(IN_TOTO_PAYLOAD_TYPE, dup.as_bytes()),
        RejectReason::Malformed,
    );
}

#[test]
fn size_limits_are_enforced() {
    let f = fixture();
    let mut policy = f.policy.clone();
    policy.limits = Some(AttestationLimits {
        max_envelope_bytes: Some(256),
        ..Default::default()
    });
    let r = verify(&f.envelope(), &f.expected, &policy, now()).expect_err("oversized");
    assert_eq!(r.reason, RejectReason::Malformed);
    assert!(r.message.contains("over the limit"), "{}", r.message);
    // Oversized by default limits (64 KiB), before any parsing: not even JSON.
    assert_reason(&f, &vec![b'{'; 70_000], RejectReason::Malformed);

    let limit = |l: AttestationLimits| SafeDeploymentPolicySpec {
        limits: Some(l),
        ..f.policy.clone()
    };
    let env = f.envelope();
    for policy in [
        limit(AttestationLimits {
            max_payload_bytes: Some(128),
            ..Default::default()
        }),
        limit(AttestationLimits {
            max_subjects: Some(1),
            ..Default::default()
        }),
        limit(AttestationLimits {
            max_checks: Some(2),
            ..Default::default()
        }),
    ] {
        let r = verify(&env, &f.expected, &policy, now()).expect_err("limit");
        assert_eq!(r.reason, RejectReason::Malformed, "{r:?}");
    }
    // Too many signatures.
    let keys: Vec<SigningKey> = (0..9)
        .map(|_| SigningKey::generate(KeyAlgorithm::Ed25519).expect("key").0)
        .collect();
    let refs: Vec<&SigningKey> = keys.iter().collect();
    let env = sign::sign_statement(&f.statement(), &refs).expect("sign");
    assert_reason(&f, env.to_json().as_bytes(), RejectReason::Malformed);
}

#[test]
fn malformed_statements_and_predicates() {
    let f = fixture();
    assert_reason(
        &f,
        &f.sign_raw(IN_TOTO_PAYLOAD_TYPE, b"not json"),
        RejectReason::Malformed,
    );
    assert_reason(
        &f,
        &f.with_statement_json(|v| v["subject"] = json!([])),
        RejectReason::Malformed,
    );
    assert_reason(
        &f,
        &f.with_statement_json(|v| {
            v["subject"][0]["digest"]["sha256"] = json!(DIGEST_A.to_uppercase())
        }),
        RejectReason::Malformed,
    );
    assert_reason(
        &f,
        &f.with_statement_json(|v| {
            let first = v["subject"][0].clone();
            let mut second = first.clone();
            second["digest"]["sha256"] = json!("3".repeat(64));
            v["subject"].as_array_mut().expect("a").push(second);
        }),
        RejectReason::Malformed,
    );
    assert_reason(
        &f,
        &f.with_statement_json(|v| v["predicate"] = Value::Null),
        RejectReason::Malformed,
    );
    assert_reason(
        &f,
        &f.with_statement_json(|v| {
            v["predicate"]
                .as_object_mut()
                .expect("o")
                .remove("timeVerified")
                .map(drop)
                .unwrap_or(())
        }),
        RejectReason::Malformed,
    );
    assert_reason(
        &f,
        &f.with_predicate(|p| p.time_verified = "yesterday".into()),
        RejectReason::Malformed,
    );
    assert_reason(
        &f,
        &f.with_predicate(|p| p.time_verified = "2025-01-15 10:00:00Z".into()),
        RejectReason::Malformed,
    );
    assert_reason(
        &f,
        &f.with_predicate(|p| p.expires_at = Some("2025-01-22".into())),
        RejectReason::Malformed,
    );
    assert_reason(
        &f,
        &f.with_predicate(|p| p.config_digest.sha256 = "abc".into()),
        RejectReason::Malformed,
    );
    assert_reason(
        &f,
        &f.with_predicate(|p| {
            let again = p.checks[0].clone();
            p.checks.push(again);
        }),
        RejectReason::Malformed,
    );
}

#[test]
fn bad_signature_tampered_payload() {
    let f = fixture();
    let mut env = Envelope::parse(&f.envelope()).expect("parse");
    // Swap the payload for another (otherwise valid) statement; keep the signature.
    let mut other = f.statement();
    other.subject[0]
        .digest
        .insert("sha256".into(), "9".repeat(64));
    env.payload = STANDARD.encode(serde_json::to_vec(&other).expect("json"));
    assert_reason(&f, env.to_json().as_bytes(), RejectReason::BadSignature);
    // One flipped byte.
    let mut env = Envelope::parse(&f.envelope()).expect("parse");
    let mut body = env.payload_bytes().expect("payload");
    let last = body.len() - 2;
    body[last] ^= 1;
    env.payload = STANDARD.encode(&body);
    assert_reason(&f, env.to_json().as_bytes(), RejectReason::BadSignature);
}

#[test]
fn bad_signature_tampered_payload_type() {
    let f = fixture();
    let mut env = Envelope::parse(&f.envelope()).expect("parse");
    env.payload_type = "application/vnd.in-toto+jsoN".into();
    assert_reason(&f, env.to_json().as_bytes(), RejectReason::BadSignature);
}

#[test]
fn bad_signature_key_id_spoofing() {
    // An attacker signs with their own key but claims the trusted key's id.
    let f = fixture();
    let (attacker, _) = SigningKey::generate(KeyAlgorithm::EcdsaP256Sha256).expect("key");
    let mut env = sign::sign_statement(&f.statement(), &[&attacker]).expect("sign");
    env.signatures[0].keyid = Some(f.key.public_key().key_id());
    assert_reason(&f, env.to_json().as_bytes(), RejectReason::BadSignature);
    // Claiming the trusted key's policy name instead.
    env.signatures[0].keyid = Some("ci".into());
    assert_reason(&f, env.to_json().as_bytes(), RejectReason::BadSignature);
    // No key id at all (as cosign writes): every trusted key is tried, none verifies.
    env.signatures[0].keyid = None;
    assert_reason(&f, env.to_json().as_bytes(), RejectReason::BadSignature);
}

#[test]
fn a_wrong_or_missing_key_id_does_not_stop_a_valid_signature() {
    let f = fixture();
    let mut env = Envelope::parse(&f.envelope()).expect("parse");
    env.signatures[0].keyid = Some("somebody-else".into());
    assert!(verify(env.to_json().as_bytes(), &f.expected, &f.policy, now()).is_ok());
    env.signatures[0].keyid = None;
    assert!(verify(env.to_json().as_bytes(), &f.expected, &f.policy, now()).is_ok());
}

#[test]
fn untrusted_key() {
    let f = fixture();
    let (stranger, _) = SigningKey::generate(KeyAlgorithm::EcdsaP256Sha256).expect("key");
    let env = sign::sign_statement(&f.statement(), &[&stranger]).expect("sign");
    assert_reason(&f, env.to_json().as_bytes(), RejectReason::UntrustedKey);
    // A policy with no trusted key trusts nothing.
    let policy = SafeDeploymentPolicySpec {
        trusted_keys: vec![],
        ..f.policy.clone()
    };
    let r = verify(&f.envelope(), &f.expected, &policy, now()).expect_err("no keys");
    assert_eq!(r.reason, RejectReason::UntrustedKey);
    // The algorithm comes from the policy: the same key material listed as the other algorithm
    // does not load, which makes the policy unusable.
    let mut policy = f.policy.clone();
    policy.trusted_keys[0].algorithm = KeyAlgorithm::Ed25519;
    let r = verify(&f.envelope(), &f.expected, &policy, now()).expect_err("wrong alg");
    assert_eq!(r.reason, RejectReason::PolicyViolation);
}

#[test]
fn payload_type_mismatch() {
    let f = fixture();
    let body = serde_json::to_vec(&f.statement()).expect("json");
    assert_reason(
        &f,
        &f.sign_raw("application/json", &body),
        RejectReason::PayloadTypeMismatch,
    );
    assert_reason(
        &f,
        &f.with_statement_json(|v| v["_type"] = json!("https://in-toto.io/Statement/v0.1")),
        RejectReason::PayloadTypeMismatch,
    );
    assert_reason(
        &f,
        &f.with_statement_json(|v| {
            v["predicateType"] = json!("https://slsa.dev/verification_summary/v1")
        }),
        RejectReason::PayloadTypeMismatch,
    );
    // A policy may require another predicate type; ours then mismatches.
    let policy = SafeDeploymentPolicySpec {
        predicate_type: Some("https://example.dev/other".into()),
        ..f.policy.clone()
    };
    let r = verify(&f.envelope(), &f.expected, &policy, now()).expect_err("type");
    assert_eq!(r.reason, RejectReason::PayloadTypeMismatch);
}

#[test]
fn digest_mismatch() {
    let f = fixture();
    // The attestation covers only the app image, not the init container's.
    let only_app: Vec<_> = f
        .expected
        .image_digests
        .iter()
        .filter(|i| i.digest == DIGEST_A)
        .cloned()
        .collect();
    let statement = sign::statement(&only_app, &f.predicate).expect("statement");
    assert_reason(
        &f,
        &f.envelope_for(&statement),
        RejectReason::DigestMismatch,
    );
    // Several components: every image left out is named, and only those.
    let image = |component: &str, digest: &str| crate::api::image::ImageRef {
        component: component.into(),
        container: "app".into(),
        image: format!("registry.example.com/{component}@sha256:{digest}"),
        repository: format!("registry.example.com/{component}"),
        digest: digest.into(),
    };
    let three = Expected {
        image_digests: vec![
            image("gateway", &"1".repeat(64)),
            image("api", &"2".repeat(64)),
            image("worker", &"3".repeat(64)),
        ],
        config_digest: f.expected.config_digest.clone(),
    };
    let statement = sign::statement(&three.image_digests[1..2], &f.predicate).expect("statement");
    let rejection = verify(&f.envelope_for(&statement), &three, &f.policy, now())
        .expect_err("two components uncovered");
    assert_eq!(rejection.reason, RejectReason::DigestMismatch);
    for component in ["gateway", "worker"] {
        assert!(
            rejection
                .message
                .contains(&format!("(container \"app\" of component \"{component}\")")),
            "{}",
            rejection.message
        );
    }
    assert!(
        !rejection.message.contains("\"api\""),
        "{}",
        rejection.message
    );
    // Replay for another digest: same attestation, revision with a new image.
    let mut spec = single_spec();
    spec.template
        .as_mut()
        .expect("t")
        .spec
        .as_mut()
        .expect("pod")
        .containers[0]
        .image = Some(format!(
        "registry.example.com/team/app@sha256:{}",
        "4".repeat(64)
    ));
    let expected = Expected {
        config_digest: f.expected.config_digest.clone(),
        ..Expected::for_spec(&spec).expect("e")
    };
    let r = verify(&f.envelope(), &expected, &f.policy, now()).expect_err("replay");
    assert_eq!(r.reason, RejectReason::DigestMismatch);
    // An unpinned image cannot be attested.
    spec.template
        .as_mut()
        .expect("t")
        .spec
        .as_mut()
        .expect("pod")
        .containers[0]
        .image = Some("app:latest".into());
    assert_eq!(
        Expected::for_spec(&spec).expect_err("unpinned").reason,
        RejectReason::DigestMismatch
    );
}

#[test]
fn config_drift() {
    let f = fixture();
    let mut spec = single_spec();
    spec.template
        .as_mut()
        .expect("t")
        .spec
        .as_mut()
        .expect("pod")
        .containers[0]
        .args = Some(vec!["--unsafe".into()]);
    let expected = Expected::for_spec(&spec).expect("expected");
    assert_eq!(expected.image_digests, f.expected.image_digests);
    let r = verify(&f.envelope(), &expected, &f.policy, now()).expect_err("drift");
    assert_eq!(r.reason, RejectReason::ConfigDrift);
}

#[test]
fn expired() {
    let f = fixture();
    // Older than maxAge (default 168h), no expiresAt.
    let env = f.with_predicate(|p| {
        p.time_verified = "2025-01-08T09:59:59Z".into();
        p.expires_at = None;
    });
    assert_reason(&f, &env, RejectReason::Expired);
    // Past its own expiresAt, though younger than maxAge.
    let env = f.with_predicate(|p| p.expires_at = Some("2025-01-16T10:00:00Z".into()));
    assert_reason(&f, &env, RejectReason::Expired);
    // A long expiresAt cannot extend the admin's cap.
    let policy = SafeDeploymentPolicySpec {
        max_age: Some("12h".into()),
        ..f.policy.clone()
    };
    let env = f.with_predicate(|p| p.expires_at = Some("2030-01-01T00:00:00Z".into()));
    let r = verify(&env, &f.expected, &policy, now()).expect_err("cap");
    assert_eq!(r.reason, RejectReason::Expired);
}

#[test]
fn not_yet_valid() {
    let f = fixture();
    let env = f.with_predicate(|p| {
        p.time_verified = "2025-01-16T10:05:01Z".into();
        p.expires_at = None;
    });
    assert_reason(&f, &env, RejectReason::NotYetValid);
    let env = f.with_predicate(|p| p.time_verified = "2026-01-01T00:00:00+02:00".into());
    assert_reason(&f, &env, RejectReason::NotYetValid);
}

#[test]
fn checks_failed() {
    let f = fixture();
    assert_reason(
        &f,
        &f.with_predicate(|p| p.verification_result = "FAILED".into()),
        RejectReason::ChecksFailed,
    );
    assert_reason(
        &f,
        &f.with_predicate(|p| p.verification_result = "passed".into()),
        RejectReason::ChecksFailed,
    );
    // A failed check, even one the policy does not require.
    assert_reason(
        &f,
        &f.with_predicate(|p| p.checks[1].result = "FAILED".into()),
        RejectReason::ChecksFailed,
    );
    // An unknown result value on a required check (by name, by kind).
    assert_reason(
        &f,
        &f.with_predicate(|p| p.checks[0].result = "MAYBE".into()),
        RejectReason::ChecksFailed,
    );
    assert_reason(
        &f,
        &f.with_predicate(|p| p.checks[2].result = "WARNED".into()),
        RejectReason::ChecksFailed,
    );
    // A metric outside the producer's own threshold.
    assert_reason(
        &f,
        &f.with_predicate(|p| p.checks[2].metrics[0].value = 0.5),
        RejectReason::ChecksFailed,
    );
    // A non-required check that was skipped is fine.
    assert!(
        verify(
            &f.with_predicate(|p| p.checks[1].result = "SKIPPED".into()),
            &f.expected,
            &f.policy,
            now()
        )
        .is_ok()
    );
}

#[test]
fn policy_violations() {
    let f = fixture();
    // Missing required check by name, then by kind.
    assert_reason(
        &f,
        &f.with_predicate(|p| {
            p.checks.remove(0);
        }),
        RejectReason::PolicyViolation,
    );
    assert_reason(
        &f,
        &f.with_predicate(|p| p.checks[2].kind = "load".into()),
        RejectReason::PolicyViolation,
    );
    // Metric bound violated (within the producer's threshold, over the admin's).
    assert_reason(
        &f,
        &f.with_predicate(|p| p.checks[2].metrics[0].value = 0.002),
        RejectReason::PolicyViolation,
    );
    // Metric absent.
    assert_reason(
        &f,
        &f.with_predicate(|p| p.checks[2].metrics.clear()),
        RejectReason::PolicyViolation,
    );
    // A min bound.
    let policy = SafeDeploymentPolicySpec {
        metric_bounds: vec![MetricBound {
            check: None,
            metric: "errorRate".into(),
            min: Some(0.001),
            max: None,
        }],
        ..f.policy.clone()
    };
    let r = verify(&f.envelope(), &f.expected, &policy, now()).expect_err("min");
    assert_eq!(r.reason, RejectReason::PolicyViolation);
    // Verifier not allowed.
    assert_reason(
        &f,
        &f.with_predicate(|p| p.verifier.id = "laptop".into()),
        RejectReason::PolicyViolation,
    );
    // Environment mismatch, or absent.
    assert_reason(
        &f,
        &f.with_predicate(|p| {
            p.environment.insert("profile".into(), json!("dev"));
        }),
        RejectReason::PolicyViolation,
    );
    assert_reason(
        &f,
        &f.with_predicate(|p| p.environment.clear()),
        RejectReason::PolicyViolation,
    );
    // An unusable policy.
    let policy = SafeDeploymentPolicySpec {
        max_age: Some("a week".into()),
        ..f.policy.clone()
    };
    let r = verify(&f.envelope(), &f.expected, &policy, now()).expect_err("policy");
    assert_eq!(r.reason, RejectReason::PolicyViolation);
}

#[test]
fn every_reason_has_a_distinct_camel_case_name() {
    let names: std::collections::BTreeSet<&str> =
        RejectReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), 11);
    for name in names {
        assert!(
            name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_alphanumeric())
        );
    }
    assert_eq!(
        RejectReason::PayloadTypeMismatch.to_string(),
        "PayloadTypeMismatch"
    );
}

// ---------------------------------------------------------------------------------------------
// The research note's worked example (§1.4).

const NOTE_BODY: &str = r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"registry.example.com/team/app","digest":{"sha256":"6b6d3a8e1f0c2b4a59d7e3f1a2c4b6d8e0f1a3c5b7d9e1f3a5c7e9b1d3f5a7c9"}}],"predicateType":"https://example.dev/attestations/local-validation/v0.1","predicate":{"result":"PASSED","timeVerified":"2025-01-15T10:00:00Z","expiresAt":"2025-01-22T10:00:00Z","checks":[{"name":"unit","result":"PASSED"},{"name":"e2e","result":"PASSED"}]}}"#;
const NOTE_ED25519_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=\n-----END PUBLIC KEY-----\n";
const NOTE_P256_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAERxw+dYxJBChbun5TEY7Q9SSt6wdX0lvS+Oew1236cUzdUg96yoqLkXrMN/Ud6PDJu+OthYOC5wLcJaEtCfeoWA==\n-----END PUBLIC KEY-----\n";
const NOTE_ED25519_SIG: &str =
    "GEERmUjOMNTYLuvwd17MLtDJwyiLFRLsiqXxc9WDqEHKnwun01c65PymO736j1FhQzRgGmAnmXr0ikpd8W4eAw==";
const NOTE_P256_SIG: &str = "MEUCIA71KqFVEfrZ10I/qWIcAborbXCsXFpOEr78flGv2oIfAiEA3yUg5ByaLA1GrWAdRgDMSslQSC4Kq7e0842wqPc8qG4=";

fn note_keys() -> (PublicKey, PublicKey) {
    (
        PublicKey::from_pem(KeyAlgorithm::EcdsaP256Sha256, NOTE_P256_PUB).expect("p256"),
        PublicKey::from_pem(KeyAlgorithm::Ed25519, NOTE_ED25519_PUB).expect("ed25519"),
    )
}

fn note_envelope(body: &str, payload_type: &str) -> Vec<u8> {
    let (p256, ed) = note_keys();
    Envelope {
        payload: STANDARD.encode(body),
        payload_type: payload_type.into(),
        signatures: vec![
            EnvelopeSignature {
                keyid: Some(p256.key_id()),
                sig: NOTE_P256_SIG.into(),
            },
            EnvelopeSignature {
                keyid: Some(ed.key_id()),
                sig: NOTE_ED25519_SIG.into(),
            },
        ],
    }
    .to_json()
    .into_bytes()
}

fn note_policy(keys: &[(&str, KeyAlgorithm, &str)]) -> SafeDeploymentPolicySpec {
    SafeDeploymentPolicySpec {
        trusted_keys: keys
            .iter()
            .map(|(name, algorithm, pem)| TrustedKey {
                name: (*name).into(),
                algorithm: *algorithm,
                public_key_pem: (*pem).into(),
            })
            .collect(),
        predicate_type: Some("https://example.dev/attestations/local-validation/v0.1".into()),
        ..Default::default()
    }
}

#[test]
fn note_vector_pae_and_raw_signatures() {
    assert_eq!(NOTE_BODY.len(), 439);
    let message = pae(IN_TOTO_PAYLOAD_TYPE, NOTE_BODY.as_bytes());
    assert_eq!(message.len(), 482);
    assert!(message.starts_with(b"DSSEv1 28 application/vnd.in-toto+json 439 {\"_ty"));
    assert_eq!(
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &message)),
        "23d1887e6a163e00984edb386261ab5599a12e12b9aa2e76cf8e589f6c02d038"
    );
    let (p256, ed) = note_keys();
    let p_sig = STANDARD.decode(NOTE_P256_SIG).expect("sig");
    let e_sig = STANDARD.decode(NOTE_ED25519_SIG).expect("sig");
    assert_eq!(p_sig.len(), 71);
    assert!(p256.verify(&message, &p_sig));
    assert!(ed.verify(&message, &e_sig));
    // Negative checks from the note: raw body instead of PAE; one character of payloadType.
    assert!(!p256.verify(NOTE_BODY.as_bytes(), &p_sig));
    assert!(!ed.verify(NOTE_BODY.as_bytes(), &e_sig));
    let other = pae("application/vnd.in-toto+jsoN", NOTE_BODY.as_bytes());
    assert!(!p256.verify(&other, &p_sig) && !ed.verify(&other, &e_sig));
}

#[test]
fn note_vector_through_the_verifier() {
    // The note's predicate is not ours, so with its predicate type allowed the verifier gets past
    // size, parsing, signature, payload type, _type and predicateType, and stops at the
    // predicate's structure. Anything earlier failing would show another reason.
    let expected = Expected {
        image_digests: vec![],
        config_digest: String::new(),
    };
    let t = "2025-01-16T10:00:00Z".parse().expect("t");
    for keys in [
        vec![("p256", KeyAlgorithm::EcdsaP256Sha256, NOTE_P256_PUB)],
        vec![("ed", KeyAlgorithm::Ed25519, NOTE_ED25519_PUB)],
        vec![
            ("p256", KeyAlgorithm::EcdsaP256Sha256, NOTE_P256_PUB),
            ("ed", KeyAlgorithm::Ed25519, NOTE_ED25519_PUB),
        ],
    ] {
        let r = verify(
            &note_envelope(NOTE_BODY, IN_TOTO_PAYLOAD_TYPE),
            &expected,
            &note_policy(&keys),
            t,
        )
        .expect_err("predicate");
        assert_eq!(r.reason, RejectReason::Malformed, "{r:?}");
        assert!(r.message.contains("predicate"), "{r:?}");
    }
    let both = note_policy(&[
        ("p256", KeyAlgorithm::EcdsaP256Sha256, NOTE_P256_PUB),
        ("ed", KeyAlgorithm::Ed25519, NOTE_ED25519_PUB),
    ]);
    // One hex digit of the subject digest changed.
    let tampered = NOTE_BODY.replace("6b6d3a8e", "6b6d3a8f");
    let r = verify(
        &note_envelope(&tampered, IN_TOTO_PAYLOAD_TYPE),
        &expected,
        &both,
        t,
    )
    .expect_err("tampered");
    assert_eq!(r.reason, RejectReason::BadSignature);
    // One character of payloadType changed.
    let r = verify(
        &note_envelope(NOTE_BODY, "application/vnd.in-toto+jsoN"),
        &expected,
        &both,
        t,
    )
    .expect_err("type");
    assert_eq!(r.reason, RejectReason::BadSignature);
    // Not trusted at all: the envelope's key ids name keys the policy does not list.
    let (stranger, _) = SigningKey::generate(KeyAlgorithm::Ed25519).expect("key");
    let pem = stranger.public_key().to_pem();
    let r = verify(
        &note_envelope(NOTE_BODY, IN_TOTO_PAYLOAD_TYPE),
        &expected,
        &note_policy(&[("x", KeyAlgorithm::Ed25519, &pem)]),
        t,
    )
    .expect_err("untrusted");
    assert_eq!(r.reason, RejectReason::UntrustedKey);
}

// ---------------------------------------------------------------------------------------------
// Envelopes made by cosign and securesystemslib (tests/fixtures/attestation/README.md).

fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/attestation")
        .join(name)
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).expect("fixture")
}

fn interop_inputs() -> (
    Expected,
    crate::api::policy::SafeDeploymentPolicy,
    Timestamp,
) {
    let manifest: serde_yaml::Value =
        serde_yaml::from_slice(&fixture_bytes("sd.yaml")).expect("sd.yaml");
    let spec: crate::api::SafeDeploymentSpec =
        serde_yaml::from_value(manifest["spec"].clone()).expect("spec");
    let policy = serde_yaml::from_slice(&fixture_bytes("policy.yaml")).expect("policy.yaml");
    (
        Expected::for_spec(&spec).expect("expected"),
        policy,
        "2026-01-16T10:00:00Z".parse().expect("now"),
    )
}

#[test]
fn interop_statement_matches_the_fixture_manifest() {
    let (expected, _, _) = interop_inputs();
    let statement: Statement =
        serde_json::from_slice(&fixture_bytes("statement.json")).expect("statement");
    assert_eq!(
        format!(
            "sha256:{}",
            statement.predicate["configDigest"]["sha256"]
                .as_str()
                .unwrap_or_default()
        ),
        expected.config_digest,
        "the config digest definition changed: regenerate the fixtures"
    );
}

#[test]
fn interop_envelopes_from_cosign_and_securesystemslib_verify() {
    let (expected, policy, now) = interop_inputs();
    let bundle: Value =
        serde_json::from_slice(&fixture_bytes("cosign-bundle.json")).expect("bundle");
    let from_bundle = serde_json::to_vec(&bundle["dsseEnvelope"]).expect("envelope");
    for (envelope, key) in [
        (fixture_bytes("cosign-envelope.json"), "cosign"),
        (from_bundle, "cosign"),
        (
            fixture_bytes("securesystemslib-ed25519-envelope.json"),
            "securesystemslib-ed25519",
        ),
        (
            fixture_bytes("securesystemslib-ecdsa-envelope.json"),
            "securesystemslib-ecdsa",
        ),
    ] {
        let verified = verify(&envelope, &expected, &policy.spec, now).expect(key);
        assert_eq!(verified.key_name, key);
        // The same envelope is refused once its key is no longer trusted.
        let mut without = policy.spec.clone();
        without.trusted_keys.retain(|k| k.name != key);
        let r = verify(&envelope, &expected, &without, now).expect_err("untrusted");
        assert!(
            matches!(
                r.reason,
                RejectReason::UntrustedKey | RejectReason::BadSignature
            ),
            "{r:?}"
        );
        // And one flipped byte in its payload breaks it.
        let mut env = Envelope::parse(&envelope).expect("parse");
        let mut body = env.payload_bytes().expect("payload");
        body[10] ^= 0x20;
        env.payload = STANDARD.encode(&body);
        let r =
            verify(env.to_json().as_bytes(), &expected, &policy.spec, now).expect_err("tampered");
        assert!(
            matches!(
                r.reason,
                RejectReason::UntrustedKey | RejectReason::BadSignature
            ),
            "{r:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 12, defect 8: every struct-shaped value must be a JSON object. `serde` derives also
// accept a sequence of the field values in declaration order, so a signer's tool (or an
// attacker controlling one) could produce payloads another verifier reads differently.

/// Rejects as `Malformed` with a message containing every one of `needles`.
fn assert_malformed(f: &Fixture, envelope: &[u8], needles: &[&str]) {
    let r = verify(envelope, &f.expected, &f.policy, now()).expect_err("must be rejected");
    assert_eq!(r.reason, RejectReason::Malformed, "{r:?}");
    for needle in needles {
        assert!(
            r.message.contains(needle),
            "{needle:?} not in {:?}",
            r.message
        );
    }
}

/// An object's values, in order, as an array: the shape serde's derives used to accept.
fn values_of(value: &Value) -> Value {
    Value::Array(
        value
            .as_object()
            .expect("an object")
            .values()
            .cloned()
            .collect(),
    )
}

#[test]
fn a_signed_statement_as_an_array_is_malformed() {
    let f = fixture();
    let env = f.with_statement_json(|v| *v = values_of(v));
    assert_malformed(&f, &env, &["Statement", "found an array"]);
}

#[test]
fn a_signed_predicate_as_an_array_is_malformed() {
    let f = fixture();
    let env = f.with_statement_json(|v| v["predicate"] = values_of(&v["predicate"]));
    assert_malformed(
        &f,
        &env,
        &["predicate", "LocalValidation", "found an array"],
    );
}

#[test]
fn a_signed_subject_as_an_array_is_malformed() {
    let f = fixture();
    let env = f.with_statement_json(|v| v["subject"][0] = values_of(&v["subject"][0]));
    assert_malformed(&f, &env, &["Subject", "found an array", "subject[0]"]);
}

#[test]
fn a_signed_digest_map_as_an_array_is_malformed() {
    let f = fixture();
    let env = f.with_statement_json(|v| {
        v["subject"][0]["digest"] = values_of(&v["subject"][0]["digest"]);
    });
    assert_malformed(&f, &env, &["found an array", "subject[0].digest"]);
    let env = f.with_statement_json(|v| {
        v["predicate"]["configDigest"] = values_of(&v["predicate"]["configDigest"]);
    });
    assert_malformed(
        &f,
        &env,
        &["DigestSha256", "found an array", "configDigest"],
    );
}

#[test]
fn nested_structs_of_the_predicate_as_arrays_are_malformed() {
    let f = fixture();
    for (pointer, needle) in [
        ("/predicate/verifier", "verifier"),
        ("/predicate/checks/2", "checks[2]"),
        ("/predicate/checks/2/metrics/0", "checks[2].metrics[0]"),
        (
            "/predicate/checks/2/metrics/0/threshold",
            "checks[2].metrics[0].threshold",
        ),
    ] {
        let env = f.with_statement_json(|v| {
            let node = v.pointer_mut(pointer).expect(pointer);
            *node = values_of(node);
        });
        assert_malformed(&f, &env, &["found an array", needle]);
    }
}

#[test]
fn an_envelope_as_an_array_is_malformed() {
    let f = fixture();
    let good: Value = serde_json::from_slice(&f.envelope()).expect("json");
    let env = serde_json::to_vec(&values_of(&good)).expect("bytes");
    assert_malformed(&f, &env, &["Envelope", "found an array"]);
}

#[test]
fn a_signatures_entry_as_an_array_is_malformed() {
    let f = fixture();
    let mut env: Value = serde_json::from_slice(&f.envelope()).expect("json");
    env["signatures"][0] = values_of(&env["signatures"][0]);
    let env = serde_json::to_vec(&env).expect("bytes");
    assert_malformed(
        &f,
        &env,
        &["EnvelopeSignature", "found an array", "signatures[0]"],
    );
}

#[test]
fn numbers_where_strings_are_expected_are_malformed() {
    let f = fixture();
    for (pointer, needle) in [
        ("/_type", "_type"),
        ("/predicateType", "predicateType"),
        ("/subject/0/name", "subject[0].name"),
        ("/subject/0/digest/sha256", "subject[0].digest.sha256"),
        ("/predicate/timeVerified", "timeVerified"),
        ("/predicate/expiresAt", "expiresAt"),
        ("/predicate/verificationResult", "verificationResult"),
        ("/predicate/configDigest/sha256", "configDigest.sha256"),
        ("/predicate/verifier/id", "verifier.id"),
        (
            "/predicate/verifier/version/safedeploy",
            "verifier.version.safedeploy",
        ),
        ("/predicate/checks/0/name", "checks[0].name"),
        ("/predicate/checks/0/result", "checks[0].result"),
        ("/predicate/checks/2/metrics/0/threshold/op", "threshold.op"),
    ] {
        let env = f.with_statement_json(|v| *v.pointer_mut(pointer).expect(pointer) = json!(1));
        assert_malformed(&f, &env, &["expected a string", needle]);
    }
    // And in the envelope (not covered by the signature, so no re-signing needed).
    let mut env: Value = serde_json::from_slice(&f.envelope()).expect("json");
    env["signatures"][0]["keyid"] = json!(7);
    let env = serde_json::to_vec(&env).expect("bytes");
    assert_malformed(&f, &env, &["expected a string", "signatures[0].keyid"]);
}

/// JSON pointers of every node of `value` (the root is `""`) for which `pick` holds.
fn pointers(value: &Value, at: &str, pick: &dyn Fn(&Value) -> bool, out: &mut Vec<String>) {
    if pick(value) {
        out.push(at.to_owned());
    }
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                pointers(item, &format!("{at}/{key}"), pick, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers(item, &format!("{at}/{i}"), pick, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_object_of_a_signed_statement_replaced_by_its_values_is_malformed() {
    // The class, not the instances: each object node, one at a time, becomes the array of its
    // values and is re-signed; not one of them may verify or be judged on anything but shape.
    let f = fixture();
    let statement = serde_json::to_value(f.statement()).expect("value");
    let mut objects = Vec::new();
    pointers(&statement, "", &Value::is_object, &mut objects);
    assert!(objects.len() >= 12, "{objects:?}");
    for pointer in &objects {
        let env = f.with_statement_json(|v| {
            let node = v.pointer_mut(pointer).expect("pointer");
            *node = values_of(node);
        });
        let r = verify(&env, &f.expected, &f.policy, now());
        assert_eq!(
            r.as_ref().err().map(|r| r.reason),
            Some(RejectReason::Malformed),
            "{pointer:?}: {r:?}"
        );
    }
    // The same for the envelope's own objects (the signature stays valid: it covers the payload).
    let envelope: Value = serde_json::from_slice(&f.envelope()).expect("json");
    let mut objects = Vec::new();
    pointers(&envelope, "", &Value::is_object, &mut objects);
    assert_eq!(objects, ["", "/signatures/0"]);
    for pointer in &objects {
        let mut env = envelope.clone();
        let node = env.pointer_mut(pointer).expect("pointer");
        *node = values_of(node);
        assert_reason(
            &f,
            &serde_json::to_vec(&env).expect("bytes"),
            RejectReason::Malformed,
        );
    }
}

#[test]
fn every_typed_string_of_a_signed_statement_as_a_number_is_malformed() {
    let f = fixture();
    let statement = serde_json::to_value(f.statement()).expect("value");
    let mut strings = Vec::new();
    pointers(&statement, "", &Value::is_string, &mut strings);
    // `environment` values are free-form JSON (the policy compares them), so not typed.
    strings.retain(|p| !p.starts_with("/predicate/environment/"));
    assert!(strings.len() >= 15, "{strings:?}");
    for pointer in &strings {
        let env = f.with_statement_json(|v| *v.pointer_mut(pointer).expect("pointer") = json!(1));
        let r = verify(&env, &f.expected, &f.policy, now());
        assert_eq!(
            r.as_ref().err().map(|r| r.reason),
            Some(RejectReason::Malformed),
            "{pointer:?}: {r:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 12, defect 8: far-future and far-past times get a precise verdict, never Malformed or a
// panic. Any RFC 3339 time (years 0000 to 9999, any offset) is representable.

#[test]
fn expires_at_the_end_of_year_9999_verifies_and_max_age_still_applies() {
    let f = fixture();
    let env = f.with_predicate(|p| p.expires_at = Some("9999-12-31T23:59:59Z".into()));
    let verified = verify(&env, &f.expected, &f.policy, now()).expect("verifies");
    // maxAge (168h from timeVerified) is the binding limit.
    assert_eq!(
        verified.valid_until,
        "2025-01-22T10:00:00Z".parse::<Timestamp>().expect("t")
    );
    // The latest instant RFC 3339 can write is later still.
    let env = f.with_predicate(|p| {
        p.expires_at = Some("9999-12-31T23:59:59.999999999-23:59".into());
    });
    assert!(verify(&env, &f.expected, &f.policy, now()).is_ok());
    // Older than maxAge: rejected as too old, as without expiresAt.
    let env = f.with_predicate(|p| {
        p.time_verified = "2025-01-08T09:59:59Z".into();
        p.expires_at = Some("9999-12-31T23:59:59Z".into());
    });
    let r = verify(&env, &f.expected, &f.policy, now()).expect_err("too old");
    assert_eq!(r.reason, RejectReason::Expired, "{r:?}");
    assert!(r.message.contains("maximum age"), "{}", r.message);
}

#[test]
fn far_past_and_far_future_times_give_the_right_reason() {
    let f = fixture();
    let cases: [(&str, Option<&str>, RejectReason, &str); 6] = [
        (
            "9999-12-31T23:59:59Z",
            None,
            RejectReason::NotYetValid,
            "future",
        ),
        (
            "9999-12-31T23:59:59.999999999-23:59",
            None,
            RejectReason::NotYetValid,
            "future",
        ),
        (
            "0000-01-01T00:00:00Z",
            None,
            RejectReason::Expired,
            "maximum age",
        ),
        (
            "0000-01-01T00:00:00+23:59",
            None,
            RejectReason::Expired,
            "maximum age",
        ),
        (
            "2025-01-15T10:00:00Z",
            Some("0000-01-01T00:00:00+23:59"),
            RejectReason::Expired,
            "expired at",
        ),
        (
            "2025-01-15T10:00:00Z",
            Some("1970-01-01T00:00:00Z"),
            RejectReason::Expired,
            "expired at",
        ),
    ];
    for (time_verified, expires_at, reason, needle) in cases {
        let env = f.with_predicate(|p| {
            p.time_verified = time_verified.into();
            p.expires_at = expires_at.map(Into::into);
        });
        let r = verify(&env, &f.expected, &f.policy, now()).expect_err(time_verified);
        assert_eq!(r.reason, reason, "{time_verified} {expires_at:?}: {r:?}");
        assert!(r.message.contains(needle), "{}", r.message);
    }
}

#[test]
fn huge_policy_durations_do_not_overflow() {
    let f = fixture();
    // The largest maxAge / allowedClockSkew the duration syntax can express (i64 milliseconds).
    let huge = "2562047788h";
    let policy = SafeDeploymentPolicySpec {
        max_age: Some(huge.into()),
        allowed_clock_skew: Some(huge.into()),
        ..f.policy.clone()
    };
    // Year 0: timeVerified + maxAge lies far beyond any timestamp; it used to be Malformed.
    let env = f.with_predicate(|p| {
        p.time_verified = "0000-01-01T00:00:00Z".into();
        p.expires_at = None;
    });
    let verified = verify(&env, &f.expected, &policy, now()).expect("ancient but allowed");
    assert_eq!(verified.valid_until, Timestamp::MAX);
    // Year 9999 within an (absurd) allowed skew.
    let env = f.with_predicate(|p| {
        p.time_verified = "9999-12-31T23:59:59Z".into();
        p.expires_at = Some("9999-12-31T23:59:59.999999999-23:59".into());
    });
    let verified = verify(&env, &f.expected, &policy, now()).expect("future but allowed");
    assert_eq!(verified.time_verified, Timestamp::MAX);
    assert_eq!(verified.valid_until, Timestamp::MAX);
}

#[test]
fn extreme_clocks_do_not_panic() {
    let f = fixture();
    let env = f.envelope();
    let at = |now| verify(&env, &f.expected, &f.policy, now).map_err(|r| r.reason);
    assert_eq!(at(Timestamp::MAX).err(), Some(RejectReason::Expired));
    assert_eq!(at(Timestamp::MIN).err(), Some(RejectReason::NotYetValid));
    let env = f.with_predicate(|p| p.expires_at = Some("9999-12-31T23:59:59Z".into()));
    let r = verify(&env, &f.expected, &f.policy, Timestamp::MAX);
    assert_eq!(r.map_err(|r| r.reason).err(), Some(RejectReason::Expired));
}

#[test]
fn timestamps_follow_the_rfc_3339_grammar() {
    let f = fixture();
    // Valid RFC 3339: a leap second (read as :59, like Unix time), lower-case 't' and 'z'
    // (RFC 3339 §5.6), a fraction, a negative zero offset.
    for good in [
        "2025-01-15T23:59:60Z",
        "2025-01-15t10:00:00z",
        "2025-01-15T10:00:00.5+01:00",
        "2025-01-15T10:00:00-00:00",
        "2024-02-29T10:00:00Z",
    ] {
        let env = f.with_predicate(|p| {
            p.time_verified = good.into();
            p.expires_at = None;
        });
        let policy = SafeDeploymentPolicySpec {
            max_age: Some("10000h".into()),
            ..f.policy.clone()
        };
        let r = verify(&env, &f.expected, &policy, now());
        assert!(r.is_ok(), "{good}: {r:?}");
    }
    for bad in [
        "2025-02-29T10:00:00Z",
        "2025-01-15T24:00:00Z",
        "2025-01-15T10:60:00Z",
        "2025-01-15T10:00:61Z",
        "2025-01-15T10:00:00+24:00",
        "2025-01-15T10:00:00+01:60",
        "2025-01-15T10:00:00+01",
        "2025-01-15T10:00:00+0100",
        "2025-01-15T10:00:00",
        "2025-01-15T10:00:00.Z",
        "2025-01-15T10:00:00.1234567890Z",
        "2025-01-15T10:00Z",
        "2025-01-15T100000Z",
        "2025-01-15T10:00:00Z[UTC]",
        "+002025-01-15T10:00:00Z",
        "10000-01-01T00:00:00Z",
        "2025-01-15 10:00:00Z",
        "2025-1-15T10:00:00Z",
        "2025-01-15T10:00:00Zx",
        "２025-01-15T10:00:00Z",
    ] {
        let env = f.with_predicate(|p| p.time_verified = bad.into());
        let r = verify(&env, &f.expected, &f.policy, now()).expect_err(bad);
        assert_eq!(r.reason, RejectReason::Malformed, "{bad}: {r:?}");
        assert!(r.message.contains("timeVerified"), "{}", r.message);
    }
}
