//! The readings of `spec.health` and of pods that both wings share: a pod as the health gates
//! see it ([`PodView`]), the gates with their defaults filled in ([`EffectiveGates`]), and the
//! start-up allowance that decides when a pod still starting counts as not Ready. The rollout
//! decision (`core::health` judges the canary with the built-in gates) and the `kubernetes`
//! metric provider (`analysis::signals` measures the same signals in an analysis) must read them
//! alike, so they live on the floor both import.
//!
//! The controller builds the pods from its cache; tenants' pods and thresholds flow through here
//! inside every reconcile, so it is declared [`panic_free`],
//! as [`crate::core`] is.

use jiff::Timestamp;

use super::{HealthGates, Thresholds};

/// Container states that mean a canary is broken.
pub const FAILING_REASONS: [&str; 6] = [
    "CrashLoopBackOff",
    "OOMKilled",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

/// What the health gates need to know of one pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    /// Pod name.
    pub name: String,
    /// Revision hash label.
    pub revision: String,
    /// Component label.
    pub component: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Whether the Ready condition is True.
    pub ready: bool,
    /// When the Ready condition last turned True, if it is True.
    pub ready_at: Option<Timestamp>,
    /// Container restarts summed over the pod's containers, counting a container that exited
    /// with an error and is not started again yet.
    pub restarts: i32,
    /// Containers in one of [`FAILING_REASONS`] (waiting, or last terminated as OOMKilled).
    pub failing_containers: i32,
    /// The pod is being deleted.
    pub terminating: bool,
}

impl PodView {
    /// Creation-to-Ready latency in seconds; a pod not Ready yet counts with its age.
    pub fn startup_latency_seconds(&self, now: Timestamp) -> f64 {
        let until = if self.ready {
            self.ready_at.unwrap_or(now)
        } else {
            now
        };
        seconds_between(self.created_at, until)
    }
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    let millis = to.as_millisecond().saturating_sub(from.as_millisecond());
    (millis.max(0) as f64) / 1000.0
}

/// Thresholds with their defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectiveGates {
    /// Restarts.
    pub restarts: Thresholds,
    /// Failing containers.
    pub failing_containers: Thresholds,
    /// Unready pods.
    pub not_ready_pods: Thresholds,
    /// Extra start-up latency over the baseline, seconds.
    pub startup_latency_seconds: Thresholds,
}

const ZERO_TOLERANCE: Thresholds = Thresholds {
    target: 0.0,
    acceptable: 0.0,
    critical: 1.0,
};

impl EffectiveGates {
    /// The spec's gates, with defaults for what it leaves out.
    pub fn from_spec(gates: Option<&HealthGates>) -> Self {
        let pick = |value: Option<Thresholds>, default: Thresholds| value.unwrap_or(default);
        let gates = gates.cloned().unwrap_or_default();
        EffectiveGates {
            restarts: pick(gates.restarts, ZERO_TOLERANCE),
            failing_containers: pick(gates.failing_containers, ZERO_TOLERANCE),
            not_ready_pods: pick(gates.not_ready_pods, ZERO_TOLERANCE),
            startup_latency_seconds: pick(
                gates.startup_latency_seconds,
                Thresholds {
                    target: 10.0,
                    acceptable: 30.0,
                    critical: 60.0,
                },
            ),
        }
    }
}

/// The median start-up latency of the baseline's Ready pods, if any is Ready.
pub fn baseline_startup_latency(baseline: &[&PodView], now: Timestamp) -> Option<f64> {
    median(
        baseline
            .iter()
            .filter(|p| p.ready && !p.terminating)
            .map(|p| p.startup_latency_seconds(now))
            .collect(),
    )
}

/// How old a pod may be before "not Ready" counts against it: the baseline's start-up latency
/// plus the critical start-up latency, so a slow start is judged by the start-up latency signal
/// with its own thresholds, not as an unready pod.
pub fn startup_allowance(baseline_latency: Option<f64>, gates: &EffectiveGates) -> f64 {
    baseline_latency.unwrap_or(0.0) + gates.startup_latency_seconds.critical
}

/// The median of `values`, None when there are none.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    let upper = *values.get(middle)?;
    Some(if values.len().is_multiple_of(2) {
        let lower = *values.get(middle.checked_sub(1)?)?;
        (lower + upper) / 2.0
    } else {
        upper
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A time `seconds` after a fixed instant.
    pub(crate) fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    /// A pod of revision `r` created at `at(created)`, Ready from `at(ready_at)` if given.
    pub(crate) fn pod(created: i64, ready_at: Option<i64>) -> PodView {
        PodView {
            name: format!("pod-{created}"),
            revision: "r".into(),
            component: "main".into(),
            created_at: at(created),
            ready: ready_at.is_some(),
            ready_at: ready_at.map(at),
            restarts: 0,
            failing_containers: 0,
            terminating: false,
        }
    }

    #[test]
    fn start_up_latency_counts_a_starting_pod_with_its_age() {
        assert_eq!(pod(0, Some(3)).startup_latency_seconds(at(10)), 3.0);
        assert_eq!(pod(0, None).startup_latency_seconds(at(10)), 10.0);
        // A clock behind the pod's creation counts zero, not a negative latency.
        assert_eq!(pod(10, None).startup_latency_seconds(at(0)), 0.0);
    }

    #[test]
    fn the_allowance_is_the_baseline_plus_the_critical_start_up() {
        let gates = EffectiveGates::from_spec(None);
        assert_eq!(gates.restarts.critical, 1.0);
        assert_eq!(gates.startup_latency_seconds.critical, 60.0);
        let baseline = [pod(0, Some(2)), pod(0, Some(4)), pod(0, None)];
        let baseline: Vec<&PodView> = baseline.iter().collect();
        let latency = baseline_startup_latency(&baseline, at(100));
        assert_eq!(latency, Some(3.0), "the Ready pods' median");
        assert_eq!(startup_allowance(latency, &gates), 63.0);
        assert_eq!(startup_allowance(None, &gates), 60.0);
    }

    #[test]
    fn median_of_odd_even_and_no_values() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }
}
