//! Plain-text views of SafeDeployments for the plugin: the list table, the status view (steps,
//! weights, signals against thresholds, attestation, analysis) and the history.

use std::fmt::Write;

use kube::ResourceExt;

use crate::api::{CanaryStep, SafeDeployment, SafeDeploymentRecord};
use crate::core::health::trim_number;

/// `NAME PHASE STABLE CANARY WEIGHT STEP`.
pub fn table(items: &[SafeDeployment]) -> String {
    let mut out = format!(
        "{:<24} {:<13} {:<12} {:<12} {:>6}  {}\n",
        "NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "STEP"
    );
    for sd in items {
        let status = sd.status.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<24} {:<13} {:<12} {:<12} {:>6}  {}",
            sd.name_any(),
            format!("{:?}", status.phase),
            status.stable_revision.unwrap_or_else(|| "-".into()),
            status.canary_revision.unwrap_or_else(|| "-".into()),
            status.canary_weight,
            status.step_display.unwrap_or_else(|| "-".into()),
        );
    }
    out
}

fn describe(step: &CanaryStep) -> String {
    if let Some(weight) = step.set_weight {
        format!("setWeight {weight}%")
    } else if let Some(pause) = &step.pause {
        match &pause.duration {
            Some(duration) => format!("pause {duration}"),
            None => "pause (until promoted)".into(),
        }
    } else if let Some(analysis) = &step.analysis {
        format!("analysis {}", analysis.template)
    } else {
        "?".into()
    }
}

/// The detailed, readable status of one rollout.
pub fn status(sd: &SafeDeployment) -> String {
    let status = sd.status.clone().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "SafeDeployment {}/{}",
        sd.namespace().unwrap_or_default(),
        sd.name_any()
    );
    let _ = writeln!(out, "  Phase:    {:?}", status.phase);
    if let Some(message) = &status.message {
        let _ = writeln!(out, "  Message:  {message}");
    }
    let number = |hash: &Option<String>| {
        hash.as_ref().map_or("-".to_string(), |h| {
            let n = status
                .revisions
                .iter()
                .find(|r| &r.hash == h)
                .map(|r| r.number);
            n.map_or(h.clone(), |n| format!("{h} (revision {n})"))
        })
    };
    let _ = writeln!(out, "  Stable:   {}", number(&status.stable_revision));
    let _ = writeln!(out, "  Canary:   {}", number(&status.canary_revision));
    let _ = writeln!(
        out,
        "  Weight:   canary {}% / stable {}%",
        status.canary_weight,
        100 - status.canary_weight
    );
    if let Some(baseline) = &status.baseline {
        let _ = writeln!(
            out,
            "  Baseline: fresh, {} ({}/{} available) — {}",
            baseline.selector, baseline.ready, baseline.replicas, baseline.message
        );
    }
    if let Some(freeze) = &status.freeze {
        let _ = writeln!(out, "  Freeze:   {}", describe_freeze(freeze));
    }
    if let Some(attestation) = &status.attestation {
        let mark = if attestation.verified { "✔" } else { "✖" };
        let _ = writeln!(
            out,
            "  Attested: {mark} {} — {}",
            attestation.reason, attestation.message
        );
    }
    if let Some(action) = status.history.iter().rev().find(|e| e.actor.is_some()) {
        let _ = writeln!(
            out,
            "  Last action: {} by {} at {}",
            action.outcome,
            action.actor.as_deref().unwrap_or_default(),
            to_second(action.finished_at.as_deref().unwrap_or(&action.started_at))
        );
    }
    let _ = writeln!(out, "\n  Steps:");
    let current = status
        .current_step_index
        .and_then(|i| usize::try_from(i).ok());
    for (index, step) in sd.spec.strategy.canary.steps.iter().enumerate() {
        let marker = match current {
            Some(c) if status.canary_revision.is_some() && c == index => "▶",
            Some(c) if status.canary_revision.is_some() && c > index => "✔",
            _ => " ",
        };
        let _ = writeln!(out, "    {marker} {}. {}", index + 1, describe(step));
    }
    if !status.health.is_empty() {
        let _ = writeln!(out, "\n  Health signals (canary):");
        let _ = writeln!(
            out,
            "    {:<24} {:>8} {:>9} {:>7} {:>10} {:>8}  VERDICT",
            "SIGNAL", "VALUE", "BASELINE", "TARGET", "ACCEPTABLE", "CRITICAL"
        );
        for m in &status.health {
            let _ = writeln!(
                out,
                "    {:<24} {:>8} {:>9} {:>7} {:>10} {:>8}  {}",
                m.signal,
                trim_number(m.value),
                m.baseline.map_or("-".into(), trim_number),
                trim_number(m.thresholds.target),
                trim_number(m.thresholds.acceptable),
                trim_number(m.thresholds.critical),
                m.verdict
            );
        }
    }
    if !status.analysis_runs.is_empty() {
        // Without a canary these are the runs of the last one, kept to explain how it ended.
        let last = status
            .analysis_runs
            .iter()
            .find_map(|r| r.canary_revision.as_deref())
            .filter(|_| status.canary_revision.is_none())
            .map(|c| format!(" (last canary {c})"))
            .unwrap_or_default();
        let _ = writeln!(out, "\n  Analysis{last}:");
        for run in &status.analysis_runs {
            let step = run
                .step_index
                .map_or("background".to_string(), |i| format!("step {}", i + 1));
            let score = run.score.map_or("-".to_string(), trim_number);
            let _ = writeln!(
                out,
                "    {} ({step}): {:?}, {} measurement(s), score {score}{}",
                run.template,
                run.phase,
                run.measurement_count,
                run.message
                    .as_ref()
                    .map(|m| format!(" — {m}"))
                    .unwrap_or_default()
            );
            // The latest measurement of each metric: value against its threshold, and verdict.
            let mut latest: Vec<&crate::api::analysis::Measurement> = Vec::new();
            for measurement in run.measurements.iter().rev() {
                if !latest.iter().any(|m| m.metric == measurement.metric) {
                    latest.push(measurement);
                }
            }
            latest.reverse();
            for m in latest {
                let _ = writeln!(
                    out,
                    "      {:<22} {:>10} {:>10}  {:<10} {}",
                    m.metric,
                    m.value.map_or("-".into(), trim_number),
                    m.baseline.map_or("-".into(), trim_number),
                    format!("{:?}", m.verdict),
                    m.threshold
                );
            }
        }
    }
    let _ = writeln!(out, "\n  Conditions:");
    for condition in &status.conditions {
        let _ = writeln!(
            out,
            "    {:<12} {:<5} {}",
            condition.type_, condition.status, condition.reason
        );
    }
    out
}

/// The rollout history, oldest first.
pub fn history(sd: &SafeDeployment) -> String {
    let status = sd.status.clone().unwrap_or_default();
    let mut out = format!(
        "{:<9} {:<12} {:<15} {:<26} {:<26} {:<16} {}\n",
        "REVISION", "HASH", "OUTCOME", "STARTED", "FINISHED", "BY", "REASON"
    );
    for entry in &status.history {
        let _ = writeln!(
            out,
            "{:<9} {:<12} {:<15} {:<26} {:<26} {:<16} {}",
            entry.revision,
            entry.hash,
            entry.outcome,
            to_second(&entry.started_at),
            entry
                .finished_at
                .as_deref()
                .map_or_else(|| "-".into(), to_second),
            entry.actor.as_deref().unwrap_or("-"),
            entry.reason
        );
    }
    out
}

/// The durable records (`SafeDeploymentRecord`), oldest first, with the measured values that
/// decided each.
pub fn records(records: &[SafeDeploymentRecord]) -> String {
    let mut out = format!(
        "\nDurable records (SafeDeploymentRecord, {}):\n{:<9} {:<12} {:<20} {:<26} {:<16} {}\n",
        records.len(),
        "REVISION",
        "HASH",
        "OUTCOME",
        "FINISHED",
        "BY",
        "REASON"
    );
    for record in records {
        let spec = &record.spec;
        let _ = writeln!(
            out,
            "{:<9} {:<12} {:<20} {:<26} {:<16} {}",
            spec.revision,
            spec.hash,
            spec.outcome,
            to_second(&spec.finished_at),
            spec.actor.as_deref().unwrap_or("-"),
            spec.reason
        );
        for measurement in &spec.measurements {
            let _ = writeln!(out, "          {measurement}");
        }
    }
    out
}

/// The active freeze (or the next one, or a break-glass override), in one line.
fn describe_freeze(freeze: &crate::api::freeze::FreezeStatus) -> String {
    let when = |t: &Option<String>| t.as_deref().map_or("-".to_string(), to_second);
    let reason = freeze
        .reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    match (&freeze.break_glass, freeze.active) {
        (Some(by), _) => format!(
            "{}{reason} until {}, lifted by break-glass: {by}",
            freeze.window,
            when(&freeze.end)
        ),
        (None, true) => format!(
            "FROZEN by {}{reason} until {}: no new canary, step or promotion; reverts go on",
            freeze.window,
            when(&freeze.end)
        ),
        (None, false) => format!(
            "next {}{reason} from {} to {}",
            freeze.window,
            when(&freeze.start),
            when(&freeze.end)
        ),
    }
}

/// An RFC 3339 time to the second (status keeps nanoseconds), for aligned columns.
fn to_second(time: &str) -> String {
    match time.parse::<jiff::Timestamp>() {
        Ok(t) => {
            let second = jiff::TimestampRound::new()
                .smallest(jiff::Unit::Second)
                .mode(jiff::RoundMode::Trunc);
            t.round(second)
                .map_or_else(|_| time.to_string(), |t| t.to_string())
        }
        Err(_) => time.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        CanaryStrategy, HistoryEntry, Phase, SafeDeploymentSpec, SafeDeploymentStatus,
        SignalMeasurement, Strategy, Thresholds,
    };

    fn sample() -> SafeDeployment {
        let mut sd = SafeDeployment::new(
            "web",
            SafeDeploymentSpec {
                strategy: Strategy {
                    canary: CanaryStrategy {
                        steps: vec![
                            CanaryStep {
                                set_weight: Some(25),
                                ..Default::default()
                            },
                            CanaryStep {
                                set_weight: Some(50),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    },
                    blue_green: None,
                },
                ..Default::default()
            },
        );
        sd.status = Some(SafeDeploymentStatus {
            phase: Phase::Progressing,
            canary_revision: Some("bbb".into()),
            stable_revision: Some("aaa".into()),
            current_step_index: Some(1),
            canary_weight: 50,
            health: vec![SignalMeasurement {
                signal: "restarts".into(),
                value: 0.0,
                baseline: None,
                thresholds: Thresholds {
                    target: 0.0,
                    acceptable: 0.0,
                    critical: 1.0,
                },
                verdict: "Target".into(),
                measured_at: "now".into(),
            }],
            history: vec![
                HistoryEntry {
                    revision: 2,
                    hash: "bbb".into(),
                    outcome: "InProgress".into(),
                    started_at: "t0".into(),
                    ..Default::default()
                },
                HistoryEntry {
                    revision: 2,
                    hash: "bbb".into(),
                    outcome: "Paused".into(),
                    started_at: "t1".into(),
                    finished_at: Some("t1".into()),
                    actor: Some("alice@example.com".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        sd
    }

    #[test]
    fn status_shows_steps_signals_and_weights() {
        let text = status(&sample());
        assert!(text.contains("✔ 1. setWeight 25%"), "{text}");
        assert!(text.contains("▶ 2. setWeight 50%"), "{text}");
        assert!(text.contains("canary 50% / stable 50%"));
        assert!(text.contains("restarts"));
    }

    #[test]
    fn status_shows_each_metric_against_its_threshold() {
        use crate::api::analysis::{AnalysisPhase, AnalysisRunStatus, Measurement, MetricVerdict};
        let mut sd = sample();
        if let Some(status) = sd.status.as_mut() {
            let measurement = |value: f64, verdict: MetricVerdict, at: &str| Measurement {
                metric: "error-ratio".into(),
                value: Some(value),
                baseline: None,
                threshold: "target 0.005, acceptable 0.01, critical 0.02".into(),
                verdict,
                at: at.into(),
                message: None,
                outliers_removed: None,
                traffic: None,
            };
            status.analysis_runs = vec![AnalysisRunStatus {
                template: "errors".into(),
                phase: AnalysisPhase::Running,
                step_index: None,
                measurement_count: 2,
                measurements: vec![
                    measurement(0.001, MetricVerdict::Pass, "t1"),
                    measurement(0.05, MetricVerdict::Critical, "t2"),
                ],
                ..Default::default()
            }];
        }
        let text = status(&sd);
        assert!(
            text.contains("errors (background): Running, 2 measurement(s)"),
            "{text}"
        );
        assert!(text.contains("0.05"), "{text}");
        assert!(text.contains("Critical"), "{text}");
        assert!(text.contains("critical 0.02"), "{text}");
        assert!(
            !text.contains("0.001 "),
            "only the latest measurement per metric: {text}"
        );
        // After the canary ended (reverted here), its runs are labelled as the last canary's.
        if let Some(status) = sd.status.as_mut() {
            status.canary_revision = None;
            status.analysis_runs[0].canary_revision = Some("bbb".into());
        }
        let text = status(&sd);
        assert!(text.contains("Analysis (last canary bbb):"), "{text}");
    }

    #[test]
    fn status_shows_the_fresh_baseline() {
        let mut sd = sample();
        assert!(!status(&sd).contains("Baseline:"));
        if let Some(s) = sd.status.as_mut() {
            s.baseline = Some(crate::api::BaselineStatus {
                revision: "aaa".into(),
                selector: "aaa-baseline".into(),
                replicas: 2,
                ready: 1,
                restarts: 0,
                message: "baseline starting: 1 of 2 pods available".into(),
            });
        }
        let text = status(&sd);
        assert!(
            text.contains("Baseline: fresh, aaa-baseline (1/2 available) — baseline starting"),
            "{text}"
        );
    }

    #[test]
    fn status_shows_the_active_or_next_freeze() {
        let mut sd = sample();
        assert!(!status(&sd).contains("Freeze:"));
        let freeze = |active: bool, break_glass: Option<&str>| crate::api::freeze::FreezeStatus {
            active,
            window: "year-end".into(),
            reason: Some("change freeze".into()),
            start: Some("2026-12-24T00:00:00.123Z".into()),
            end: Some("2027-01-02T00:00:00Z".into()),
            break_glass: break_glass.map(Into::into),
        };
        let mut shown = |f| {
            if let Some(s) = sd.status.as_mut() {
                s.freeze = Some(f);
            }
            status(&sd)
        };
        assert!(
            shown(freeze(true, None)).contains(
                "Freeze:   FROZEN by year-end (change freeze) until 2027-01-02T00:00:00Z"
            )
        );
        assert!(shown(freeze(false, None)).contains(
            "Freeze:   next year-end (change freeze) from 2026-12-24T00:00:00Z to 2027-01-02T00:00:00Z"
        ));
        assert!(
            shown(freeze(
                false,
                Some("alice: hotfix (until 2026-12-24T02:00:00Z)")
            ))
            .contains("lifted by break-glass: alice: hotfix")
        );
    }

    #[test]
    fn table_and_history_list_every_item() {
        let table = table(&[sample()]);
        assert!(table.lines().nth(1).unwrap().starts_with("web"));
        assert!(history(&sample()).contains("InProgress"));
    }

    #[test]
    fn history_and_status_name_who_asked_for_a_manual_action() {
        let history = history(&sample());
        let paused = history
            .lines()
            .find(|l| l.contains("Paused"))
            .unwrap_or_default();
        assert!(paused.contains("alice@example.com"), "{history}");
        let in_progress = history
            .lines()
            .find(|l| l.contains("InProgress"))
            .unwrap_or_default();
        assert!(!in_progress.contains("alice"), "{history}");
        let text = status(&sample());
        assert!(
            text.contains("Last action: Paused by alice@example.com at t1"),
            "{text}"
        );
    }

    #[test]
    fn times_are_cut_to_the_second() {
        assert_eq!(
            to_second("2026-12-01T19:20:00.99974282Z"),
            "2026-12-01T19:20:00Z"
        );
        assert_eq!(to_second("not a time"), "not a time");
    }
}
