//! Parsing of the duration strings used in specs (`90s`, `10m`, `1h30m`, `500ms`).

use std::time::Duration;

/// A duration string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a duration such as 500ms, 30s, 10m or 1h30m")]
pub struct InvalidDuration(pub String);

/// Parses a sequence of `<digits><unit>` parts, units `ms`, `s`, `m`, `h`.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    let invalid = || InvalidDuration(text.to_string());
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(invalid());
    }
    let mut total_ms: u64 = 0;
    let mut index = 0;
    while index < bytes.len() {
        let start = index;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            index += 1;
        }
        if start == index {
            return Err(invalid());
        }
        let number: u64 = text[start..index].parse().map_err(|_| invalid())?;
        let unit_ms = if text[index..].starts_with("ms") {
            index += 2;
            1
        } else {
            let unit = *bytes.get(index).ok_or_else(invalid)?;
            index += 1;
            match unit {
                b's' => 1_000,
                b'm' => 60_000,
                b'h' => 3_600_000,
                _ => return Err(invalid()),
            }
        };
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|part| total_ms.checked_add(part))
            .ok_or_else(invalid)?;
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
