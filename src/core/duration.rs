//! Parsing of the duration strings used in specs (`90s`, `10m`, `1h30m`, `500ms`).

use std::time::Duration;

/// A duration string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a duration such as 500ms, 30s, 10m or 1h30m")]
pub struct InvalidDuration(pub String);

/// Parses a sequence of `<digits><unit>` parts, units `ms`, `s`, `m`, `h`.
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
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in ["", "10", "s", "10x", "1.5s", "-3s", "10 s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }
}
