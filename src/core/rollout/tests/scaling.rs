//! Replica arithmetic and capacity: weights, canary sizes, Ready capacity while a canary
//! starts, scaling without a rollout, and garbage collection of old revisions.

use super::*;

#[test]
fn canary_replicas_follow_the_weight() {
    for (n, weight, expected) in [
        (4, 25, 1),
        (4, 50, 2),
        (4, 0, 0),
        (4, 100, 4),
        (3, 10, 1),
        (10, 33, 4),
        (0, 50, 0),
    ] {
        assert_eq!(
            canary_replicas(n, weight),
            expected,
            "n={n} weight={weight}"
        );
    }
}

#[test]
fn weight_at_keeps_the_last_set_weight() {
    let steps = vec![weight(20), pause(Some("1m")), weight(60)];
    assert_eq!(weight_at(&steps, 0), 20);
    assert_eq!(weight_at(&steps, 1), 20);
    assert_eq!(weight_at(&steps, 2), 60);
}

#[test]
fn changing_only_replicas_scales_without_a_rollout() {
    let mut sim = established("app:v1", 3, steps_weights(&[50]));
    let hash = sim.revision().hash;
    sim.spec.replicas = Some(5);
    sim.settle(5);
    assert_eq!(sim.replicas_of(&hash), 5);
    assert!(
        sim.events
            .iter()
            .all(|e| e.reason != "RolloutStarted" || e.note.contains("initial"))
    );
}

#[test]
fn stable_capacity_is_kept_while_the_canary_starts() {
    let mut sim = established("app:v1", 4, steps_weights(&[50]));
    let old = sim.revision().hash;
    sim.deploy("app:v2");
    // First reconcile: the canary is created, the stable is not touched yet (no canary is Ready).
    let decision = sim.decide();
    decision.assert_leaves_alone(&old);
}

#[test]
fn old_revisions_beyond_the_history_limit_are_deleted_but_recent_ones_kept() {
    let mut sim = established("app:v1", 1, steps_weights(&[100]));
    sim.spec.revision_history_limit = Some(2);
    for version in 2..=6 {
        sim.deploy(&format!("app:v{version}"));
        sim.settle(20);
        assert_eq!(sim.status.phase, Phase::Healthy);
    }
    // Stable plus two old ones, and possibly the one being deleted this tick.
    assert!(sim.replica_sets.len() <= 4, "{:?}", sim.replica_sets);
    assert!(sim.replica_sets.len() >= 3);
}
