//! Envelopes made by cosign and securesystemslib (tests/fixtures/attestation/README.md).

use super::*;

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
