//! One test (at least) per rejection reason.

use super::*;

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
    assert_reason_under(&f, &f.envelope(), &policy, RejectReason::UntrustedKey);
    // The algorithm comes from the policy: the same key material listed as the other algorithm
    // does not load, which makes the policy unusable.
    let mut policy = f.policy.clone();
    policy.trusted_keys[0].algorithm = KeyAlgorithm::Ed25519;
    assert_reason_under(&f, &f.envelope(), &policy, RejectReason::PolicyViolation);
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
    assert_reason_under(
        &f,
        &f.envelope(),
        &policy,
        RejectReason::PayloadTypeMismatch,
    );
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
    first_container(&mut spec).image = Some(format!(
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
    first_container(&mut spec).image = Some("app:latest".into());
    assert_eq!(
        Expected::for_spec(&spec).expect_err("unpinned").reason,
        RejectReason::DigestMismatch
    );
}

#[test]
fn config_drift() {
    let f = fixture();
    let mut spec = single_spec();
    first_container(&mut spec).args = Some(vec!["--unsafe".into()]);
    let expected = Expected::for_spec(&spec).expect("expected");
    assert_eq!(expected.image_digests, f.expected.image_digests);
    let r = verify(&f.envelope(), &expected, &f.policy, now()).expect_err("drift");
    assert_eq!(r.reason, RejectReason::ConfigDrift);
}

#[test]
fn expired() {
    let f = fixture();
    // Older than maxAge (default 168h), no expiresAt.
    let env = f.verified_at("2025-01-08T09:59:59Z");
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
    assert_reason_under(&f, &env, &policy, RejectReason::Expired);
}

#[test]
fn not_yet_valid() {
    let f = fixture();
    let env = f.verified_at("2025-01-16T10:05:01Z");
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
    assert_reason_under(&f, &f.envelope(), &policy, RejectReason::PolicyViolation);
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
    assert_reason_under(&f, &f.envelope(), &policy, RejectReason::PolicyViolation);
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
