//! Signing and verification keys: ECDSA P-256/SHA-256 and Ed25519, in PEM (SPKI public keys,
//! unencrypted PKCS#8 private keys), with the key id `hex(sha256(SPKI DER))`.
//!
//! Public keys are loaded by exact match on the two fixed SPKI headers and nothing else; `ring`
//! takes the raw point (P-256) or the raw 32 bytes (Ed25519) behind them. The algorithm always
//! comes from the trusted configuration (or the private key file), never from an envelope.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};

use crate::api::policy::KeyAlgorithm;

/// DER prefix of a P-256 `SubjectPublicKeyInfo`; followed by the 65-byte uncompressed point.
pub const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// DER prefix of an Ed25519 `SubjectPublicKeyInfo`; followed by the 32 key bytes.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// DER prefix of an RFC 8410 PKCS#8 v1 Ed25519 private key; followed by the 32-byte seed.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// DER prefix of the PKCS#8 v2 Ed25519 key `ring` generates; followed by the seed and the
/// public key.
const RING_ED25519_V2_PREFIX: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Why a key could not be read, made or used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The text is not a single PEM block with the expected label.
    #[error("not a PEM block labelled {0:?}")]
    NotPem(&'static str),
    /// The PEM body is not valid base64.
    #[error("PEM body is not valid base64")]
    BadBase64,
    /// The DER is not an SPKI of the expected algorithm.
    #[error("public key is not a {0} SubjectPublicKeyInfo")]
    BadSpki(KeyAlgorithm),
    /// The P-256 point is not a valid uncompressed point.
    #[error("public key is not a valid P-256 point")]
    BadPoint,
    /// The PKCS#8 document is not an unencrypted key of the expected algorithm.
    #[error("private key is not an unencrypted PKCS#8 {0} key ({1})")]
    BadPkcs8(KeyAlgorithm, String),
    /// The PKCS#8 document is of neither supported algorithm.
    #[error(
        "private key is neither an unencrypted PKCS#8 P-256 nor Ed25519 key (convert with `openssl pkcs8 -topk8 -nocrypt`)"
    )]
    UnknownPkcs8,
    /// The system random generator failed.
    #[error("random generator failed")]
    Random,
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

/// Decodes a single PEM block with exactly `label`; whitespace in the body is ignored, anything
/// before `BEGIN` or after `END` must be whitespace.
pub fn pem_decode(text: &str, label: &'static str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let trimmed = text.trim();
    let body = trimmed
        .strip_prefix(begin.as_str())
        .and_then(|rest| rest.strip_suffix(end.as_str()))
        .ok_or(KeyError::NotPem(label))?;
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).map_err(|_| KeyError::BadBase64)
}

/// Encodes DER as a PEM block with `label`, 64 characters per line.
pub fn pem_encode(der: &[u8], label: &str) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The key id we write and recognise: lowercase hex of SHA-256 over the SPKI DER.
pub fn key_id(spki_der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, spki_der))
}

/// A trusted public key, ready to verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    /// Raw key bytes as `ring` wants them (uncompressed point, or 32 Ed25519 bytes).
    raw: Vec<u8>,
    spki: Vec<u8>,
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SPKI) of the given algorithm, rejecting any other layout.
    pub fn from_pem(algorithm: KeyAlgorithm, pem: &str) -> Result<Self, KeyError> {
        Self::from_spki_der(algorithm, &pem_decode(pem, "PUBLIC KEY")?)
    }

    /// Reads an SPKI DER of the given algorithm by exact prefix match.
    pub fn from_spki_der(algorithm: KeyAlgorithm, der: &[u8]) -> Result<Self, KeyError> {
        let (prefix, len): (&[u8], usize) = match algorithm {
            KeyAlgorithm::EcdsaP256Sha256 => (&P256_SPKI_PREFIX, 65),
            KeyAlgorithm::Ed25519 => (&ED25519_SPKI_PREFIX, 32),
        };
        let raw = der
            .strip_prefix(prefix)
            .filter(|raw| raw.len() == len)
            .ok_or(KeyError::BadSpki(algorithm))?;
        if algorithm == KeyAlgorithm::EcdsaP256Sha256 && raw.first() != Some(&0x04) {
            return Err(KeyError::BadPoint);
        }
        Ok(Self {
            algorithm,
            raw: raw.to_vec(),
            spki: der.to_vec(),
        })
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The SPKI DER encoding.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The key id `hex(sha256(SPKI DER))`.
    pub fn key_id(&self) -> String {
        key_id(&self.spki)
    }

    /// The PEM `PUBLIC KEY` text.
    pub fn to_pem(&self) -> String {
        pem_encode(&self.spki, "PUBLIC KEY")
    }

    /// Whether `sig` is a valid signature of `message` under this key. P-256 accepts DER and,
    /// for a 64-byte signature, the fixed `r || s` form.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self.algorithm {
            KeyAlgorithm::EcdsaP256Sha256 => {
                let der = signature::UnparsedPublicKey::new(
                    &signature::ECDSA_P256_SHA256_ASN1,
                    &self.raw,
                );
                if der.verify(message, sig).is_ok() {
                    return true;
                }
                sig.len() == 64
                    && signature::UnparsedPublicKey::new(
                        &signature::ECDSA_P256_SHA256_FIXED,
                        &self.raw,
                    )
                    .verify(message, sig)
                    .is_ok()
            }
            KeyAlgorithm::Ed25519 => {
                signature::UnparsedPublicKey::new(&signature::ED25519, &self.raw)
                    .verify(message, sig)
                    .is_ok()
            }
        }
    }
}

/// A private signing key (unencrypted PKCS#8).
pub struct SigningKey {
    inner: SigningInner,
    public: PublicKey,
}

enum SigningInner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.public.algorithm)
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PEM `PRIVATE KEY` (PKCS#8). With `algorithm` the key must be of that algorithm;
    /// without, P-256 and Ed25519 are tried in turn.
    pub fn from_pem(pem: &str, algorithm: Option<KeyAlgorithm>) -> Result<Self, KeyError> {
        Self::from_pkcs8_der(&pem_decode(pem, "PRIVATE KEY")?, algorithm)
    }

    /// Reads PKCS#8 DER; see [`SigningKey::from_pem`].
    pub fn from_pkcs8_der(der: &[u8], algorithm: Option<KeyAlgorithm>) -> Result<Self, KeyError> {
        match algorithm {
            Some(KeyAlgorithm::EcdsaP256Sha256) => Self::ecdsa(der),
            Some(KeyAlgorithm::Ed25519) => Self::ed25519(der),
            None => Self::ecdsa(der)
                .or_else(|_| Self::ed25519(der))
                .map_err(|_| KeyError::UnknownPkcs8),
        }
    }

    fn ecdsa(der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
            .map_err(|e| KeyError::BadPkcs8(KeyAlgorithm::EcdsaP256Sha256, e.to_string()))?;
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let public = PublicKey::from_spki_der(KeyAlgorithm::EcdsaP256Sha256, &spki)?;
        Ok(Self {
            inner: SigningInner::Ecdsa(pair),
            public,
        })
    }

    fn ed25519(der: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| KeyError::BadPkcs8(KeyAlgorithm::Ed25519, e.to_string()))?;
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let public = PublicKey::from_spki_der(KeyAlgorithm::Ed25519, &spki)?;
        Ok(Self {
            inner: SigningInner::Ed25519(pair),
            public,
        })
    }

    /// Makes a new key pair; returns the key and its PKCS#8 DER.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<(Self, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = match algorithm {
            KeyAlgorithm::EcdsaP256Sha256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                    .map_err(|_| KeyError::Random)?
            }
            KeyAlgorithm::Ed25519 => {
                Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?
            }
        };
        let der = match algorithm {
            KeyAlgorithm::EcdsaP256Sha256 => pkcs8.as_ref().to_vec(),
            // ring writes PKCS#8 v2 (with the public key), which OpenSSL 3.0 cannot read; write
            // the RFC 8410 v1 form (seed only), which every tool reads.
            KeyAlgorithm::Ed25519 => {
                let seed = pkcs8
                    .as_ref()
                    .strip_prefix(RING_ED25519_V2_PREFIX.as_slice())
                    .and_then(|rest| rest.get(..32))
                    .ok_or(KeyError::Random)?;
                let mut v1 = ED25519_PKCS8_V1_PREFIX.to_vec();
                v1.extend_from_slice(seed);
                v1
            }
        };
        let key = Self::from_pkcs8_der(&der, Some(algorithm))?;
        Ok((key, der))
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.public.algorithm
    }

    /// Signs `message` (P-256: DER signature over SHA-256; Ed25519: 64 bytes).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            SigningInner::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            SigningInner::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Public keys of the research note's worked example (§1.4).
    pub(crate) const NOTE_ED25519_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=\n-----END PUBLIC KEY-----\n";
    pub(crate) const NOTE_P256_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAERxw+dYxJBChbun5TEY7Q9SSt6wdX0lvS+Oew1236cUzdUg96yoqLkXrMN/Ud6PDJu+OthYOC5wLcJaEtCfeoWA==\n-----END PUBLIC KEY-----\n";

    #[test]
    fn note_keys_load_and_have_the_documented_key_ids() {
        let p = PublicKey::from_pem(KeyAlgorithm::EcdsaP256Sha256, NOTE_P256_PUB).expect("p256");
        assert!(
            p.key_id().starts_with("c4d91143") && p.key_id().ends_with("9476"),
            "{}",
            p.key_id()
        );
        let e = PublicKey::from_pem(KeyAlgorithm::Ed25519, NOTE_ED25519_PUB).expect("ed25519");
        assert!(
            e.key_id().starts_with("324be2de") && e.key_id().ends_with("f54e"),
            "{}",
            e.key_id()
        );
        assert_eq!(p.spki_der().len(), 91);
        assert_eq!(e.spki_der().len(), 44);
    }

    #[test]
    fn a_key_of_the_other_algorithm_or_layout_is_rejected() {
        assert_eq!(
            PublicKey::from_pem(KeyAlgorithm::Ed25519, NOTE_P256_PUB),
            Err(KeyError::BadSpki(KeyAlgorithm::Ed25519))
        );
        assert_eq!(
            PublicKey::from_pem(KeyAlgorithm::EcdsaP256Sha256, NOTE_ED25519_PUB),
            Err(KeyError::BadSpki(KeyAlgorithm::EcdsaP256Sha256))
        );
        assert!(PublicKey::from_pem(KeyAlgorithm::Ed25519, "garbage").is_err());
        let mut der = pem_decode(NOTE_ED25519_PUB, "PUBLIC KEY").expect("der");
        der.push(0);
        assert!(PublicKey::from_spki_der(KeyAlgorithm::Ed25519, &der).is_err());
        // A compressed or otherwise non-04 P-256 point.
        let mut p = pem_decode(NOTE_P256_PUB, "PUBLIC KEY").expect("der");
        p[26] = 0x02;
        assert_eq!(
            PublicKey::from_spki_der(KeyAlgorithm::EcdsaP256Sha256, &p),
            Err(KeyError::BadPoint)
        );
    }

    #[test]
    fn generated_keys_sign_and_verify_and_round_trip_through_pem() {
        for algorithm in [KeyAlgorithm::EcdsaP256Sha256, KeyAlgorithm::Ed25519] {
            let (key, der) = SigningKey::generate(algorithm).expect("generate");
            let pem = pem_encode(&der, "PRIVATE KEY");
            let again = SigningKey::from_pem(&pem, None).expect("reload");
            assert_eq!(again.algorithm(), algorithm);
            assert_eq!(again.public_key(), key.public_key());
            let sig = key.sign(b"hello").expect("sign");
            let public =
                PublicKey::from_pem(algorithm, &key.public_key().to_pem()).expect("public");
            assert!(public.verify(b"hello", &sig));
            assert!(!public.verify(b"hellp", &sig));
        }
    }

    #[test]
    fn p256_accepts_der_and_fixed_signatures() {
        let (key, _) = SigningKey::generate(KeyAlgorithm::EcdsaP256Sha256).expect("generate");
        let der = key.sign(b"m").expect("sign");
        // Convert DER to fixed r||s.
        let fixed = der_to_fixed(&der);
        assert_eq!(fixed.len(), 64);
        assert!(key.public_key().verify(b"m", &der));
        assert!(key.public_key().verify(b"m", &fixed));
        assert!(!key.public_key().verify(b"n", &fixed));
    }

    fn der_to_fixed(der: &[u8]) -> Vec<u8> {
        let r_len = der[3] as usize;
        let r = &der[4..4 + r_len];
        let s_len = der[5 + r_len] as usize;
        let s = &der[6 + r_len..6 + r_len + s_len];
        let mut out = vec![0u8; 64];
        let r = &r[r.len().saturating_sub(32)..];
        let s = &s[s.len().saturating_sub(32)..];
        out[32 - r.len()..32].copy_from_slice(r);
        out[64 - s.len()..].copy_from_slice(s);
        out
    }
}
