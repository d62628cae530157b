//! Manual requests: promote, abort, pause, retry and rollback.

use super::*;

#[test]
fn retry_lets_a_rejected_revision_roll_out_again() {
    let mut sim = established("app:v1", 2, steps_weights(&[50]));
    sim.deploy("app:v2");
    let new = sim.revision().hash;
    sim.faults.insert(new.clone(), Fault::Crash);
    sim.settle(10);
    assert!(sim.status.rejected_revisions.contains(&new));
    sim.faults.remove(&new);
    sim.requests.retry = Some("t1".into());
    sim.settle(20);
    assert_eq!(sim.status.stable_revision, Some(new));
    assert!(
        sim.status
            .history
            .iter()
            .any(|e| e.outcome == "RetryRequested")
    );
}

#[test]
fn a_pause_without_duration_waits_for_promote_once_per_token() {
    let steps = vec![weight(50), pause(None), pause(None)];
    let mut sim = established("app:v1", 2, steps);
    sim.deploy("app:v2");
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(sim.status.current_step_index, Some(1));
    // An hour later it still waits: a manual pause does not count against the deadline.
    sim.now = sim
        .now
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap();
    sim.tick();
    assert_eq!(sim.status.current_step_index, Some(1));
    sim.requests.promote = Some("p1".into());
    sim.tick();
    assert_eq!(sim.status.current_step_index, Some(2));
    // The same token does not promote twice.
    sim.settle(5);
    assert_eq!(sim.status.current_step_index, Some(2));
    sim.requests.promote = Some("p2".into());
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Healthy);
}

#[test]
fn abort_reverts_and_a_user_pause_holds_the_step() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50, 75]));
    sim.deploy("app:v2");
    sim.requests.paused = true;
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(sim.status.current_step_index, Some(0));
    sim.requests.abort = Some("a1".into());
    sim.tick();
    sim.assert_reverted_because("Aborted");
    assert!(sim.last_history_reason().starts_with("Aborted"));
}

#[test]
fn rollback_scales_a_recorded_revision_back_up() {
    let mut sim = established("app:v1", 2, steps_weights(&[50]));
    let first = sim.revision().hash;
    sim.deploy("app:v2");
    sim.settle(20);
    assert_eq!(sim.status.phase, Phase::Healthy);
    let second = sim.revision().hash;
    sim.requests.rollback = Some(("r1".into(), 1));
    sim.settle(10);
    assert_eq!(sim.status.stable_revision, Some(first.clone()));
    assert_eq!(sim.replicas_of(&first), 2);
    assert_eq!(sim.replicas_of(&second), 0);
    assert!(sim.status.rejected_revisions.contains(&second));
    assert!(
        sim.status
            .history
            .iter()
            .any(|e| e.outcome == "RolledBack" && e.revision == 1)
    );
}
