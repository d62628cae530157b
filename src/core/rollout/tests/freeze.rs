//! Freezes and policy requirements in the decision: a freeze holds new canaries, steps and
//! promotions (a person's promote too), never a revert or an abort; a break-glass override lifts
//! it and is recorded once; a spec that falls short of the policy's requirements does not roll
//! out.

use super::*;
use crate::api::freeze::BreakGlass;
use crate::core::freeze::{BreakGlassState, FreezeGate, FreezeState, Span};
use crate::core::requirements::Violation;

fn freeze_until(sim: &Sim, minutes: i64) -> FreezeGate {
    FreezeGate {
        state: FreezeState::Frozen(Span {
            window: "year-end".into(),
            reason: Some("change freeze".into()),
            start: Some(sim.now),
            end: Some(
                sim.now
                    .checked_add(jiff::SignedDuration::from_mins(minutes))
                    .unwrap(),
            ),
        }),
        break_glass: BreakGlassState::None,
    }
}

fn later(sim: &mut Sim, minutes: i64) {
    sim.now = sim
        .now
        .checked_add(jiff::SignedDuration::from_mins(minutes))
        .unwrap();
}

#[test]
fn a_freeze_holds_a_new_canary_until_it_ends() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50]));
    let stable = sim.status.stable_revision.clone();
    sim.freeze = freeze_until(&sim, 30);
    sim.deploy("app:v2");
    sim.settle(10);
    assert_eq!(sim.status.canary_revision, None, "no canary starts");
    assert_eq!(sim.status.stable_revision, stable);
    assert_eq!(sim.replicas_of(&sim.revision().hash), 0);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(condition(&sim.status, "Progressing").reason, "Frozen");
    assert!(
        sim.status
            .freeze
            .as_ref()
            .is_some_and(|f| f.active && f.window == "year-end")
    );
    let frozen_events = sim
        .events
        .iter()
        .filter(|e| e.reason == EventReason::Frozen)
        .count();
    assert_eq!(frozen_events, 1, "announced once, not every reconcile");
    // The decision looks again when the freeze ends.
    let requeue = sim.decide().requeue_after.unwrap();
    assert!(requeue <= Duration::from_secs(30 * 60 + 1), "{requeue:?}");
    // Over: the canary starts and the revision promotes.
    later(&mut sim, 31);
    sim.freeze = FreezeGate::default();
    sim.settle(20);
    assert_eq!(sim.status.stable_revision, Some(sim.revision().hash));
    assert_eq!(sim.status.freeze, None);
}

#[test]
fn a_freeze_holds_the_step_and_the_promotion_and_refuses_promote() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50, 75]));
    sim.deploy("app:v2");
    sim.tick();
    sim.tick();
    let index = sim.status.current_step_index;
    let weight = sim.status.canary_weight;
    assert!(weight > 0 && weight < 100, "a canary runs: {weight}");
    sim.freeze = freeze_until(&sim, 60);
    sim.requests.promote_full = Some("p1".into());
    sim.settle(10);
    later(&mut sim, 30);
    sim.settle(10);
    assert_eq!(sim.status.current_step_index, index, "no step completes");
    assert_eq!(sim.status.canary_weight, weight, "no weight increase");
    assert!(
        sim.status.canary_revision.is_some(),
        "no promotion, no revert"
    );
    assert!(
        sim.events
            .iter()
            .any(|e| e.reason == EventReason::Frozen && e.note.starts_with("promote refused")),
        "{:?}",
        sim.events
    );
    // 30 minutes frozen did not run the 10-minute progress deadline out, nor does it after.
    later(&mut sim, 31);
    sim.freeze = FreezeGate::default();
    sim.settle(20);
    assert_eq!(sim.status.stable_revision, Some(sim.revision().hash));
}

#[test]
fn a_bad_canary_is_reverted_and_an_abort_carried_out_during_a_freeze() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50]));
    sim.deploy("app:v2");
    let new = sim.revision().hash;
    sim.tick();
    sim.freeze = freeze_until(&sim, 60);
    sim.faults.insert(new.clone(), Fault::Crash);
    sim.settle(10);
    assert!(
        sim.status.rejected_revisions.contains(&new),
        "reverted while frozen"
    );
    assert_eq!(sim.status.canary_revision, None);
    assert_eq!(sim.replicas_of(&new), 0);

    let mut sim = established("app:v1", 4, steps_weights(&[25, 50]));
    sim.deploy("app:v2");
    let new = sim.revision().hash;
    sim.tick();
    sim.freeze = freeze_until(&sim, 60);
    sim.tick();
    sim.requests.abort = Some("a1".into());
    sim.settle(10);
    assert!(
        sim.status.rejected_revisions.contains(&new),
        "aborted while frozen"
    );
    assert_eq!(sim.replicas_of(&new), 0);
    assert!(
        sim.status
            .history
            .iter()
            .any(|e| e.outcome == HistoryOutcome::Reverted)
    );
}

#[test]
fn a_first_revision_waits_for_a_freeze_too() {
    let mut sim = Sim::new(spec("app:v1", 2, steps_weights(&[50])));
    sim.freeze = freeze_until(&sim, 5);
    sim.settle(5);
    assert_eq!(sim.replicas_of(&sim.revision().hash), 0);
    assert_eq!(sim.status.phase, Phase::Paused);
    later(&mut sim, 6);
    sim.freeze = FreezeGate::default();
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Healthy);
}

#[test]
fn break_glass_lifts_the_freeze_and_is_recorded_once_with_who_and_why() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50]));
    let mut gate = freeze_until(&sim, 600);
    gate.break_glass = BreakGlassState::Active {
        request: BreakGlass {
            user: "alice".into(),
            reason: "CVE-2026-1234 hotfix".into(),
            expires: "later".into(),
        },
        expires: sim
            .now
            .checked_add(jiff::SignedDuration::from_hours(1))
            .unwrap(),
        token: "2026-06-10T13:00:00Z@alice\nCVE-2026-1234 hotfix".into(),
    };
    sim.freeze = gate;
    sim.deploy("app:v2");
    sim.settle(20);
    assert_eq!(
        sim.status.stable_revision,
        Some(sim.revision().hash),
        "rolled out"
    );
    let overrides: Vec<_> = sim
        .status
        .history
        .iter()
        .filter(|e| e.outcome == HistoryOutcome::FreezeOverridden)
        .collect();
    assert_eq!(overrides.len(), 1, "{:?}", sim.status.history);
    assert!(overrides[0].reason.contains("alice") && overrides[0].reason.contains("CVE-2026-1234"));
    assert_eq!(overrides[0].actor.as_deref(), Some("alice"));
    let events = sim
        .events
        .iter()
        .filter(|e| e.reason == EventReason::FreezeOverridden)
        .count();
    assert_eq!(events, 1);
    let freeze = sim.status.freeze.clone().unwrap();
    assert!(!freeze.active && freeze.break_glass.unwrap().starts_with("alice: "));
}

#[test]
fn a_refused_break_glass_keeps_the_freeze_and_says_why() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50]));
    let stable = sim.status.stable_revision.clone();
    let mut gate = freeze_until(&sim, 600);
    gate.break_glass = BreakGlassState::Refused(
        "the break-glass request of mallory gives no reason: set the annotation safedeploy.dev/break-glass-reason".into(),
    );
    sim.freeze = gate;
    sim.deploy("app:v2");
    sim.settle(10);
    assert_eq!(sim.status.canary_revision, None, "no canary starts");
    assert_eq!(sim.status.stable_revision, stable);
    let message = sim.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("break-glass refused: the break-glass request of mallory gives no reason"),
        "{message}"
    );
    assert!(
        !sim.status
            .history
            .iter()
            .any(|e| e.outcome == HistoryOutcome::FreezeOverridden)
    );
    let frozen: Vec<_> = sim
        .events
        .iter()
        .filter(|e| e.reason == EventReason::Frozen)
        .collect();
    assert_eq!(frozen.len(), 1, "announced once");
    assert!(frozen[0].note.contains("no reason"), "{:?}", frozen[0]);
}

#[test]
fn an_unmet_requirement_blocks_the_revision_and_names_itself() {
    let mut sim = established("app:v1", 4, steps_weights(&[50]));
    let stable = sim.status.stable_revision.clone();
    sim.requirements = vec![Violation {
        requirement: "minSteps",
        message: "at least 3 setWeight steps are required, the spec has 1".into(),
    }];
    sim.deploy("app:v2");
    sim.settle(10);
    assert_eq!(sim.status.stable_revision, stable);
    assert_eq!(
        sim.replicas_of(&sim.revision().hash),
        0,
        "nothing rolls out"
    );
    assert_eq!(sim.status.phase, Phase::Blocked);
    assert_eq!(condition(&sim.status, "Ready").reason, "RequirementNotMet");
    assert!(sim.status.message.as_deref().unwrap().contains("minSteps"));
    let event = sim
        .events
        .iter()
        .find(|e| e.reason == EventReason::RequirementNotMet)
        .unwrap();
    assert!(event.note.contains("minSteps: at least 3"));
    // Met (the spec or the policy changed): it rolls out.
    sim.requirements.clear();
    sim.settle(20);
    assert_eq!(sim.status.stable_revision, Some(sim.revision().hash));
}
