//! The one duration type of the API: [`SpecDuration`], a spec's duration field (`90s`, `10m`,
//! `1h30m`, `500ms`) kept as the text the user wrote, with the one parser of the crate behind it
//! and the admission rules (the CEL grammar, ranges and messages) every duration field carries.
//!
//! The text is what is stored and shown: a status, an event or `kubectl get -o yaml` prints
//! `90s` as `90s`, never as a normalised `1m30s`. Reading an object never fails on a duration:
//! a value written before the schema bounded it (or with the schema bypassed) deserializes as
//! its text, and only [`SpecDuration::parse`] says it is not a duration, so one bad object
//! cannot stop the operator from listing and watching all the others. Each caller reports such
//! a value as it always did (an analysis run fails with `interval: …`, a pause waits for
//! `promote`, a policy is unusable).
//!
//! Zero (`0s`, `0ms`) is a duration: the grammar admits it, and each caller decides whether it
//! makes sense (an analysis interval or a provider timeout refuses it, an initial delay or a
//! pause of zero simply does not wait).
//!
//! Tenant text goes through the parser inside every reconcile, so it is declared
//! [`panic_free`], as [`crate::core`] is.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::SignedDuration;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The grammar of every duration field: one to six `<number><unit>` parts, units `ms`, `s`, `m`
/// and `h` (`500ms`, `90s`, `10m`, `1h30m`), each number of at most five digits. The digit limit
/// keeps every string that matches within what CEL's `duration()` (and a u64 of milliseconds)
/// can hold, so the range rules below never fail to evaluate. [`SpecDuration::parse`] accepts
/// the same parts without the two counts (any number of parts, any number of digits): the
/// schema bounds what the API server stores, the parser only what a u64 of milliseconds holds.
pub const DURATION_PATTERN: &str = "^([0-9]{1,5}(ms|s|m|h)){1,6}$";

/// The longest text of a duration field (the schema's `maxLength`).
pub const MAX_DURATION_LENGTH: u32 = 32;

/// A duration text that does not parse. The text is shown quoted and escaped (`{:?}`), as it
/// comes from a tenant and ends up in statuses and events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration such as 500ms, 30s, 1m30s or 2h")]
pub struct InvalidDuration(pub String);

/// A duration field of a spec, as written: `<digits><unit>` parts, units `ms`, `s`, `m`, `h`.
///
/// It serializes as its text and deserializes from any string (see the module comment);
/// [`FromStr`] is the checked way to make one, `From<&str>` takes a text as an object read
/// from the API server would hold it, valid or not. [`SpecDuration::parse`] gives the value.
/// The default is the empty text, which is not a duration (as the empty `String` was not).
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SpecDuration(String);

impl SpecDuration {
    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The duration, or [`InvalidDuration`] when the text is not one (or exceeds `u64::MAX`
    /// milliseconds in all: the sum is checked, never wrapped or saturated into a wrong value).
    pub fn parse(&self) -> Result<Duration, InvalidDuration> {
        parse_millis(&self.0)
            .map(Duration::from_millis)
            .ok_or_else(|| self.invalid())
    }

    /// The duration as a signed [`jiff`] duration, for arithmetic on timestamps (attestation
    /// ages and clock skew). Stricter than [`SpecDuration::parse`] on purpose: a text beyond
    /// `i64::MAX` milliseconds (about 292 million years) is refused rather than clamped, so an
    /// attestation policy with such a value fails closed as unusable.
    pub fn parse_signed(&self) -> Result<SignedDuration, InvalidDuration> {
        parse_millis(&self.0)
            .and_then(|millis| i64::try_from(millis).ok())
            .map(SignedDuration::from_millis)
            .ok_or_else(|| self.invalid())
    }

    /// The duration of an optional field, or of its `default` text when the field is absent
    /// (the defaults are constants such as [`crate::api::analysis::DEFAULT_INTERVAL`], which the
    /// CEL rules use too).
    pub fn parse_or(
        field: Option<&SpecDuration>,
        default: &str,
    ) -> Result<Duration, InvalidDuration> {
        match field {
            Some(duration) => duration.parse(),
            None => parse_millis(default)
                .map(Duration::from_millis)
                .ok_or_else(|| InvalidDuration(default.to_owned())),
        }
    }

    fn invalid(&self) -> InvalidDuration {
        InvalidDuration(self.0.clone())
    }
}

/// The total of a sequence of `<digits><unit>` parts in milliseconds, `None` when the text is
/// not such a sequence or the total exceeds `u64::MAX`.
fn parse_millis(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .len()
            .saturating_sub(rest.trim_start_matches(|c: char| c.is_ascii_digit()).len());
        let (number, tail) = rest.split_at_checked(digits)?;
        if number.is_empty() {
            return None;
        }
        let number: u64 = number.parse().ok()?;
        let (unit_ms, tail) = if let Some(tail) = tail.strip_prefix("ms") {
            (1, tail)
        } else if let Some(tail) = tail.strip_prefix('s') {
            (1_000, tail)
        } else if let Some(tail) = tail.strip_prefix('m') {
            (60_000, tail)
        } else if let Some(tail) = tail.strip_prefix('h') {
            (3_600_000, tail)
        } else {
            return None;
        };
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|part| total_ms.checked_add(part))?;
        rest = tail;
    }
    Some(total_ms)
}

impl FromStr for SpecDuration {
    type Err = InvalidDuration;

    /// A duration from a text that must parse (a command-line flag, a test).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let duration = SpecDuration(text.to_owned());
        duration.parse().map(|_| duration)
    }
}

impl From<&str> for SpecDuration {
    /// The text as a stored object holds it, parsed only when asked ([`SpecDuration::parse`]).
    fn from(text: &str) -> Self {
        SpecDuration(text.to_owned())
    }
}

impl From<String> for SpecDuration {
    /// The text as a stored object holds it, parsed only when asked ([`SpecDuration::parse`]).
    fn from(text: String) -> Self {
        SpecDuration(text)
    }
}

impl fmt::Display for SpecDuration {
    /// The text as written (`90s` stays `90s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SpecDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SpecDuration").field(&self.0).finish()
    }
}

impl JsonSchema for SpecDuration {
    /// Inline, so that a field's schema is the string itself (and `Option` makes it nullable),
    /// exactly as it was when the fields were `String`s.
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "SpecDuration".into()
    }

    /// A string of at most [`MAX_DURATION_LENGTH`] characters. The grammar and the range are
    /// each field's own CEL rules ([`duration_rules`]), because their messages name the field
    /// and its bounds.
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "maxLength": MAX_DURATION_LENGTH})
    }
}

/// The two rules of a duration field: its grammar (`<field> must be a duration such as
/// <examples>`) and its range (`<field> must be at least <min> and at most <max>`).
pub fn duration_rules(field: &str, examples: &str, min: &str, max: &str) -> Value {
    json!([
        {"rule": format!("self.matches('{DURATION_PATTERN}')"),
         "message": format!("{field} must be a duration such as {examples} (numbers of at most 5 digits, units ms, s, m, h)")},
        {"rule": format!("!self.matches('{DURATION_PATTERN}') || (duration(self) >= duration('{min}') && duration(self) <= duration('{max}'))"),
         "message": format!("{field} must be at least {min} and at most {max}")},
    ])
}

/// A CEL expression for the duration in the optional string field `field` of `object`, or
/// `default` when it is absent (`default` must be a valid duration).
pub fn duration_or(object: &str, field: &str, default: &str) -> String {
    format!("duration(has({object}.{field}) ? {object}.{field} : '{default}')")
}

/// A CEL expression that is true when the optional string field `field` of `object` is set and
/// not a duration (its own rule reports that), so rules comparing durations can stand aside.
pub fn bad_duration(object: &str, field: &str) -> String {
    format!("(has({object}.{field}) && !{object}.{field}.matches('{DURATION_PATTERN}'))")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Duration, InvalidDuration> {
        SpecDuration::from(text).parse()
    }

    #[test]
    fn every_unit_and_compound_durations() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse("1h1m1s1ms"), Ok(Duration::from_millis(3_661_001)));
        // Parts in any order, repeated, with leading zeros: the CEL grammar allows it.
        assert_eq!(parse("30s1h"), Ok(Duration::from_secs(3630)));
        assert_eq!(parse("007s"), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn malformed_texts_are_not_durations() {
        for bad in [
            "",
            "10",
            "s",
            "h",
            "10x",
            "10d",
            "1d",
            "1.5s",
            "-3s",
            "-1h",
            "+3s",
            "10 s",
            " 10s",
            "1h ",
            "10s\n",
            "1sm",
            "1S",
            "\u{661}s", // an Arabic-Indic digit one: digits are ASCII only
            "99999999999999999999h",
        ] {
            assert_eq!(parse(bad), Err(InvalidDuration(bad.into())), "{bad:?}");
            assert!(bad.parse::<SpecDuration>().is_err(), "{bad:?}");
        }
    }

    /// The edge cases where the three former parsers (core's, analysis's re-export of it and
    /// attest's signed one) could have differed.
    #[test]
    fn zero_and_the_largest_durations() {
        // Zero is a duration; callers that need more than zero check it themselves.
        for zero in ["0s", "0ms", "00s", "0h0m0s0ms"] {
            assert_eq!(parse(zero), Ok(Duration::ZERO), "{zero}");
        }
        // The total is counted in u64 milliseconds: up to u64::MAX, no further.
        assert_eq!(
            parse("18446744073709551615ms"),
            Ok(Duration::from_millis(u64::MAX))
        );
        for too_long in [
            "18446744073709551616ms",
            "18446744073709551615ms1ms",
            "5124095576031h",
        ] {
            assert!(parse(too_long).is_err(), "{too_long}");
        }
    }

    #[test]
    fn the_signed_reading_stops_at_i64_milliseconds() {
        let signed = |text: &str| SpecDuration::from(text).parse_signed();
        assert_eq!(signed("168h"), Ok(SignedDuration::from_hours(168)));
        assert_eq!(signed("250ms"), Ok(SignedDuration::from_millis(250)));
        assert_eq!(signed("0s"), Ok(SignedDuration::ZERO));
        // 2562047788h is the largest whole number of hours in i64 milliseconds.
        assert!(signed("2562047788h").is_ok());
        assert_eq!(
            signed("9223372036854775807ms"),
            Ok(SignedDuration::from_millis(i64::MAX))
        );
        // Beyond i64 milliseconds the unsigned reading still holds it; the signed one refuses.
        let beyond = "9223372036854775808ms";
        assert!(SpecDuration::from(beyond).parse().is_ok());
        assert_eq!(signed(beyond), Err(InvalidDuration(beyond.into())));
        assert!(signed("1.5h").is_err());
    }

    #[test]
    fn the_error_quotes_and_escapes_the_text() {
        // Tenant text reaches statuses and events: quoted, control characters escaped.
        let error = parse("5 \"min\"\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            r#""5 \"min\"\n" is not a duration such as 500ms, 30s, 1m30s or 2h"#
        );
    }

    #[test]
    fn an_absent_field_reads_as_its_default() {
        assert_eq!(
            SpecDuration::parse_or(None, "1m"),
            Ok(Duration::from_secs(60))
        );
        let set = SpecDuration::from("5s");
        assert_eq!(
            SpecDuration::parse_or(Some(&set), "1m"),
            Ok(Duration::from_secs(5))
        );
        let bad = SpecDuration::from("5 s");
        assert_eq!(
            SpecDuration::parse_or(Some(&bad), "1m"),
            Err(InvalidDuration("5 s".into()))
        );
        assert!(SpecDuration::default().parse().is_err());
    }

    #[test]
    fn the_text_round_trips_as_written() {
        for text in ["90s", "1m30s", "007s", "30s1h", "500ms"] {
            let duration: SpecDuration = text.parse().unwrap();
            assert_eq!(duration.to_string(), text);
            assert_eq!(duration.as_str(), text);
            let json = serde_json::to_value(&duration).unwrap();
            assert_eq!(json, Value::String(text.into()));
            let back: SpecDuration = serde_json::from_value(json).unwrap();
            assert_eq!(back, duration);
            let yaml = serde_yaml::to_string(&duration).unwrap();
            assert_eq!(yaml.trim(), text);
        }
    }

    #[test]
    fn a_stored_text_that_is_not_a_duration_still_reads() {
        // Written before the schema bounded it: the object reads, the field says what is wrong.
        #[derive(Deserialize, Serialize)]
        struct Stored {
            interval: Option<SpecDuration>,
        }
        let stored: Stored = serde_json::from_str(r#"{"interval": "ten seconds"}"#).unwrap();
        let interval = stored.interval.as_ref().unwrap();
        assert_eq!(
            interval.parse().unwrap_err().to_string(),
            r#""ten seconds" is not a duration such as 500ms, 30s, 1m30s or 2h"#
        );
        // And it is written back unchanged.
        assert_eq!(
            serde_json::to_string(&stored).unwrap(),
            r#"{"interval":"ten seconds"}"#
        );
        // A value that is not a string at all is still refused, as for a `String` field.
        assert!(serde_json::from_str::<Stored>(r#"{"interval": 10}"#).is_err());
    }

    #[test]
    fn the_schema_is_a_bounded_string() {
        let schema = schemars::schema_for!(Option<SpecDuration>);
        let schema = schema.as_value();
        assert_eq!(schema["maxLength"], json!(MAX_DURATION_LENGTH));
        assert_eq!(schema["type"], json!(["string", "null"]));
    }

    #[test]
    fn the_longest_duration_the_schema_admits_parses() {
        // Six parts of 99999h fill more than the 32 characters of maxLength; five are the most
        // the schema stores. Far below CEL's limit (about 2562047h), and it parses here.
        assert!(DURATION_PATTERN.contains("{1,5}"));
        let longest = "99999h99999h99999h99999h99999h";
        assert!(longest.len() <= MAX_DURATION_LENGTH as usize);
        assert_eq!(parse(longest), Ok(Duration::from_secs(5 * 99_999 * 3600)));
    }

    #[test]
    fn the_rules_name_the_field_and_its_range() {
        let rules = duration_rules("interval", "30s or 1m", "1s", "1h").to_string();
        assert!(rules.contains("interval must be a duration such as 30s or 1m (numbers of at most 5 digits, units ms, s, m, h)"));
        assert!(rules.contains("interval must be at least 1s and at most 1h"));
        assert_eq!(
            bad_duration("self", "step"),
            format!("(has(self.step) && !self.step.matches('{DURATION_PATTERN}'))")
        );
        assert_eq!(
            duration_or("a", "interval", "1m"),
            "duration(has(a.interval) ? a.interval : '1m')"
        );
    }
}
