//! The canary: starting one, its steps one kind at a time (setWeight, pause, analysis), the
//! promotion once every step passed, and the revert when a gate fails.

use std::time::Duration;

use super::{Planner, canary_replicas, seconds_to_duration, weight_at};
use crate::api::conditions::{EventReason, HistoryOutcome, RevertReason};
use crate::api::duration::SpecDuration;
use crate::api::gates::AnalysisGate;
use crate::api::{AnalysisStep, CanaryStep, PauseStep, Phase};
use crate::core::health::{HealthReport, Verdict};

/// Where the current step stands, from its own kind's point of view.
struct StepProgress {
    /// The step's own condition to complete is met.
    complete: bool,
    /// The phase while the step holds.
    phase: Phase,
    /// How much of the step's time is its own (a timed pause's duration) and so does not count
    /// against the progress deadline; the deadline counts only the time the step is held beyond
    /// it (by health, analysis or anything else), so nothing holds for ever.
    own_time: Duration,
    /// An untimed pause waits for a person, as long as it takes.
    waits_for_person: bool,
}

impl StepProgress {
    fn progressing(complete: bool) -> Self {
        StepProgress {
            complete,
            phase: Phase::Progressing,
            own_time: Duration::ZERO,
            waits_for_person: false,
        }
    }
}

impl Planner<'_> {
    pub(super) fn canary_rollout(&mut self) {
        let desired = self.obs.desired.hash.clone();
        let stable = self.status.stable_revision.clone().unwrap_or_default();
        if self.status.canary_revision.as_deref() != Some(desired.as_str()) {
            self.start_canary(&desired, &stable);
        }
        if self.restart_if_steps_changed() {
            return;
        }
        let steps = &self.obs.spec.strategy.canary.steps;
        let index = usize::try_from(self.status.current_step_index.unwrap_or(0)).unwrap_or(0);
        let Some(health) = self.check_gates(&desired, &stable, index) else {
            return;
        };
        // After the gates that revert: a freeze holds steps and promotions, never a revert.
        if let Some(span) = self.freeze_in_force().cloned() {
            self.hold_frozen(&span, index, &desired, &stable);
            return;
        }

        let mut index = index;
        if self.promote_full && index < steps.len() {
            self.event(
                false,
                EventReason::PromotedFull,
                "promoted past every remaining step by a user".into(),
            );
            index = steps.len();
            self.enter_step(index);
        }

        if index >= steps.len() {
            // The policy's minBakeTime holds the promotion, however the canary got here.
            if let Some(hold) = self.bake_hold(&desired) {
                self.hold_for_bake(&hold, &desired, &stable);
                return;
            }
            self.promote(&desired, &stable, &health);
            return;
        }
        let weight = weight_at(steps, index);
        self.scale_canary(&desired, &stable, weight);
        self.status.canary_weight = weight;
        if self.routed() {
            self.steer(&desired, index, weight);
        }
        self.status.step_display = Some(self.step_position(index));
        if self.obs.spec.paused || self.obs.requests.paused {
            self.status.phase = Phase::Paused;
            self.status.message = Some(format!(
                "paused by a user at step {}",
                self.step_position(index)
            ));
            self.set_conditions();
            return;
        }
        if let Some(step) = steps.get(index) {
            self.run_step(step, index, weight, &desired, &health);
        }
    }

    /// A new canary of `desired` replaces whatever canary ran.
    fn start_canary(&mut self, desired: &str, stable: &str) {
        self.abandon_canary("a newer revision replaced it");
        self.status.canary_revision = Some(desired.to_string());
        self.status.current_step_index = Some(0);
        self.status.step_started_at = Some(self.now());
        self.status.health.clear();
        self.status.analysis_runs.clear();
        self.status.steps_digest = Some(steps_digest(&self.obs.spec.strategy.canary));
        self.push_history(
            desired,
            HistoryOutcome::InProgress,
            "template changed".into(),
        );
        self.event(
            false,
            EventReason::RolloutStarted,
            format!(
                "canary of revision {} ({desired}) started over stable revision {} ({stable})",
                self.revision_number(desired),
                self.revision_number(stable)
            ),
        );
    }

    /// Measures the canary's health and reverts it on a critical signal, a failed analysis or
    /// a user's abort. Returns the health report when the canary goes on.
    fn check_gates(&mut self, desired: &str, stable: &str, index: usize) -> Option<HealthReport> {
        let (health, wake) = self.assess_canary(desired, stable);
        if let Some(seconds) = wake {
            self.requeue_in(seconds_to_duration(seconds));
        }
        self.status.health = health.measurements.clone();
        if health.worst == Verdict::Critical {
            let reason = format!(
                "health gate breached: {}",
                health.describe(Verdict::Critical)
            );
            self.revert(&reason, RevertReason::HealthGateBreached);
            return None;
        }
        if let Some(reason) = self.failed_analysis(index) {
            self.revert(&reason, RevertReason::AnalysisFailed);
            return None;
        }
        if self.abort {
            let reason = self.aborted_by();
            self.revert(&reason, RevertReason::Aborted);
            return None;
        }
        Some(health)
    }

    /// Runs step `index` (at `weight`): completes it, holds it, or reverts at its deadline.
    fn run_step(
        &mut self,
        step: &CanaryStep,
        index: usize,
        weight: i32,
        desired: &str,
        health: &HealthReport,
    ) {
        let promote = self.promote;
        let healthy_enough = health.worst <= Verdict::Acceptable;
        let scaled = self.canary_scaled(desired, weight) && self.traffic_in_place();
        // A required background analysis without passing evidence holds every step (and the
        // promotion); only a person's explicit promote goes past it, and that is recorded.
        let background_hold = self.background_hold();
        let background_ok = background_hold.is_none() || promote;
        let mut progress = if step.set_weight.is_some()
            || step.set_canary_scale.is_some()
            || step.set_header_route.is_some()
        {
            StepProgress::progressing(scaled && healthy_enough)
        } else if let Some(pause) = &step.pause {
            self.pause_step(pause, healthy_enough)
        } else if let Some(analysis) = &step.analysis {
            self.analysis_step(analysis, scaled, healthy_enough)
        } else {
            StepProgress::progressing(true)
        };
        progress.complete =
            progress.complete || (promote && healthy_enough && step.set_weight.is_none());
        if progress.complete
            && !background_ok
            && let Some(why) = &background_hold
        {
            progress.phase = Phase::Inconclusive;
            self.status.message = Some(format!("step {} holds: {why}", self.step_position(index)));
        }
        if progress.complete && background_ok {
            self.complete_step(step, index, weight);
        } else {
            self.hold_step(step, index, &progress, health);
        }
    }

    /// A pause step: a timed one completes when its time is up (or a person promotes), an
    /// untimed one only when a person promotes.
    fn pause_step(&mut self, pause: &PauseStep, healthy_enough: bool) -> StepProgress {
        let promote = self.promote;
        match pause.duration.as_ref().map(SpecDuration::parse) {
            Some(Ok(duration)) => {
                let elapsed = self.step_elapsed();
                if elapsed < duration {
                    self.requeue_in(duration.saturating_sub(elapsed));
                }
                StepProgress {
                    complete: (elapsed >= duration || promote) && healthy_enough,
                    phase: Phase::Paused,
                    own_time: duration,
                    waits_for_person: false,
                }
            }
            _ => StepProgress {
                complete: promote && healthy_enough,
                phase: Phase::Paused,
                own_time: Duration::ZERO,
                waits_for_person: true,
            },
        }
    }

    /// An analysis step completes when its analysis passed (and the canary is scaled), or when
    /// a person promotes; an inconclusive one says so.
    fn analysis_step(
        &mut self,
        analysis: &AnalysisStep,
        scaled: bool,
        healthy_enough: bool,
    ) -> StepProgress {
        let promote = self.promote;
        match self.obs.analyses.get(&analysis.template) {
            Some(AnalysisGate::Passed) => StepProgress::progressing(scaled && healthy_enough),
            Some(AnalysisGate::Inconclusive(why)) => {
                self.status.message = Some(format!(
                    "analysis {} is inconclusive: {why}",
                    analysis.template
                ));
                StepProgress {
                    phase: Phase::Inconclusive,
                    ..StepProgress::progressing(promote && healthy_enough)
                }
            }
            _ => StepProgress::progressing(promote && healthy_enough),
        }
    }

    fn complete_step(&mut self, step: &CanaryStep, index: usize, weight: i32) {
        let position = self.step_position(index);
        self.event(
            false,
            EventReason::StepCompleted,
            format!(
                "step {position} ({}) completed at weight {weight}",
                describe_step(step)
            ),
        );
        self.mark_step(index, weight);
        self.enter_step(index.saturating_add(1));
        self.status.phase = Phase::Progressing;
        self.status.message = Some(format!("step {position} completed"));
        self.requeue_in(Duration::ZERO);
        self.set_conditions();
    }

    /// The step holds: revert past the progress deadline, else say why it waits.
    fn hold_step(
        &mut self,
        step: &CanaryStep,
        index: usize,
        progress: &StepProgress,
        health: &HealthReport,
    ) {
        let position = self.step_position(index);
        if !progress.waits_for_person {
            if self.deadline_exceeded_beyond(progress.own_time) {
                let held = if progress.own_time.is_zero() {
                    ""
                } else {
                    " after the pause ended"
                };
                let reason = format!(
                    "progress deadline exceeded at step {position} ({}){held}",
                    describe_step(step)
                );
                self.revert(&reason, RevertReason::ProgressDeadlineExceeded);
                return;
            }
            self.requeue_deadline_beyond(progress.own_time);
        }
        self.status.phase = progress.phase;
        if progress.phase != Phase::Inconclusive {
            self.status.message = Some(if progress.waits_for_person {
                format!("paused at step {position} until promoted")
            } else if health.worst > Verdict::Acceptable {
                format!(
                    "step {position} holds: {}",
                    health.describe(Verdict::Marginal)
                )
            } else if let Some(why) = self.traffic_hold_message() {
                format!("step {position} ({}) holds: {why}", describe_step(step))
            } else {
                format!("step {position} ({}) in progress", describe_step(step))
            });
        }
        self.set_conditions();
    }

    /// `3/5`: step `index` (from 0) of the canary's steps, as status and events count them.
    pub(super) fn step_position(&self, index: usize) -> String {
        format!(
            "{}/{}",
            index.saturating_add(1),
            self.obs.spec.strategy.canary.steps.len()
        )
    }

    fn promote(&mut self, desired: &str, stable: &str, health: &HealthReport) {
        let steps = self.obs.spec.strategy.canary.steps.len();
        self.status.step_display = Some(format!("promoting ({steps}/{steps})"));
        self.status.canary_weight = 100;
        let components = self.obs.desired.components.clone();
        let max_unavailable = self.max_unavailable();
        for component in &components {
            let canary_ready = self.ready_of(desired, &component.name);
            self.target(desired, &component.name, component.replicas);
            let floor = component
                .replicas
                .saturating_sub(max_unavailable)
                .saturating_sub(canary_ready);
            let stable_target = floor
                .max(self.stable_floor(component.replicas))
                .clamp(0, component.replicas);
            let current = self.replicas_of(stable, &component.name).unwrap_or(0);
            // With a router the stable serves its share until the switch: it keeps its pods.
            let stable_target = if self.routed() {
                current
            } else {
                stable_target.min(current)
            };
            self.target(stable, &component.name, stable_target);
            // The baseline keeps the size of the last step until the promotion completes, so a
            // background analysis still has something to compare with.
            let last = steps.saturating_sub(1);
            let size = canary_replicas(
                component.replicas,
                weight_at(&self.obs.spec.strategy.canary.steps, last),
            );
            self.baseline_target(stable, &component.name, size);
        }
        self.scale_others_to_zero(&[desired.to_string(), stable.to_string()]);
        // A person's promote-full is the one way past a background analysis that has no
        // passing evidence; otherwise it holds the promotion like any step.
        let background_hold = self.background_hold().filter(|_| !self.promote_full);
        if self.all_ready(desired)
            && health.worst <= Verdict::Acceptable
            && background_hold.is_none()
        {
            self.baseline_targets.clear();
            // With routing, the routes (blue-green: the active Service) still send the old
            // stable its share until the controller writes this decision's plan: it keeps its
            // pods for the drain, counted from when the routes show the switch
            // (`hold_for_drain`).
            if !self.routed() {
                for component in &components {
                    self.target(stable, &component.name, 0);
                }
            }
            self.status.stable_revision = Some(desired.to_string());
            self.clear_canary();
            self.status.canary_weight = 0;
            self.finish_history(
                desired,
                HistoryOutcome::Promoted,
                "every step passed".into(),
            );
            self.event(
                false,
                EventReason::RolloutCompleted,
                format!(
                    "revision {} ({desired}) promoted to stable",
                    self.revision_number(desired)
                ),
            );
            self.status.phase = Phase::Healthy;
            self.status.message = Some(format!("revision {desired} is stable"));
        } else if self.deadline_exceeded() {
            self.revert(
                "progress deadline exceeded while promoting",
                RevertReason::ProgressDeadlineExceeded,
            );
            return;
        } else if let Some(why) = background_hold {
            self.requeue_deadline();
            self.status.phase = Phase::Inconclusive;
            self.status.message = Some(format!("promotion of revision {desired} holds: {why}"));
        } else {
            self.requeue_deadline();
            self.status.phase = Phase::Progressing;
            self.status.message = Some(format!("promoting revision {desired}"));
        }
        self.set_conditions();
    }

    fn revert(&mut self, reason: &str, cause: RevertReason) {
        let Some(canary) = self.status.canary_revision.clone() else {
            return;
        };
        let stable = self.status.stable_revision.clone().unwrap_or_default();
        self.targets.clear();
        self.baseline_targets.clear();
        self.scale_revision_full(&stable);
        self.scale_others_to_zero(std::slice::from_ref(&stable));
        if !self.status.rejected_revisions.contains(&canary) {
            self.status.rejected_revisions.push(canary.clone());
        }
        self.finish_history(
            &canary,
            HistoryOutcome::Reverted,
            format!("{cause}: {reason}"),
        );
        self.event(
            true,
            EventReason::RolloutReverted,
            format!(
                "revision {} ({canary}) reverted to stable revision {} ({stable}): {reason}",
                self.revision_number(&canary),
                self.revision_number(&stable)
            ),
        );
        self.clear_canary();
        self.status.canary_weight = 0;
        self.status.phase = Phase::Degraded;
        self.status.message = Some(format!(
            "revision {canary} was reverted ({cause}): {reason}. Stable revision {stable} is back at full size (the canary's Ready pods leave only as the stable's replacements become Ready)."
        ));
        self.set_conditions();
    }

    pub(super) fn abandon_canary(&mut self, why: &str) {
        if let Some(canary) = self.status.canary_revision.clone() {
            if canary != self.obs.desired.hash {
                self.finish_history(&canary, HistoryOutcome::Superseded, why.to_string());
                self.event(
                    false,
                    EventReason::RolloutSuperseded,
                    format!("canary {canary} stopped: {why}"),
                );
            } else {
                // The canary is the desired revision, stopped because its gates failed mid-way
                // (an attestation expired, a referenced object vanished): its entry is closed,
                // so the history never shows a rollout in progress that is not.
                self.finish_history(&canary, HistoryOutcome::Abandoned, why.to_string());
            }
            self.clear_canary();
        }
    }

    /// The last canary's analysis runs stay in status, so its measurements still explain a
    /// revert or a promotion; they are cleared when the next canary starts.
    /// An edit of the steps (or of the background analysis) mid-rollout changes what
    /// `currentStepIndex` means: shortened steps would promote at once, past gates never run.
    /// The canary restarts at step 1 of the new steps instead (at that step's weight, keeping
    /// capacity), and says so. A canary that started before digests were recorded gets one now.
    fn restart_if_steps_changed(&mut self) -> bool {
        let digest = steps_digest(&self.obs.spec.strategy.canary);
        let recorded = self.status.steps_digest.replace(digest.clone());
        if recorded.is_none() || recorded.as_deref() == Some(digest.as_str()) {
            return false;
        }
        let Some(canary) = self.status.canary_revision.clone() else {
            return false;
        };
        self.enter_step(0);
        self.status.analysis_runs.clear();
        self.event(
            false,
            EventReason::StepsChanged,
            format!(
                "the canary steps of revision {} changed mid-rollout: it restarts at step 1",
                self.revision_number(&canary)
            ),
        );
        self.status.phase = Phase::Progressing;
        self.status.message = Some(format!(
            "the steps changed mid-rollout; canary {canary} restarts at step 1"
        ));
        self.set_conditions();
        self.requeue_in(Duration::ZERO);
        true
    }

    pub(super) fn clear_canary(&mut self) {
        self.status.steps_digest = None;
        self.status.canary_revision = None;
        self.status.current_step_index = None;
        self.status.step_display = None;
        self.status.step_started_at = None;
    }

    fn enter_step(&mut self, index: usize) {
        self.status.current_step_index = i32::try_from(index).ok();
        self.status.step_started_at = Some(self.now());
    }
}

/// A short digest of what decides the meaning of a step index: the steps and the background
/// analysis.
fn steps_digest(canary: &crate::api::CanaryStrategy) -> String {
    let text =
        serde_json::to_string(&(&canary.steps, &canary.background_analysis)).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    hex::encode(digest.as_ref().get(..6).unwrap_or_default())
}

/// A step in words, for events and status messages.
pub fn describe_step(step: &CanaryStep) -> String {
    if let Some(weight) = step.set_weight {
        format!("setWeight {weight}")
    } else if let Some(pause) = &step.pause {
        match &pause.duration {
            Some(d) => format!("pause {d}"),
            None => "pause until promoted".into(),
        }
    } else if let Some(analysis) = &step.analysis {
        format!("analysis {}", analysis.template)
    } else if let Some(scale) = &step.set_canary_scale {
        match (scale.replicas, scale.weight) {
            (Some(replicas), _) => format!("setCanaryScale replicas {replicas}"),
            (None, Some(weight)) => format!("setCanaryScale weight {weight}"),
            (None, None) => "setCanaryScale matchTrafficWeight".into(),
        }
    } else if let Some(route) = &step.set_header_route {
        if route.matches.is_empty() {
            format!("remove header route {}", route.name)
        } else {
            format!("setHeaderRoute {}", route.name)
        }
    } else {
        "empty step".into()
    }
}
