//! Accepting.

use super::*;

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
    let env = f.verified_at("2025-01-16T10:04:00Z");
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
