//! Issue 12, defect 8: far-future and far-past times get a precise verdict, never Malformed or a
//! panic. Any RFC 3339 time (years 0000 to 9999, any offset) is representable.

use super::*;

#[test]
fn expires_at_the_end_of_year_9999_verifies_and_max_age_still_applies() {
    let f = fixture();
    let env = f.with_predicate(|p| p.expires_at = Some("9999-12-31T23:59:59Z".into()));
    let verified = verify(&env, &f.expected, &f.policy, now()).expect("verifies");
    // maxAge (168h from timeVerified) is the binding limit.
    assert_eq!(
        verified.valid_until,
        "2025-01-22T10:00:00Z".parse::<Timestamp>().expect("t")
    );
    // The latest instant RFC 3339 can write is later still.
    let env = f.with_predicate(|p| {
        p.expires_at = Some("9999-12-31T23:59:59.999999999-23:59".into());
    });
    assert!(verify(&env, &f.expected, &f.policy, now()).is_ok());
    // Older than maxAge: rejected as too old, as without expiresAt.
    let env = f.with_predicate(|p| {
        p.time_verified = "2025-01-08T09:59:59Z".into();
        p.expires_at = Some("9999-12-31T23:59:59Z".into());
    });
    let r = verify(&env, &f.expected, &f.policy, now()).expect_err("too old");
    assert_eq!(r.reason, RejectReason::Expired, "{r:?}");
    assert!(r.message.contains("maximum age"), "{}", r.message);
}

#[test]
fn far_past_and_far_future_times_give_the_right_reason() {
    let f = fixture();
    let cases: [(&str, Option<&str>, RejectReason, &str); 6] = [
        (
            "9999-12-31T23:59:59Z",
            None,
            RejectReason::NotYetValid,
            "future",
        ),
        (
            "9999-12-31T23:59:59.999999999-23:59",
            None,
            RejectReason::NotYetValid,
            "future",
        ),
        (
            "0000-01-01T00:00:00Z",
            None,
            RejectReason::Expired,
            "maximum age",
        ),
        (
            "0000-01-01T00:00:00+23:59",
            None,
            RejectReason::Expired,
            "maximum age",
        ),
        (
            "2025-01-15T10:00:00Z",
            Some("0000-01-01T00:00:00+23:59"),
            RejectReason::Expired,
            "expired at",
        ),
        (
            "2025-01-15T10:00:00Z",
            Some("1970-01-01T00:00:00Z"),
            RejectReason::Expired,
            "expired at",
        ),
    ];
    for (time_verified, expires_at, reason, needle) in cases {
        let env = f.with_predicate(|p| {
            p.time_verified = time_verified.into();
            p.expires_at = expires_at.map(Into::into);
        });
        let r = verify(&env, &f.expected, &f.policy, now()).expect_err(time_verified);
        assert_eq!(r.reason, reason, "{time_verified} {expires_at:?}: {r:?}");
        assert!(r.message.contains(needle), "{}", r.message);
    }
}

#[test]
fn huge_policy_durations_do_not_overflow() {
    let f = fixture();
    // The largest maxAge / allowedClockSkew the duration syntax can express (i64 milliseconds).
    let huge = "2562047788h";
    let policy = SafeDeploymentPolicySpec {
        max_age: Some(huge.into()),
        allowed_clock_skew: Some(huge.into()),
        ..f.policy.clone()
    };
    // Year 0: timeVerified + maxAge lies far beyond any timestamp; it used to be Malformed.
    let env = f.verified_at("0000-01-01T00:00:00Z");
    let verified = verify(&env, &f.expected, &policy, now()).expect("ancient but allowed");
    assert_eq!(verified.valid_until, Timestamp::MAX);
    // Year 9999 within an (absurd) allowed skew.
    let env = f.with_predicate(|p| {
        p.time_verified = "9999-12-31T23:59:59Z".into();
        p.expires_at = Some("9999-12-31T23:59:59.999999999-23:59".into());
    });
    let verified = verify(&env, &f.expected, &policy, now()).expect("future but allowed");
    assert_eq!(verified.time_verified, Timestamp::MAX);
    assert_eq!(verified.valid_until, Timestamp::MAX);
}

#[test]
fn extreme_clocks_do_not_panic() {
    let f = fixture();
    let env = f.envelope();
    let at = |now| verify(&env, &f.expected, &f.policy, now).map_err(|r| r.reason);
    assert_eq!(at(Timestamp::MAX).err(), Some(RejectReason::Expired));
    assert_eq!(at(Timestamp::MIN).err(), Some(RejectReason::NotYetValid));
    let env = f.with_predicate(|p| p.expires_at = Some("9999-12-31T23:59:59Z".into()));
    let r = verify(&env, &f.expected, &f.policy, Timestamp::MAX);
    assert_eq!(r.map_err(|r| r.reason).err(), Some(RejectReason::Expired));
}

#[test]
fn timestamps_follow_the_rfc_3339_grammar() {
    let f = fixture();
    // Valid RFC 3339: a leap second (read as :59, like Unix time), lower-case 't' and 'z'
    // (RFC 3339 §5.6), a fraction, a negative zero offset.
    for good in [
        "2025-01-15T23:59:60Z",
        "2025-01-15t10:00:00z",
        "2025-01-15T10:00:00.5+01:00",
        "2025-01-15T10:00:00-00:00",
        "2024-02-29T10:00:00Z",
    ] {
        let env = f.verified_at(good);
        let policy = SafeDeploymentPolicySpec {
            max_age: Some("10000h".into()),
            ..f.policy.clone()
        };
        let r = verify(&env, &f.expected, &policy, now());
        assert!(r.is_ok(), "{good}: {r:?}");
    }
    for bad in [
        "2025-02-29T10:00:00Z",
        "2025-01-15T24:00:00Z",
        "2025-01-15T10:60:00Z",
        "2025-01-15T10:00:61Z",
        "2025-01-15T10:00:00+24:00",
        "2025-01-15T10:00:00+01:60",
        "2025-01-15T10:00:00+01",
        "2025-01-15T10:00:00+0100",
        "2025-01-15T10:00:00",
        "2025-01-15T10:00:00.Z",
        "2025-01-15T10:00:00.1234567890Z",
        "2025-01-15T10:00Z",
        "2025-01-15T100000Z",
        "2025-01-15T10:00:00Z[UTC]",
        "+002025-01-15T10:00:00Z",
        "10000-01-01T00:00:00Z",
        "2025-01-15 10:00:00Z",
        "2025-1-15T10:00:00Z",
        "2025-01-15T10:00:00Zx",
        "２025-01-15T10:00:00Z",
    ] {
        let env = f.with_predicate(|p| p.time_verified = bad.into());
        let r = verify(&env, &f.expected, &f.policy, now()).expect_err(bad);
        assert_eq!(r.reason, RejectReason::Malformed, "{bad}: {r:?}");
        assert!(r.message.contains("timeVerified"), "{}", r.message);
    }
}
