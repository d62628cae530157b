//! Fuzzes the whole verification path with arbitrary envelope bytes. The policy trusts a fixed
//! P-256 and Ed25519 key (the research note's test keys), so the fuzzer mostly exercises the
//! size caps, the strict JSON layer, base64 and signature handling; the seed corpus holds
//! valid envelopes to mutate from. Any panic is a bug: verification must return a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safedeploy::api::image::ImageRef;
use safedeploy::api::policy::{KeyAlgorithm, SafeDeploymentPolicySpec, TrustedKey};
use safedeploy::attest::verify::{Expected, verify};

const P256: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAERxw+dYxJBChbun5TEY7Q9SSt6wdX0lvS+Oew1236cUzdUg96yoqLkXrMN/Ud6PDJu+OthYOC5wLcJaEtCfeoWA==\n-----END PUBLIC KEY-----\n";
const ED25519: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=\n-----END PUBLIC KEY-----\n";

fuzz_target!(|data: &[u8]| {
    let policy = SafeDeploymentPolicySpec {
        trusted_keys: vec![
            TrustedKey {
                name: "p256".into(),
                algorithm: KeyAlgorithm::EcdsaP256Sha256,
                public_key_pem: P256.into(),
            },
            TrustedKey {
                name: "ed".into(),
                algorithm: KeyAlgorithm::Ed25519,
                public_key_pem: ED25519.into(),
            },
        ],
        predicate_type: Some("https://example.dev/attestations/local-validation/v0.1".into()),
        ..Default::default()
    };
    let expected = Expected {
        image_digests: vec![ImageRef {
            component: "main".into(),
            container: "app".into(),
            image: "registry.example.com/team/app@sha256:6b6d3a8e1f0c2b4a59d7e3f1a2c4b6d8e0f1a3c5b7d9e1f3a5c7e9b1d3f5a7c9".into(),
            repository: "registry.example.com/team/app".into(),
            digest: "6b6d3a8e1f0c2b4a59d7e3f1a2c4b6d8e0f1a3c5b7d9e1f3a5c7e9b1d3f5a7c9".into(),
        }],
        config_digest: "sha256:00".into(),
    };
    let now = jiff::Timestamp::from_second(1_737_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let _ = verify(data, &expected, &policy, now);
});
