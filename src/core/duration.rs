//! Parsing of the duration strings used in specs and analysis templates (`90s`, `10m`, `1h30m`,
//! `500ms`): the grammar of the CRDs' CEL rule `^([0-9]+(ms|s|m|h))+$`. The one parser of the
//! crate ([`crate::analysis::duration`] re-exports it).
//!
//! Zero (`0s`, `0ms`) is a duration: the grammar admits it, and each caller decides whether it
//! makes sense (an analysis interval or a provider timeout refuses it, an initial delay or a
//! pause of zero simply does not wait).

use std::time::Duration;

/// A duration string that does not parse. The text is shown quoted and escaped (`{:?}`), as it
/// comes from a tenant and ends up in statuses and events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration such as 500ms, 30s, 1m30s or 2h")]
pub struct InvalidDuration(pub String);

/// Parses a sequence of `<digits><unit>` parts, units `ms`, `s`, `m`, `h` (at most `u64::MAX`
/// milliseconds in all).
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration(text.to_string());
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .len()
            .saturating_sub(rest.trim_start_matches(|c: char| c.is_ascii_digit()).len());
        let (number, tail) = rest.split_at_checked(digits).ok_or_else(invalid)?;
        if number.is_empty() {
            return Err(invalid());
        }
        let number: u64 = number.parse().map_err(|_| invalid())?;
        let (unit_ms, tail) = if let Some(tail) = tail.strip_prefix("ms") {
            (1, tail)
        } else if let Some(tail) = tail.strip_prefix('s') {
            (1_000, tail)
        } else if let Some(tail) = tail.strip_prefix('m') {
            (60_000, tail)
        } else if let Some(tail) = tail.strip_prefix('h') {
            (3_600_000, tail)
        } else {
            return Err(invalid());
        };
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|part| total_ms.checked_add(part))
            .ok_or_else(invalid)?;
        rest = tail;
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(
            parse_duration("1h1m1s1ms"),
            Ok(Duration::from_millis(3_661_001))
        );
        // Parts in any order, repeated, with leading zeros: the CEL grammar allows it.
        assert_eq!(parse_duration("30s1h"), Ok(Duration::from_secs(3630)));
        assert_eq!(parse_duration("007s"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in [
            "",
            "10",
            "s",
            "10x",
            "1.5s",
            "-3s",
            "+3s",
            "10 s",
            " 10s",
            "10s\n",
            "1d",
            "1sm",
            "1S",
            "\u{661}s", // an Arabic-Indic digit one: digits are ASCII only
            "99999999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    /// The edge cases where the two former parsers (core's and analysis's) could have differed;
    /// they agreed on every input (checked on two million random strings), so this pins the
    /// behaviour both had.
    #[test]
    fn zero_and_the_largest_durations() {
        // Zero is a duration; callers that need more than zero check it themselves.
        for zero in ["0s", "0ms", "00s", "0h0m0s0ms"] {
            assert_eq!(parse_duration(zero), Ok(Duration::ZERO), "{zero}");
        }
        // The total is counted in u64 milliseconds: up to u64::MAX, no further.
        assert_eq!(
            parse_duration("18446744073709551615ms"),
            Ok(Duration::from_millis(u64::MAX))
        );
        for too_long in [
            "18446744073709551616ms",
            "18446744073709551615ms1ms",
            "5124095576031h",
        ] {
            assert!(parse_duration(too_long).is_err(), "{too_long}");
        }
    }

    #[test]
    fn the_error_quotes_and_escapes_the_text() {
        // Tenant text reaches statuses and events: quoted, control characters escaped.
        let error = parse_duration("5 \"min\"\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            r#""5 \"min\"\n" is not a duration such as 500ms, 30s, 1m30s or 2h"#
        );
    }

    #[test]
    fn the_longest_duration_the_schema_admits_parses() {
        // Five parts of 99999h is the largest value the pattern and maxLength 32 allow; it is
        // far below CEL's limit (about 2562047h) and parses here (the one parser behind
        // `analysis::duration` too).
        let longest = "99999h99999h99999h99999h99999h";
        assert!(crate::api::rules::DURATION_PATTERN.contains("{1,5}"));
        assert!(parse_duration(longest).is_ok());
    }
}
