//! The text form of a replay's timeline: one line per event and measurement, then how it ended.

use std::fmt::Write as _;

use super::engine::{MeasurementEntry, Timeline, What};

/// A value as the timeline prints it.
fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "no value".to_string(), |v| format!("{v:.6}"))
}

fn measurement_line(m: &MeasurementEntry) -> String {
    let run = m
        .step
        .map_or_else(|| "background".to_string(), |s| format!("step {s}"));
    let mut line = format!(
        "{} ({run}) #{} {} = {}",
        m.template,
        m.number,
        m.metric,
        number(m.value)
    );
    if let Some(baseline) = m.baseline {
        let _ = write!(line, " (baseline {baseline:.6})");
    }
    if !m.threshold.is_empty() {
        let _ = write!(line, " [{}]", m.threshold);
    }
    let _ = write!(line, " -> {:?}", m.verdict);
    if let Some(score) = m.score {
        let _ = write!(line, ", score {score:.1}");
    }
    if let Some(message) = m.message.as_deref().filter(|t| !t.is_empty()) {
        let _ = write!(line, "; {message}");
    }
    line
}

/// The timeline for people.
pub fn text(timeline: &Timeline) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "replay of {}/{} from {} to {}",
        timeline.namespace, timeline.name, timeline.from, timeline.to
    );
    let _ = writeln!(
        out,
        "canary revision {}, stable revision {}",
        timeline.canary_revision, timeline.stable_revision
    );
    for assumption in &timeline.assumptions {
        let _ = writeln!(out, "  note: {assumption}");
    }
    out.push('\n');
    for entry in &timeline.entries {
        let body = match &entry.what {
            What::Event {
                reason,
                warning,
                note,
                step,
                weight,
            } => {
                let step = step.map_or_else(String::new, |s| format!("step {s}, "));
                let mark = if *warning { "!" } else { " " };
                format!("{mark}{reason} [now {step}weight {weight}%]: {note}")
            }
            What::Measurement(m) => format!("  {}", measurement_line(m)),
            What::RunEnded {
                template,
                phase,
                message,
            } => format!(" analysis {template} {phase}: {message}"),
        };
        let _ = writeln!(out, "{:>+9.3}s  {}  {body}", entry.offset_seconds, entry.at);
    }
    let outcome = &timeline.outcome;
    out.push('\n');
    let _ = writeln!(
        out,
        "outcome: {} at {} ({:+.3}s), phase {:?}, after {} measurements",
        outcome.result, outcome.at, outcome.offset_seconds, outcome.phase, outcome.measurements
    );
    let _ = writeln!(out, "  why: {}", outcome.reason);
    for m in &outcome.failing {
        let _ = writeln!(out, "  caused by: {}", measurement_line(m));
    }
    if outcome.provider_errors > 0 {
        let _ = writeln!(
            out,
            "  provider errors in {} measurements",
            outcome.provider_errors
        );
    }
    out
}
