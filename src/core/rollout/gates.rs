//! What may hold or revert a canary besides its steps: the health report of its pods, the
//! analyses it depends on (the current step's and the background one), and the progress
//! deadline a held step runs against.

use std::time::Duration;

use jiff::Timestamp;

use super::{DEFAULT_PROGRESS_DEADLINE, Planner};
use crate::api::gates::AnalysisGate;
use crate::api::health::{EffectiveGates, PodView};
use crate::core::health::{HealthReport, assess};
use crate::core::revision::baseline_selector;

impl Planner<'_> {
    /// The canary's health report, and in how many seconds a still-starting pod would cross a
    /// threshold by time alone (so the controller looks again then).
    pub(super) fn assess_canary(&self, canary: &str, stable: &str) -> (HealthReport, Option<f64>) {
        let canary_pods: Vec<&PodView> = self
            .obs
            .pods
            .iter()
            .filter(|p| p.revision == canary)
            .collect();
        let stable_pods: Vec<&PodView> = self
            .obs
            .pods
            .iter()
            .filter(|p| p.revision == stable)
            .collect();
        // With a fresh baseline, start-up latency is compared with the baseline's same-age
        // pods once one of them is Ready; until then (and with `Stable`) with the stable pods.
        let selector = baseline_selector(stable);
        let baseline_pods: Vec<&PodView> = self
            .obs
            .baseline_pods
            .iter()
            .filter(|p| p.revision == selector && !p.terminating)
            .collect();
        let reference = if self.fresh_baseline() && baseline_pods.iter().any(|p| p.ready) {
            baseline_pods
        } else {
            stable_pods
        };
        let gates = EffectiveGates::from_spec(self.obs.spec.health.as_ref());
        let report = assess(
            &canary_pods,
            &reference,
            &gates,
            &self.status.health,
            self.obs.now,
        );
        // A pod still starting crosses thresholds with time alone: look again when it would.
        let baseline = report
            .measurements
            .iter()
            .find(|m| m.signal == "startupLatencySeconds")
            .and_then(|m| m.baseline)
            .unwrap_or(0.0);
        let mut wake: Option<f64> = None;
        for pod in canary_pods.iter().filter(|p| !p.ready && !p.terminating) {
            let age = pod.startup_latency_seconds(self.obs.now);
            for limit in [
                gates.startup_latency_seconds.acceptable,
                gates.startup_latency_seconds.critical,
            ] {
                let remaining = baseline + limit - age;
                if remaining > 0.0 {
                    wake = Some(wake.map_or(remaining, |w: f64| w.min(remaining)));
                }
            }
        }
        (report, wake.map(|w| w + 0.05))
    }

    /// Why the canary must be reverted for a failed analysis (the background one, or the
    /// current step's), if it must.
    pub(super) fn failed_analysis(&mut self, index: usize) -> Option<String> {
        let steps = &self.obs.spec.strategy.canary.steps;
        let mut relevant: Vec<String> = Vec::new();
        if let Some(name) = &self.obs.spec.strategy.canary.background_analysis {
            relevant.push(name.clone());
        }
        if let Some(Some(step)) = steps.get(index).map(|s| s.analysis.as_ref()) {
            relevant.push(step.template.clone());
        }
        relevant
            .into_iter()
            .find_map(|name| match self.obs.analyses.get(&name) {
                Some(AnalysisGate::Failed(why)) => Some(format!("analysis {name} failed: {why}")),
                _ => None,
            })
    }

    /// Why the required background analysis holds the rollout, if it does: it has not measured
    /// yet, has no passing evidence, or is inconclusive. (A failed one reverts instead.)
    pub(super) fn background_hold(&self) -> Option<String> {
        let name = self.obs.spec.strategy.canary.background_analysis.as_ref()?;
        match self.obs.analyses.get(name) {
            Some(AnalysisGate::Passed | AnalysisGate::Running | AnalysisGate::Failed(_)) => None,
            Some(AnalysisGate::Pending(why)) => Some(format!(
                "background analysis {name} has no passing measurement ({why})"
            )),
            Some(AnalysisGate::Inconclusive(why)) => {
                Some(format!("background analysis {name} is inconclusive: {why}"))
            }
            None => Some(format!("background analysis {name} has not measured yet")),
        }
    }

    fn progress_deadline(&self) -> Duration {
        self.obs
            .spec
            .progress_deadline
            .as_ref()
            .and_then(|d| d.parse().ok())
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE)
    }

    pub(super) fn step_elapsed(&self) -> Duration {
        let started = self
            .status
            .step_started_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or(self.obs.now);
        let millis = self
            .obs
            .now
            .as_millisecond()
            .saturating_sub(started.as_millisecond());
        Duration::from_millis(u64::try_from(millis).unwrap_or(0))
    }

    pub(super) fn deadline_exceeded(&self) -> bool {
        self.deadline_exceeded_beyond(Duration::ZERO)
    }

    /// Whether the step has been held for longer than the progress deadline beyond `own_time`
    /// (the part of the step that is its own, such as a timed pause).
    pub(super) fn deadline_exceeded_beyond(&self, own_time: Duration) -> bool {
        self.step_elapsed().saturating_sub(own_time) >= self.progress_deadline()
    }

    pub(super) fn requeue_deadline(&mut self) {
        self.requeue_deadline_beyond(Duration::ZERO);
    }

    pub(super) fn requeue_deadline_beyond(&mut self, own_time: Duration) {
        let deadline = self.progress_deadline().saturating_add(own_time);
        let elapsed = self.step_elapsed();
        self.requeue_in(
            deadline
                .saturating_sub(elapsed)
                .saturating_add(Duration::from_millis(100)),
        );
    }

    /// The first revision has nothing to revert to: past the deadline status only says so.
    pub(super) fn check_deadline_without_revert(&mut self) {
        if self.deadline_exceeded() {
            self.status.message = Some(format!(
                "initial revision did not become ready within the progress deadline ({}s); there is no earlier revision to revert to",
                self.progress_deadline().as_secs()
            ));
        } else {
            self.requeue_deadline();
        }
    }
}
