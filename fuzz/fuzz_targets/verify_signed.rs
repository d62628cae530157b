//! Fuzzes everything after the signature check: each input is taken as the Statement bytes,
//! signed with a fixed trusted Ed25519 key (the research note's test key, seed 07×32), and
//! verified. So every input reaches payload parsing, type checks, subject and config binding,
//! time checks, results and policy requirements. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safedeploy::api::image::ImageRef;
use safedeploy::api::policy::{
    KeyAlgorithm, MetricBound, RequiredCheck, SafeDeploymentPolicySpec, TrustedKey,
};
use safedeploy::attest::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use safedeploy::attest::keys::SigningKey;
use safedeploy::attest::verify::{Expected, verify};

const ED25519: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=\n-----END PUBLIC KEY-----\n";
const DIGEST: &str = "6b6d3a8e1f0c2b4a59d7e3f1a2c4b6d8e0f1a3c5b7d9e1f3a5c7e9b1d3f5a7c9";

fuzz_target!(|data: &[u8]| {
    // RFC 8410 PKCS#8 v1 of the seed 07×32.
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(&[7u8; 32]);
    let Ok(key) = SigningKey::from_pkcs8_der(&pkcs8, Some(KeyAlgorithm::Ed25519)) else {
        panic!("the fixed key must load");
    };
    let Ok(envelope) = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, data, &[&key]) else {
        return;
    };
    let policy = SafeDeploymentPolicySpec {
        trusted_keys: vec![TrustedKey {
            name: "ed".into(),
            algorithm: KeyAlgorithm::Ed25519,
            public_key_pem: ED25519.into(),
        }],
        required_checks: vec![
            RequiredCheck {
                name: Some("unit".into()),
                kind: None,
            },
            RequiredCheck {
                name: None,
                kind: Some("e2e".into()),
            },
        ],
        metric_bounds: vec![MetricBound {
            check: None,
            metric: "errorRate".into(),
            min: Some(0.0),
            max: Some(0.01),
        }],
        allowed_verifier_ids: vec!["ci".into()],
        ..Default::default()
    };
    let expected = Expected {
        image_digests: vec![ImageRef {
            component: "main".into(),
            container: "app".into(),
            image: format!("registry.example.com/app@sha256:{DIGEST}"),
            repository: "registry.example.com/app".into(),
            digest: DIGEST.into(),
        }],
        config_digest: format!("sha256:{DIGEST}"),
    };
    let now = jiff::Timestamp::from_second(1_737_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let _ = verify(envelope.to_json().as_bytes(), &expected, &policy, now);
});
