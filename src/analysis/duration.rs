//! Parsing of the duration strings used in analysis templates (`500ms`, `30s`, `1m30s`, `2h`),
//! the same grammar as the CEL rule `^([0-9]+(ms|s|m|h))+$`.

use std::time::Duration;

/// A duration string that does not follow `^([0-9]+(ms|s|m|h))+$`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration such as 500ms, 30s, 1m30s or 2h")]
pub struct DurationError {
    /// The text that was given.
    pub text: String,
}

/// Parses a duration such as `500ms`, `30s`, `1m30s` or `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let error = || DurationError {
        text: text.to_string(),
    };
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(error());
    }
    let mut total_ms: u64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(error());
        }
        let number: u64 = text[start..i].parse().map_err(|_| error())?;
        let unit_ms: u64 = if text[i..].starts_with("ms") {
            i += 2;
            1
        } else if text[i..].starts_with('s') {
            i += 1;
            1_000
        } else if text[i..].starts_with('m') {
            i += 1;
            60_000
        } else if text[i..].starts_with('h') {
            i += 1;
            3_600_000
        } else {
            return Err(error());
        };
        let part = number.checked_mul(unit_ms).ok_or_else(error)?;
        total_ms = total_ms.checked_add(part).ok_or_else(error)?;
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_cel_grammar() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(
            parse_duration("1h1m1s1ms"),
            Ok(Duration::from_millis(3_661_001))
        );
    }

    #[test]
    fn rejects_other_text() {
        for text in [
            "",
            "10",
            "s",
            "1.5s",
            "-1s",
            "1d",
            "1 s",
            "1sm",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} was accepted");
        }
    }
}
