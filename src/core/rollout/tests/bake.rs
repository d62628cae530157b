//! The policy's minimum bake time at the promotion: neither `promote --full` nor a run of
//! single promotes gets a canary promoted before it has baked; its gates keep running while it
//! waits; an active break-glass override lifts the hold and is recorded with who and why.

use super::*;
use crate::api::freeze::BreakGlass;
use crate::core::freeze::{BreakGlassState, FreezeGate};

fn later(sim: &mut Sim, minutes: i64) {
    sim.now = sim
        .now
        .checked_add(jiff::SignedDuration::from_mins(minutes))
        .unwrap();
}

/// A canary of v2 at its first pause (20 minutes of timed pauses in all), under a policy whose
/// minimum bake time is 20 minutes.
fn baking() -> Sim {
    let steps = vec![weight(25), pause(Some("10m")), weight(50), pause(Some("10m"))];
    let mut sim = established("app:v1", 4, steps);
    sim.min_bake_time = Some("20m".into());
    sim.deploy("app:v2");
    sim.settle(10);
    assert_eq!(sim.status.canary_weight, 25, "at the first pause");
    sim
}

fn promoted(sim: &Sim) -> bool {
    sim.status.stable_revision == Some(sim.revision().hash) && sim.status.canary_revision.is_none()
}

#[test]
fn promote_full_waits_for_the_policy_bake_time_then_promotes_by_itself() {
    let mut sim = baking();
    later(&mut sim, 3);
    sim.requests.promote_full = Some("p1@dave".into());
    sim.settle(10);
    assert!(!promoted(&sim), "promoted after 3 of 20 minutes");
    assert_eq!(sim.status.canary_weight, 50, "held at the last step's weight");
    let message = sim.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("the policy's minBakeTime of 20m holds the promotion until"),
        "{message}"
    );
    assert!(
        sim.events.iter().any(|e| e.warning
            && e.reason == EventReason::RequirementNotMet
            && e.note.starts_with("promote held: the policy's minBakeTime of 20m")),
        "{:?}",
        sim.events
    );
    // The request itself is recorded with its requester.
    assert!(
        sim.status
            .history
            .iter()
            .any(|e| e.outcome == "PromoteFullRequested" && e.actor.as_deref() == Some("dave"))
    );
    // It looks again when the bake time is over (17 minutes on), not later.
    let requeue = sim.decide().requeue_after.unwrap();
    assert!(requeue <= Duration::from_secs(17 * 60 + 1), "{requeue:?}");
    later(&mut sim, 16);
    sim.settle(10);
    assert!(!promoted(&sim), "promoted a minute early");
    later(&mut sim, 2);
    sim.settle(20);
    assert!(promoted(&sim), "{:?}", sim.status.message);
}

#[test]
fn single_promotes_past_every_pause_cannot_skip_the_bake_time_either() {
    let mut sim = baking();
    for token in ["p1@bob", "p2@bob", "p3@bob", "p4@bob", "p5@bob"] {
        sim.requests.promote = Some(token.into());
        sim.settle(5);
    }
    assert!(!promoted(&sim), "{:?}", sim.status.message);
    assert!(sim.status.canary_revision.is_some());
    later(&mut sim, 21);
    sim.settle(20);
    assert!(promoted(&sim));
}

#[test]
fn without_a_bake_time_promote_full_promotes_at_once() {
    let mut sim = baking();
    sim.min_bake_time = None;
    sim.requests.promote_full = Some("p1@dave".into());
    sim.settle(20);
    assert!(promoted(&sim));
}

#[test]
fn a_bad_canary_is_reverted_while_the_bake_time_holds_its_promotion() {
    let mut sim = baking();
    sim.requests.promote_full = Some("p1@dave".into());
    sim.settle(10);
    assert!(!promoted(&sim));
    let new = sim.revision().hash;
    sim.faults.insert(new.clone(), Fault::Crash);
    sim.settle(20);
    assert!(sim.status.rejected_revisions.contains(&new), "not reverted");
    assert_eq!(sim.replicas_of(&new), 0);
}

#[test]
fn break_glass_lifts_the_bake_time_and_is_recorded_once_with_who_and_why() {
    let mut sim = baking();
    sim.freeze = FreezeGate {
        break_glass: BreakGlassState::Active {
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
        },
        ..Default::default()
    };
    sim.requests.promote_full = Some("p1@dave".into());
    sim.settle(20);
    assert!(promoted(&sim), "{:?}", sim.status.message);
    let overrides: Vec<_> = sim
        .status
        .history
        .iter()
        .filter(|e| e.outcome == HistoryOutcome::FreezeOverridden)
        .collect();
    assert_eq!(overrides.len(), 1, "{:?}", sim.status.history);
    assert_eq!(overrides[0].actor.as_deref(), Some("alice"));
    assert!(
        overrides[0].reason.contains("minBakeTime of 20m")
            && overrides[0].reason.contains("CVE-2026-1234 hotfix"),
        "{}",
        overrides[0].reason
    );
}

#[test]
fn pushing_the_canary_out_of_the_history_does_not_shorten_the_bake_time() {
    let mut sim = baking();
    // Thirty pauses and resumes push the canary's open entry out of the 20-entry history.
    for round in 0..15 {
        sim.requests.paused = true;
        sim.requests.pause_requester = Some(format!("mallory{round}"));
        sim.settle(3);
        sim.requests.paused = false;
        sim.settle(3);
    }
    assert!(
        !sim.status
            .history
            .iter()
            .any(|e| e.outcome == "InProgress" && e.finished_at.is_none()),
        "the open entry is gone"
    );
    sim.requests.promote_full = Some("p1@mallory".into());
    sim.settle(10);
    assert!(!promoted(&sim), "the bake time was skipped");
    later(&mut sim, 21);
    sim.settle(20);
    assert!(promoted(&sim));
}
