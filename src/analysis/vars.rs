//! Substitution of `{{revision}}`, `{{canary}}`, `{{stable}}`, `{{baseline}}`, `{{namespace}}`,
//! `{{name}}` and the time variables (`{{windowStart}}`, `{{nowUnix}}`, `{{stepStartUnixMs}}`,
//! ...) in PromQL queries, URLs and request bodies. Pure text work: the times are handed in
//! (the measurement's instant, simulated in a replay), never read from a clock here.

use jiff::{SignedDuration, Timestamp};

/// The values a query may refer to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryVars {
    /// Hash of the canary revision.
    pub canary: String,
    /// Hash of the stable revision.
    pub stable: String,
    /// What selects the baseline: the stable hash with `baseline: Stable` (the default), and
    /// `<stable hash>-baseline`, the revision label of the fresh baseline's pods, with `Fresh`.
    pub baseline: String,
    /// Namespace of the SafeDeployment.
    pub namespace: String,
    /// Name of the SafeDeployment.
    pub name: String,
    /// When the current canary step started (`status.stepStartedAt`); `None` between steps,
    /// where `{{stepStart}}` and its forms refuse to render.
    pub step_start: Option<Timestamp>,
    /// The measurement window, set by the providers for each measurement
    /// ([`QueryVars::measured_at`]); `None` outside a measurement.
    pub window: Option<Window>,
}

/// The time span a measurement looks at: from one interval (or the metric's range window)
/// before the measurement up to its instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start of the window.
    pub start: Timestamp,
    /// End of the window: the measurement's instant (`{{now}}`).
    pub end: Timestamp,
}

impl QueryVars {
    /// These variables with the window of a measurement at `now` looking back `length`. A length
    /// that does not fit (before year -9999) starts the window at `now`.
    pub fn measured_at(&self, now: Timestamp, length: std::time::Duration) -> QueryVars {
        let start = SignedDuration::try_from(length)
            .ok()
            .and_then(|length| now.checked_sub(length).ok())
            .unwrap_or(now);
        QueryVars {
            window: Some(Window { start, end: now }),
            ..self.clone()
        }
    }
}

/// `status.stepStartedAt` as an instant for `{{stepStart}}`; absent or unreadable is no step.
pub fn parse_step_start(recorded: Option<&str>) -> Option<Timestamp> {
    recorded.and_then(|text| text.parse().ok())
}

/// Which side a query measures; `{{revision}}` becomes that side's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The canary revision.
    Canary,
    /// The baseline revision.
    Baseline,
}

/// The names `render` knows, for messages and documentation.
pub const KNOWN_VARIABLES: &str = "revision, canary, stable, baseline, namespace, name, \
now, windowStart, windowEnd, stepStart (each time also as <name>Unix and <name>UnixMs)";

/// A text whose placeholders cannot be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarsError {
    /// `{{x}}` names no known variable.
    #[error("unknown variable {{{{{0}}}}}; known: {KNOWN_VARIABLES}")]
    Unknown(String),
    /// `{{` without a closing `}}`.
    #[error("'{{{{' without a closing '}}}}'")]
    Unclosed,
    /// A time variable with no value at this point (`{{stepStart}}` between steps, a window
    /// variable outside a measurement).
    #[error("{{{{{0}}}}} has no value here: {1}")]
    Unset(String, &'static str),
}

/// How a time variable is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeFormat {
    /// RFC 3339 in UTC, e.g. `2026-03-01T12:00:00Z`.
    Rfc3339,
    /// Whole seconds since the Unix epoch (floor).
    UnixSeconds,
    /// Milliseconds since the Unix epoch (floor).
    UnixMillis,
}

/// Splits `windowStartUnixMs` into (`windowStart`, UnixMillis); `None` if not a time variable.
fn time_variable(key: &str) -> Option<(&str, TimeFormat)> {
    let (base, format) = if let Some(base) = key.strip_suffix("UnixMs") {
        (base, TimeFormat::UnixMillis)
    } else if let Some(base) = key.strip_suffix("Unix") {
        (base, TimeFormat::UnixSeconds)
    } else {
        (key, TimeFormat::Rfc3339)
    };
    matches!(base, "now" | "windowStart" | "windowEnd" | "stepStart").then_some((base, format))
}

fn format_time(at: Timestamp, format: TimeFormat) -> String {
    match format {
        // Whole seconds when the instant has none (the common case, and what most APIs expect).
        TimeFormat::Rfc3339 => at.to_string(),
        TimeFormat::UnixSeconds => at.as_second().to_string(),
        TimeFormat::UnixMillis => at.as_millisecond().to_string(),
    }
}

fn time_value(key: &str, vars: &QueryVars) -> Result<Option<String>, VarsError> {
    let Some((base, format)) = time_variable(key) else {
        return Ok(None);
    };
    let at = match base {
        "stepStart" => vars.step_start.ok_or_else(|| {
            VarsError::Unset(key.to_string(), "no canary step is running (stepStartedAt)")
        })?,
        _ => {
            let window = vars.window.ok_or_else(|| {
                VarsError::Unset(key.to_string(), "only a measurement has a window")
            })?;
            if base == "windowStart" {
                window.start
            } else {
                window.end
            }
        }
    };
    Ok(Some(format_time(at, format)))
}

/// Replaces every `{{variable}}` (spaces inside the braces allowed) in `text`.
pub fn render(text: &str, vars: &QueryVars, side: Side) -> Result<String, VarsError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((before, after)) = rest.split_once("{{") {
        out.push_str(before);
        let (key, after_close) = after.split_once("}}").ok_or(VarsError::Unclosed)?;
        let key = key.trim();
        let value = match key {
            "revision" => match side {
                Side::Canary => &vars.canary,
                Side::Baseline => &vars.baseline,
            },
            "canary" => &vars.canary,
            "stable" => &vars.stable,
            "baseline" => &vars.baseline,
            "namespace" => &vars.namespace,
            "name" => &vars.name,
            other => match time_value(other, vars)? {
                Some(time) => {
                    out.push_str(&time);
                    rest = after_close;
                    continue;
                }
                None => return Err(VarsError::Unknown(other.to_string())),
            },
        };
        out.push_str(value);
        rest = after_close;
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> QueryVars {
        QueryVars {
            canary: "c4n4ry".into(),
            stable: "st4bl3".into(),
            baseline: "b4s3".into(),
            namespace: "shop".into(),
            name: "checkout".into(),
            ..QueryVars::default()
        }
    }

    #[test]
    fn substitutes_every_variable() {
        let text = r#"sum(rate(x{ns="{{namespace}}",app="{{ name }}",rev="{{revision}}"}[1m])) / {{canary}}-{{stable}}-{{baseline}}"#;
        assert_eq!(
            render(text, &vars(), Side::Canary).as_deref(),
            Ok(r#"sum(rate(x{ns="shop",app="checkout",rev="c4n4ry"}[1m])) / c4n4ry-st4bl3-b4s3"#)
        );
        assert_eq!(
            render("rev={{revision}}", &vars(), Side::Baseline).as_deref(),
            Ok("rev=b4s3")
        );
    }

    #[test]
    fn leaves_single_braces_alone_and_rejects_unknown_or_unclosed() {
        assert_eq!(
            render("x{a=\"1\"}", &vars(), Side::Canary).as_deref(),
            Ok("x{a=\"1\"}")
        );
        assert_eq!(
            render("{{pod}}", &vars(), Side::Canary),
            Err(VarsError::Unknown("pod".into()))
        );
        assert_eq!(
            render("{{name", &vars(), Side::Canary),
            Err(VarsError::Unclosed)
        );
        assert!(
            VarsError::Unknown("pod".into())
                .to_string()
                .contains("{{pod}}")
        );
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn time_variables_follow_the_window_handed_in() {
        let now = at("2026-03-01T12:00:00.250Z");
        let vars = QueryVars {
            step_start: Some(at("2026-03-01T11:50:00Z")),
            ..vars()
        }
        .measured_at(now, std::time::Duration::from_secs(300));
        let text = "from={{windowStartUnix}}&to={{ windowEndUnix }}&ms={{windowStartUnixMs}}-{{nowUnixMs}}\
            &iso={{windowStart}}/{{windowEnd}}/{{now}}&step={{stepStart}},{{stepStartUnix}},{{stepStartUnixMs}}&n={{nowUnix}}";
        assert_eq!(
            render(text, &vars, Side::Canary).unwrap(),
            "from=1772366100&to=1772366400&ms=1772366100250-1772366400250\
            &iso=2026-03-01T11:55:00.25Z/2026-03-01T12:00:00.25Z/2026-03-01T12:00:00.25Z\
            &step=2026-03-01T11:50:00Z,1772365800,1772365800000&n=1772366400"
        );
        // Another instant (a replay's simulated one) gives other values from the same text.
        let later = vars.measured_at(at("2027-01-01T00:00:00Z"), std::time::Duration::ZERO);
        assert_eq!(
            render("{{windowStartUnix}}-{{nowUnix}}", &later, Side::Baseline).unwrap(),
            "1798761600-1798761600"
        );
    }

    #[test]
    fn time_variables_without_a_value_are_refused_not_left_empty() {
        let error = render("from={{windowStartUnix}}", &vars(), Side::Canary).unwrap_err();
        assert_eq!(
            error,
            VarsError::Unset("windowStartUnix".into(), "only a measurement has a window")
        );
        let measured = vars().measured_at(at("2026-03-01T12:00:00Z"), std::time::Duration::ZERO);
        let error = render("{{stepStartUnixMs}}", &measured, Side::Canary).unwrap_err();
        assert!(error.to_string().contains("{{stepStartUnixMs}} has no value"));
        // Near-misses of a time variable are unknown, not silently some other time.
        for near in ["nowUnixS", "windowstart", "Unix", "stepStartMs", "nowUnixMsUnix"] {
            assert_eq!(
                render(&format!("{{{{{near}}}}}"), &measured, Side::Canary),
                Err(VarsError::Unknown(near.into())),
                "{near}"
            );
        }
    }

    #[test]
    fn a_window_longer_than_time_starts_at_now() {
        let now = at("2026-03-01T12:00:00Z");
        let vars = vars().measured_at(now, std::time::Duration::from_secs(u64::MAX));
        assert_eq!(vars.window, Some(Window { start: now, end: now }));
    }
}
