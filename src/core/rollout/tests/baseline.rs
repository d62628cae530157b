//! The fresh baseline, and Ready capacity through reverts and superseded canaries.

use super::*;

fn fresh(image: &str, replicas: i32, steps: Vec<CanaryStep>) -> Sim {
    let mut spec = spec(image, replicas, steps);
    spec.strategy.canary.baseline = Some(crate::api::BaselineMode::Fresh);
    let mut sim = Sim::new(spec);
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Healthy);
    assert!(sim.baseline_replica_sets.is_empty(), "no baseline at rest");
    sim
}

/// Sizes of the baseline after each tick until the rollout settles, with the invariants
/// (capacity counting stable and canary only, baseline at the canary's size) checked at every
/// state.
fn run_with_baseline(sim: &mut Sim, max_ticks: usize) -> Vec<i32> {
    let mut sizes = Vec::new();
    for _ in 0..max_ticks {
        let decision = sim.tick();
        sim.check_invariants();
        sizes.push(sim.baseline_replica_sets.iter().map(|rs| rs.replicas).sum());
        if decision.scale.is_empty()
            && decision.baseline_scale.is_empty()
            && decision.baseline_delete.is_empty()
            && decision.events.is_empty()
            && decision.requeue_after.is_none()
        {
            break;
        }
    }
    sizes
}

#[test]
fn a_fresh_baseline_follows_the_canary_size_and_goes_with_the_promotion() {
    let mut sim = fresh("app:v1", 4, steps_weights(&[25, 50, 75]));
    let stable = sim.revision().hash;
    sim.deploy("app:v2");
    let sizes = run_with_baseline(&mut sim, 40);
    for size in [1, 2, 3] {
        assert!(sizes.contains(&size), "baseline sizes {sizes:?}");
    }
    assert_eq!(sizes.last(), Some(&0));
    assert_eq!(sim.status.phase, Phase::Healthy);
    assert_ne!(sim.status.stable_revision.as_deref(), Some(stable.as_str()));
    assert!(sim.baseline_replica_sets.is_empty());
    assert_eq!(sim.status.baseline, None);
    // Two revisions, and the old stable is kept in history at zero.
    assert_eq!(sim.status.revisions.len(), 2);
    assert_eq!(sim.replicas_of(&stable), 0);
    assert!(sim.replica_sets.iter().any(|rs| rs.revision == stable));
}

#[test]
fn the_baseline_is_created_with_the_canary_and_says_what_it_is() {
    let mut sim = fresh("app:v1", 4, steps_weights(&[50]));
    let stable = sim.revision().hash;
    sim.spec.strategy.canary.steps.push(pause(None));
    sim.deploy("app:v2");
    let first = sim.tick();
    // The same decision creates the canary and the baseline.
    assert!(
        first
            .scale
            .iter()
            .any(|a| a.revision != stable && a.replicas == 2)
    );
    assert_eq!(
        first.baseline_scale,
        vec![ScaleAction {
            revision: stable.clone(),
            component: "main".into(),
            replicas: 2
        }]
    );
    sim.settle(10);
    let baseline = sim.status.baseline.clone().expect("baseline status");
    let selector = crate::core::revision::baseline_selector(&stable);
    assert_eq!(baseline.revision, stable);
    assert_eq!(baseline.selector, selector);
    assert_eq!((baseline.replicas, baseline.ready), (2, 2));
    assert!(baseline.message.contains(&selector), "{}", baseline.message);
    // Stable at 4 - 2: the baseline's pods take no part in the stable's size.
    assert_eq!(sim.replicas_of(&stable), 2);
    // The state is in the cluster: deciding again (as after an operator restart) finds the
    // baseline by its view and changes nothing.
    let again = sim.decide();
    assert!(again.baseline_scale.is_empty() && again.baseline_delete.is_empty());
    assert_eq!(again.status, sim.status);
    // A baseline of another stable revision (left by an earlier rollout) is deleted.
    sim.baseline_replica_sets.push(ReplicaSetView {
        name: "web-0123456789-baseline".into(),
        revision: "0123456789".into(),
        component: "main".into(),
        replicas: 1,
        ready: 1,
        rejected: false,
    });
    let decision = sim.decide();
    assert_eq!(decision.baseline_delete, vec!["web-0123456789-baseline"]);
}

#[test]
fn the_baseline_goes_when_the_canary_is_reverted_or_aborted() {
    let mut sim = fresh("app:v1", 4, steps_weights(&[25, 50]));
    sim.spec.strategy.canary.steps.insert(1, pause(None));
    sim.deploy("app:v2");
    run_with_baseline(&mut sim, 10);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(sim.baseline_replica_sets.len(), 1);
    sim.requests.abort = Some("t1".into());
    run_with_baseline(&mut sim, 10);
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert!(sim.baseline_replica_sets.is_empty());

    // A crashing canary: reverted by the health gate, and the baseline goes with it.
    sim.deploy("app:v3");
    let v3 = sim.revision().hash;
    sim.faults.insert(v3, Fault::Crash);
    run_with_baseline(&mut sim, 10);
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert!(sim.baseline_replica_sets.is_empty());
    assert_eq!(sim.status.baseline, None);

    // A rollback during a canary: the baseline goes too, and is never what is rolled back to.
    sim.deploy("app:v4");
    run_with_baseline(&mut sim, 10);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(sim.baseline_replica_sets.len(), 1);
    sim.requests.rollback = Some(("1/r1".into(), 1));
    run_with_baseline(&mut sim, 10);
    assert!(sim.baseline_replica_sets.is_empty());
    assert_eq!(sim.status.canary_revision, None);
    let v1 = sim.status.revisions.iter().find(|r| r.number == 1).unwrap();
    assert_eq!(sim.status.stable_revision.as_ref(), Some(&v1.hash));
}

#[test]
fn a_crashing_baseline_is_not_blamed_on_the_canary() {
    let mut sim = fresh("app:v1", 4, steps_weights(&[50]));
    sim.spec.strategy.canary.steps.push(pause(None));
    sim.baseline_fault = Fault::Crash;
    sim.deploy("app:v2");
    run_with_baseline(&mut sim, 10);
    assert_eq!(sim.status.phase, Phase::Paused, "{:?}", sim.status.message);
    let baseline = sim.status.baseline.clone().expect("baseline status");
    assert_eq!(baseline.ready, 0);
    assert!(baseline.restarts > 0);
    assert!(
        baseline.message.contains("not blamed"),
        "{}",
        baseline.message
    );
    let restarts = sim
        .status
        .health
        .iter()
        .find(|m| m.signal == "restarts")
        .unwrap();
    assert_eq!(restarts.value, 0.0, "the canary's restarts only");
    // It promotes as usual, and the baseline goes.
    sim.requests.promote = Some("p1".into());
    run_with_baseline(&mut sim, 20);
    assert_eq!(sim.status.phase, Phase::Healthy);
    assert!(sim.baseline_replica_sets.is_empty());
}

#[test]
fn with_a_stable_baseline_no_baseline_replica_set_is_ever_made() {
    let mut sim = established("app:v1", 4, steps_weights(&[25, 50, 75]));
    sim.deploy("app:v2");
    for _ in 0..40 {
        let decision = sim.tick();
        sim.check_invariants();
        assert!(decision.baseline_scale.is_empty() && decision.baseline_delete.is_empty());
        assert_eq!(decision.status.baseline, None);
    }
    assert_eq!(sim.status.phase, Phase::Healthy);
}

#[test]
fn capacity_and_baseline_invariants_hold_across_many_fresh_rollouts() {
    let cases: [(i32, i32, &[i32]); 5] = [
        (1, 0, &[50, 100]),
        (3, 0, &[10, 34, 100]),
        (4, 1, &[25, 50, 75]),
        (5, 2, &[0, 20, 60, 100]),
        (10, 0, &[5, 50]),
    ];
    for ((replicas, max_unavailable, weights), startup_lag) in cases
        .into_iter()
        .flat_map(|case| [(case, false), (case, true)])
    {
        let mut sim = fresh("app:v1", replicas, steps_weights(weights));
        sim.startup_lag = startup_lag;
        sim.spec.strategy.canary.max_unavailable = Some(max_unavailable);
        for (round, image) in ["app:v2", "app:v3"].into_iter().enumerate() {
            sim.deploy(image);
            if round == 1 {
                // A canary replaced mid-rollout keeps the same stable, so the same baseline.
                run_with_baseline(&mut sim, 2);
                sim.deploy("app:v4");
            }
            run_with_baseline(&mut sim, 60);
            assert_eq!(sim.status.phase, Phase::Healthy, "{replicas} {weights:?}");
            assert!(sim.baseline_replica_sets.is_empty());
        }
    }
}

/// Kayenta's cold-start lesson for the start-up latency gate: with a fresh baseline the canary's
/// start-up is compared with the same-age baseline pods once one is Ready, and with the stable
/// pods before that (and always with `baseline: Stable`).
#[test]
fn start_up_latency_is_compared_with_the_fresh_baseline_once_it_is_ready() {
    let startup_reference = |sim: &Sim| {
        sim.status
            .health
            .iter()
            .find(|m| m.signal == "startupLatencySeconds")
            .and_then(|m| m.baseline)
    };
    let pause = pause(None);
    let mut sim = fresh("app:v1", 4, steps_weights(&[50]));
    sim.spec.strategy.canary.steps.push(pause.clone());
    sim.baseline_startup = 20;
    sim.deploy("app:v2");
    run_with_baseline(&mut sim, 10);
    assert_eq!(sim.status.phase, Phase::Paused);
    assert_eq!(startup_reference(&sim), Some(20.0));

    let mut sim = fresh("app:v1", 4, steps_weights(&[50]));
    sim.spec.strategy.canary.steps.push(pause.clone());
    sim.baseline_startup = 20;
    sim.baseline_fault = Fault::NeverReady;
    sim.deploy("app:v2");
    run_with_baseline(&mut sim, 10);
    assert_eq!(
        startup_reference(&sim),
        Some(0.0),
        "the stable pods' start-up"
    );

    let mut sim = established("app:v1", 4, steps_weights(&[50]));
    sim.spec.strategy.canary.steps.push(pause);
    sim.baseline_startup = 20;
    sim.deploy("app:v2");
    run_with_baseline(&mut sim, 10);
    assert_eq!(startup_reference(&sim), Some(0.0));
}

#[test]
fn coupled_components_each_get_a_fresh_baseline_at_their_canary_size() {
    let mut spec = three_components([1, 2, 5], "v1", steps_weights(&[20, 50, 100]));
    spec.strategy.canary.baseline = Some(crate::api::BaselineMode::Fresh);
    let mut sim = Sim::new(spec);
    sim.check_lockstep = true;
    sim.settle(10);
    assert_eq!(sim.status.phase, Phase::Healthy);
    set_version(&mut sim, "v2");
    let mut most = 0;
    for _ in 0..60 {
        let decision = sim.tick();
        sim.check_invariants();
        most = most.max(sim.baseline_replica_sets.len());
        if decision.scale.is_empty()
            && decision.baseline_scale.is_empty()
            && decision.baseline_delete.is_empty()
            && decision.requeue_after.is_none()
        {
            break;
        }
    }
    assert_eq!(most, 3, "one baseline per component");
    assert_eq!(sim.status.phase, Phase::Healthy);
    assert!(sim.baseline_replica_sets.is_empty());
}

/// A canary at 50 % with Ready pods, waiting at a manual pause; pods start with a lag.
fn paused_half_way() -> Sim {
    let steps = vec![weight(50), pause(None)];
    let mut sim = established("app:v1", 4, steps);
    sim.startup_lag = true;
    sim.deploy("app:v2");
    sim.settle(20);
    assert_eq!(sim.status.phase, Phase::Paused);
    let canary = sim.revision().hash;
    assert_eq!(sim.ready_of(&canary), 2);
    sim
}

#[test]
fn a_revert_keeps_ready_capacity_while_the_stable_scales_back_up() {
    let mut aborted = paused_half_way();
    let canary = aborted.revision().hash;
    aborted.requests.abort = Some("a1".into());
    aborted.tick();
    aborted.check_invariants();
    assert_eq!(aborted.status.phase, Phase::Degraded);
    assert_eq!(
        aborted.replicas_of(&canary),
        2,
        "the canary's Ready pods stay until the stable's replacements are Ready"
    );
    aborted.settle(10);
    assert_eq!(aborted.replicas_of(&canary), 0, "and then they go");
    let stable = aborted.status.stable_revision.clone().unwrap();
    assert_eq!(aborted.ready_of(&stable), 4);

    // With room to spare (maxUnavailable covers the canary), the canary goes at once.
    let mut roomy = paused_half_way();
    roomy.spec.strategy.canary.max_unavailable = Some(2);
    roomy.requests.abort = Some("a2".into());
    roomy.tick();
    roomy.check_invariants();
    assert_eq!(roomy.replicas_of(&canary), 0);
}

#[test]
fn a_failed_analysis_or_a_superseded_canary_never_drops_ready_capacity() {
    // Failed background analysis: the canary's pods are Ready, the metric says no.
    let mut failed = paused_half_way();
    failed.analyses.insert(
        "bg".into(),
        AnalysisGate::Failed("error ratio 0.05 >= critical 0.02".into()),
    );
    failed.spec.strategy.canary.background_analysis = Some("bg".into());
    for _ in 0..10 {
        failed.tick();
        failed.check_invariants();
    }
    assert_eq!(failed.status.phase, Phase::Degraded);
    assert_eq!(failed.replicas_of(&failed.revision().hash), 0);

    // A newer revision replaces the half-way canary.
    let mut superseded = paused_half_way();
    let old_canary = superseded.revision().hash;
    superseded.deploy("app:v3");
    superseded.tick();
    superseded.check_invariants();
    superseded.settle(30);
    assert_eq!(superseded.replicas_of(&old_canary), 0);
}
