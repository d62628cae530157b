//! RFC 3339 timestamps as signed offsets from the Unix epoch, for verification's time checks.
//!
//! Why not `jiff::Timestamp`: its range ends at 9999-12-30T22:00:00.999999999Z (and starts at
//! -009999-01-02T01:59:59Z) so that every timestamp has a civil date-time in every UTC offset.
//! RFC 3339 can write instants up to 9999-12-31T23:59:59.999999999-23:59, a day and more later,
//! so `"expiresAt": "9999-12-31T23:59:59Z"` (a common "never") did not parse and was rejected as
//! `Malformed`. A [`SignedDuration`] from the epoch holds every RFC 3339 instant (about ±3.2e11
//! seconds) with seven orders of magnitude to spare, so comparisons are exact and saturating
//! sums with policy durations (at most i64 milliseconds) never actually saturate.

use jiff::civil::DateTime;
use jiff::{SignedDuration, Timestamp};

/// 1970-01-01T00:00:00 as a civil date-time (evaluated at compile time).
const EPOCH: DateTime = DateTime::constant(1970, 1, 1, 0, 0, 0, 0);

/// Parses an RFC 3339 `date-time` (section 5.6) into its offset from the Unix epoch:
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, with 'T' and 'Z' in either case as the RFC's
/// ABNF allows. Stricter than jiff's Temporal-based parser, which also takes hour-only or
/// colon-less offsets, basic (`T100000`) times and bracketed time zones.
///
/// A leap second (`:60`) reads as `:59`, as in Unix time and jiff. A fraction of more than nine
/// digits is rejected rather than silently truncated below the nanosecond.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SignedDuration> {
    let b = text.as_bytes();
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| b.get(i) != Some(&c))
        || !matches!(b.get(10), Some(b'T' | b't'))
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let end = start
            + b.get(start..)
                .unwrap_or_default()
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
        let count = end - start;
        if !(1..=9).contains(&count) {
            return None;
        }
        nanos = digits(b, start, count)? * 10_i32.pow(9 - count as u32);
        i = end;
    }
    let offset_seconds = match b.get(i)? {
        b'Z' | b'z' => {
            i += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let hours = digits(b, i + 1, 2)?;
            let minutes = digits(b, i + 4, 2)?;
            if b.get(i + 3) != Some(&b':') || hours > 23 || minutes > 59 {
                return None;
            }
            i += 6;
            let magnitude = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return None,
    };
    if i != b.len() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Calendar validity (month length, leap years) is jiff's; every four-digit year is in its
    // civil range, so only a wrong date fails here.
    let local = DateTime::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
        i8::try_from(hour).ok()?,
        i8::try_from(minute).ok()?,
        i8::try_from(second.min(59)).ok()?,
        nanos,
    )
    .ok()?;
    local
        .duration_since(EPOCH)
        .checked_sub(SignedDuration::from_secs(offset_seconds))
}

/// The non-negative decimal number in `b[start..start + len]`, all ASCII digits.
fn digits(b: &[u8], start: usize, len: usize) -> Option<i32> {
    let field = b.get(start..start.checked_add(len)?)?;
    field.iter().try_fold(0_i32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + i32::from(c - b'0'))
    })
}

/// The offset of `timestamp` from the Unix epoch.
pub(crate) fn since_epoch(timestamp: Timestamp) -> SignedDuration {
    timestamp.as_duration()
}

/// `since_epoch` back as a `Timestamp`, clamped to jiff's range. Only used for reporting
/// (`Verified`); clamping a far-future validity end down to `Timestamp::MAX` errs towards
/// re-verifying earlier, never later.
pub(crate) fn to_timestamp_saturating(since_epoch: SignedDuration) -> Timestamp {
    Timestamp::from_duration(since_epoch).unwrap_or(if since_epoch.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// For messages: the instant as jiff prints it, or `fallback` (the attested text) where jiff
/// cannot represent it.
pub(crate) fn show(since_epoch: SignedDuration, fallback: &str) -> String {
    Timestamp::from_duration(since_epoch).map_or_else(|_| fallback.to_owned(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Option<Timestamp> {
        parse_rfc3339(text).and_then(|d| Timestamp::from_duration(d).ok())
    }

    #[test]
    fn agrees_with_jiff_inside_its_range() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2025-01-15T10:00:00Z",
            "2025-01-15T10:00:00.123456789+05:30",
            "2025-01-15T10:00:00.5-08:00",
            "2024-02-29T23:59:59-00:00",
            "0000-01-01T00:00:00Z",
            "0000-01-01T00:00:00+23:59",
            "1969-12-31T23:59:59.999999999Z",
            "9999-12-30T22:00:00.999999999Z",
        ] {
            let ours = at(text);
            assert!(ours.is_some(), "{text}");
            assert_eq!(ours, text.parse::<Timestamp>().ok(), "{text}");
        }
    }

    #[test]
    fn reaches_past_jiffs_range() {
        assert!("9999-12-31T23:59:59Z".parse::<Timestamp>().is_err());
        let end = parse_rfc3339("9999-12-31T23:59:59Z").expect("end of 9999");
        assert!(end > since_epoch(Timestamp::MAX));
        let latest = parse_rfc3339("9999-12-31T23:59:59.999999999-23:59").expect("latest");
        assert_eq!(
            latest.checked_sub(end),
            Some(SignedDuration::new(23 * 3600 + 59 * 60, 999_999_999))
        );
        assert_eq!(to_timestamp_saturating(latest), Timestamp::MAX);
        assert_eq!(show(latest, "as written"), "as written");
        let earliest = parse_rfc3339("0000-01-01T00:00:00+23:59").expect("earliest");
        assert_eq!(
            to_timestamp_saturating(earliest),
            at("0000-01-01T00:00:00+23:59").expect("t")
        );
        assert_eq!(to_timestamp_saturating(SignedDuration::MIN), Timestamp::MIN);
    }

    #[test]
    fn leap_seconds_and_case() {
        assert_eq!(at("2016-12-31T23:59:60Z"), at("2016-12-31T23:59:59Z"));
        assert_eq!(at("2025-01-15t10:00:00z"), at("2025-01-15T10:00:00Z"));
    }

    #[test]
    fn rejects_what_is_not_rfc_3339() {
        for text in [
            "",
            "2025",
            "2025-01-15",
            "2025-01-15T10:00:00",
            "2025-01-15T10:00Z",
            "2025-01-15T10:00:00+01",
            "2025-01-15T10:00:00+0100",
            "2025-01-15T10:00:00+01:0",
            "2025-01-15T10:00:00+24:00",
            "2025-01-15T10:00:00.Z",
            "2025-01-15T10:00:00.1234567890Z",
            "2025-01-15T10:00:00,5Z",
            "2025-01-15 10:00:00Z",
            "2025-01-15T10:00:00Z ",
            "2025-01-15T10:00:00Z[UTC]",
            "2025-13-01T00:00:00Z",
            "2025-00-01T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-01-15T24:00:00Z",
            "2025-01-15T23:60:00Z",
            "2025-01-15T23:59:61Z",
            "+2025-01-15T10:00:00Z",
            "-2025-01-15T10:00:00Z",
            "10000-01-15T10:00:00Z",
            "2025-01-15T10:00:00\u{200b}Z",
            "２025-01-15T10:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text:?}");
        }
    }
}
