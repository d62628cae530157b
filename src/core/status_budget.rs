//! The size budget of a SafeDeployment's status. Status is written before anything else, so a
//! status too large to write (etcd refuses objects over about 1.5 MiB) would stop every step,
//! revert and event for good. Every decision's status is fitted into [`STATUS_BUDGET`] here,
//! whatever the spec, the history or the providers put into it: free text is bounded, and when
//! that is not enough, what only explains the past goes first (old measurements, old images,
//! old history), never what the rollout needs to stay safe (revisions in use, rejections of the
//! desired revision, handled request tokens).

use crate::api::SafeDeploymentStatus;

/// The most a status may take, serialised as JSON.
pub const STATUS_BUDGET: usize = 256 * 1024;
/// The most characters any free-text field of status keeps (messages, reasons, thresholds).
pub const MAX_TEXT: usize = 1024;
/// How many rejected revisions are remembered; older rejections are forgotten first.
pub const MAX_REJECTED: usize = 100;

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut with `…`.
pub fn bounded_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    format!("{}…", text.get(..end).unwrap_or_default())
}

fn bound(text: &mut String, max: usize) {
    if text.len() > max {
        *text = bounded_text(text, max);
    }
}

fn bound_opt(text: &mut Option<String>, max: usize) {
    if let Some(text) = text {
        bound(text, max);
    }
}

/// Serialised size of `status` in bytes.
pub fn size_of(status: &SafeDeploymentStatus) -> usize {
    serde_json::to_vec(status).map_or(usize::MAX, |bytes| bytes.len())
}

/// Bounds every free-text field of `status` to `max` bytes.
fn bound_texts(status: &mut SafeDeploymentStatus, max: usize) {
    bound_opt(&mut status.message, max);
    bound_opt(&mut status.step_display, max);
    for condition in &mut status.conditions {
        bound(&mut condition.message, max);
    }
    if let Some(attestation) = &mut status.attestation {
        bound(&mut attestation.message, max);
        bound(&mut attestation.reason, max);
    }
    for entry in &mut status.history {
        bound(&mut entry.reason, max);
    }
    for run in &mut status.analysis_runs {
        bound_opt(&mut run.message, max);
        for measurement in &mut run.measurements {
            bound_opt(&mut measurement.message, max);
            bound(&mut measurement.threshold, max);
        }
    }
    for measurement in &mut status.health {
        bound(&mut measurement.verdict, max);
    }
    if let Some(baseline) = &mut status.baseline {
        bound(&mut baseline.message, max);
    }
}

/// Keeps the newest `keep` measurements of each metric in every analysis run.
fn keep_measurements(status: &mut SafeDeploymentStatus, keep: usize) {
    for run in &mut status.analysis_runs {
        let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
        let mut kept = Vec::with_capacity(run.measurements.len());
        for measurement in run.measurements.drain(..).rev() {
            let count = seen.entry(measurement.metric.clone()).or_default();
            if *count < keep {
                *count = count.saturating_add(1);
                kept.push(measurement);
            }
        }
        kept.reverse();
        run.measurements = kept;
    }
}

/// Fits `status` into `budget` bytes. `protected` are the revision hashes in use (stable,
/// canary, desired): their records and rejections are never dropped. Returns the size after.
pub fn fit(status: &mut SafeDeploymentStatus, protected: &[&str], budget: usize) -> usize {
    // Always: bounded text, and a bounded memory of rejections (the desired revision's
    // rejection is kept whatever its age).
    bound_texts(status, MAX_TEXT);
    if status.rejected_revisions.len() > MAX_REJECTED {
        let excess = status.rejected_revisions.len().saturating_sub(MAX_REJECTED);
        let mut dropped = 0;
        status.rejected_revisions.retain(|hash| {
            if dropped < excess && !protected.contains(&hash.as_str()) {
                dropped = dropped.saturating_add(1);
                false
            } else {
                true
            }
        });
    }
    let mut size = size_of(status);
    if size <= budget {
        return size;
    }
    // Then, step by step, what only explains the past, until it fits.
    let steps: [&dyn Fn(&mut SafeDeploymentStatus); 9] = [
        &|s| keep_measurements(s, 3),
        &|s| {
            let keep_from = s.history.len().saturating_sub(3);
            for entry in s.history.iter_mut().take(keep_from) {
                entry.images.clear();
                entry.steps.clear();
            }
        },
        &|s| {
            for record in &mut s.revisions {
                if !protected.contains(&record.hash.as_str()) {
                    record.images.clear();
                    record.config.clear();
                }
            }
        },
        &|s| keep_measurements(s, 1),
        &|s| bound_texts(s, 256),
        &|s| {
            let excess = s.history.len().saturating_sub(5);
            s.history.drain(..excess);
        },
        &|s| {
            // Finished runs only explain; the running ones gate the canary and stay.
            s.analysis_runs.retain(|run| !run.phase.is_terminal());
        },
        &|s| {
            for run in &mut s.analysis_runs {
                run.measurements.clear();
            }
            for entry in &mut s.history {
                entry.images.clear();
                entry.steps.clear();
            }
        },
        &|s| {
            for record in &mut s.revisions {
                record.images.clear();
                record.config.clear();
            }
            bound_texts(s, 64);
        },
    ];
    for step in steps {
        step(status);
        size = size_of(status);
        if size <= budget {
            break;
        }
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::analysis::{AnalysisPhase, AnalysisRunStatus, Measurement, MetricVerdict};
    use crate::api::{HistoryEntry, RevisionRecord};

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(bounded_text("short", 10), "short");
        let cut = bounded_text(&"é".repeat(100), 11);
        assert!(cut.len() <= 11, "{cut}");
        assert!(cut.ends_with('…'));
        assert!(cut.starts_with("ééé"));
    }

    fn images(n: usize) -> crate::api::StatusMap {
        (0..n)
            .map(|i| {
                (
                    format!("component-{i:02}/container-{i:02}"),
                    format!(
                        "registry.example.com/team/app-{i}@sha256:{}",
                        "a".repeat(64)
                    ),
                )
            })
            .collect()
    }

    /// Far larger than anything admission allows: 100 revisions and 20 history entries with
    /// 512 images each, 33 runs of 16 metrics with 10 measurements of 2 KB messages,
    /// 10,000 rejections.
    fn oversized() -> SafeDeploymentStatus {
        let mut status = SafeDeploymentStatus {
            message: Some("m".repeat(100_000)),
            ..Default::default()
        };
        for n in 0..100 {
            status.revisions.push(RevisionRecord {
                number: n,
                hash: format!("hash{n}"),
                images: images(512),
                config: images(64),
            });
        }
        for n in 0..20 {
            status.history.push(HistoryEntry {
                revision: n,
                hash: format!("hash{n}"),
                images: images(512),
                outcome: crate::api::conditions::HistoryOutcome::Reverted.into(),
                reason: "r".repeat(10_000),
                started_at: "2026-01-01T00:00:00Z".into(),
                finished_at: None,
                actor: Some("a".repeat(256)),
                steps: (0..64)
                    .map(|step| crate::api::StepMark {
                        step,
                        weight: step,
                        at: "2026-01-01T00:00:00Z".into(),
                    })
                    .collect(),
            });
        }
        for run in 0..33 {
            let mut analysis = AnalysisRunStatus {
                template: format!("t{run}"),
                phase: if run == 32 {
                    AnalysisPhase::Running
                } else {
                    AnalysisPhase::Successful
                },
                ..Default::default()
            };
            for metric in 0..16 {
                for at in 0..10 {
                    analysis.measurements.push(Measurement {
                        metric: format!("metric-{metric}"),
                        value: Some(1.0),
                        threshold: "t".repeat(2000),
                        verdict: MetricVerdict::Pass,
                        at: format!("2026-01-01T00:00:{at:02}Z"),
                        message: Some("x".repeat(2000)),
                        ..Default::default()
                    });
                }
            }
            status.analysis_runs.push(analysis);
        }
        status.rejected_revisions = (0..10_000).map(|n| format!("rejected{n}")).collect();
        status
    }

    #[test]
    fn an_oversized_status_fits_and_keeps_what_safety_needs() {
        let mut status = oversized();
        status.rejected_revisions.insert(0, "desired".into());
        assert!(size_of(&status) > 10 * STATUS_BUDGET);
        let size = fit(&mut status, &["hash99", "desired"], STATUS_BUDGET);
        assert!(size <= STATUS_BUDGET, "{size} bytes");
        assert_eq!(size, size_of(&status));
        // Every revision record stays (numbers and garbage collection depend on them), the
        // running analysis stays, and the desired revision is still rejected.
        assert_eq!(status.revisions.len(), 100);
        assert!(status.analysis_runs.iter().any(|r| r.template == "t32"));
        assert!(status.rejected_revisions.contains(&"desired".to_string()));
        assert_eq!(status.rejected_revisions.len(), MAX_REJECTED);
        // The newest rejections are the ones remembered.
        assert_eq!(
            status.rejected_revisions.last().map(String::as_str),
            Some("rejected9999")
        );
    }

    #[test]
    fn a_status_within_budget_only_has_its_text_bounded() {
        let mut status = SafeDeploymentStatus {
            message: Some("m".repeat(5000)),
            ..Default::default()
        };
        status.revisions.push(RevisionRecord {
            number: 1,
            hash: "a".into(),
            images: images(3),
            ..Default::default()
        });
        let before = status.revisions.clone();
        fit(&mut status, &[], STATUS_BUDGET);
        assert_eq!(status.revisions, before);
        assert!(
            status
                .message
                .as_deref()
                .is_some_and(|m| m.len() <= MAX_TEXT)
        );
    }

    #[test]
    fn measurements_are_trimmed_to_the_newest_per_metric() {
        let mut status = SafeDeploymentStatus::default();
        let mut run = AnalysisRunStatus::default();
        for at in 0..5 {
            for metric in ["a", "b"] {
                run.measurements.push(Measurement {
                    metric: metric.into(),
                    at: format!("{at}"),
                    ..Default::default()
                });
            }
        }
        status.analysis_runs.push(run);
        keep_measurements(&mut status, 2);
        let kept: Vec<(String, String)> = status.analysis_runs[0]
            .measurements
            .iter()
            .map(|m| (m.metric.clone(), m.at.clone()))
            .collect();
        let expected: Vec<(String, String)> = [("a", "3"), ("b", "3"), ("a", "4"), ("b", "4")]
            .iter()
            .map(|(m, a)| (m.to_string(), a.to_string()))
            .collect();
        assert_eq!(kept, expected);
    }
}
