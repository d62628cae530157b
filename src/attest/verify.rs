//! Verification of a local-validation attestation against a `SafeDeploymentPolicy`: a pure
//! function of (envelope bytes, what the revision needs, policy, now), failing closed with
//! exactly one reason per rejection. The controller and `safedeploy verify` share this path.
//!
//! # Order
//! 0. Policy compiled (keys load, durations parse), else `PolicyViolation`. Empty input →
//!    `Missing`.
//! 1. Envelope size cap, before any parsing → `Malformed`.
//! 2. Strict envelope parse (duplicate keys rejected at any depth; every struct-shaped value
//!    must be a JSON object, never an array of its field values; unknown fields ignored),
//!    at least one and at most `maxSignatures` signatures, payload and signatures valid base64
//!    (standard or URL-safe), decoded payload within `maxPayloadBytes` → `Malformed`.
//! 3. Signatures over `PAE(payloadType, payload)` with the policy's trusted keys only (the key
//!    id is a hint that orders the keys tried; the algorithm is the key's). Any one valid
//!    signature from a trusted key suffices. Failure is:
//!    * `UntrustedKey` when the policy has no trusted key, or when no signature verifies and
//!      every signature's keyid names a key that is not trusted (someone else's key);
//!    * `BadSignature` when no signature verifies and at least one signature carried no keyid
//!      or the id (SHA-256 of the SPKI, or the key's policy name) of a trusted key — a trusted
//!      key was named or had to be assumed, and the bytes do not verify under it: tampering,
//!      or key-id spoofing.
//!
//!    Then `payloadType` must be `application/vnd.in-toto+json` → `PayloadTypeMismatch`, and
//!    the same decoded payload bytes (never a re-encoding) are parsed strictly as the
//!    Statement, and its predicate as ours, by the same strict reader → `Malformed`.
//! 4. `_type` is exactly `https://in-toto.io/Statement/v1` and `predicateType` exactly the
//!    policy's → `PayloadTypeMismatch`. Structural checks on subjects (at most `maxSubjects`,
//!    `sha256` values 64 lowercase hex, no name with two different digests), predicate fields
//!    and checks (at most `maxChecks`, unique names) → `Malformed`.
//! 5. Every expected image digest is a subject `sha256` (matching by digest only, as in-toto
//!    prescribes) → `DigestMismatch`; the predicate's `configDigest` equals the expected one →
//!    `ConfigDrift`.
//! 6. Time: `timeVerified` more than `allowedClockSkew` in the future → `NotYetValid`;
//!    `now > timeVerified + maxAge` or `now >= expiresAt` → `Expired`. A producer's
//!    `expiresAt` can only shorten validity. Every RFC 3339 instant (years 0000 to 9999, any
//!    offset, such as an `expiresAt` of `9999-12-31T23:59:59Z`) gets one of these verdicts;
//!    only text that is not RFC 3339 is `Malformed`.
//! 7. `verificationResult` is `PASSED`; no check is `FAILED`; no metric violates its own
//!    recorded threshold; every required check present is `PASSED` (an unknown result value
//!    counts as not passed) → `ChecksFailed`. A required check absent, a metric bound violated
//!    or its metric absent, a verifier id not allowed, a required environment entry absent or
//!    different → `PolicyViolation`.
//!
//! [`verify`] walks these steps in order, top to bottom; step 7's two functions are in
//! `verify/checks.rs`.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};

mod checks;

use checks::{check_requirements, check_results};

use super::config::{self, ConfigDigestError, UnpinnedImage};
use super::dsse::{self, Envelope, IN_TOTO_PAYLOAD_TYPE};
use super::json;
use super::policy::{CompiledPolicy, NamedKey};
use super::statement::{LocalValidation, STATEMENT_TYPE_V1, Statement};
use super::time;
use crate::api::SafeDeploymentSpec;
use crate::api::image::ImageRef;
use crate::api::policy::SafeDeploymentPolicySpec;
// Re-exported: the verifier's callers name the reason it returns from here.
pub use crate::api::rejection::RejectReason;

/// A rejection: the reason and a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Rejection {
    /// The reason.
    pub reason: RejectReason,
    /// What exactly was wrong.
    pub message: String,
}

impl Rejection {
    /// A rejection with `reason` and `message`.
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

fn reject<T>(reason: RejectReason, message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::new(reason, message))
}

impl From<UnpinnedImage> for Rejection {
    fn from(e: UnpinnedImage) -> Self {
        Rejection::new(RejectReason::DigestMismatch, e.to_string())
    }
}

impl From<ConfigDigestError> for Rejection {
    fn from(e: ConfigDigestError) -> Self {
        Rejection::new(
            RejectReason::ConfigDrift,
            format!("cannot compute the configuration digest: {e}"),
        )
    }
}

/// What the revision to roll out needs the attestation to prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Every pinned image of the revision; each digest must be a subject.
    pub image_digests: Vec<ImageRef>,
    /// `sha256:<hex>` from `attest::config::config_digest`.
    pub config_digest: String,
}

impl Expected {
    /// Images and configuration digest of `spec`. An unpinned image is a `DigestMismatch`.
    pub fn for_spec(spec: &SafeDeploymentSpec) -> Result<Self, Rejection> {
        Self::for_spec_with(spec, &BTreeMap::new())
    }

    /// As [`Expected::for_spec`] with config object digests folded in
    /// (`attest::config::config_digest_with`).
    pub fn for_spec_with(
        spec: &SafeDeploymentSpec,
        config_objects: &BTreeMap<String, String>,
    ) -> Result<Self, Rejection> {
        Ok(Self {
            image_digests: config::image_digests(spec)?,
            config_digest: config::config_digest_with(spec, config_objects)?,
        })
    }
}

/// A verified attestation: what status and events should report.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Policy name of the key whose signature verified.
    pub key_name: String,
    /// Its key id (`hex(sha256(SPKI))`).
    pub key_id: String,
    /// `predicate.verifier.id`.
    pub verifier_id: String,
    /// `predicate.timeVerified` (clamped to `Timestamp`'s range, which ends on 9999-12-30; only
    /// a policy with an absurd `allowedClockSkew` lets a later one verify).
    pub time_verified: Timestamp,
    /// When this verdict stops holding: `min(timeVerified + maxAge, expiresAt)`, clamped to
    /// `Timestamp::MAX` (so never later than the truth). Re-verify (or requeue) by then.
    pub valid_until: Timestamp,
    /// SHA-256 of the envelope bytes (a cache key together with the expected digests and the
    /// policy's generation).
    pub envelope_sha256: String,
    /// Names of the checks in the attestation, all of which are `PASSED` or non-failing.
    pub checks: Vec<String>,
}

impl Verified {
    /// A one-line summary for a condition message.
    pub fn message(&self) -> String {
        format!(
            "signed by trusted key {:?}, verified by {} at {}, valid until {}; checks: {}",
            self.key_name,
            self.verifier_id,
            self.time_verified,
            self.valid_until,
            if self.checks.is_empty() {
                "none".to_owned()
            } else {
                self.checks.join(", ")
            }
        )
    }
}

/// The outcome for a revision, combining policy resolution and verification.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The attestation verified.
    Verified(Verified),
    /// The applicable policy sets `requireAttestation: false`.
    NotRequired,
    /// Rejected, with one reason.
    Rejected(Rejection),
}

impl Verdict {
    /// Whether the revision may roll out.
    pub fn allows_rollout(&self) -> bool {
        !matches!(self, Verdict::Rejected(_))
    }

    /// `Verified`, `NotRequired`, or the rejection reason's name.
    pub fn reason(&self) -> &'static str {
        match self {
            Verdict::Verified(_) => "Verified",
            Verdict::NotRequired => "NotRequired",
            Verdict::Rejected(r) => r.reason.as_str(),
        }
    }

    /// A human message.
    pub fn message(&self) -> String {
        match self {
            Verdict::Verified(v) => v.message(),
            Verdict::NotRequired => {
                "the SafeDeploymentPolicy for this namespace does not require an attestation"
                    .to_owned()
            }
            Verdict::Rejected(r) => r.message.clone(),
        }
    }
}

/// The whole decision for a revision: no policy → `PolicyViolation` (fail closed: without an
/// admin policy there is no trusted key); `requireAttestation: false` → `NotRequired` (the
/// envelope is not even read); no envelope → `Missing`; otherwise [`verify`].
pub fn evaluate(
    envelope: Option<&[u8]>,
    expected: &Expected,
    policy: Option<&SafeDeploymentPolicySpec>,
    now: Timestamp,
) -> Verdict {
    let Some(policy) = policy else {
        return Verdict::Rejected(Rejection::new(
            RejectReason::PolicyViolation,
            "no SafeDeploymentPolicy selects this namespace, so no key is trusted",
        ));
    };
    if !policy.require_attestation {
        return Verdict::NotRequired;
    }
    let Some(envelope) = envelope else {
        return Verdict::Rejected(Rejection::new(
            RejectReason::Missing,
            "no attestation was provided",
        ));
    };
    match verify(envelope, expected, policy, now) {
        Ok(v) => Verdict::Verified(v),
        Err(r) => Verdict::Rejected(r),
    }
}

/// Verifies `envelope` (the DSSE JSON bytes) for the revision described by `expected` under
/// `policy` at `now`. Pure; see the module documentation for the order and the reasons.
/// `requireAttestation` is not consulted here (see [`evaluate`]).
pub fn verify(
    envelope: &[u8],
    expected: &Expected,
    policy: &SafeDeploymentPolicySpec,
    now: Timestamp,
) -> Result<Verified, Rejection> {
    use RejectReason::*;

    // 0. Policy and presence.
    let policy = CompiledPolicy::compile(policy).map_err(|e| {
        Rejection::new(
            PolicyViolation,
            format!("the SafeDeploymentPolicy is unusable: {e}"),
        )
    })?;
    let limits = policy.limits;
    if envelope.iter().all(u8::is_ascii_whitespace) {
        return reject(Missing, "the attestation is empty");
    }

    // 1. Size before parsing.
    if envelope.len() > limits.max_envelope_bytes {
        return reject(
            Malformed,
            format!(
                "envelope is {} bytes, over the limit of {}",
                envelope.len(),
                limits.max_envelope_bytes
            ),
        );
    }

    // 2. Strict envelope.
    let parsed = Envelope::parse(envelope).map_err(|e| Rejection::new(Malformed, e.to_string()))?;
    if parsed.signatures.is_empty() {
        return reject(Malformed, "envelope has no signatures");
    }
    if parsed.signatures.len() > limits.max_signatures {
        return reject(
            Malformed,
            format!(
                "envelope has {} signatures, over the limit of {}",
                parsed.signatures.len(),
                limits.max_signatures
            ),
        );
    }
    // Base64 length bounds the decoded size; check the text first so a huge payload is never decoded.
    if parsed.payload.len() / 4 * 3 > limits.max_payload_bytes + 3 {
        return reject(
            Malformed,
            format!(
                "payload is over the limit of {} bytes",
                limits.max_payload_bytes
            ),
        );
    }
    let payload = parsed
        .payload_bytes()
        .map_err(|e| Rejection::new(Malformed, e.to_string()))?;
    if payload.len() > limits.max_payload_bytes {
        return reject(
            Malformed,
            format!(
                "payload is {} bytes, over the limit of {}",
                payload.len(),
                limits.max_payload_bytes
            ),
        );
    }
    let signatures = parsed
        .signatures
        .iter()
        .enumerate()
        .map(|(i, s)| {
            dsse::decode_base64(&s.sig)
                .map(|sig| (s.keyid.as_deref().unwrap_or(""), sig))
                .ok_or_else(|| {
                    Rejection::new(Malformed, format!("signature {i} is not valid base64"))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;

    // 3. Signature over PAE, trusted keys only.
    let key = verify_signatures(&policy.keys, &parsed.payload_type, &payload, &signatures)?;
    if parsed.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return reject(
            PayloadTypeMismatch,
            format!(
                "payloadType is {:?}, expected {IN_TOTO_PAYLOAD_TYPE:?}",
                parsed.payload_type
            ),
        );
    }
    let statement: Statement = json::from_slice_strict(&payload).map_err(|e| {
        Rejection::new(
            Malformed,
            format!("payload is not a valid in-toto Statement: {e}"),
        )
    })?;

    // 4. Types, then structure.
    if statement.type_ != STATEMENT_TYPE_V1 {
        return reject(
            PayloadTypeMismatch,
            format!(
                "statement _type is {:?}, expected {STATEMENT_TYPE_V1:?}",
                statement.type_
            ),
        );
    }
    if statement.predicate_type != policy.predicate_type {
        return reject(
            PayloadTypeMismatch,
            format!(
                "predicateType is {:?}, the policy requires {:?}",
                statement.predicate_type, policy.predicate_type
            ),
        );
    }
    let subject_digests = subject_digests(&statement, limits.max_subjects)?;
    let predicate: LocalValidation =
        json::from_value_strict(&statement.predicate).map_err(|e| {
            Rejection::new(
                Malformed,
                format!("predicate is not a local-validation predicate: {e}"),
            )
        })?;
    if !is_sha256_hex(&predicate.config_digest.sha256) {
        return reject(
            Malformed,
            "predicate.configDigest.sha256 is not 64 lowercase hex characters",
        );
    }
    if predicate.checks.len() > limits.max_checks {
        return reject(
            Malformed,
            format!(
                "predicate has {} checks, over the limit of {}",
                predicate.checks.len(),
                limits.max_checks
            ),
        );
    }
    let mut names = BTreeSet::new();
    if let Some(dup) = predicate
        .checks
        .iter()
        .find(|c| !names.insert(c.name.as_str()))
    {
        return reject(
            Malformed,
            format!("check name {:?} appears twice", dup.name),
        );
    }

    // 5. Binding: images and configuration.
    if expected.image_digests.is_empty() {
        return reject(DigestMismatch, "the revision has no image digest to bind");
    }
    // Every image the attestation leaves out is named, so one rejection says all that is missing.
    let uncovered: Vec<String> = expected
        .image_digests
        .iter()
        .filter(|image| !subject_digests.contains(image.digest.as_str()))
        .map(|image| {
            format!(
                "image {} (container {:?} of component {:?}) is not a subject of the attestation",
                image.image, image.container, image.component
            )
        })
        .collect();
    if !uncovered.is_empty() {
        return reject(DigestMismatch, uncovered.join("; "));
    }
    let attested_config = format!("sha256:{}", predicate.config_digest.sha256);
    if attested_config != expected.config_digest {
        return reject(
            ConfigDrift,
            format!(
                "attested configuration {attested_config} differs from the revision's {}",
                expected.config_digest
            ),
        );
    }

    // 6. Time, as offsets from the Unix epoch rather than `Timestamp`s: jiff's range stops short
    // of what RFC 3339 can write (see `attest::time`), and sums must not fail or wrap.
    let now_at = time::since_epoch(now);
    let time_verified = parse_time("timeVerified", &predicate.time_verified)?;
    let expires_at = predicate
        .expires_at
        .as_deref()
        .map(|t| parse_time("expiresAt", t))
        .transpose()?;
    let shown_verified = time::show(time_verified, &predicate.time_verified);
    if time_verified.saturating_sub(now_at) > policy.clock_skew {
        return reject(
            NotYetValid,
            format!(
                "timeVerified {shown_verified} is in the future (now {now}, allowed skew {})",
                fmt_duration(policy.clock_skew)
            ),
        );
    }
    // Saturating is exact here: instants and policy durations are far inside SignedDuration.
    let cap = time_verified.saturating_add(policy.max_age);
    if now_at > cap {
        return reject(
            Expired,
            format!(
                "verified at {shown_verified}, older than the maximum age {} (expired at {})",
                fmt_duration(policy.max_age),
                time::to_timestamp_saturating(cap)
            ),
        );
    }
    if let Some(expires_at) = expires_at
        && now_at >= expires_at
    {
        return reject(
            Expired,
            format!(
                "the attestation expired at {}",
                time::show(
                    expires_at,
                    predicate.expires_at.as_deref().unwrap_or_default()
                )
            ),
        );
    }
    let valid_until = expires_at.map_or(cap, |e| e.min(cap));

    // 7. Results, then admin requirements.
    check_results(&predicate, policy.spec)?;
    check_requirements(&predicate, policy.spec)?;

    Ok(Verified {
        key_name: key.name.clone(),
        key_id: key.key.key_id(),
        verifier_id: predicate.verifier.id.clone(),
        time_verified: time::to_timestamp_saturating(time_verified),
        valid_until: time::to_timestamp_saturating(valid_until),
        envelope_sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, envelope)),
        checks: predicate.checks.iter().map(|c| c.name.clone()).collect(),
    })
}

fn verify_signatures<'k>(
    keys: &'k [NamedKey],
    payload_type: &str,
    payload: &[u8],
    signatures: &[(&str, Vec<u8>)],
) -> Result<&'k NamedKey, Rejection> {
    if keys.is_empty() {
        return reject(RejectReason::UntrustedKey, "the policy trusts no key");
    }
    let message = dsse::pae(payload_type, payload);
    let mut named_trusted = false;
    for (keyid, sig) in signatures {
        let hinted =
            |k: &NamedKey| !keyid.is_empty() && (k.key.key_id() == *keyid || k.name == *keyid);
        if keyid.is_empty() || keys.iter().any(hinted) {
            named_trusted = true;
        }
        // The hint only orders the keys; every trusted key is tried (bounded by the limits).
        let ordered = keys
            .iter()
            .filter(|k| hinted(k))
            .chain(keys.iter().filter(|k| !hinted(k)));
        for key in ordered {
            if key.key.verify(&message, sig) {
                return Ok(key);
            }
        }
    }
    if named_trusted {
        reject(
            RejectReason::BadSignature,
            "no signature verifies under the trusted keys: the envelope was altered, or its key id names a trusted key that did not sign it",
        )
    } else {
        reject(
            RejectReason::UntrustedKey,
            format!(
                "signed only by keys the policy does not trust (key ids: {})",
                signatures
                    .iter()
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    }
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn subject_digests(
    statement: &Statement,
    max_subjects: usize,
) -> Result<BTreeSet<&str>, Rejection> {
    use RejectReason::Malformed;
    if statement.subject.is_empty() {
        return reject(Malformed, "statement has no subject");
    }
    if statement.subject.len() > max_subjects {
        return reject(
            Malformed,
            format!(
                "statement has {} subjects, over the limit of {max_subjects}",
                statement.subject.len()
            ),
        );
    }
    let mut digests = BTreeSet::new();
    let mut by_name: BTreeMap<&str, &str> = BTreeMap::new();
    for subject in &statement.subject {
        let Some(sha) = subject.digest.get("sha256") else {
            continue;
        };
        if !is_sha256_hex(sha) {
            return reject(
                Malformed,
                format!("subject digest sha256 {sha:?} is not 64 lowercase hex characters"),
            );
        }
        if let Some(name) = subject.name.as_deref()
            && let Some(previous) = by_name.insert(name, sha)
            && previous != sha
        {
            return reject(
                Malformed,
                format!("subject {name:?} appears with two different digests"),
            );
        }
        digests.insert(sha.as_str());
    }
    Ok(digests)
}

/// The instant `text` names, as an offset from the Unix epoch; RFC 3339 only.
fn parse_time(field: &str, text: &str) -> Result<SignedDuration, Rejection> {
    time::parse_rfc3339(text).ok_or_else(|| {
        Rejection::new(
            RejectReason::Malformed,
            format!("{field} {text:?} is not an RFC 3339 timestamp"),
        )
    })
}

fn fmt_duration(d: SignedDuration) -> String {
    format!("{d:#}")
}
