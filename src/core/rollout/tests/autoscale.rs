//! `spec.replicas` changed by an autoscaler (the scale subresource) in the middle of a rollout:
//! both revisions follow it in proportion, Ready capacity is never given up below the floor, no
//! ReplicaSet size oscillates, and a revert restores the stable at the autoscaler's count.

use proptest::prelude::*;

use super::*;
use crate::api::labels::LABEL_NAME;
use crate::core::rollout::scaling;

/// Pods of `revision` as sized and as Ready.
fn sizes(sim: &Sim, revision: &str) -> (i32, i32) {
    (sim.replicas_of(revision), sim.ready_of(revision))
}

/// A canary of v2 over v1 at `replicas`, holding at its first step (`weight`, then a pause
/// until promoted).
fn holding_canary(replicas: i32, weight_percent: i32) -> (Sim, String, String) {
    let mut sim = established("app:v1", replicas, vec![weight(weight_percent), pause(None)]);
    let (stable, canary) = sim.deploy_next("app:v2");
    sim.settle(20);
    assert_eq!(sim.status.phase, Phase::Paused, "{:?}", sim.status.message);
    assert_eq!(sim.status.current_step_index, Some(1));
    (sim, stable, canary)
}

/// What the HPA does: writes `spec.replicas` through the scale subresource.
fn autoscale(sim: &mut Sim, replicas: i32) {
    sim.spec.replicas = Some(replicas);
}

/// One reconcile with pods starting slowly (Ready one tick after creation); asserts that no
/// Ready pod was given up while Ready capacity is at or below the floor of the current spec.
fn tick_checking_capacity(sim: &mut Sim) -> Decision {
    let n = sim.spec.replicas.unwrap_or(0);
    let floor = n - sim.spec.strategy.canary.max_unavailable.unwrap_or(0);
    let ready_before: i32 = sim.replica_sets.iter().map(|rs| rs.ready).sum();
    let decision = sim.tick();
    let ready_after: i32 = sim.replica_sets.iter().map(|rs| rs.ready).sum();
    assert!(
        ready_after >= ready_before.min(floor),
        "Ready capacity fell from {ready_before} to {ready_after} (floor {floor}): {:?}",
        sim.replica_sets
    );
    decision
}

/// Runs reconciles with slow pod starts until nothing changes; returns each revision's size after
/// every tick, to check that no size oscillates.
fn settle_slowly(sim: &mut Sim, revisions: &[&str]) -> Vec<Vec<i32>> {
    sim.startup_lag = true;
    let mut trace: Vec<Vec<i32>> = revisions.iter().map(|r| vec![sim.replicas_of(r)]).collect();
    for _ in 0..30 {
        let ready_before: Vec<i32> = sim.replica_sets.iter().map(|rs| rs.ready).collect();
        let decision = tick_checking_capacity(sim);
        for (sizes, revision) in trace.iter_mut().zip(revisions) {
            sizes.push(sim.replicas_of(revision));
        }
        let ready_after: Vec<i32> = sim.replica_sets.iter().map(|rs| rs.ready).collect();
        if ready_before == ready_after && decision.scale.is_empty() {
            sim.startup_lag = false;
            return trace;
        }
    }
    panic!("no rest after 30 reconciles: {:?}", sim.replica_sets);
}

/// How often a sequence of sizes changes direction (up then down, or down then up).
fn reversals(sizes: &[i32]) -> usize {
    let steps: Vec<i32> = sizes
        .windows(2)
        .map(|w| (w[1] - w[0]).signum())
        .filter(|d| *d != 0)
        .collect();
    steps.windows(2).filter(|w| w[0] != w[1]).count()
}

#[test]
fn an_autoscaler_resizes_both_revisions_in_proportion_mid_canary() {
    let (mut sim, stable, canary) = holding_canary(4, 25);
    assert_eq!((sizes(&sim, &stable), sizes(&sim, &canary)), ((3, 3), (1, 1)));
    for (replicas, expected_canary) in [(8, 2), (12, 3), (20, 5), (5, 2), (4, 1)] {
        autoscale(&mut sim, replicas);
        sim.settle(20);
        assert_eq!(
            sizes(&sim, &canary),
            (expected_canary, expected_canary),
            "canary at {replicas}"
        );
        assert_eq!(
            sizes(&sim, &stable),
            (replicas - expected_canary, replicas - expected_canary),
            "stable at {replicas}"
        );
        // The rollout holds where it was: no restart, no revert, no new history entry.
        assert_eq!(sim.status.phase, Phase::Paused);
        assert_eq!(sim.status.current_step_index, Some(1));
        assert_eq!(sim.status.canary_revision.as_deref(), Some(canary.as_str()));
        assert_eq!(sim.status.history.len(), 2, "{:?}", sim.status.history);
        assert_eq!(sim.status.canary_weight, 25);
        assert_eq!(sim.status.replicas, Some(replicas));
    }
}

#[test]
fn scaling_up_and_down_with_slow_pods_keeps_capacity_and_never_oscillates() {
    let (mut sim, stable, canary) = holding_canary(4, 25);
    for replicas in [10, 16, 6, 2, 9] {
        autoscale(&mut sim, replicas);
        let trace = settle_slowly(&mut sim, &[&stable, &canary]);
        // The stable may stand in for canary pods that are still starting (one extra pod at
        // most per starting canary pod), then gives them back: at most one change of direction.
        for (sizes, who) in trace.iter().zip(["stable", "canary"]) {
            assert!(reversals(sizes) <= 1, "{who} oscillates at {replicas}: {sizes:?}");
        }
        let expected_canary = canary_replicas(replicas, 25);
        assert_eq!(sim.replicas_of(&canary), expected_canary);
        assert_eq!(sim.replicas_of(&stable), replicas - expected_canary);
    }
}

#[test]
fn a_revert_under_load_restores_the_stable_at_the_autoscalers_count() {
    let (mut sim, stable, canary) = holding_canary(4, 25);
    autoscale(&mut sim, 12);
    sim.settle(20);
    assert_eq!(sim.replicas_of(&canary), 3);
    sim.requests.abort = Some("a1".into());
    let trace = settle_slowly(&mut sim, &[&stable, &canary]);
    sim.assert_reverted_because("Aborted");
    assert_eq!(sizes(&sim, &stable), (12, 12), "not the 4 the rollout started with");
    assert_eq!(sim.replicas_of(&canary), 0);
    assert!(reversals(&trace[0]) == 0, "stable: {:?}", trace[0]);
}

#[test]
fn an_autoscaler_scaling_up_in_the_same_moment_as_a_revert_is_followed() {
    let (mut sim, stable, canary) = holding_canary(6, 50);
    // The HPA's write and the abort land before the same reconcile.
    autoscale(&mut sim, 10);
    sim.requests.abort = Some("a1".into());
    settle_slowly(&mut sim, &[&stable, &canary]);
    sim.assert_reverted_because("Aborted");
    assert_eq!(sizes(&sim, &stable), (10, 10));
    assert_eq!(sim.replicas_of(&canary), 0);
    // And on, after the revert: the stable keeps following the autoscaler.
    autoscale(&mut sim, 3);
    settle_slowly(&mut sim, &[&stable, &canary]);
    assert_eq!(sizes(&sim, &stable), (3, 3));
}

#[test]
fn status_carries_the_scale_subresource_fields() {
    let (sim, _, _) = holding_canary(4, 25);
    assert_eq!(sim.status.replicas, Some(4));
    assert_eq!(
        sim.status.selector.as_deref(),
        Some("app=web,safedeploy.dev/name=web,safedeploy.dev/role notin (baseline)")
    );
}

#[test]
fn the_scale_selector_is_the_workloads_own_and_excludes_the_baseline() {
    let selector = LabelSelectorSpec {
        match_labels: BTreeMap::from([
            ("tier".to_string(), "web".to_string()),
            ("app.kubernetes.io/name".to_string(), "shop".to_string()),
            // Admission rejects it; the selector still names the workload once.
            (LABEL_NAME.to_string(), "other".to_string()),
        ]),
    };
    assert_eq!(
        scaling::scale_selector("shop", &selector),
        "app.kubernetes.io/name=shop,tier=web,safedeploy.dev/name=shop,safedeploy.dev/role notin (baseline)"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any sequence of autoscaler writes mid-canary, with slow pods: Ready capacity is never
    /// given up below the floor (checked at every reconcile), every size changes direction at
    /// most once per write, and at rest the canary has `ceil(n * w / 100)` pods and the stable
    /// the rest.
    #[test]
    fn autoscaler_writes_mid_canary_converge_to_the_proportional_split(
        start in 1i32..12,
        weight_percent in 1i32..100,
        max_unavailable in 0i32..3,
        writes in proptest::collection::vec(0i32..25, 1..6),
    ) {
        let mut sim = established("app:v1", start, vec![weight(weight_percent), pause(None)]);
        sim.spec.strategy.canary.max_unavailable = Some(max_unavailable);
        let (stable, canary) = sim.deploy_next("app:v2");
        settle_slowly(&mut sim, &[]);
        for replicas in writes {
            autoscale(&mut sim, replicas);
            let trace = settle_slowly(&mut sim, &[&stable, &canary]);
            for sizes in &trace {
                prop_assert!(reversals(sizes) <= 1, "{sizes:?}");
            }
            let expected_canary = canary_replicas(replicas, weight_percent);
            prop_assert_eq!(sim.replicas_of(&canary), expected_canary);
            prop_assert_eq!(sim.replicas_of(&stable), replicas - expected_canary);
            prop_assert_eq!(sim.status.phase, Phase::Paused);
            prop_assert_eq!(sim.status.replicas, Some(replicas));
        }
    }
}
