//! Health gates on Kubernetes signals: measures restarts, failing containers, unready pods and
//! start-up latency of the canary pods against the baseline, and judges each value against its
//! target / acceptable / critical thresholds. What a pod and the gates are, and when a starting
//! pod counts as not Ready, is [`crate::api::health`], shared with the `kubernetes` metric
//! provider.

use jiff::Timestamp;

use crate::api::health::{EffectiveGates, PodView, baseline_startup_latency, startup_allowance};
use crate::api::{SignalMeasurement, Thresholds};

/// The judgement of one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// At or below target.
    Target,
    /// Above target, at or below acceptable: the step may advance.
    Acceptable,
    /// Above acceptable, below critical: the step holds.
    Marginal,
    /// At or above critical: revert at once.
    Critical,
}

impl Verdict {
    /// Every verdict, best first.
    pub const ALL: [Verdict; 4] = [
        Verdict::Target,
        Verdict::Acceptable,
        Verdict::Marginal,
        Verdict::Critical,
    ];

    /// The verdict a status shows as `name`, if any.
    pub fn parse(name: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == name)
    }

    /// The name shown in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Target => "Target",
            Verdict::Acceptable => "Acceptable",
            Verdict::Marginal => "Marginal",
            Verdict::Critical => "Critical",
        }
    }
}

/// Judges a lower-is-better value.
pub fn judge(value: f64, thresholds: &Thresholds) -> Verdict {
    if value.is_nan() || value >= thresholds.critical {
        Verdict::Critical
    } else if value > thresholds.acceptable {
        Verdict::Marginal
    } else if value > thresholds.target {
        Verdict::Acceptable
    } else {
        Verdict::Target
    }
}

/// The measured signals of the canary and the overall verdict (the worst one).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// One entry per signal.
    pub measurements: Vec<SignalMeasurement>,
    /// The worst verdict.
    pub worst: Verdict,
}

impl HealthReport {
    /// A readable summary of the signals at or above `at_least`, for status and events.
    pub fn describe(&self, at_least: Verdict) -> String {
        let parts: Vec<String> = self
            .measurements
            .iter()
            // A name status does not know ranks lowest, with `Target`.
            .filter(|m| Verdict::parse(&m.verdict).unwrap_or(Verdict::Target) >= at_least)
            .map(|m| {
                let baseline = m
                    .baseline
                    .map(|b| format!(", baseline {}", trim_number(b)))
                    .unwrap_or_default();
                format!(
                    "{} = {}{} ({}; target {}, acceptable {}, critical {})",
                    m.signal,
                    trim_number(m.value),
                    baseline,
                    m.verdict,
                    trim_number(m.thresholds.target),
                    trim_number(m.thresholds.acceptable),
                    trim_number(m.thresholds.critical)
                )
            })
            .collect();
        parts.join("; ")
    }
}

/// Formats a measured value without noise (`3`, `0.25`, `12.3`).
pub fn trim_number(value: f64) -> String {
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

/// Measures the canary pods' signals against the baseline pods.
///
/// `previous` is the last report in status: a measurement whose value and verdict did not change
/// keeps its timestamp, so that a reconcile with nothing new writes nothing.
pub fn assess(
    canary: &[&PodView],
    baseline: &[&PodView],
    gates: &EffectiveGates,
    previous: &[SignalMeasurement],
    now: Timestamp,
) -> HealthReport {
    let live: Vec<&&PodView> = canary.iter().filter(|p| !p.terminating).collect();
    let restarts: i32 = live.iter().map(|p| p.restarts).sum();
    let failing: i32 = live.iter().map(|p| p.failing_containers).sum();
    let baseline_latency = baseline_startup_latency(baseline, now);
    let slowest = live
        .iter()
        .map(|p| p.startup_latency_seconds(now))
        .fold(0.0_f64, f64::max);
    let extra_latency = (slowest - baseline_latency.unwrap_or(0.0)).max(0.0);
    let allowance = startup_allowance(baseline_latency, gates);
    let not_ready = live
        .iter()
        .filter(|p| !p.ready && p.startup_latency_seconds(now) > allowance)
        .count();
    // Latency is sampled to whole seconds so that a pod still starting does not rewrite status on
    // every reconcile.
    let signals = [
        ("restarts", f64::from(restarts), None, gates.restarts),
        (
            "failingContainers",
            f64::from(failing),
            None,
            gates.failing_containers,
        ),
        ("notReadyPods", not_ready as f64, None, gates.not_ready_pods),
        (
            "startupLatencySeconds",
            extra_latency.floor(),
            baseline_latency.map(|b| (b * 10.0).round() / 10.0),
            gates.startup_latency_seconds,
        ),
    ];
    let mut worst = Verdict::Target;
    let measurements = signals
        .into_iter()
        .map(|(signal, value, baseline, thresholds)| {
            let verdict = judge(value, &thresholds);
            worst = worst.max(verdict);
            let measured_at = previous
                .iter()
                .find(|m| {
                    m.signal == signal
                        && m.value == value
                        && m.baseline == baseline
                        && m.thresholds == thresholds
                        && m.verdict == verdict.as_str()
                })
                .map(|m| m.measured_at.clone())
                .unwrap_or_else(|| now.to_string());
            SignalMeasurement {
                signal: signal.to_string(),
                value,
                baseline,
                thresholds,
                verdict: verdict.as_str().to_string(),
                measured_at,
            }
        })
        .collect();
    HealthReport {
        measurements,
        worst,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::HealthGates;
    use crate::api::health::tests::{at, pod};

    fn value_of(report: &HealthReport, signal: &str) -> (f64, String) {
        let m = report
            .measurements
            .iter()
            .find(|m| m.signal == signal)
            .unwrap();
        (m.value, m.verdict.clone())
    }

    #[test]
    fn judge_orders_the_levels() {
        let t = Thresholds {
            target: 1.0,
            acceptable: 2.0,
            critical: 4.0,
        };
        assert_eq!(judge(0.5, &t), Verdict::Target);
        assert_eq!(judge(1.5, &t), Verdict::Acceptable);
        assert_eq!(judge(3.0, &t), Verdict::Marginal);
        assert_eq!(judge(4.0, &t), Verdict::Critical);
        assert_eq!(judge(f64::NAN, &t), Verdict::Critical);
    }

    #[test]
    fn a_single_restart_is_critical_by_default() {
        let mut canary = pod(0, Some(1));
        canary.restarts = 1;
        let gates = EffectiveGates::from_spec(None);
        let report = assess(&[&canary], &[], &gates, &[], at(5));
        assert_eq!(report.worst, Verdict::Critical);
        assert_eq!(value_of(&report, "restarts"), (1.0, "Critical".into()));
        assert!(
            report
                .describe(Verdict::Critical)
                .contains("restarts = 1 (Critical")
        );
    }

    #[test]
    fn healthy_canary_is_on_target() {
        let canary = pod(0, Some(1));
        let stable = pod(-100, Some(-99));
        let gates = EffectiveGates::from_spec(None);
        let report = assess(&[&canary], &[&stable], &gates, &[], at(5));
        assert_eq!(report.worst, Verdict::Target);
        assert_eq!(value_of(&report, "startupLatencySeconds").0, 0.0);
    }

    #[test]
    fn slow_start_is_measured_against_the_baseline() {
        let gates = EffectiveGates::from_spec(Some(&HealthGates {
            startup_latency_seconds: Some(Thresholds {
                target: 2.0,
                acceptable: 4.0,
                critical: 8.0,
            }),
            ..Default::default()
        }));
        let stable = pod(-100, Some(-98)); // baseline: 2 s
        let starting = pod(0, None);
        let early = assess(&[&starting], &[&stable], &gates, &[], at(5));
        assert_eq!(
            value_of(&early, "startupLatencySeconds"),
            (3.0, "Acceptable".into())
        );
        let late = assess(&[&starting], &[&stable], &gates, &[], at(11));
        assert_eq!(
            value_of(&late, "startupLatencySeconds"),
            (9.0, "Critical".into())
        );
        // Past the allowance (baseline + critical = 10 s) the unready pod counts too.
        assert_eq!(value_of(&late, "notReadyPods"), (1.0, "Critical".into()));
        assert_eq!(value_of(&early, "notReadyPods"), (0.0, "Target".into()));
    }

    #[test]
    fn unchanged_measurements_keep_their_timestamp() {
        let canary = pod(0, Some(1));
        let gates = EffectiveGates::from_spec(None);
        let first = assess(&[&canary], &[], &gates, &[], at(5));
        let second = assess(&[&canary], &[], &gates, &first.measurements, at(9));
        assert_eq!(first.measurements, second.measurements);
    }

    #[test]
    fn terminating_pods_do_not_count() {
        let mut gone = pod(0, Some(1));
        gone.restarts = 3;
        gone.terminating = true;
        let report = assess(&[&gone], &[], &EffectiveGates::from_spec(None), &[], at(5));
        assert_eq!(report.worst, Verdict::Target);
    }
}
