//! The research note's worked example (§1.4).

use super::*;

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
