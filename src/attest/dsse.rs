//! The DSSE envelope (`{payload, payloadType, signatures[{keyid?, sig}]}`), its pre-authentication
//! encoding (PAE) and its base64 rules.
//!
//! The signature covers `PAE(payloadType, payload bytes)`:
//! `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal bytes.
//! Both the standard and the URL-safe base64 alphabets are accepted, with or without padding,
//! as the DSSE spec requires; we write standard base64 with padding.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::{Deserialize, Serialize};

use super::json;
use super::keys::{KeyError, SigningKey};

/// The in-toto payload type we require and write.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope as read from JSON (unknown fields ignored, duplicate keys rejected, the
/// envelope and each signature only as JSON objects: see `attest::json`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 of the serialized body.
    pub payload: String,
    /// Media type of the body; part of the signed bytes.
    pub payload_type: String,
    /// One or more signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// Unauthenticated hint of the key; only narrows which trusted key is tried first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// Base64 of the signature bytes.
    pub sig: String,
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not valid JSON, a duplicate key, or a missing/mistyped required field.
    #[error("envelope is not a valid DSSE envelope: {0}")]
    Json(#[from] serde_json::Error),
    /// A base64 field does not decode.
    #[error("envelope field {0} is not valid base64")]
    Base64(&'static str),
}

/// Standard alphabet, padding optional.
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// URL-safe alphabet, padding optional.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes standard or URL-safe base64, padded or not. Whitespace and mixed alphabets fail.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD_LENIENT
        .decode(text)
        .or_else(|_| URL_SAFE_LENIENT.decode(text))
        .ok()
}

/// The exact bytes a DSSE signature covers.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let header = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    );
    let mut out = Vec::with_capacity(header.len() + body.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
}

impl Envelope {
    /// Reads an envelope strictly (duplicate keys rejected at any depth, objects only where a
    /// struct is expected).
    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        Ok(json::from_slice_strict(bytes)?)
    }

    /// The decoded payload bytes.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        decode_base64(&self.payload).ok_or(EnvelopeError::Base64("payload"))
    }

    /// Signs `body` with each key and builds the envelope; each signature carries the key's id.
    pub fn sign(payload_type: &str, body: &[u8], keys: &[&SigningKey]) -> Result<Self, KeyError> {
        let message = pae(payload_type, body);
        let signatures = keys
            .iter()
            .map(|key| {
                Ok(EnvelopeSignature {
                    keyid: Some(key.public_key().key_id()),
                    sig: STANDARD.encode(key.sign(&message)?),
                })
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        Ok(Self {
            payload: STANDARD.encode(body),
            payload_type: payload_type.to_owned(),
            signatures,
        })
    }

    /// The envelope as compact JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain strings cannot fail; fall back to an empty object to stay total.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn base64_accepts_both_alphabets_with_or_without_padding() {
        let bytes = [0xfbu8, 0xff, 0xfe, 0x01];
        for text in ["+//+AQ==", "+//+AQ", "-__-AQ==", "-__-AQ"] {
            assert_eq!(decode_base64(text), Some(bytes.to_vec()), "{text}");
        }
        assert_eq!(decode_base64("+_/-AQ=="), None, "mixed alphabets");
        assert_eq!(decode_base64("+//+\nAQ=="), None, "whitespace");
        assert_eq!(decode_base64("!!"), None);
    }

    #[test]
    fn envelope_parsing_is_strict_about_duplicates_but_ignores_unknown_fields() {
        let ok = br#"{"payload":"e30","payloadType":"t","signatures":[{"sig":"AA"}],"extra":1}"#;
        let envelope = Envelope::parse(ok).expect("parse");
        assert_eq!(envelope.signatures[0].keyid, None);
        assert_eq!(envelope.payload_bytes().expect("payload"), b"{}".to_vec());
        let dup = br#"{"payload":"e30","payload":"e30","payloadType":"t","signatures":[]}"#;
        assert!(Envelope::parse(dup).is_err());
        let dup_in_sig =
            br#"{"payload":"e30","payloadType":"t","signatures":[{"sig":"AA","sig":"AB"}]}"#;
        assert!(Envelope::parse(dup_in_sig).is_err());
        let null_keyid =
            br#"{"payload":"e30","payloadType":"t","signatures":[{"keyid":null,"sig":"AA"}]}"#;
        assert!(Envelope::parse(null_keyid).is_ok());
        assert!(Envelope::parse(br#"{"payloadType":"t","signatures":[]}"#).is_err());
        // Plain serde derives would read these arrays of field values as the structs.
        assert!(Envelope::parse(br#"["e30","t",[{"sig":"AA"}]]"#).is_err());
        assert!(
            Envelope::parse(br#"{"payload":"e30","payloadType":"t","signatures":[[null,"AA"]]}"#)
                .is_err()
        );
    }
}
