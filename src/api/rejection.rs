//! Why an attestation was rejected: the verifier's one reason per rejection. It lives on the
//! ground floor because four places speak it — the verifier (`attest`) decides it, `core` carries
//! it in the attestation gate, the controller records it, and status, events and the verdict
//! metric show its string (the `Attested` condition's `reason`, `status.attestation.reason`).

use super::conditions::vocabulary;

vocabulary! {
    /// Why an attestation was rejected; the string (the variant's name, `as_str`) is the
    /// `Attested` condition's reason, `status.attestation.reason` and the verdict metric's kind.
    RejectReason {
        /// No attestation was given (or it is empty).
        Missing,
        /// Too large, not a strict DSSE envelope / in-toto Statement, or structurally invalid.
        Malformed,
        /// A trusted key was named or assumed and the signature does not verify under it.
        BadSignature,
        /// No trusted key (policy has none, or only unknown keys signed).
        UntrustedKey,
        /// Wrong `payloadType`, `_type` or `predicateType`.
        PayloadTypeMismatch,
        /// An image of the revision is unpinned or not a subject.
        DigestMismatch,
        /// The attested configuration digest differs from the revision's.
        ConfigDrift,
        /// Older than `maxAge`, or past `expiresAt`.
        Expired,
        /// `timeVerified` lies in the future beyond the allowed clock skew.
        NotYetValid,
        /// The attestation itself reports something that did not pass.
        ChecksFailed,
        /// Genuine and passing, but the policy asks for more (or there is no usable policy).
        PolicyViolation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::ConditionReason;

    /// The strings are API: the `Attested` condition, status and the verdict metric show them.
    #[test]
    fn every_string_is_pinned_in_verification_order() {
        let strings: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            strings,
            [
                "Missing",
                "Malformed",
                "BadSignature",
                "UntrustedKey",
                "PayloadTypeMismatch",
                "DigestMismatch",
                "ConfigDrift",
                "Expired",
                "NotYetValid",
                "ChecksFailed",
                "PolicyViolation"
            ]
        );
    }

    /// The `Attested` condition's reason is either a `ConditionReason` (`Verified`,
    /// `NotRequired`) or a `RejectReason`: one string must never mean both.
    #[test]
    fn no_rejection_reason_is_also_a_condition_reason() {
        for reason in RejectReason::ALL {
            assert_eq!(ConditionReason::parse(reason.as_str()), None, "{reason}");
            assert_eq!(RejectReason::parse(reason.as_str()), Some(*reason));
        }
        assert_eq!(RejectReason::parse("Verified"), None);
        assert_eq!(RejectReason::parse("missing"), None);
    }
}
